"""
Tests for L{novasvc.testing.harness}.
"""

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

import sqlalchemy as sa

from novasvc.config import Config
from novasvc.examples.echo import EchoError, EchoManager
from novasvc.core.manager import Manager
from novasvc.periodic import periodic_task
from novasvc.rpc.errors import NoSuchMethod, RemoteError
from novasvc.testing import EPOCH, ServiceHarness


class Ticking(Manager):
    """
    Counts its periodic runs and casts; keeps notes in its own table.
    """

    topic = "ticking"

    def __init__(self, *args, **kwargs):
        Manager.__init__(self, *args, **kwargs)
        self.ticks = 0
        self.casts = []

    @periodic_task(spacing=10, run_immediately=True)
    def _tick(self, context):
        self.ticks += 1

    def note(self, ctxt, text):
        self.casts.append(text)


_notes = sa.Table("notes", sa.MetaData(), sa.Column("text", sa.String(40)))


class Noting(Manager):
    """
    Uses C{self.db}.
    """

    topic = "noting"

    def init_host(self, service_ref):
        return self.db.create_tables(_notes.metadata)

    def add(self, ctxt, text):
        return self.db.run(lambda conn: conn.execute(_notes.insert().values(text=text)).rowcount)

    def count(self, ctxt):
        return self.db.run(lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(_notes)).scalar())


class HarnessTests(SynchronousTestCase):
    """
    L{ServiceHarness} runs a manager in process.
    """

    def test_call(self) -> None:
        """
        When a method is called, then the reply comes back through the RPC
        path.
        """
        harness = ServiceHarness(EchoManager)
        self.successResultOf(harness.start())
        self.assertEqual(self.successResultOf(harness.call("echo", value=[1])), [1])
        self.successResultOf(harness.stop())

    def test_serializer(self) -> None:
        """
        When the manager declares a serializer, then the harness's client
        has the service's too: arguments and results travel serialized and
        reach both ends as they were.
        """
        from tests.test_core_service import SerializingManager, UpperSerializer

        class Symmetric(UpperSerializer):
            def deserialize_entity(self, ctxt, entity):
                return entity["result"] if isinstance(entity, dict) and "by" in entity else entity

        class Served(SerializingManager):
            serializer = Symmetric

        harness = ServiceHarness(Served)
        self.successResultOf(harness.start())
        self.assertIs(harness.client().serializer, harness.service.serializer)
        self.assertEqual(self.successResultOf(harness.call("echo", value="v")), {"value": "v", "context": "dict"})
        self.successResultOf(harness.stop())

    def test_remoteErrors(self) -> None:
        """
        When a method raises or does not exist, then the caller gets the
        remote error, as over a broker.
        """
        harness = ServiceHarness(EchoManager)
        self.successResultOf(harness.start())
        failure = self.failureResultOf(harness.call("nothing"), RemoteError)
        self.assertEqual(failure.value.exc_type, NoSuchMethod.__name__)
        failure = self.failureResultOf(harness.call("fail", message="no"), RemoteError)
        self.assertEqual(failure.value.exc_type, EchoError.__name__)

    def test_cast(self) -> None:
        """
        When a method is cast to, then it runs.
        """
        harness = ServiceHarness(Ticking)
        self.successResultOf(harness.start())
        self.successResultOf(harness.cast("note", text="hi"))
        self.assertEqual(harness.manager.casts, ["hi"])

    def test_advance(self) -> None:
        """
        When time is advanced, then periodic tasks and report_state run as
        they would in that time, and the service stays up.
        """
        harness = ServiceHarness(Ticking)
        self.successResultOf(harness.start())
        harness.advance(30)
        self.assertEqual(harness.manager.ticks, 4)  # at 0, 10, 20, 30
        [row] = harness.services()
        self.assertEqual((row.host, row.binary, row.topic), ("test-host", "novasvc-ticking",
                                                               "ticking"))
        self.assertEqual(row.report_count, 4)  # at start, 5, 15, 25 (report_interval 10)
        self.assertTrue(harness.is_up())

    def test_down_when_not_reporting(self) -> None:
        """
        When the service stops reporting for longer than service_down_time,
        then it is down.
        """
        harness = ServiceHarness(Ticking, config=Config(host="h", report_interval=0,
                                                        service_down_time=60))
        self.successResultOf(harness.start())
        self.assertTrue(harness.is_up())
        harness.advance(61, step=61)
        self.assertFalse(harness.is_up())

    def test_clock_times(self) -> None:
        """
        When the clock moves, then the services table's time moves with it.
        """
        harness = ServiceHarness(Ticking)
        harness.advance(90, step=90)
        self.assertEqual((harness.utcnow() - EPOCH).total_seconds(), 90)

    def test_host_and_client(self) -> None:
        """
        When a host is given, then calls to that server reach the service.
        """
        harness = ServiceHarness(EchoManager, host="box")
        self.successResultOf(harness.start())
        direct = harness.client(server="box")
        self.assertEqual(self.successResultOf(direct.call({}, "echo", value=2)), 2)

    def test_isUpBeforeStart(self) -> None:
        """
        When the service has no row yet, then L{ServiceHarness.is_up} says so.
        """
        self.assertRaises(LookupError, ServiceHarness(Ticking).is_up)

    def test_badAdvance(self) -> None:
        """
        When time is moved backwards, then C{ValueError} is raised.
        """
        self.assertRaises(ValueError, ServiceHarness(Ticking).advance, -1)

    def test_successful(self) -> None:
        """
        When L{ServiceHarness.successful} gets an unfired or failed
        C{Deferred}, then it raises.
        """
        self.assertRaises(AssertionError, ServiceHarness.successful, defer.Deferred())
        self.assertRaises(KeyError, ServiceHarness.successful, defer.fail(KeyError("k")))


class Announcing(Manager):
    topic = "announcing"

    def announce(self, ctxt, what):
        return self.notifier.info(ctxt, "announcing.done", {"what": what})


class HarnessNotificationTests(SynchronousTestCase):
    """
    What a harness keeps of the notifications sent.
    """

    def test_manager_notifications(self):
        """
        When the manager sends a notification, then C{harness.notifications}
        has it, with the manager's publisher id, whatever the
        C{notifications:} section says (off by default).
        """
        harness = ServiceHarness(Announcing)
        self.successResultOf(harness.start())
        self.successResultOf(harness.call("announce", what="it"))
        [sent] = harness.notifications
        self.assertEqual((sent.publisher_id, sent.event_type, sent.priority, sent.payload),
                         ("announcing.test-host", "announcing.done", "info", {"what": "it"}))
        self.successResultOf(harness.stop())

    def test_versioned_notifications(self):
        """
        When the harness's service creates its record, then
        C{harness.versioned_notifications} has its service.create.
        """
        harness = ServiceHarness(Announcing)
        self.successResultOf(harness.start())
        self.assertEqual([(n.event_type, n.publisher_id) for n in harness.versioned_notifications],
                         [("service.create", "novasvc-announcing:test-host")])
        self.assertEqual(harness.notifications, [])
        self.successResultOf(harness.stop())


class HarnessDeterminismTests(SynchronousTestCase):
    """
    The harness runs periodic tasks at fixed times.
    """

    def test_fuzzy_delay_zero_with_config(self) -> None:
        """
        When the harness is given a configuration whose periodic_fuzzy_delay
        is 60, then the first periodic pass still runs at once and the next
        after the spacing (10 s).
        """
        harness = ServiceHarness(Ticking, config=Config(host="h", periodic_fuzzy_delay=60))
        self.successResultOf(harness.start())
        self.assertEqual(harness.manager.ticks, 1)
        harness.advance(10)
        self.assertEqual(harness.manager.ticks, 2)
        self.successResultOf(harness.stop())

    def test_kit_exports(self) -> None:
        """
        When a test imports the in-memory twins from novasvc.testing, then
        they are the framework's own classes.
        """
        from novasvc import testing
        from novasvc.config import DatabaseConfig
        from novasvc.db.memory import MemoryServiceStore
        from novasvc.transport.memory import MemoryBroker, MemoryTransport

        self.assertEqual((testing.MemoryBroker, testing.MemoryTransport,
                          testing.MemoryServiceStore, testing.DatabaseConfig, testing.Config),
                         (MemoryBroker, MemoryTransport, MemoryServiceStore, DatabaseConfig,
                          Config))


class HarnessDatabaseTests(TestCase):
    """
    A manager's C{self.db} in the harness is SQLite in memory.
    """

    async def test_db(self) -> None:
        """
        When the manager keeps rows through C{self.db}, then calls see them.
        """
        harness = ServiceHarness(Noting)
        await harness.start()
        self.addCleanup(harness.stop)
        self.assertEqual(await harness.call("add", text="a"), 1)
        self.assertEqual(await harness.call("count"), 1)
