"""
Tests for L{novasvc.core.service}.
"""

import datetime
import random

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from novasvc.config import Config, managers_from
from novasvc.config.options import Opt
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.echo import EchoManager
from novasvc.exceptions import ConfigError, LifecycleError, LoadError, ServiceExists, StartupError
from novasvc.core.manager import Manager
from novasvc.periodic import periodic_task
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.core.service import SERVICE_VERSION, Service
from novasvc.core.servicegroup import is_up
from novasvc.transport.memory import MemoryBroker, MemoryTransport


class RecordingManager(Manager):
    """
    A manager that records its hooks and can be told to block on them.
    """

    topic = "recording"

    def __init__(self, *args, **kwargs):
        Manager.__init__(self, *args, **kwargs)
        self.events = []
        self.runs = 0
        self.broker = None

    def _queues(self):
        return sorted(n for n in self.broker.queues if n.startswith("recording"))

    def init_host(self, service_ref):
        self.events.append(("init_host", service_ref))

    def pre_start_hook(self, service_ref):
        self.events.append(("pre_start_hook", service_ref.id, self._queues()))

    def post_start_hook(self):
        self.events.append(("post_start_hook", self._queues()))

    def cleanup_host(self):
        self.events.append(("cleanup_host",))

    def reset(self):
        self.events.append(("reset",))

    @periodic_task(spacing=10, run_immediately=True)
    def _tick(self, context):
        self.runs += 1


class FakeDB:
    """
    A database API factory for the C{db_driver} test.
    """

    def __init__(self, store):
        self.store = store

    def stop(self):
        return defer.succeed(None)


class ServiceTestMixin:
    def make(self, manager=RecordingManager, config=None, **kwargs):
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.transport = MemoryTransport(broker=self.broker, clock=self.clock)
        self.store = kwargs.pop("store", None) or MemoryServiceStore()
        config = config or Config(host="h1", periodic_fuzzy_delay=0)
        service = Service.create(manager=manager, config=config, store=self.store,
                                 transport=self.transport, clock=self.clock,
                                 rng=random.Random(4), **kwargs)
        if isinstance(service.manager, RecordingManager):
            service.manager.broker = self.broker
        return service

    def client(self, topic="recording", **kwargs):
        return RPCClient(MemoryTransport(broker=self.broker, clock=self.clock),
                         Target(topic=topic, **kwargs), clock=self.clock)

    def rows(self, **kwargs):
        """
        @return: the rows (live ones unless told otherwise), opening the
            store again if the service closed it.
        """
        stopped = []
        d = self.store.list_services(**kwargs)
        d.addErrback(lambda f: stopped.append(f.trap(RuntimeError)))
        rows = self.successResultOf(d)
        if stopped:
            self.successResultOf(self.store.start())
            rows = self.successResultOf(self.store.list_services(**kwargs))
        return rows


class CreateTests(ServiceTestMixin, SynchronousTestCase):
    def test_topic_from_binary(self):
        """
        When only a binary named novasvc-<topic> is given, then the topic is
        the binary without its prefix.
        """
        service = self.make(binary="novasvc-volume")
        self.assertEqual((service.binary, service.topic), ("novasvc-volume", "volume"))

    def test_topic_and_binary_from_manager(self):
        """
        When neither topic nor binary is given, then the topic is the
        manager class's topic attribute and the binary novasvc-<topic>.
        """
        service = self.make()
        self.assertEqual((service.binary, service.topic), ("novasvc-recording", "recording"))
        self.assertEqual(service.host, "h1")
        self.assertEqual(service.manager.host, "h1")

    def test_manager_from_config(self):
        """
        When no manager is given, then the <topic>_manager config key names it.
        """
        config = Config(host="h1", managers=managers_from(
            {"echo": "novasvc.examples.echo.EchoManager"}))
        service = self.make(manager=None, topic="echo", config=config)
        self.assertIsInstance(service.manager, EchoManager)

    def test_no_manager(self):
        """
        When no manager is given or configured, then ConfigError says how to
        give one.
        """
        error = self.assertRaises(ConfigError, self.make, manager=None, topic="volume")
        self.assertIn("volume_manager", str(error))

    def test_bad_manager_path(self):
        """
        When the manager path cannot be imported, then LoadError says so.
        """
        self.assertRaises(LoadError, self.make, manager="novasvc.examples.nothere.Manager")

    def test_no_topic(self):
        """
        When the manager has no topic attribute and none is given, then
        ConfigError asks for one.
        """
        self.assertRaises(ConfigError, self.make, manager=Manager)

    def test_single_manager_in_config(self):
        """
        When no manager, topic or binary is given and the config names
        exactly one <topic>_manager, then that manager and topic are used.
        """
        config = Config(host="h1", managers=managers_from(
            {"echo": "novasvc.examples.echo.EchoManager"}))
        service = self.make(manager=None, config=config)
        self.assertEqual(service.topic, "echo")
        self.assertIsInstance(service.manager, EchoManager)

    def test_several_managers_in_config(self):
        """
        When the config names several managers and nothing chooses one,
        then ConfigError lists them.
        """
        config = Config(host="h1", managers=managers_from(
            {"echo": "novasvc.examples.echo.EchoManager", "volume": "x.Y"}))
        error = self.assertRaises(ConfigError, self.make, manager=None, config=config)
        self.assertIn("several: echo_manager, volume_manager", str(error))

    def test_manager_gets_config_and_db(self):
        """
        When the manager takes them, then it gets the service's bound
        configuration and the database API C{db_driver} names.
        """
        from novasvc.db.api import Database

        service = self.make()
        self.assertIs(service.manager.config, service.config)
        self.assertIsInstance(service.manager.db, Database)
        self.assertIs(service.db, service.manager.db)

    def test_db_driver(self):
        """
        When C{db_driver} names another factory, then it is called with the
        arguments it takes and its result is the manager's C{db}.
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, db_driver="tests.test_core_service.FakeDB")
        service = self.make(config=config)
        self.assertIsInstance(service.manager.db, FakeDB)
        self.assertIs(service.manager.db.store, self.store)

    def test_module_manager(self):
        """
        When the manager is a module, then its own functions are served over
        RPC at its target's version, its hooks run, and what it imported or
        its hooks are not callable.
        """
        from tests import _module_manager

        del _module_manager.events[:]
        service = self.make(manager="tests._module_manager")
        self.successResultOf(service.startService())
        self.assertEqual(service.topic, "modular")
        self.assertEqual(_module_manager.events, ["init_host"])
        client = self.client("modular", version="1.2")
        self.assertEqual(self.successResultOf(client.call({}, "echo", value=5)), 5)
        for name in ("join", "init_host"):
            failure = self.failureResultOf(client.call({}, name, a="x"))
            self.assertIn("NoSuchMethod", str(failure.value))
        self.assertEqual(_module_manager.events, ["init_host"])
        self.successResultOf(service.stopService())

    def test_instance_manager(self):
        """
        When the manager is an object, then its methods are served.
        """
        service = self.make(manager="tests._module_manager.GREETER")
        self.successResultOf(service.startService())
        client = self.client("greeter")
        self.assertEqual(self.successResultOf(client.call({}, "greet", name="x")), "hello x")
        self.successResultOf(service.stopService())

    def test_manager_section_validated(self):
        """
        When the file's section for the manager is invalid, then ConfigError
        is raised before the manager is built.
        """
        from novasvc.config import load_config

        path = self.mktemp()
        with open(path, "w") as f:
            f.write("recording:\n  colour: red\n")
        config = load_config(path).replace(host="h1")
        self.patch(RecordingManager, "options", (Opt("size", int, default=1),))
        error = self.assertRaises(ConfigError, self.make, config=config)
        self.assertIn("recording.colour: unknown key", str(error))

    def test_reply_retry_timeout(self):
        """
        When C{kombu_missing_consumer_retry_timeout} is set, then the RPC
        server retries replies to a missing reply queue for that long (as
        oslo.messaging uses the option).
        """
        service = self.make(config=Config(host="h1", kombu_missing_consumer_retry_timeout=7))
        self.assertEqual(service.rpcserver._replies.retry_timeout, 7)

    def test_arguments_beat_config(self):
        """
        When timer settings are passed, then they win over the config.
        """
        service = self.make(report_interval=3, periodic_enable=False)
        self.assertEqual(service.report_interval, 3)
        self.assertIsNone(_named(service, "periodic"))


class RecordingDatabase:
    """
    A C{db_driver} factory that records the C{reactor} it was offered.
    """

    offered = []

    def __init__(self, config, store, reactor):
        RecordingDatabase.offered.append(reactor)

    def stop(self):
        return defer.succeed(None)


@implementer(IReactorThreads)
class ThreadedClock(task.Clock):
    """
    A clock that claims to run threads, as a real reactor does.
    """


class DatabaseReactorTests(ServiceTestMixin, SynchronousTestCase):
    def setUp(self):
        RecordingDatabase.offered = []
        self.config = Config(host="h1", db_driver="tests.test_core_service.RecordingDatabase")

    def test_clock_not_offered_as_reactor(self):
        """
        When the service's clock is only a clock (task.Clock), then the
        database API is offered no reactor (it uses the global one for its
        threads) rather than the clock, which cannot run threads.
        """
        self.make(config=self.config)
        self.assertEqual(RecordingDatabase.offered, [None])

    def test_reactor_offered(self):
        """
        When the clock provides IReactorThreads, then the database API is
        offered it as its reactor.
        """
        clock = ThreadedClock()
        Service.create(manager=RecordingManager, config=self.config, store=MemoryServiceStore(),
                       transport=MemoryTransport(broker=MemoryBroker(), clock=clock), clock=clock)
        self.assertEqual(RecordingDatabase.offered, [clock])


def _named(service, name):
    try:
        return service.getServiceNamed(name)
    except KeyError:
        return None


class StartStopTests(ServiceTestMixin, SynchronousTestCase):
    def test_start_order(self):
        """
        When the service starts, then init_host runs before the record exists,
        pre_start_hook gets the new record before any consumer exists,
        post_start_hook runs once the topic, server and fanout queues exist,
        and the start Deferred fires.
        """
        service = self.make()
        self.successResultOf(service.startService())
        [row] = self.rows()
        queues = ["recording", "recording.h1"]
        events = service.manager.events
        self.assertEqual(events[0], ("init_host", None))
        self.assertEqual(events[1], ("pre_start_hook", row.id, []))
        self.assertEqual(events[2][0], "post_start_hook")
        self.assertEqual(events[2][1][:2], queues)
        self.assertTrue(events[2][1][2].startswith("recording_fanout_"))
        self.assertEqual((row.host, row.binary, row.topic, row.version),
                         ("h1", "novasvc-recording", "recording", SERVICE_VERSION))
        self.assertEqual(service.service_ref.id, row.id)
        self.assertEqual(row.report_count, 1)  # reported once before "ready"

    def test_existing_record_reused(self):
        """
        When a record already exists, then init_host receives it, no new row
        is made, and its version is brought up to date.
        """
        self.store = MemoryServiceStore()
        self.successResultOf(self.store.start())
        old = self.successResultOf(self.store.create("h1", "novasvc-recording", "recording", version=0))
        self.successResultOf(self.store.stop())
        service = self.make(store=self.store)
        self.successResultOf(service.startService())
        self.assertEqual(service.manager.events[0], ("init_host", old))
        [row] = self.rows()
        self.assertEqual((row.id, row.version), (old.id, SERVICE_VERSION))

    def test_create_race(self):
        """
        When a sibling creates the record between the lookup and the create
        (ServiceExists), then the sibling's record is used.
        """
        self.store = MemoryServiceStore()
        lookups = []
        real = self.store.get_by_host_and_binary

        def racing_lookup(host, binary):
            lookups.append(host)
            if len(lookups) == 1:
                self.successResultOf(self.store.create(host, binary, "recording", version=SERVICE_VERSION))
                return defer.succeed(None)
            return real(host, binary)

        self.store.get_by_host_and_binary = racing_lookup
        service = self.make(store=self.store)
        self.successResultOf(service.startService())
        self.assertEqual(len(self.rows()), 1)
        self.assertEqual(service.service_ref.id, self.rows()[0].id)

    def test_report_state(self):
        """
        When the service runs, then it reports once before it is ready,
        then after the initial delay and every report_interval seconds.
        """
        service = self.make(report_interval=10)
        self.successResultOf(service.startService())
        self.assertEqual(self.rows()[0].report_count, 1)
        self.assertIsNotNone(self.rows()[0].last_seen_up)
        self.clock.advance(5)
        self.assertEqual(self.rows()[0].report_count, 2)
        self.clock.advance(10)
        self.assertEqual(self.rows()[0].report_count, 3)

    def test_restart_up_at_once(self):
        """
        When a service restarts on a row whose last report is old, then the
        row is reported fresh before the start fires, so it is up at once.
        """
        self.store = MemoryServiceStore(utcnow=lambda: self.now)
        self.now = datetime.datetime(2026, 1, 1)
        self.successResultOf(self.store.start())
        old = self.successResultOf(self.store.create("h1", "novasvc-recording", "recording",
                                                     version=SERVICE_VERSION))
        self.successResultOf(self.store.report_state(old.id))
        self.successResultOf(self.store.stop())
        self.now = datetime.datetime(2026, 1, 1, 1)  # an hour later
        service = self.make(store=self.store, report_interval=10)
        started = service.startService()
        self.successResultOf(started)
        [row] = self.rows()
        self.assertEqual(row.last_seen_up, self.now)
        self.assertTrue(is_up(row, self.now, 60))

    def test_report_disabled(self):
        """
        When report_interval is 0, then no report ever happens.
        """
        service = self.make(report_interval=0)
        self.successResultOf(service.startService())
        self.clock.advance(100)
        self.assertEqual(self.rows()[0].report_count, 0)

    def test_periodic_after_fuzzy_delay(self):
        """
        When periodic_fuzzy_delay is set, then the first periodic pass happens
        after a random delay in 0..delay (drawn from the injected rng), and
        then every task spacing.
        """
        expected = random.Random(4).randint(0, 30)
        service = self.make(periodic_fuzzy_delay=30)
        self.successResultOf(service.startService())
        self.clock.advance(expected - 0.5 if expected else 0)
        self.assertEqual(service.manager.runs, 0 if expected else 1)
        self.clock.advance(0.5)
        self.assertEqual(service.manager.runs, 1)
        self.clock.advance(10)
        self.assertEqual(service.manager.runs, 2)

    def test_periodic_disabled(self):
        """
        When periodic_enable is false, then periodic tasks never run.
        """
        service = self.make(periodic_enable=False)
        self.successResultOf(service.startService())
        self.clock.advance(100)
        self.assertEqual(service.manager.runs, 0)

    def test_serves_rpc(self):
        """
        When the service runs, then a call to its topic and one to its host
        reach the manager, and the base API's ping answers.
        """
        service = self.make(manager=EchoManager)
        self.successResultOf(service.startService())
        client = self.client("echo")
        self.assertEqual(self.successResultOf(client.call({}, "echo", value=[1, "a"])), [1, "a"])
        direct = client.prepare(server="h1")
        self.assertEqual(self.successResultOf(direct.call({}, "echo", value=2)), 2)
        ping = client.prepare(namespace="baseapi", version="1.1")
        self.assertEqual(self.successResultOf(ping.call({}, "ping", arg="x")),
                         {"service": "echo", "arg": "x"})

    def test_hooks_not_callable(self):
        """
        When a client calls a lifecycle hook, then it fails and the hook does
        not run.
        """
        service = self.make()
        self.successResultOf(service.startService())
        failure = self.failureResultOf(self.client().call({}, "cleanup_host"))
        self.assertIn("NoSuchMethod", str(failure.value))
        self.assertNotIn(("cleanup_host",), service.manager.events)

    def test_stop_drains_in_flight_then_cleanup(self):
        """
        When the service stops during a call, then it stops consuming at once,
        waits for the call to finish and be answered, then runs cleanup_host.
        """
        service = self.make(manager=EchoManager)
        self.successResultOf(service.startService())
        cleanups = []
        service.manager.cleanup_host = lambda: cleanups.append(self.clock.seconds())
        client = self.client("echo")
        slow = client.call({}, "sleep", seconds=30)
        stopping = service.stopService()
        self.assertNoResult(stopping)
        late = client.call({}, "echo", value=1)
        self.clock.advance(29)
        self.assertEqual(cleanups, [])
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(slow), 30)
        self.successResultOf(stopping)
        self.assertEqual(cleanups, [30])
        self.assertNoResult(late)
        self.assertEqual(len(self.broker.queues["echo"].messages), 1)
        late.cancel()
        self.failureResultOf(late)

    def test_second_stop_waits_for_the_drain(self):
        """
        When a service is stopped twice (SIGTERM, then C{kill()}) while a call
        is still running, then the second stop returns the stop in progress:
        C{cleanup_host} runs once, after the call has finished and been
        answered, and both stops fire only then.
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, graceful_shutdown_timeout=60)
        service = self.make(manager=EchoManager, config=config)
        self.successResultOf(service.startService())
        cleanups = []
        service.manager.cleanup_host = lambda: cleanups.append(self.clock.seconds())
        slow = self.client("echo").call({}, "sleep", seconds=30)
        first = service.stopService()
        second = service.kill()
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.assertEqual(cleanups, [])
        self.clock.advance(30)
        self.assertEqual(self.successResultOf(slow), 30)
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(cleanups, [30])

    def test_start_after_stop_refused(self):
        """
        When a stopped service is started again, then the start fails with
        a L{LifecycleError} saying so, and nothing starts.
        """
        service = self.make()
        self.successResultOf(service.startService())
        self.successResultOf(service.stopService())
        failure = self.failureResultOf(service.startService(), LifecycleError)
        self.assertIn("not started again", failure.getErrorMessage())
        self.assertFalse(service.running)

    def test_graceful_timeout(self):
        """
        When an in-flight call outlasts graceful_shutdown_timeout, then the
        stop completes after the timeout and the request goes back to its
        queue unsettled (to be served again elsewhere).
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, graceful_shutdown_timeout=10)
        service = self.make(manager=EchoManager, config=config)
        self.successResultOf(service.startService())
        self.client("echo").cast({}, "sleep", seconds=100)
        stopping = service.stopService()
        self.clock.advance(9)
        self.assertNoResult(stopping)
        self.clock.advance(1)
        self.successResultOf(stopping)
        self.assertEqual(len(self.broker.queues["echo"].messages), 1)

    def test_kill_soft_deletes(self):
        """
        When the service is killed, then its record is soft-deleted.
        """
        service = self.make()
        self.successResultOf(service.startService())
        self.successResultOf(service.kill())
        self.assertEqual(self.rows(), [])
        [row] = self.rows(include_deleted=True)
        self.assertEqual(row.deleted, row.id)

    def test_stop_keeps_record(self):
        """
        When the service stops (not killed), then its record stays live.
        """
        service = self.make()
        self.successResultOf(service.startService())
        self.successResultOf(service.stopService())
        self.assertEqual(len(self.rows()), 1)

    def test_reset(self):
        """
        When the service is reset (SIGHUP), then the manager's reset runs.
        """
        service = self.make()
        self.successResultOf(service.startService())
        self.successResultOf(service.reset())
        self.assertIn(("reset",), service.manager.events)

    def flaky_store(self, failures, error=None):
        """
        @return: a L{MemoryServiceStore} whose C{start} fails C{failures}
            times (with C{error}, default C{ConnectionRefusedError}), and
            the list of its start attempts (clock readings).
        """
        store = MemoryServiceStore()
        real_start = store.start
        attempts = []

        def flaky_start():
            attempts.append(self.clock.seconds())
            if len(attempts) <= failures:
                return defer.fail(error or ConnectionRefusedError("db down"))
            return real_start()

        store.start = flaky_start
        return store, attempts

    def log_lines(self):
        """
        @return: the list the text of each event logged from now on goes to.
        """
        lines = []

        def observe(event):
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return lines

    def test_database_outage_at_start(self):
        """
        When the database is down at start-up, then each failed attempt is
        logged with the delay before the next one (1, 2, 4 s...), and the
        service starts once it is back, saying so once.
        """
        lines = self.log_lines()
        store, attempts = self.flaky_store(3)
        service = self.make(store=store)
        started = service.startService()
        self.clock.advance(1)
        self.clock.advance(2)
        self.assertNoResult(started)
        self.clock.advance(4)
        self.successResultOf(started)
        self.assertEqual(attempts, [0, 1, 3, 7])
        retries = [line for line in lines if line.startswith("Could not open the database")]
        self.assertEqual(retries, [
            f"Could not open the database (attempt {n}): ConnectionRefusedError: db down; "
            f"retrying in {delay} s" for n, delay in ((1, 1), (2, 2), (3, 4))])
        self.assertEqual([line for line in lines if line.startswith("Recovered")],
                         ["Recovered: could open the database at attempt 4"])

    def test_retry_delay_capped(self):
        """
        When the database stays down, then the delay between attempts
        doubles up to 30 seconds and stays there.
        """
        store, attempts = self.flaky_store(10)
        service = self.make(store=store)
        service.startService()
        self.clock.pump([1] * 200)
        gaps = [b - a for a, b in zip(attempts, attempts[1:])]
        self.assertEqual(gaps[:7], [1, 2, 4, 8, 16, 30, 30])
        self.assertTrue(service.manager.events)

    def test_permanent_error_not_retried(self):
        """
        When opening the database fails with a L{ConfigError} (a permanent
        error), then the start fails at once with it: one attempt, no retry
        line.
        """
        from novasvc.db.store import PermanentDatabaseError

        lines = self.log_lines()
        store, attempts = self.flaky_store(5, PermanentDatabaseError("no such database"))
        service = self.make(store=store)
        self.failureResultOf(service.startService(), PermanentDatabaseError)
        self.clock.advance(100)
        self.assertEqual(len(attempts), 1)
        self.assertEqual([line for line in lines if "retrying" in line], [])

    def stop_while_starting(self, service):
        """
        Start C{service}, stop it one second later, then let 100 seconds
        pass; check that the start failed with C{CancelledError}.

        @return: the queues of topic C{recording} that exist then.
        """
        started = service.startService()
        self.clock.advance(1)
        self.successResultOf(service.stopService())
        self.failureResultOf(started, defer.CancelledError)
        self.clock.pump([1] * 100)
        return [n for n in self.broker.queues if n.startswith("recording")]

    def test_stop_while_start_retries(self):
        """
        When the service is stopped while the start is still retrying (the
        database is down), then no attempt follows, no queue is consumed
        and no timer runs, even after the database is back; the start fails
        with C{CancelledError}.
        """
        store, attempts = self.flaky_store(2)
        service = self.make(store=store, report_interval=10)
        self.assertEqual(self.stop_while_starting(service), [])
        self.assertEqual(len(attempts), 2)
        self.assertEqual((service.manager.events, service.manager.runs), ([], 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_while_attempt_runs(self):
        """
        When the service is stopped while an attempt to open the database is
        under way, and that attempt then succeeds, then nothing else starts.
        """
        store = MemoryServiceStore()
        opening = defer.Deferred()
        store.start = lambda: opening
        service = self.make(store=store)
        started = service.startService()
        stopped = service.stopService()
        self.failureResultOf(started, defer.CancelledError)
        opening.callback(None)
        self.successResultOf(stopped)
        self.clock.pump([1] * 100)
        self.assertEqual(service.manager.events, [])
        self.assertEqual([n for n in self.broker.queues if n.startswith("recording")], [])

    def test_stop_while_record_lookup_retries(self):
        """
        When the service is stopped while looking up its record still
        retries, then neither init_host nor cleanup_host runs and no
        consumer starts.
        """
        store = MemoryServiceStore()
        lookups = []

        def down(host, binary):
            lookups.append(host)
            return defer.fail(ConnectionRefusedError("db down"))

        store.get_by_host_and_binary = down
        service = self.make(store=store)
        self.assertEqual(self.stop_while_starting(service), [])
        self.assertEqual(len(lookups), 2)
        self.assertEqual(service.manager.events, [])

    def test_stop_now_skips_the_drain(self):
        """
        When C{stop_now} is called while the stop waits for a call in
        flight, then the stop finishes at once, the transport is closed and
        the request goes back to its queue unsettled.
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, graceful_shutdown_timeout=60)
        service = self.make(manager=EchoManager, config=config)
        self.successResultOf(service.startService())
        self.client("echo").cast({}, "sleep", seconds=100)
        self.assertEqual(len(self.broker.queues["echo"].messages), 0)
        stopping = service.stopService()
        self.clock.advance(1)
        self.assertNoResult(stopping)
        service.stop_now()
        self.successResultOf(stopping)
        self.assertEqual(len(self.broker.queues["echo"].messages), 1)
        self.assertFalse(service.getServiceNamed("transport").running)

    def test_stop_now_before_stop(self):
        """
        When C{stop_now} was called before the stop, then the stop does not
        wait for a slow C{cleanup_host}, and the store still closes.
        """
        service = self.make()
        self.successResultOf(service.startService())
        service.manager.cleanup_host = lambda: defer.Deferred()
        service.stop_now()
        self.successResultOf(service.stopService())
        self.failureResultOf(self.store.list_services(), RuntimeError)

    def test_init_host_failure_fails_start(self):
        """
        When init_host raises, then the start Deferred fails with a
        L{StartupError} of one line naming the hook, the manager's class and
        the cause (chained), and no consumer is started.
        """
        service = self.make()

        def broken(ref):
            raise ServiceExists("nope\n  second line")

        service.manager.init_host = broken
        failure = self.failureResultOf(service.startService(), StartupError)
        self.assertEqual(str(failure.value), "init_host of tests.test_core_service.RecordingManager "
                                             "failed: ServiceExists: nope second line")
        self.assertIsInstance(failure.value.__cause__, ServiceExists)
        self.assertEqual([n for n in self.broker.queues if n.startswith("recording")], [])

    def test_post_start_hook_failure(self):
        """
        When post_start_hook raises, then the start fails with a
        L{StartupError} naming that hook.
        """
        service = self.make()
        service.manager.post_start_hook = lambda: 1 / 0
        failure = self.failureResultOf(service.startService(), StartupError)
        self.assertEqual(str(failure.value), "post_start_hook of tests.test_core_service."
                                             "RecordingManager failed: ZeroDivisionError: "
                                             "division by zero")


class UpperSerializer:
    """
    A serializer whose text arguments arrive upper-cased and whose results
    leave wrapped in C{{"by": <name>, "result": ...}}; counts its
    instances.
    """

    made = 0
    name = "upper"

    def __init__(self) -> None:
        type(self).made += 1

    def serialize_entity(self, ctxt, entity):
        return {"by": self.name, "result": entity}

    def deserialize_entity(self, ctxt, entity):
        return entity.upper() if isinstance(entity, str) else entity

    def serialize_context(self, ctxt):
        return ctxt

    def deserialize_context(self, ctxt):
        return ctxt


class LowerSerializer(UpperSerializer):
    """
    The one the configuration key names in the tests: text arguments
    arrive lower-cased.
    """

    made = 0
    name = "lower"

    def deserialize_entity(self, ctxt, entity):
        return entity.lower() if isinstance(entity, str) else entity


class SerializingManager(Manager):
    """
    A manager declaring its serializer as a class.
    """

    topic = "objects"
    serializer = UpperSerializer

    def echo(self, context, value):
        return {"value": value, "context": type(context).__name__}


class SerializerTests(ServiceTestMixin, SynchronousTestCase):
    """
    The serializer a manager declares, or the configuration names, serves
    the service's RPC.
    """

    def setUp(self):
        UpperSerializer.made = LowerSerializer.made = 0

    def call(self, service, **kwargs):
        self.successResultOf(service.startService())
        self.addCleanup(service.stopService)
        return self.successResultOf(self.client(service.topic).call({"user_id": "u"}, "echo", **kwargs))

    def test_manager_attribute(self):
        """
        When the manager's serializer attribute is a class, then the service
        makes one instance of it, and the manager's methods get their
        arguments deserialized with it, their results serialized.
        """
        service = self.make(SerializingManager)
        self.assertIsInstance(service.serializer, UpperSerializer)
        self.assertEqual(UpperSerializer.made, 1)
        self.assertIs(service.rpcserver.serializer, service.serializer)
        self.assertEqual(self.call(service, value="abc"),
                         {"by": "upper", "result": {"value": "ABC", "context": "dict"}})
        self.assertEqual(UpperSerializer.made, 1)

    def test_instance_and_factory(self):
        """
        When the manager's serializer attribute is an instance, then it is
        used as it is; when a factory, then what it returns.
        """
        instance = UpperSerializer()

        class WithInstance(SerializingManager):
            serializer = instance

        class WithFactory(SerializingManager):
            serializer = staticmethod(lambda: instance)

        self.assertIs(self.make(WithInstance).serializer, instance)
        self.assertIs(self.make(WithFactory).serializer, instance)

    def test_config_key_beats_the_manager(self):
        """
        When the configuration key serializer names one, then the service
        uses it, not the manager's (which is never made).
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, serializer="tests.test_core_service.LowerSerializer")
        service = self.make(SerializingManager, config=config)
        self.assertIsInstance(service.serializer, LowerSerializer)
        self.assertEqual(UpperSerializer.made, 0)
        self.assertEqual(self.call(service, value="AbC")["result"]["value"], "abc")

    def test_config_key_alone(self):
        """
        When only the configuration key names a serializer, then a manager
        without one gets it.
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, serializer="tests.test_core_service.LowerSerializer")
        service = self.make(EchoManager, config=config)
        self.assertIsInstance(service.serializer, LowerSerializer)

    def test_none(self):
        """
        When neither gives one, then the service has none and its methods
        get a RequestContext.
        """
        service = self.make()
        self.assertIsNone(service.serializer)
        self.assertFalse(service.rpcserver.dispatcher.serializing)

    def test_not_a_serializer(self):
        """
        When the configuration key or the manager's attribute gives no
        serializer, then creating the service fails with a LoadError naming
        it.
        """
        config = Config(host="h1", serializer="tests.test_core_service.FakeDB")
        error = self.assertRaises(LoadError, self.make, config=config)
        self.assertIn("tests.test_core_service.FakeDB", str(error))
        config = Config(host="h1", serializer="tests.test_core_service.NoSuchThing")
        self.assertRaises(LoadError, self.make, config=config)

        class Broken(SerializingManager):
            serializer = 42

        error = self.assertRaises(LoadError, self.make, Broken)
        self.assertEqual(str(error), "Broken.serializer: int instance is not a serializer: it lacks "
                         "serialize_entity, deserialize_entity, serialize_context, deserialize_context")

    def test_hidden(self):
        """
        When a caller asks for the manager's serializer attribute over RPC,
        then it is refused as NoSuchMethod.
        """
        from novasvc.rpc.errors import RemoteError

        service = self.make(SerializingManager)
        self.successResultOf(service.startService())
        self.addCleanup(service.stopService)
        failure = self.failureResultOf(self.client("objects").call({}, "serializer"), RemoteError)
        self.assertEqual(failure.value.exc_type, "NoSuchMethod")

    def test_client_from_config(self):
        """
        When a client is made from a configuration naming a serializer,
        then it has an instance of it, unless one is given.
        """
        config = Config(serializer="tests.test_core_service.LowerSerializer")
        client = RPCClient.from_config(MemoryTransport(clock=task.Clock()), config)
        self.assertIsInstance(client.serializer, LowerSerializer)
        given = UpperSerializer()
        self.assertIs(RPCClient.from_config(MemoryTransport(clock=task.Clock()), config,
                                            serializer=given).serializer, given)
        self.assertIsNone(RPCClient.from_config(MemoryTransport(clock=task.Clock()), Config()).serializer)


class Audit:
    """
    A notification endpoint for L{ListeningManager}: records its calls, and
    returns what C{results} holds (a Deferred stays pending).
    """

    def __init__(self):
        self.seen = []
        self.results = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.append((ctxt, event_type, payload))
        return self.results.pop(0) if self.results else None


class ListeningManager(Manager):
    """
    A manager with a notification endpoint (and an info method of its own,
    which is not one).
    """

    topic = "listening"

    def __init__(self, *args, **kwargs):
        Manager.__init__(self, *args, **kwargs)
        self.audit = Audit()
        self.notification_endpoints = [self.audit]
        self.own = []

    def info(self, ctxt, *args):
        self.own.append(args)


class NotificationListenerTests(ServiceTestMixin, SynchronousTestCase):
    """
    A manager's notification_endpoints get a listener, a child of the
    service after the RPC server.
    """

    def notify(self, event_type="volume.create.end", topic="notifications", exchange="openstack", **kwargs):
        from tests._notify_helpers import send

        send(MemoryTransport(broker=self.broker, clock=self.clock), "info", event_type, topic=topic,
             exchange=exchange, **kwargs)

    def test_none_without_endpoints(self):
        """
        When the manager lists no notification endpoint, then the service
        has no listener and no notifications step.
        """
        service = self.make()
        self.assertIsNone(service.notification_listener)
        self.assertNotIn("notifications", [child.name for child in service])

    def test_listener_after_rpc(self):
        """
        When the manager lists endpoints, then a listener on the topic
        "notifications" of the control exchange starts right after the RPC
        server, and the endpoints (not the manager) get the notifications.
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, control_exchange="nova")
        service = self.make(manager=ListeningManager, config=config)
        names = [child.name for child in service]
        self.assertEqual(names[names.index("rpc") + 1], "notifications")
        self.successResultOf(service.startService())
        self.notify(exchange="nova", context={"user_id": "u1"}, payload={"size": 1})
        self.assertEqual(service.manager.audit.seen, [({"user_id": "u1", "client_timeout": None}, "volume.create.end", {"size": 1})])
        self.assertEqual(service.manager.own, [])
        self.assertEqual([q.name for q in service.notification_listener.queues], ["notifications.info"])

    def test_manager_settings(self):
        """
        When the manager sets notification_targets, notification_pool and
        notification_allow_requeue, then the listener uses them.
        """

        class Pooled(ListeningManager):
            notification_targets = [Target(topic="versioned", exchange="other")]
            notification_pool = "auditors"
            notification_allow_requeue = True

        service = self.make(manager=Pooled)
        listener = service.notification_listener
        self.assertEqual([q.name for q in listener.queues], ["auditors"])
        self.assertEqual(listener.queues[0].bindings[0].exchange.name, "other")
        self.assertTrue(listener.allow_requeue)
        self.successResultOf(service.startService())
        service.manager.audit.results.append("requeue")
        self.notify("again", topic="versioned", exchange="other")
        self.assertEqual([event for _, event, _ in service.manager.audit.seen], ["again", "again"])

    def test_default_targets_from_config(self):
        """
        When the configuration has notifications.topics, then the default
        targets are one per topic; else the topic "notifications".
        """
        from types import SimpleNamespace

        from novasvc.core._notification_listener import default_targets

        config = SimpleNamespace(notifications=SimpleNamespace(topics=["a", "b"]))
        self.assertEqual(default_targets(config), [Target(topic="a"), Target(topic="b")])
        self.assertEqual(default_targets(SimpleNamespace(notifications=SimpleNamespace(topics="one"))),
                         [Target(topic="one")])
        self.assertEqual(default_targets(Config()), [Target(topic="notifications")])

    def test_serializer(self):
        """
        When the manager has a serializer object, then the listener
        deserializes the context with it.
        """
        from novasvc.context import RequestContext
        from novasvc.rpc.serializer import RequestContextSerializer

        class Serialized(ListeningManager):
            serializer = RequestContextSerializer()

        service = self.make(manager=Serialized)
        self.successResultOf(service.startService())
        self.notify(context={"user_id": "u1"})
        [(ctxt, _, _)] = service.manager.audit.seen
        self.assertIsInstance(ctxt, RequestContext)
        self.assertEqual(ctxt.user_id, "u1")

    def test_stop_drains_before_rpc(self):
        """
        When the service stops while an endpoint runs, then the listener
        stops consuming and waits for it while the RPC server still
        consumes; then the RPC server drains and cleanup_host runs.
        """
        service = self.make(manager=ListeningManager)
        self.successResultOf(service.startService())
        pending = defer.Deferred()
        service.manager.audit.results.append(pending)
        self.notify()
        stopping = service.stopService()
        self.assertNoResult(stopping)
        self.assertTrue(service.rpcserver._consumers)
        self.assertEqual(service.notification_listener.inflight, 1)
        pending.callback(None)
        self.successResultOf(stopping)
        self.assertFalse(service.rpcserver._consumers)
        self.assertEqual(len(self.broker.queues["notifications.info"].messages), 0)

    def test_graceful_timeout_bounds_the_drain(self):
        """
        When an endpoint outlasts graceful_shutdown_timeout, then the stop
        goes on after it, and the notification goes back to its queue.
        """
        config = Config(host="h1", periodic_fuzzy_delay=0, graceful_shutdown_timeout=10)
        service = self.make(manager=ListeningManager, config=config)
        self.successResultOf(service.startService())
        service.manager.audit.results.append(defer.Deferred())
        self.notify()
        stopping = service.stopService()
        self.clock.advance(10)
        self.successResultOf(stopping)
        self.assertEqual(len(self.broker.queues["notifications.info"].messages), 1)

    def test_hidden_over_rpc(self):
        """
        When a client calls one of the notification attributes, then the
        dispatcher refuses it.
        """
        for name in ("notification_endpoints", "notification_targets", "notification_pool",
                     "notification_allow_requeue"):
            self.assertIn(name, Manager.rpc_hidden_names)
        service = self.make(manager=ListeningManager)
        self.successResultOf(service.startService())
        failure = self.failureResultOf(self.client("listening").call({}, "notification_pool"))
        self.assertIn("NoSuchMethod", str(failure.value))


class ImportCostTests(SynchronousTestCase):
    """
    A service on the memory store does not pay for SQL.
    """

    def test_memory_store_without_sqlalchemy(self):
        """
        When a service is created on the memory store and started, then
        SQLAlchemy is not imported (the manager's database API opens on
        first use).
        """
        import os
        import subprocess
        import sys

        code = "\n".join([
            "import sys",
            "from twisted.internet import task",
            "from novasvc.config import Config",
            "from novasvc.db.memory import MemoryServiceStore",
            "from novasvc.examples.echo import EchoManager",
            "from novasvc.core.service import Service",
            "from novasvc.transport.memory import MemoryTransport",
            "clock = task.Clock()",
            "s = Service.create(manager=EchoManager, config=Config(host='h'),",
            "                   store=MemoryServiceStore(), transport=MemoryTransport(clock=clock),",
            "                   clock=clock)",
            "s.startService()",
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))",
        ])
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=root).stdout
        self.assertEqual(out.strip(), "[]")


class _Wrapping:
    """
    A serializer wrapping every entity in C{{"w": ...}}.
    """

    def serialize_entity(self, ctxt, entity):
        return {"w": entity}

    def deserialize_entity(self, ctxt, entity):
        return entity["w"] if isinstance(entity, dict) and "w" in entity else entity

    def serialize_context(self, ctxt):
        return ctxt

    def deserialize_context(self, ctxt):
        return ctxt


class NotifyingManager(RecordingManager):
    serializer = _Wrapping


class ServiceNotifierTests(ServiceTestMixin, SynchronousTestCase):
    """
    The manager's notifier and the service's versioned notifications.
    """

    def config(self, notification_format="both"):
        from novasvc.config import NotificationsConfig

        return Config(host="h1", periodic_fuzzy_delay=0, notifications=NotificationsConfig(
            driver=("test",), notification_format=notification_format))

    def test_manager_notifier(self):
        """
        When a service hosts a manager, then the manager's notifier
        publishes as C{<topic>.<host>} through the configured drivers, with
        the service's serializer.
        """
        service = self.make(manager=NotifyingManager, config=self.config())
        notifier = service.manager.notifier
        self.assertEqual(notifier.publisher_id, "recording.h1")
        self.successResultOf(notifier.info({}, "recording.done", {"n": 1}))
        [sent] = notifier.driver("test").notifications
        self.assertEqual((sent.publisher_id, sent.event_type, sent.priority, sent.payload),
                         ("recording.h1", "recording.done", "info", {"w": {"n": 1}}))

    def test_manager_notifier_off(self):
        """
        When the format is versioned only, then the manager's (unversioned)
        notifier sends nothing.
        """
        service = self.make(config=self.config("versioned"))
        self.assertFalse(service.manager.notifier.is_enabled())
        self.assertTrue(service.versioned_notifier.is_enabled())

    def test_null_notifier_outside_a_service(self):
        """
        When a manager is built on its own, then its notifier sends nothing
        and never fails.
        """
        manager = RecordingManager(host="h", service_name="recording")
        self.assertFalse(manager.notifier.is_enabled())
        self.assertIsNone(self.successResultOf(manager.notifier.info({}, "x", {})))

    def test_given_notifier_kept(self):
        """
        When a manager was given its own notifier, then the service keeps
        it.
        """
        from novasvc.notify.notifier import Notifier

        given = Notifier(None, "mine", driver="test")

        def factory(host, service_name, config):
            return RecordingManager(host=host, service_name=service_name, config=config, notifier=given)

        factory.topic = "recording"
        service = self.make(manager=factory, config=self.config())
        self.assertIs(service.manager.notifier, given)

    def test_create_and_kill(self):
        """
        When a service creates its record, then one versioned
        service.create goes out as C{<binary>:<host>}; a restart that finds
        the record sends none; kill() sends service.delete.
        """
        service = self.make(config=self.config())
        self.successResultOf(service.startService())
        sent = service.versioned_notifier.driver("test").notifications
        self.assertEqual([(n.publisher_id, n.event_type, n.priority) for n in sent],
                         [("novasvc-recording:h1", "service.create", "info")])
        self.assertEqual(sent[0].payload["nova_object.data"]["uuid"], service.service_ref.uuid)
        self.successResultOf(service.stopService())
        again = self.make(config=self.config(), store=self.store)
        self.successResultOf(again.startService())
        self.assertEqual(again.versioned_notifier.driver("test").notifications, [])
        self.successResultOf(again.kill())
        [deleted] = again.versioned_notifier.driver("test").notifications
        self.assertEqual((deleted.event_type, deleted.payload["nova_object.data"]["host"]),
                         ("service.delete", "h1"))

    def test_unversioned_sends_no_service_notifications(self):
        """
        When the format is unversioned (Nova's default), then the service
        sends no service.create.
        """
        service = self.make(config=self.config("unversioned"))
        self.successResultOf(service.startService())
        self.assertFalse(service.versioned_notifier.is_enabled())
        self.successResultOf(service.stopService())
