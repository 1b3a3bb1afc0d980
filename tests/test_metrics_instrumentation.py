"""
Tests of what the instrumented objects count in a L{novasvc.metrics.Recorder}:
L{novasvc.rpc.server.RPCServer} (over the in-memory transport),
L{novasvc.core.servicegroup.ReportStateService} and the periodic runner, each on
a L{task.Clock}. The broker reconnections of the AMQP transport need a
broker: see L{tests.test_metrics_prometheus}.
"""

import json
from typing import Any, Dict, List

from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from novasvc.db.memory import MemoryServiceStore
from novasvc.metrics import ERROR, FAILED, NO_SUCH_METHOD, OK, UNKNOWN_METHOD, UNSUPPORTED_VERSION, Recorder
from novasvc.periodic import PeriodicTasks, periodic_task
from novasvc.rpc import wire
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import RemoteError
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.core.servicegroup import ReportStateService
from novasvc.transport.memory import MemoryBroker, MemoryTransport
from novasvc.transport.topology import Exchange

CONTROL = Exchange("openstack", "topic")


class Manager:
    """
    An endpoint with a quick, a slow and a failing method.
    """

    target = Target(version="1.2")

    def __init__(self) -> None:
        self.pending: List[Deferred] = []

    def echo(self, ctxt, value):
        return value

    def slow(self, ctxt):
        d: Deferred = Deferred()
        self.pending.append(d)
        return d

    def fail(self, ctxt):
        raise ValueError("it failed")


class RPCServerTests(SynchronousTestCase):
    """
    L{RPCServer} counts requests by method and outcome, their dispatch
    latency on its clock, duplicates and malformed messages; in-flight
    requests are read from it.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        broker = MemoryBroker()
        self.recorder = Recorder()
        self.manager = Manager()
        self.client_transport = MemoryTransport(broker=broker, clock=self.clock)
        self.client = RPCClient(self.client_transport, Target(topic="svc"), clock=self.clock, timeout=30)
        self.server = RPCServer(MemoryTransport(broker=broker, clock=self.clock), Target(topic="svc", server="h1"),
                                [self.manager], clock=self.clock, metrics=self.recorder)
        self.successResultOf(self.server.start())
        self.metrics = self.recorder.rpc_server("svc", "h1")

    def outcomes(self) -> Dict[str, Dict[str, int]]:
        """
        @return: method label -> the outcomes that were counted.
        """
        return {method: {k: v for k, v in outcomes.items() if v}
                for method, outcomes, _ in self.metrics.methods()}

    def histogram(self, method: str) -> Any:
        return {label: histogram for label, _, histogram in self.metrics.methods()}[method]

    def test_ok(self) -> None:
        """
        When calls and a cast succeed, then each counts as C{ok} under its
        method, with its latency in the histogram (a plain method: 0 s on
        the clock).
        """
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value=1)), 1)
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value=2)), 2)
        self.successResultOf(self.client.cast({}, "echo", value=3))
        self.assertEqual(self.outcomes(), {"echo": {OK: 3}})
        histogram = self.histogram("echo")
        self.assertEqual((histogram.count, histogram.sum, histogram.counts[0]), (3, 0.0, 3))

    def test_latency(self) -> None:
        """
        When a method's C{Deferred} fires 0.3 s later on the server's clock,
        then its latency is 0.3 s: in the 0.5 s bucket, not below.
        """
        d = self.client.call({}, "slow")
        self.clock.advance(0.3)
        self.assertEqual(self.metrics.inflight, 1)
        self.manager.pending[0].callback("done")
        self.assertEqual(self.successResultOf(d), "done")
        histogram = self.histogram("slow")
        self.assertAlmostEqual(histogram.sum, 0.3)
        cumulative = dict(histogram.cumulative())
        self.assertEqual((cumulative[0.25], cumulative[0.5]), (0, 1))
        self.assertEqual(self.metrics.inflight, 0)

    def test_error(self) -> None:
        """
        When a method raises, or its arguments do not fit, then the request
        counts as C{error} under the method's name.
        """
        self.failureResultOf(self.client.call({}, "fail"), ValueError)
        self.failureResultOf(self.client.call({}, "echo", wrong=1), TypeError)
        self.assertEqual(self.outcomes(), {"fail": {ERROR: 1}, "echo": {ERROR: 1}})

    def test_async_error(self) -> None:
        """
        When a method's C{Deferred} fails, then the request counts as
        C{error} with the time it took.
        """
        d = self.client.call({}, "slow")
        self.clock.advance(2)
        self.manager.pending[0].errback(RuntimeError("late"))
        self.failureResultOf(d, RuntimeError)
        self.assertEqual(self.outcomes(), {"slow": {ERROR: 1}})
        self.assertEqual(self.histogram("slow").sum, 2)

    def test_refused(self) -> None:
        """
        When a client calls a method that does not exist, a private one, or
        a version no endpoint serves, then each counts under C{<unknown>}
        (never the name the client sent) as C{no_such_method} or
        C{unsupported_version}.
        """
        self.failureResultOf(self.client.call({}, "no_such_thing_" + "x" * 50), RemoteError)
        self.failureResultOf(self.client.call({}, "_private"), RemoteError)
        self.successResultOf(self.client.cast({}, "nothing_here"))
        versioned = RPCClient(self.client_transport, Target(topic="svc", version="2.0"), clock=self.clock)
        self.failureResultOf(versioned.call({}, "echo", value=1), RemoteError)
        self.assertEqual(self.outcomes(), {UNKNOWN_METHOD: {NO_SUCH_METHOD: 3, UNSUPPORTED_VERSION: 1}})

    def test_duplicates(self) -> None:
        """
        When a request arrives again after it ran, and a copy arrives while
        its original runs (late ack), then both copies count as duplicates
        dropped, and the method as one request each.
        """
        done = wire.encode_request("echo", {"value": 1}, {}, unique_id="u1")
        self.successResultOf(self.client_transport.publish(CONTROL, "svc", done))
        self.successResultOf(self.client_transport.publish(CONTROL, "svc", done))
        self.assertEqual(self.metrics.duplicates, 1)
        running = wire.encode_request("slow", {}, {}, unique_id="u2")
        self.successResultOf(self.client_transport.publish(CONTROL, "svc", running))
        self.successResultOf(self.client_transport.publish(CONTROL, "svc", running))
        self.assertEqual(self.metrics.duplicates, 1)
        self.manager.pending[0].callback(None)
        self.assertEqual(self.metrics.duplicates, 2)
        self.assertEqual(self.outcomes(), {"echo": {OK: 1}, "slow": {OK: 1}})

    def test_malformed(self) -> None:
        """
        When bodies cannot be decoded, then each counts as a malformed
        message rejected, and none as a request.
        """
        for body in (b"\x00not json", json.dumps({"args": {}}).encode()):
            self.successResultOf(self.client_transport.publish(CONTROL, "svc", body))
        self.assertEqual(self.metrics.malformed, 2)
        self.assertEqual(self.outcomes(), {})

    def test_process_recorder_by_default(self) -> None:
        """
        When a server is given no recorder, then it counts in the
        process's one.
        """
        from novasvc.metrics import get_recorder

        server = RPCServer(self.client_transport, Target(topic="svc-default-recorder", server="h1"), [self.manager],
                           clock=self.clock)
        self.assertIs(server._metrics, get_recorder().rpc_server("svc-default-recorder", "h1"))


class _Store(MemoryServiceStore):
    """
    A memory store whose C{report_state} fails while C{broken}.
    """

    broken = False

    def report_state(self, service_id):
        if self.broken:
            return defer.fail(ConnectionError("database gone"))
        return super().report_state(service_id)


class ReportStateTests(SynchronousTestCase):
    """
    L{ReportStateService} counts each tick as ok or failed.
    """

    def test_outcomes(self) -> None:
        """
        When a report succeeds, two fail and the next succeeds, then 2 ok
        and 2 failed are counted; a tick before the row exists counts as
        neither.
        """
        clock = task.Clock()
        store = _Store()
        store.start()
        record = self.successResultOf(store.create("h", "novasvc-x", "x"))
        ids = [None, record.id]
        recorder = Recorder()
        service = ReportStateService(store, lambda: ids[0], report_interval=10, clock=clock, initial_delay=0,
                                     metrics=recorder)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(recorder.report_state_outcomes, {OK: 0, FAILED: 0})
        ids.pop(0)
        clock.advance(10)
        store.broken = True
        clock.advance(10)
        clock.advance(10)
        store.broken = False
        clock.advance(10)
        self.assertEqual(recorder.report_state_outcomes, {OK: 2, FAILED: 2})
        self.flushLoggedErrors()


class Tasks(PeriodicTasks):
    """
    A quick task, a failing one and a slow one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending: List[Deferred] = []

    @periodic_task(spacing=10, run_immediately=True)
    def quick(self, context):
        pass

    @periodic_task(spacing=10, run_immediately=True)
    def broken(self, context):
        raise RuntimeError("task failed")

    @periodic_task(spacing=10, run_immediately=True)
    def slow(self, context):
        d: Deferred = Deferred()
        self.pending.append(d)
        return d


class PeriodicTests(SynchronousTestCase):
    """
    The periodic runner counts each run with its outcome and duration.
    """

    def setUp(self) -> None:
        self.recorder = Recorder()
        self.tasks = Tasks()
        self.tasks.clock = self.clock = task.Clock()
        self.tasks.periodic_metrics = self.recorder

    def runs(self) -> Dict[str, Any]:
        return {name: (outcomes, histogram.sum) for name, outcomes, histogram in self.recorder.periodic_tasks()}

    def test_runs(self) -> None:
        """
        When a pass runs a quick task, a failing one and one whose
        C{Deferred} fires 3 s later, then each counts one run under
        C{<Class>.<task>} with its outcome and duration.
        """
        self.tasks.run_periodic_tasks(None)
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.runs(), {"Tasks.quick": ({OK: 1, FAILED: 0}, 0.0),
                                       "Tasks.broken": ({OK: 0, FAILED: 1}, 0.0)})
        self.clock.advance(3)
        self.tasks.pending[0].callback(None)
        self.assertEqual(self.runs()["Tasks.slow"], ({OK: 1, FAILED: 0}, 3.0))

    def test_async_failure(self) -> None:
        """
        When a task's C{Deferred} fails, then its run counts as failed.
        """
        self.tasks.run_periodic_tasks(None)
        self.tasks.pending[0].errback(RuntimeError("late"))
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.runs()["Tasks.slow"], ({OK: 0, FAILED: 1}, 0.0))

    def test_raise_on_error(self) -> None:
        """
        When a task raises with C{raise_on_error}, then its run counts as
        failed before the error propagates.
        """
        self.assertRaises(RuntimeError, self.tasks.run_periodic_tasks, None, raise_on_error=True)
        self.assertEqual(self.runs()["Tasks.broken"][0], {OK: 0, FAILED: 1})

    def test_process_recorder_by_default(self) -> None:
        """
        When no recorder was set, then the runner counts in the process's
        one.
        """
        from novasvc.metrics import get_recorder

        self.assertIs(Tasks().periodic_metrics, get_recorder())
