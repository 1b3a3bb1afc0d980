"""
Tests for L{novasvc.objects}: oslo.versionedobjects through a novasvc RPC
client and server, over the in-memory transport with a L{task.Clock}; and
backporting to a version cap (L{versions_for_cap},
L{BackportingSerializer}), with the volume example's objects.
"""

import datetime
from typing import Any, List

from oslo_versionedobjects import base, exception, fields
from twisted.internet import task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from novasvc.config import Config
from novasvc.context import RequestContext
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.volume.objects import Volume, VolumeObjectSerializer
from novasvc.core.manager import Manager
from novasvc.objects import (
    REMOTE_EXMODS,
    BackportingSerializer,
    object_serializer,
    versions_for_cap,
)
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import RemoteError
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import ISerializer, RequestContextSerializer
from novasvc.core.service import Service
from novasvc.transport.memory import MemoryBroker, MemoryTransport


class NovasvcTestObject(base.VersionedObject):
    """
    The base class of this module's objects: their own namespace, as a
    project's objects have.
    """

    OBJ_PROJECT_NAMESPACE = "novasvc_tests"
    OBJ_SERIAL_NAMESPACE = "novasvc_tests_object"


@base.VersionedObjectRegistry.register
class NovasvcTestWidget(NovasvcTestObject):
    """
    An object with two versions: 1.0 had C{id} and C{name}; 1.1 added
    C{size}.
    """

    VERSION = "1.1"
    fields = {
        "id": fields.IntegerField(),
        "name": fields.StringField(),
        "size": fields.IntegerField(default=0),
    }

    def obj_make_compatible(self, primitive: Any, target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if target_version == "1.0":
            primitive.pop("size", None)


class NewerWidget(NovasvcTestWidget):
    """
    Version 1.2 of the widget, as a newer peer has it (not registered
    here: this process knows up to 1.1).
    """

    VERSION = "1.2"

    @classmethod
    def obj_name(cls) -> str:
        return "NovasvcTestWidget"


@base.VersionedObjectRegistry.register
class PlainWidget(base.VersionedObject):
    """
    An object of oslo.versionedobjects' own namespace.
    """

    VERSION = "1.0"
    fields = {"name": fields.StringField()}


class WidgetManager:
    """
    The server's endpoint.
    """

    def __init__(self) -> None:
        self.got: List[Any] = []

    def grow(self, ctxt, widget, by):
        self.got.append((ctxt, widget))
        widget.size = (widget.size if widget.obj_attr_is_set("size") else 0) + by
        return widget

    def describe(self, ctxt, widget):
        self.got.append((ctxt, widget))
        return {"class": type(widget).__name__, "version": widget.VERSION,
                "has_size": widget.obj_attr_is_set("size")}

    def many(self, ctxt, widgets):
        self.got.append((ctxt, widgets))
        return [w.name for w in widgets]

    def upgrade(self, ctxt, widget):
        self.got.append((ctxt, widget))
        return NewerWidget(id=widget.id, name=widget.name, size=0)


class ObjectsTests(SynchronousTestCase):
    """
    Versioned objects through a novasvc client and server with
    L{object_serializer}.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.manager = WidgetManager()
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        self.server = RPCServer(self.transport(), Target(topic="widgets", server="h1"), [self.manager],
                                clock=self.clock, serializer=object_serializer(NovasvcTestObject))
        self.successResultOf(self.server.start())
        self.client = self.make_client(object_serializer(NovasvcTestObject))

    def transport(self) -> MemoryTransport:
        return MemoryTransport(broker=self.broker, clock=self.clock)

    def make_client(self, serializer: Any, **kwargs: Any) -> RPCClient:
        return RPCClient(self.transport(), Target(topic="widgets"), clock=self.clock, serializer=serializer,
                         **kwargs)

    def test_round_trip(self) -> None:
        """
        When an object is an argument, then the method gets it as an object
        of its class (with the request's RequestContext as its context), and
        the object it returns reaches the caller as an object.
        """
        ctxt = RequestContext("u1", request_id="req-w")
        result = self.successResultOf(self.client.call(ctxt, "grow", widget=NovasvcTestWidget(
            id=1, name="w", size=2), by=3))
        self.assertIsInstance(result, NovasvcTestWidget)
        self.assertEqual((result.id, result.name, result.size), (1, "w", 5))
        got_ctxt, widget = self.manager.got[0]
        self.assertIsInstance(got_ctxt, RequestContext)
        self.assertEqual(got_ctxt.request_id, "req-w")
        self.assertIsInstance(widget, NovasvcTestWidget)
        self.assertIs(widget._context, got_ctxt)

    def test_older_version(self) -> None:
        """
        When an object arrives at version 1.0 (from an older peer), then the
        method gets it at that version, without the field 1.1 added.
        """
        widget = NovasvcTestWidget(id=1, name="w", size=2)

        class Backporting(RequestContextSerializer):
            def serialize_entity(self, ctxt, entity):
                return entity.obj_to_primitive(target_version="1.0")

        result = self.successResultOf(self.make_client(Backporting()).call({}, "describe", widget=widget))
        self.assertEqual(result, {"class": "NovasvcTestWidget", "version": "1.0", "has_size": False})

    def test_containers(self) -> None:
        """
        When objects are inside a list, then each arrives as an object.
        """
        widgets = [NovasvcTestWidget(id=i, name=f"w{i}") for i in range(3)]
        self.assertEqual(self.successResultOf(self.client.call({}, "many", widgets=widgets)), ["w0", "w1", "w2"])

    def test_default_namespace(self) -> None:
        """
        When object_serializer is given no base class, then it is
        RequestContextSerializer(VersionedObjectSerializer()) and serves
        oslo.versionedobjects' own namespace.
        """
        serializer = object_serializer()
        self.assertIs(type(serializer.base), base.VersionedObjectSerializer)
        primitive = serializer.serialize_entity(None, PlainWidget(name="p"))
        self.assertEqual(primitive["versioned_object.name"], "PlainWidget")
        self.assertEqual(serializer.deserialize_entity(RequestContext(), primitive).name, "p")
        self.assertRaises(TypeError, object_serializer, dict)

    def test_newer_version_allowed(self) -> None:
        """
        When a caller that allows REMOTE_EXMODS sends an object newer than
        the server knows, then its Deferred fails with
        IncompatibleObjectVersion naming the object and both versions, and
        the server keeps serving.
        """
        client = self.make_client(object_serializer(NovasvcTestObject), allowed_remote_exmods=REMOTE_EXMODS)
        failure = self.failureResultOf(client.call({}, "grow", widget=NewerWidget(id=1, name="n", size=1), by=1),
                                       exception.IncompatibleObjectVersion)
        self.assertIn("Version 1.2 of NovasvcTestWidget is not supported, supported version is 1.1",
                      str(failure.value))
        self.assertEqual(failure.value.kwargs["objver"], "1.2")
        self.assertEqual(self.manager.got, [])
        result = self.successResultOf(client.call({}, "grow", widget=NovasvcTestWidget(id=2, name="m"), by=1))
        self.assertEqual(result.size, 1)

    def test_newer_version_remote_error(self) -> None:
        """
        When a caller that does not allow REMOTE_EXMODS sends an object
        newer than the server knows, then its Deferred fails with
        RemoteError naming IncompatibleObjectVersion and its message.
        """
        failure = self.failureResultOf(self.client.call({}, "grow", widget=NewerWidget(id=1, name="n"), by=1),
                                       RemoteError)
        self.assertEqual(failure.value.exc_type, "IncompatibleObjectVersion")
        self.assertTrue(str(failure.value).startswith(
            "Remote error: IncompatibleObjectVersion Version 1.2 of NovasvcTestWidget is not supported, "
            "supported version is 1.1"), str(failure.value))

    def test_newer_version_cast(self) -> None:
        """
        When a cast carries an object newer than the server knows, then one
        ERROR line names IncompatibleObjectVersion, and the next cast is
        served.
        """
        since = len(self.log)
        self.successResultOf(self.client.cast({}, "grow", widget=NewerWidget(id=1, name="n"), by=1))
        lines = [formatEvent(e) for e in list(self.log)[since:] if e["log_level"] >= LogLevel.warn]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("IncompatibleObjectVersion", lines[0])
        self.successResultOf(self.client.cast({}, "grow", widget=NovasvcTestWidget(id=1, name="n"), by=1))
        self.assertEqual(len(self.manager.got), 1)

    def test_newer_result(self) -> None:
        """
        When the result is an object newer than the caller knows, then the
        caller's Deferred fails with IncompatibleObjectVersion (raised by
        its own serializer).
        """
        failure = self.failureResultOf(self.client.call({}, "upgrade", widget=NovasvcTestWidget(id=1, name="n")),
                                       exception.IncompatibleObjectVersion)
        self.assertEqual(failure.value.kwargs["objver"], "1.2")


class ServedWidgetManager(Manager):
    """
    The README's recipe: a manager declaring the objects' serializer.
    """

    topic = "widgets"
    serializer = object_serializer(NovasvcTestObject)

    def grow(self, ctxt, widget, by):
        widget.size = widget.size + by
        return widget


class ServiceTests(SynchronousTestCase):
    """
    A service whose manager declares L{object_serializer} serves objects
    with no other code.
    """

    def test_served(self) -> None:
        """
        When a Service hosts a manager whose serializer attribute is
        object_serializer(...), then a client with the same serializer
        gets its objects back grown.
        """
        clock = task.Clock()
        broker = MemoryBroker()
        service = Service.create(manager=ServedWidgetManager, config=Config(host="h1", periodic_enable=False),
                                 store=MemoryServiceStore(), transport=MemoryTransport(broker=broker, clock=clock),
                                 clock=clock)
        self.assertIs(service.serializer, ServedWidgetManager.serializer)
        self.successResultOf(service.startService())
        self.addCleanup(service.stopService)
        client = RPCClient(MemoryTransport(broker=broker, clock=clock), Target(topic="widgets"), clock=clock,
                           serializer=object_serializer(NovasvcTestObject))
        result = self.successResultOf(client.call(RequestContext(), "grow",
                                                  widget=NovasvcTestWidget(id=1, name="w", size=1), by=2))
        self.assertEqual((type(result), result.size), (NovasvcTestWidget, 3))


# -- backporting to a version cap --------------------------------------------

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
