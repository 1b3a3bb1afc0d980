"""
Tests for L{novasvc.objects}: oslo.versionedobjects through a novasvc RPC
client and server, over the in-memory transport with a L{task.Clock}.
"""

from typing import Any, List

from oslo_versionedobjects import base, exception, fields
from twisted.internet import task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import Config
from novasvc.context import RequestContext
from novasvc.db.memory import MemoryServiceStore
from novasvc.manager import Manager
from novasvc.objects import REMOTE_EXMODS, object_serializer
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import RemoteError
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.serializer import RequestContextSerializer
from novasvc.service import Service
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
