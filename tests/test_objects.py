"""
Tests for L{novasvc.objects}: L{versions_for_cap} and
L{BackportingSerializer}, with the volume example's objects.
"""

import datetime

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from novasvc.context import RequestContext
from novasvc.examples.volume.objects import Volume, VolumeObjectSerializer
from novasvc.objects import BackportingSerializer, versions_for_cap
from novasvc.serializer import ISerializer, RequestContextSerializer

HISTORY = {"1.2": {"Volume": "1.0"}, "1.3": {"Volume": "1.1"}, "2.0": {"Volume": "2.0"}}
VERSION_KEY = "novasvc_volume_object.version"


def volume(**values):
    record = {"id": "v1", "host": "h1", "size_gb": 1, "status": "available", "location": None,
              "name": "n", "created_at": datetime.datetime(1970, 1, 1)}
    record.update(values)
    return Volume.from_record(record)


class VersionsForCapTests(SynchronousTestCase):
    def test_no_cap(self):
        """
        When there is no cap, then there is no manifest: objects go at
        their own versions.
        """
        self.assertIsNone(versions_for_cap(HISTORY, None))

    def test_newest_allowed(self):
        """
        When the cap is a version of the history, above one, or between
        two, then the manifest is the newest entry the cap allows, of the
        cap's major version only.
        """
        self.assertEqual(versions_for_cap(HISTORY, "1.3"), {"Volume": "1.1"})
        self.assertEqual(versions_for_cap(HISTORY, "1.2"), {"Volume": "1.0"})
        self.assertEqual(versions_for_cap(HISTORY, "1.2.5"), {"Volume": "1.0"})
        self.assertEqual(versions_for_cap(HISTORY, "1.9"), {"Volume": "1.1"})
        self.assertEqual(versions_for_cap(HISTORY, "2.4"), {"Volume": "2.0"})

    def test_numeric_order(self):
        """
        When versions have minor numbers of two digits, then they are
        compared as numbers (1.10 is above 1.9).
        """
        history = {"1.9": {"Volume": "1.0"}, "1.10": {"Volume": "1.1"}}
        self.assertEqual(versions_for_cap(history, "1.10"), {"Volume": "1.1"})

    def test_below_every_entry(self):
        """
        When the cap is below the first version that carried objects, then
        there is no manifest.
        """
        self.assertIsNone(versions_for_cap(HISTORY, "1.1"))

    def test_bad_cap(self):
        """
        When the cap is not a version, then ValueError.
        """
        self.assertRaises(ValueError, versions_for_cap, HISTORY, "one")


class BackportingSerializerTests(SynchronousTestCase):
    def serializer(self, manifest):
        return BackportingSerializer(VolumeObjectSerializer(), manifest)

    def test_interface(self):
        """
        When checked against ISerializer, then it provides it.
        """
        self.assertTrue(verifyObject(ISerializer, self.serializer({"Volume": "1.0"})))

    def test_backports(self):
        """
        When a Volume 1.1 is serialized with a manifest naming Volume 1.0,
        alone or inside lists, tuples and dicts, then each goes as a 1.0
        primitive without name.
        """
        sent = self.serializer({"Volume": "1.0"}).serialize_entity(
            None, {"a": [volume()], "b": (volume(),), "c": volume(), "n": 3})
        for primitive in (sent["a"][0], sent["b"][0], sent["c"]):
            self.assertEqual(primitive[VERSION_KEY], "1.0")
            self.assertNotIn("name", primitive["novasvc_volume_object.data"])
        self.assertIsInstance(sent["b"], tuple)
        self.assertEqual(sent["n"], 3)

    def test_newest_or_own_version(self):
        """
        When the manifest is empty or None, or names a newer version than
        the object's own, or lacks the object, then the object goes at its
        own version.
        """
        for manifest in (None, {}, {"Volume": "1.5"}, {"Snapshot": "1.0"}):
            sent = self.serializer(manifest).serialize_entity(None, volume())
            self.assertEqual(sent[VERSION_KEY], "1.1", manifest)

    def test_delegates(self):
        """
        When reading entities and handling contexts, then the wrapped
        serializer does the work: inside a RequestContextSerializer the
        context is a RequestContext, and a primitive comes back as a
        Volume.
        """
        wrapped = RequestContextSerializer(self.serializer({"Volume": "1.0"}))
        ctxt = wrapped.deserialize_context({"user_id": "u1"})
        self.assertIsInstance(ctxt, RequestContext)
        self.assertEqual(wrapped.serialize_context(ctxt)["user_id"], "u1")
        read = wrapped.deserialize_entity(ctxt, wrapped.serialize_entity(ctxt, volume()))
        self.assertIsInstance(read, Volume)
        self.assertEqual((read.VERSION, read.id), ("1.0", "v1"))
