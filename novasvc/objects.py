# -*- test-case-name: tests.test_objects -*-
"""
Versioned objects on the wire, with oslo.versionedobjects (the library
Nova's objects are built on): C{pip install 'novasvc[objects]'}. This module
imports it; nothing else in novasvc does.

Nova sends its objects over RPC as their primitives, through
C{RequestContextSerializer(VersionedObjectSerializer())}: the serializer
turns each object argument or result into a primitive (a C{dict} naming its
class, its namespace, its version and its fields) and back. novasvc's RPC
client and server call it at the same places oslo.messaging does (see
L{novasvc.rpc.serializer}), so the same serializer works with them unchanged::

    from oslo_versionedobjects import base, fields

    from novasvc import Manager, RPCClient, Target
    from novasvc.objects import REMOTE_EXMODS, object_serializer

    class MyObject(base.VersionedObject):
        OBJ_PROJECT_NAMESPACE = "myproject"     # what your primitives carry

    @base.VersionedObjectRegistry.register
    class Volume(MyObject):
        VERSION = "1.1"                         # 1.0: id, size; 1.1: name
        fields = {"id": fields.IntegerField(), "size": fields.IntegerField(),
                  "name": fields.StringField(nullable=True)}

    class VolumeManager(Manager):
        serializer = object_serializer(MyObject)   # made once, shared

        def extend(self, ctxt, volume, size):   # volume arrives a Volume
            volume.size = size
            return volume                       # and leaves a primitive

    client = RPCClient(transport, Target(topic="volume"),
                       serializer=object_serializer(MyObject),
                       allowed_remote_exmods=REMOTE_EXMODS)
    volume = yield client.call(ctxt, "extend", volume=Volume(id=1, size=1,
                                                             name=None), size=2)

L{object_serializer} is that serializer for the objects of one base class
(C{OBJ_BASE_CLASS}, whose namespace the primitives must carry); with
oslo.versionedobjects' own C{VersionedObject}, C{object_serializer()} is
exactly C{RequestContextSerializer(VersionedObjectSerializer())}.

An object newer than the receiver knows (a version whose minor is above its
registered one) cannot be read: C{VersionedObjectSerializer} raises
C{oslo_versionedobjects.exception.IncompatibleObjectVersion}. On an RPC
server that fails the one request (see L{novasvc.rpc.server}): a call's
caller gets it in the error reply, as C{IncompatibleObjectVersion} itself
when its C{allowed_remote_exmods} include L{REMOTE_EXMODS}, as a
L{novasvc.rpc.errors.RemoteError} naming it otherwise; a cast is one ERROR
line. The server goes on serving. A caller that may talk to older servers
sends objects no newer than they know, as Nova's rpcapi modules do with
their version caps.

Backporting to a version cap (L{versions_for_cap}, L{BackportingSerializer}):
an RPC API records which object versions each of its versions carries, and
a client whose C{version_cap} is below the newest sends its objects made
compatible (C{obj_make_compatible}) with the versions the capped API
carries, as C{novasvc.examples.volume.rpcapi.VolumeAPI} does::

    OBJECT_VERSIONS = {"1.2": {"Volume": "1.0"}, "1.3": {"Volume": "1.1"}}

    manifest = versions_for_cap(OBJECT_VERSIONS, version_cap)   # None: no cap
    objects = MyObjectSerializer()            # a VersionedObjectSerializer
    if manifest is not None:
        objects = BackportingSerializer(objects, manifest)
    client = RPCClient(transport, target, version_cap=version_cap,
                       serializer=RequestContextSerializer(objects))
"""

from typing import Any, Dict, Mapping, Optional, Tuple

from zope.interface import implementer

try:
    from oslo_versionedobjects.base import VersionedObject, VersionedObjectSerializer
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError(f"novasvc.objects needs oslo.versionedobjects: pip install 'novasvc[objects]' ({e})") from e

from novasvc.rpc.target import parse_version
from novasvc.rpc.serializer import ISerializer, RequestContextSerializer

__all__ = ["REMOTE_EXMODS", "object_serializer", "versions_for_cap", "BackportingSerializer"]

#: The module of oslo.versionedobjects' exceptions, for a client's
#: C{allowed_remote_exmods} (or the configuration key of that name): its
#: callers then get C{IncompatibleObjectVersion} and the like as themselves.
REMOTE_EXMODS: Tuple[str, ...] = ("oslo_versionedobjects.exception",)


def object_serializer(base_class: Optional[type] = None) -> RequestContextSerializer:
    """
    Nova's RPC serializer for the versioned objects of one base class.

    @param base_class: the project's C{VersionedObject} subclass (its
        C{OBJ_PROJECT_NAMESPACE} and C{OBJ_SERIAL_NAMESPACE} are those of
        the primitives read); C{None}: oslo.versionedobjects'
        C{VersionedObject}.
    @return: a L{RequestContextSerializer} around a
        C{VersionedObjectSerializer} whose C{OBJ_BASE_CLASS} is
        C{base_class}: contexts as L{novasvc.context.RequestContext}s,
        objects (also inside lists, tuples and dicts) as primitives.
    @raise TypeError: when C{base_class} is not a C{VersionedObject}
        subclass.
    """
    if base_class is None or base_class is VersionedObject:
        return RequestContextSerializer(VersionedObjectSerializer())
    if not (isinstance(base_class, type) and issubclass(base_class, VersionedObject)):
        raise TypeError(f"base_class must be a VersionedObject subclass, not {base_class!r}")
    serializer: Any = type(f"{base_class.__name__}Serializer", (VersionedObjectSerializer,),
                           {"OBJ_BASE_CLASS": base_class, "__module__": __name__})
    return RequestContextSerializer(serializer())


# -- backporting to a version cap --------------------------------------------


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
