"""
Tests for L{novasvc.examples.volume.objects}: the L{Volume} object, its
versions and primitives, its registry and its serializer.
"""

import datetime

from oslo_versionedobjects import exception as ovo_exc
from oslo_versionedobjects import fields
from twisted.trial.unittest import SynchronousTestCase

from novasvc.examples.volume.objects import (
    OBJ_PROJECT_NAMESPACE,
    OBJ_SERIAL_NAMESPACE,
    STATUSES,
    Volume,
    VolumeObject,
    VolumeObjectRegistry,
    VolumeObjectSerializer,
)
from novasvc.examples.volume.rpcapi import VolumeAPI

#: The fields of each Volume version, as (field class, nullable): a change
#: here without a new version is the mistake this file exists to catch.
FIELDS_1_0 = {
    "id": ("StringField", False),
    "host": ("StringField", False),
    "size_gb": ("IntegerField", False),
    "status": ("EnumField", False),
    "location": ("StringField", True),
    "created_at": ("DateTimeField", False),
}
FIELDS_1_1 = {**FIELDS_1_0, "name": ("StringField", True)}

RECORD = {"id": "6f1c0000-0000-4000-8000-000000000001", "host": "h1", "size_gb": 2,
          "status": "available", "location": "fake://6f1c", "name": "data",
          "created_at": datetime.datetime(1970, 1, 1, 0, 0, 10)}


def key(name):
    return f"{OBJ_SERIAL_NAMESPACE}.{name}"


class VolumeTests(SynchronousTestCase):
    def test_fields_pinned(self):
        """
        When Volume's fields are described, then they are those of version
        1.1; the statuses are the four the service uses.
        """
        described = {name: (type(field).__name__, field.nullable)
                     for name, field in Volume.fields.items()}
        self.assertEqual((Volume.VERSION, described), ("1.1", FIELDS_1_1))
        self.assertIsInstance(Volume.fields["status"], fields.EnumField)
        self.assertEqual(STATUSES, ("creating", "available", "deleting", "error"))
        self.assertRaises(ValueError, setattr, Volume(), "status", "melting")

    def test_from_record(self):
        """
        When a volume is made from a record (a row), then it has its values,
        created_at as an aware UTC datetime, and no changes to report.
        """
        volume = Volume.from_record(RECORD)
        self.assertEqual((volume.id, volume.host, volume.size_gb, volume.status, volume.name),
                         (RECORD["id"], "h1", 2, "available", "data"))
        self.assertEqual(volume.created_at,
                         datetime.datetime(1970, 1, 1, 0, 0, 10, tzinfo=datetime.timezone.utc))
        self.assertEqual(volume.obj_what_changed(), set())

    def test_from_dict_of_api_1_0(self):
        """
        When a volume is made from a volume dict of RPC API 1.0 (no name,
        created_at as a string), then its name is None and its created_at a
        datetime.
        """
        record = {k: v for k, v in RECORD.items() if k != "name"}
        record["created_at"] = "1970-01-01T00:00:10Z"
        volume = Volume.from_record(record)
        self.assertIsNone(volume.name)
        self.assertEqual(volume.created_at.second, 10)

    def test_primitive(self):
        """
        When a volume is turned into its primitive, then it carries the
        example's namespaces, version 1.1 and every field as JSON values.
        """
        primitive = Volume.from_record(RECORD).obj_to_primitive()
        self.assertEqual(primitive, {
            key("name"): "Volume", key("namespace"): OBJ_PROJECT_NAMESPACE,
            key("version"): "1.1",
            key("data"): {**RECORD, "created_at": "1970-01-01T00:00:10Z"},
        })
        self.assertEqual((OBJ_SERIAL_NAMESPACE, OBJ_PROJECT_NAMESPACE),
                         ("novasvc_volume_object", "novasvc_volume"))

    def test_compatible_with_1_0(self):
        """
        When a volume is turned into a Volume 1.0 primitive, then name is
        dropped and every 1.0 field kept.
        """
        primitive = Volume.from_record(RECORD).obj_to_primitive(target_version="1.0")
        self.assertEqual(primitive[key("version")], "1.0")
        self.assertEqual(set(primitive[key("data")]), set(FIELDS_1_0))

    def test_read_1_0(self):
        """
        When a Volume 1.0 primitive is read, then the volume keeps version
        1.0 (it goes back out as such) and has no name.
        """
        primitive = Volume.from_record(RECORD).obj_to_primitive(target_version="1.0")
        volume = Volume.obj_from_primitive(primitive)
        self.assertEqual(volume.VERSION, "1.0")
        self.assertFalse(volume.obj_attr_is_set("name"))
        self.assertEqual(volume.obj_to_primitive(), primitive)

    def test_equality(self):
        """
        When two volumes have the same fields, then they are equal; a
        different field makes them differ.
        """
        self.assertEqual(Volume.from_record(RECORD), Volume.from_record(RECORD))
        self.assertNotEqual(Volume.from_record(RECORD), Volume.from_record({**RECORD, "size_gb": 3}))


class RegistryTests(SynchronousTestCase):
    def test_versions(self):
        """
        When the example's registry is asked which versions it has, then it
        is Volume 1.1: what the newest RPC API version carries.
        """
        self.assertEqual(VolumeObjectRegistry.versions(), {"Volume": "1.1"})
        self.assertEqual(VolumeAPI.OBJECT_VERSIONS[VolumeAPI.VERSION],
                         VolumeObjectRegistry.versions())
        self.assertTrue(issubclass(Volume, VolumeObject))

    def test_older_registration_keeps_newest(self):
        """
        When an older version of a class is registered after a newer one,
        then the registry still reports the newer one.
        """
        registry = VolumeObjectRegistry()
        newest = dict(VolumeObjectRegistry._newest)
        self.addCleanup(setattr, VolumeObjectRegistry, "_newest", newest)

        class Old:
            VERSION = "1.0"

            @classmethod
            def obj_name(cls):
                return "Volume"

        registry.registration_hook(Old, 0)
        self.assertEqual(VolumeObjectRegistry.versions(), {"Volume": "1.1"})


class SerializerTests(SynchronousTestCase):
    def setUp(self):
        self.serializer = VolumeObjectSerializer()

    def test_round_trip(self):
        """
        When volumes inside a list and a dict are serialized and read back,
        then the result equals the original and the wire form holds only
        primitives.
        """
        volume = Volume.from_record(RECORD)
        sent = self.serializer.serialize_entity(None, {"all": [volume], "n": 1})
        self.assertEqual(sent["all"][0][key("name")], "Volume")
        self.assertEqual(self.serializer.deserialize_entity(None, sent), {"all": [volume], "n": 1})

    def test_newer_version_refused(self):
        """
        When a primitive carries a newer Volume than this process knows,
        then reading it raises IncompatibleObjectVersion naming both
        versions.
        """
        primitive = Volume.from_record(RECORD).obj_to_primitive()
        primitive[key("version")] = "1.99"
        error = self.assertRaises(ovo_exc.IncompatibleObjectVersion,
                                  self.serializer.deserialize_entity, None, primitive)
        self.assertIn("1.99", str(error))
        self.assertIn("1.1", str(error))

    def test_other_namespace_refused(self):
        """
        When a primitive of the example's serial namespace names another
        project's namespace, then reading it raises UnsupportedObjectError.
        """
        primitive = Volume.from_record(RECORD).obj_to_primitive()
        primitive[key("namespace")] = "nova"
        self.assertRaises(ovo_exc.UnsupportedObjectError,
                          self.serializer.deserialize_entity, None, primitive)

    def test_nova_primitive_untouched(self):
        """
        When a value looks like a Nova object primitive, then the example's
        serializer leaves it as it is (a plain dict).
        """
        nova = {"nova_object.name": "Instance", "nova_object.data": {}}
        self.assertEqual(self.serializer.deserialize_entity(None, nova), nova)
