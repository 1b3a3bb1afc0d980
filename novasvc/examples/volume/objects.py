# -*- test-case-name: tests.test_examples_volume_objects -*-
"""
The volume example's versioned objects, built on oslo.versionedobjects as
Nova builds C{nova.objects}: L{Volume}, the example's object base class
L{VolumeObject}, its registry L{VolumeObjectRegistry} and its serializer
L{VolumeObjectSerializer}. Needs the C{objects} extra (C{pip install
'novasvc[objects]'}).

On the wire an object is its primitive: a C{dict} whose keys are prefixed
with the example's serial namespace C{novasvc_volume_object} (Nova's is
C{nova_object})::

    {"novasvc_volume_object.name": "Volume",
     "novasvc_volume_object.namespace": "novasvc_volume",
     "novasvc_volume_object.version": "1.1",
     "novasvc_volume_object.data": {"id": "6f1c...", "host": "h1", "size_gb": 2, ...}}

plus C{"novasvc_volume_object.changes"} (the fields set since the object
was loaded) when there are some. Any peer with these classes (or ones
declaring the same names, namespaces, versions and fields) reads it, an
oslo.messaging peer included: this module imports nothing from Twisted.

Changing an object: add the field, bump C{VERSION}'s minor number, say
so in the class's version history, drop the field for older versions in
C{obj_make_compatible}, and update the fingerprint pinned in
C{tests/test_examples_volume_objects.py}. A receiver older than the
object refuses it with C{IncompatibleObjectVersion}; a sender with an RPC
version cap backports it first (see
L{novasvc.examples.volume.rpcapi.VolumeAPI}).
"""

import warnings
from typing import Any, Dict, Optional, Tuple

with warnings.catch_warnings():
    # oslo.versionedobjects imports oslo.messaging, which imports
    # oslo.service and so eventlet, whose import warns that eventlet is
    # deprecated: nothing here uses eventlet, so the warning would only
    # puzzle the reader of a service's log.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from oslo_utils import versionutils
    from oslo_versionedobjects import base, fields

__all__ = [
    "OBJ_SERIAL_NAMESPACE",
    "OBJ_PROJECT_NAMESPACE",
    "STATUSES",
    "VolumeObjectRegistry",
    "VolumeObject",
    "Volume",
    "VolumeObjectSerializer",
]

#: The prefix of the keys of the example's object primitives.
OBJ_SERIAL_NAMESPACE = "novasvc_volume_object"

#: The project namespace the example's primitives carry; a primitive of
#: another project is refused.
OBJ_PROJECT_NAMESPACE = "novasvc_volume"

#: A volume's statuses: C{creating} -> C{available} -> C{deleting} (then it
#: is gone); C{error} when a delete failed.
STATUSES: Tuple[str, ...] = ("creating", "available", "deleting", "error")


class VolumeObjectRegistry(base.VersionedObjectRegistry):
    """
    The registry of the example's objects: classes are registered with
    C{@VolumeObjectRegistry.register}.

    oslo.versionedobjects keeps the classes of every registry in one table
    by object name (which deserializing a primitive reads); this registry
    also remembers the newest version of each of I{its} classes, so that
    the example can say which versions it speaks (L{versions}).
    """

    #: The newest class registered under each name (shared by every
    #: instance: oslo makes one per registration).
    _newest: Dict[str, Any] = {}

    def registration_hook(self, cls: Any, index: int) -> None:
        name = cls.obj_name()
        known = self._newest.get(name)
        if known is None or _version(cls.VERSION) >= _version(known.VERSION):
            self._newest[name] = cls

    @classmethod
    def versions(cls) -> Dict[str, str]:
        """
        @return: the newest registered version of each of the example's
            objects, by name, e.g. C{{"Volume": "1.1"}}.
        """
        return {name: klass.VERSION for name, klass in sorted(cls._newest.items())}


class VolumeObject(base.VersionedObject):
    """
    The base class of the example's objects: their primitives carry
    L{OBJ_SERIAL_NAMESPACE} and L{OBJ_PROJECT_NAMESPACE}.
    """

    OBJ_SERIAL_NAMESPACE = OBJ_SERIAL_NAMESPACE
    OBJ_PROJECT_NAMESPACE = OBJ_PROJECT_NAMESPACE


@VolumeObjectRegistry.register
class Volume(base.ComparableVersionedObject, VolumeObject):
    """
    A volume of one host, as the volume service keeps it.

    Fields: C{id} (C{str}, a UUID chosen by the service), C{host} (C{str},
    the host that has it), C{size_gb} (C{int}, B{GiB}), C{status} (one of
    L{STATUSES}), C{location} (C{str} or C{None}: where the driver keeps
    it), C{created_at} (an aware UTC C{datetime}; ISO 8601 on the wire)
    and, since 1.1, C{name} (C{str} or C{None}: a name for humans).

    Version history::

        1.0 - Initial version: id, host, size_gb, status, location,
              created_at.
        1.1 - Add name (made compatible with 1.0 by dropping it).

    Two volumes are equal when their versions and set fields are.
    """

    VERSION = "1.1"

    fields = {
        "id": fields.StringField(),
        "host": fields.StringField(),
        "size_gb": fields.IntegerField(),
        "status": fields.EnumField(valid_values=STATUSES),
        "location": fields.StringField(nullable=True),
        "created_at": fields.DateTimeField(),
        "name": fields.StringField(nullable=True),
    }

    def obj_make_compatible(self, primitive: Dict[str, Any], target_version: str) -> None:
        """
        Make C{primitive} (the fields of this volume) readable by a peer
        that knows Volume C{target_version}: C{name} goes for 1.0.

        @param primitive: the C{data} of the primitive, changed in place.
        @param target_version: the version asked for, e.g. C{"1.0"}.
        """
        super().obj_make_compatible(primitive, target_version)
        if _version(target_version) < (1, 1):
            primitive.pop("name", None)

    @classmethod
    def from_record(cls, record: Any, context: Optional[Any] = None) -> "Volume":
        """
        A volume from a record (a mapping with the fields' names, e.g. a
        row of the C{volumes} table or a volume C{dict} of RPC API 1.0),
        with no changes to report (as Nova's C{_from_db_object}).

        @param record: the values; a missing C{name} is C{None}, other keys
            are ignored. C{created_at} may be a naive UTC C{datetime} or an
            ISO 8601 string.
        @param context: the request context the object keeps, or C{None}.
        @return: the L{Volume}.
        @raise ValueError: a value does not fit its field (e.g. an unknown
            status).
        @raise KeyError: a field other than C{name} is missing.
        """
        volume = cls(context)
        for name in cls.fields:
            value = record.get(name) if name == "name" else record[name]
            setattr(volume, name, value)
        volume.obj_reset_changes()
        return volume


class VolumeObjectSerializer(base.VersionedObjectSerializer):
    """
    oslo.versionedobjects' serializer for the example's objects: an
    argument or result that is a L{VolumeObject} travels as its primitive,
    and a primitive of L{OBJ_SERIAL_NAMESPACE} comes back as the object.
    Reading a primitive of a newer minor version than this process
    registered raises C{IncompatibleObjectVersion}.

    novasvc's services and clients wrap it in
    L{novasvc.rpc.serializer.RequestContextSerializer} (the context as a
    L{novasvc.context.RequestContext}); an oslo.messaging peer can use it
    as it is.
    """

    OBJ_BASE_CLASS = VolumeObject


def _version(version: str) -> Tuple[int, ...]:
    return tuple(versionutils.convert_version_to_tuple(version))
