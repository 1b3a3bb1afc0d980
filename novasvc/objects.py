# -*- test-case-name: tests.test_objects -*-
"""
Helpers for versioned objects (oslo.versionedobjects) on novasvc's RPC.

Backporting to a version cap, as a client does during a rolling upgrade:
an RPC API records which object versions each of its versions carries,
and a client whose C{version_cap} is below the newest sends its objects
made compatible with the versions the capped API carries::

    OBJECT_VERSIONS = {"1.2": {"Volume": "1.0"}, "1.3": {"Volume": "1.1"}}

    manifest = versions_for_cap(OBJECT_VERSIONS, version_cap)
    serializer = RequestContextSerializer(
        BackportingSerializer(MyObjectSerializer(), manifest))
    client = RPCClient(transport, target, version_cap=version_cap,
                       serializer=serializer)

Nothing here imports oslo.versionedobjects: an object is anything with
C{obj_name()}, C{VERSION} and C{obj_to_primitive(target_version=,
version_manifest=)}, which every C{VersionedObject} has.
"""

from typing import Any, Dict, Mapping, Optional, Tuple

from zope.interface import implementer

from novasvc.rpc.target import parse_version
from novasvc.serializer import ISerializer

__all__ = ["BackportingSerializer", "versions_for_cap"]


def versions_for_cap(history: Mapping[str, Mapping[str, str]],
                     version_cap: Optional[str]) -> Optional[Dict[str, str]]:
    """
    The object versions a peer capped at C{version_cap} reads.

    @param history: for each RPC API version that changed the objects it
        carries, the object versions it carries by object name, e.g.
        C{{"1.2": {"Volume": "1.0"}, "1.3": {"Volume": "1.1"}}}.
    @param version_cap: the client's cap, or C{None} (no cap).
    @return: the entry of the newest version of C{history} that the cap
        allows (same major version, not above it); C{None} when there is
        no cap (objects go at their own version) or the cap allows none of
        them (an API at that version carries no objects).
    @raise ValueError: when C{version_cap} or a key of C{history} is not a
        version.
    """
    if version_cap is None:
        return None
    cap = parse_version(version_cap)
    best: Optional[Tuple[Tuple[int, int, int], Mapping[str, str]]] = None
    for version, objects in history.items():
        parsed = parse_version(version)
        if parsed[0] == cap[0] and parsed <= cap and (best is None or parsed > best[0]):
            best = (parsed, objects)
    return None if best is None else dict(best[1])


@implementer(ISerializer)
class BackportingSerializer:
    """
    A serializer whose objects go out at the versions of a manifest (each
    made compatible through its C{obj_make_compatible}), everything else
    through the serializer it wraps.

    An object whose name the manifest lacks, or whose own version is older
    than the manifest's, goes at its own version. Objects inside lists,
    tuples, sets and C{dict} values are found too. Deserializing and the
    context are the wrapped serializer's.

    @ivar base: the wrapped serializer (e.g. a subclass of
        oslo.versionedobjects' C{VersionedObjectSerializer}).
    @ivar version_manifest: the versions, by object name; C{None} or
        empty: every object at its own version.
    """

    def __init__(self, base: Any, version_manifest: Optional[Mapping[str, str]]) -> None:
        """
        @param base: the serializer to wrap.
        @param version_manifest: object versions by name, as
            L{versions_for_cap} returns them.
        """
        self.base = base
        self.version_manifest: Optional[Dict[str, str]] = (
            dict(version_manifest) if version_manifest else None)

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """
        @return: C{entity}'s wire form, its objects backported.
        @raise Exception: what the object's C{obj_make_compatible} raises
            when it cannot be made compatible (oslo's
            C{IncompatibleObjectVersion} or C{ObjectActionError}).
        """
        if self.version_manifest is None:
            return self.base.serialize_entity(ctxt, entity)
        return self._backport(ctxt, entity)

    def _backport(self, ctxt: Any, entity: Any) -> Any:
        if isinstance(entity, (list, tuple, set)):
            items = [self._backport(ctxt, item) for item in entity]
            return tuple(items) if isinstance(entity, tuple) else items
        if isinstance(entity, dict):
            return {key: self._backport(ctxt, value) for key, value in entity.items()}
        to_primitive = getattr(entity, "obj_to_primitive", None)
        if to_primitive is None or not callable(to_primitive):
            return self.base.serialize_entity(ctxt, entity)
        manifest = self.version_manifest or {}
        own = entity.VERSION
        wanted = manifest.get(entity.obj_name(), own)
        if parse_version(wanted) > parse_version(own):
            wanted = own
        return to_primitive(target_version=wanted, version_manifest=manifest)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self.base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: Any) -> Any:
        return self.base.serialize_context(ctxt)

    def deserialize_context(self, ctxt: Any) -> Any:
        return self.base.deserialize_context(ctxt)
