"""
Delivery across a broker restart, end to end: an L{RPCClient} and an
L{RPCServer}, each on its own L{AMQPTransport}, talking through a vhost of
its own on a RabbitMQ node of the test process's own (L{tests._shared_node},
started by the first test, reused by the next) that the test restarts
(C{rabbitmqctl stop_app}, then C{start_app}) in the middle of the traffic.
The shared node on 5672 is never touched.

The client's transport reconnects quickly (first retry after 0.25 s, then
at most 1 s apart), the server's every 3 s: after the broker's return the
client is back first and sends what it held while the server has not
declared its queues yet, the case in which casts used to be confirmed and
dropped and calls to wait for their full timeout. Each test prints its
figures on one line starting with C{delivery:}.
"""

import collections
from typing import Any, Dict, List, Optional, Set, Tuple

from twisted.internet import defer, reactor, task
from twisted.python.failure import Failure
from twisted.trial import unittest

from novasvc.exceptions import DisconnectedError, UnroutableError
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import MessagingTimeout
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.url import TransportURL
from tests._clients import AMQPTransport, on_txamqp
from tests._shared_node import shared_node
from tests._services import poll

#: Reconnection of the client's transport, and of the server's (slower).
CLIENT_RECONNECT = dict(retry_interval=0.25, retry_factor=2.0, retry_max=1.0, retry_jitter=0.25)
SERVER_RECONNECT = dict(retry_interval=3.0, retry_factor=1.0, retry_max=3.0, retry_jitter=0.0)
TOPIC = "fault"


class Worker:
    """
    The server's endpoint: counts how many times each request ran.

    @ivar runs: request number -> times run.
    @ivar on_run: called after each run (the stream sends more).
    """

    def __init__(self) -> None:
        self.runs: Dict[int, int] = collections.Counter()
        self.on_run = lambda: None

    def note(self, ctxt: Any, n: int) -> None:
        self.runs[n] += 1
        self.on_run()

    def echo(self, ctxt: Any, n: int) -> int:
        self.runs[n] += 1
        return n


class _Broker:
    """
    A node, a server and a client transport, set up for one test.

    @cvar transport_class: the AMQP transport used (see L{tests._clients}).
    """

    transport_class = AMQPTransport

    @defer.inlineCallbacks
    def set_up(self, durable: bool = False) -> Any:
        self.node, url = yield shared_node(self)
        self.worker = Worker()
        server_transport = self.transport(url, SERVER_RECONNECT)
        self.server = RPCServer(server_transport, Target(topic=TOPIC, server="h1"), [self.worker],
                                durable_queues=durable)
        started = self.server.start()
        started.addTimeout(30, reactor)
        yield started
        self.addCleanup(self.server.stop)
        self.client_transport = self.transport(url, CLIENT_RECONNECT)

    def transport(self, url: TransportURL, reconnect: Dict[str, float]) -> AMQPTransport:
        transport = self.transport_class(url, reactor=reactor, **reconnect)  # type: ignore[arg-type]
        transport.start()
        self.addCleanup(transport.stop)
        return transport

    @defer.inlineCallbacks
    def restart(self, times: Dict[str, float]) -> Any:
        times["down"] = reactor.seconds()
        yield self.node.stop_app()
        times["stopped"] = reactor.seconds()
        yield self.node.start_app()
        times["up"] = reactor.seconds()


class CastsAcrossRestartTests(_Broker, unittest.TestCase):
    """
    Test 1: 5,000 casts while the broker restarts mid-stream.
    """

    timeout = 120
    total = 5000
    rate = 1000
    restart_at = 1500
    held = 1000

    @defer.inlineCallbacks
    def stream(self, durable: bool, window: int) -> Any:
        """
        Cast C{total} numbered requests, at most C{rate} a second and at
        most C{window} sent and neither run nor failed, and restart the
        broker once C{restart_at} are sent. The stream pauses from the
        restart command until the client sees the broker go, so that
        nothing is waiting in a transient queue when the broker stops (what is
        there would be lost with it: see L{QueuedAcrossRestartTests}); from
        then on, at most C{held} are sent and neither confirmed nor failed,
        so the client holds that many while the broker is away and sends
        them when it is back. Then wait for every cast's Deferred, and for
        every confirmed cast to run.

        @return: the figures, a C{dict}.
        """
        yield self.set_up(durable)
        client = RPCClient(self.client_transport, Target(topic=TOPIC), durable_queues=durable,
                           missing_consumer_retry_timeout=30)
        confirmed: Set[int] = set()
        failed: Dict[int, str] = {}
        sent: List[defer.Deferred] = []
        times: Dict[str, float] = {}
        restarting: List[defer.Deferred] = []
        state = dict(pumping=False, away=False, held=0, after=0)
        runs = self.worker.runs

        def confirm(_: Any, n: int) -> None:
            confirmed.add(n)

        def fail(failure: Any, n: int) -> None:
            failed[n] = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"

        def room() -> bool:
            if len(sent) >= self.rate * (reactor.seconds() - started):
                return False
            if restarting and not state["away"]:
                if self.client_transport.is_connected:
                    return False
                state["away"] = True
            if state["away"]:
                return len(sent) - len(confirmed) - len(failed) < self.held
            return len(sent) - len(runs) - len(failed) < window

        def pump() -> None:
            if state["pumping"]:
                return
            state["pumping"] = True
            try:
                while len(sent) < self.total and room():
                    n = len(sent)
                    sent.append(client.cast({}, "note", n=n).addCallbacks(confirm, fail, (n,), None, (n,)))
                    if restarting and not self.client_transport.is_connected:
                        state["held"] += 1
                    elif "up" in times:
                        state["after"] += 1
                    if n == self.restart_at:
                        restarting.append(self.restart(times))
            finally:
                state["pumping"] = False

        self.worker.on_run = pump
        started = reactor.seconds()
        loop = task.LoopingCall(pump)
        loop.start(0.01)
        self.addCleanup(lambda: loop.running and loop.stop())
        yield poll(lambda: restarting, "the restart began", 60)
        yield restarting[0]
        yield poll(lambda: len(sent) == self.total and len(confirmed) + len(failed) == self.total,
                   "every cast sent and settled", 60)
        loop.stop()
        settled = reactor.seconds()
        try:
            yield poll(lambda: confirmed <= set(runs), "every confirmed cast ran", 10)
        except AssertionError:
            pass
        figures = dict(
            sent=len(sent), held_while_away=state["held"], sent_after_return=state["after"],
            confirmed=len(confirmed), failed=len(failed),
            executed=len(runs), lost=len(confirmed - set(runs)), duplicated=sum(count - 1 for count in runs.values()),
            executed_after_failing=len(set(failed) & set(runs)),
            outage=round(times["up"] - times["down"], 2), seconds=round(settled - started, 2),
        )
        print(f"\ndelivery: casts, durable_queues={durable}: "
              + " ".join(f"{key}={value}" for key, value in figures.items()))
        self.assertEqual(figures["lost"], 0, f"confirmed casts never run: {sorted(confirmed - set(runs))[:20]}")
        self.assertEqual(figures["sent"], self.total)
        self.assertEqual(figures["confirmed"] + figures["failed"], self.total)
        self.assertEqual(failed, {}, "casts failed")
        self.assertGreater(figures["held_while_away"], 0, "no cast was sent while the broker was away")
        self.assertGreater(figures["sent_after_return"], 0, "no cast was sent after the broker's return")
        return figures

    @defer.inlineCallbacks
    def test_default_config(self) -> Any:
        """
        When the broker restarts while 5,000 casts stream to a server that
        keeps up (transient queues, the default), the client holding up to
        1,000 while the broker is away, then every confirmed cast runs, none
        fails, and the duplicates are counted.
        """
        yield self.stream(durable=False, window=32)

    @defer.inlineCallbacks
    def test_durable_queues(self) -> Any:
        """
        When the broker restarts while 5,000 casts stream with a backlog of
        up to 1,000 waiting in a durable queue, the client holding up to
        1,000 while the broker is away, then every confirmed cast runs, none
        fails, and the duplicates are counted.
        """
        yield self.stream(durable=True, window=1000)


class QueuedAcrossRestartTests(unittest.TestCase):
    """
    What waits in a queue when the broker restarts, with transient queues
    (the default) and with C{durable_queues}.
    """

    timeout = 120
    transport_class = AMQPTransport
    casts = 100

    @defer.inlineCallbacks
    def test_queued_requests(self) -> Any:
        """
        When 100 confirmed casts wait in a transient queue and 100 in a
        durable one (their servers stopped) while the broker restarts, then
        once the servers consume again the durable queue's 100 run and the
        transient queue, declared again, is empty: those 100 are lost.
        """
        node, url = yield shared_node(self)
        workers = {durable: Worker() for durable in (False, True)}
        servers = {}
        for durable, worker in workers.items():
            transport = self.transport_class(url, reactor=reactor, **CLIENT_RECONNECT)  # type: ignore[arg-type]
            transport.start()
            self.addCleanup(transport.stop)
            servers[durable] = RPCServer(transport, Target(topic=f"queued-{durable}", server="h1"), [worker],
                                         control_exchange=f"exchange-{durable}", durable_queues=durable)
            yield servers[durable].start().addTimeout(30, reactor)
            yield servers[durable].stop()
        client_transport = self.transport_class(url, reactor=reactor, **CLIENT_RECONNECT)  # type: ignore[arg-type]
        client_transport.start()
        self.addCleanup(client_transport.stop)
        for durable in workers:
            client = RPCClient(client_transport, Target(topic=f"queued-{durable}"),
                               control_exchange=f"exchange-{durable}", durable_queues=durable,
                               missing_consumer_retry_timeout=0)
            yield defer.gatherResults([client.cast({}, "note", n=n) for n in range(self.casts)])
        yield node.stop_app()
        yield node.start_app()
        for server in servers.values():
            self.addCleanup(server.stop)
            yield server.start().addTimeout(30, reactor)
        yield poll(lambda: len(workers[True].runs) == self.casts, "the durable queue's casts ran", 30)
        out, err, code = yield node.rabbitmqctl("list_queues", "-q", "-p", url.virtual_host, "--no-table-headers",
                                               "name", "messages", "messages_unacknowledged")
        depth = {name: (int(ready), int(unacked)) for name, ready, unacked in
                 (line.split() for line in out.decode().splitlines() if line.strip())}
        print(f"\ndelivery: queued across a restart: durable ran {len(workers[True].runs)} of {self.casts}, "
              f"transient ran {len(workers[False].runs)} of {self.casts}, transient queue now {depth['queued-False']}")
        self.assertEqual(code, 0, err)
        self.assertEqual(depth["queued-False"], (0, 0))
        self.assertEqual(len(workers[False].runs), 0)


class CallsAcrossRestartTests(_Broker, unittest.TestCase):
    """
    Test 3: 200 calls across a broker restart.
    """

    timeout = 120
    calls = 200
    interval = 0.04
    call_timeout = 10.0
    unroutable_timeout = 5.0
    #: Seconds a call may end after its timeout, and calls may take to
    #: succeed again after the broker's return: generous, for a loaded
    #: machine (how fast it really is shows in the printed figures).
    slack = 8.0
    #: Seconds after the broker's return over which the last calls go out.
    late_spread = 10.0

    @defer.inlineCallbacks
    def test_calls(self) -> Any:
        """
        When 200 calls go out while the broker restarts (150 of them 40 ms
        apart from 1 s before the restart, 50 over the 10 s after the
        broker's return), then none outlives its timeout by more than 8 s,
        calls succeed again within 8 s of the broker's return (and every
        call sent after that succeeds), and none sent while the client was
        disconnected (so none that could have reached a queue before the
        restart) waits for its full timeout.
        """
        yield self.set_up()
        client = RPCClient(self.client_transport, Target(topic=TOPIC), timeout=self.call_timeout,
                           missing_consumer_retry_timeout=self.unroutable_timeout)
        yield client.call({}, "echo", n=-1)
        outcomes: List[Optional[Tuple[float, float, str]]] = [None] * self.calls
        times: Dict[str, float] = {}
        away: List[float] = []

        def ended(result: Any, n: int, sent_at: float) -> None:
            if isinstance(result, Failure):
                kind = type(result.value).__name__
            else:
                kind = "ok" if result == n else f"wrong result {result!r}"
            outcomes[n] = (sent_at, reactor.seconds(), kind)

        def send(n: int) -> None:
            sent_at = reactor.seconds()
            client.call({}, "echo", n=n).addBoth(ended, n, sent_at)

        def watch() -> None:
            # When the client lost its connection, and when it had it again.
            connected = self.client_transport.is_connected
            if len(away) == 0 and "down" in times and not connected:
                away.append(reactor.seconds())
            elif len(away) == 1 and connected:
                away.append(reactor.seconds())

        watching = task.LoopingCall(watch)
        watching.start(0.01)
        self.addCleanup(lambda: watching.running and watching.stop())
        # Three quarters 40 ms apart from now, the broker restarting after
        # 1 s; the last quarter spread over late_spread seconds after its return.
        early = self.calls * 3 // 4
        for n in range(early):
            reactor.callLater(n * self.interval, send, n)
        restarting: defer.Deferred = defer.Deferred()
        reactor.callLater(1.0, lambda: self.restart(times).chainDeferred(restarting))
        yield restarting
        late_calls = self.calls - early
        for i, n in enumerate(range(early, self.calls)):
            reactor.callLater(i * self.late_spread / late_calls, send, n)
        yield poll(lambda: all(outcomes), "every call ended", self.call_timeout + 30)
        watching.stop()
        ended_calls: List[Tuple[float, float, str]] = outcomes  # type: ignore[assignment]
        kinds = collections.Counter(kind for _, _, kind in ended_calls)
        late = [(n, end - start) for n, (start, end, _) in enumerate(ended_calls) if end - start > self.call_timeout + self.slack]
        self.assertEqual(len(away), 2, "the client never lost its connection, or never got it back")
        during = [(start, end, kind) for start, end, kind in ended_calls if away[0] <= start <= away[1]]
        waited_full = [(start, end, kind) for start, end, kind in during
                       if kind != "ok" and end - start >= self.call_timeout]
        first_ok_after = min((end for start, end, kind in ended_calls if kind == "ok" and end >= times["up"]),
                             default=None)
        after = [kind for start, end, kind in ended_calls if start >= times["up"] + self.slack]
        figures = dict(
            sent=self.calls, **kinds, sent_while_disconnected=len(during),
            ok_while_disconnected=sum(kind == "ok" for _, _, kind in during),
            outage=round(times["up"] - times["down"], 2), disconnected=round(away[1] - away[0], 2),
            first_success_after_return=None if first_ok_after is None else round(first_ok_after - times["up"], 2),
            longest=round(max(end - start for start, end, _ in ended_calls), 2),
        )
        print("\ndelivery: calls: " + " ".join(f"{key}={value}" for key, value in figures.items()))
        self.assertEqual(late, [], f"calls that outlived their timeout by more than {self.slack} s")
        self.assertEqual(waited_full, [], "calls sent while disconnected that waited their full timeout")
        self.assertIsNotNone(first_ok_after, "no call succeeded after the broker came back")
        self.assertLessEqual(first_ok_after - times["up"], self.slack)  # type: ignore[operator]
        self.assertTrue(after, f"no call was sent {self.slack} s after the broker's return")
        self.assertEqual(set(after), {"ok"})
        allowed = {"ok", MessagingTimeout.__name__, UnroutableError.__name__, DisconnectedError.__name__}
        self.assertLessEqual(set(kinds), allowed)


TxAMQPCastsAcrossRestartTests = on_txamqp(CastsAcrossRestartTests)
TxAMQPQueuedAcrossRestartTests = on_txamqp(QueuedAcrossRestartTests)
TxAMQPCallsAcrossRestartTests = on_txamqp(CallsAcrossRestartTests)
