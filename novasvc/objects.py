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
L{novasvc.serializer}), so the same serializer works with them unchanged::

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
"""

from typing import Any, Optional, Tuple

try:
    from oslo_versionedobjects.base import VersionedObject, VersionedObjectSerializer
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError(f"novasvc.objects needs oslo.versionedobjects: pip install 'novasvc[objects]' ({e})") from e

from novasvc.serializer import RequestContextSerializer

__all__ = ["REMOTE_EXMODS", "object_serializer"]

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
