"""
Tests for what L{novasvc.rpc.client.RPCClient} does when a publish fails
(L{novasvc.rpc._resend}): unroutable requests sent again for a bounded
time, requests lost with their connection sent again as C{retry} allows,
always the same bytes. Over the in-memory transport with a L{task.Clock}.
"""

import json
from typing import Any, List

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from novasvc.exceptions import DisconnectedError, TransportError, UnroutableError
from novasvc.rpc._reply_waiter import reply_waiter
from novasvc.rpc.client import UNROUTABLE_RETRY_INTERVAL, RPCClient
from novasvc.rpc.errors import MessagingTimeout
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.memory import MemoryBroker
from novasvc.transport.topology import Exchange
from tests.test_rpc_server import Manager, RecordingTransport


def _inner(body: bytes) -> dict:
    return json.loads(json.loads(body)["oslo.message"])


class FlakyTransport(RecordingTransport):
    """
    The memory transport, whose next publishes fail with the errors queued
    in L{failures} (as a connection lost before the confirm would).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: List[Exception] = []
        self.sent_at: List[float] = []

    def publish(self, exchange, routing_key, body, content_type="application/json", expiration=None,
                mandatory=False):
        if exchange.name:
            self.sent_at.append(self.clock.seconds())
        if self.failures and exchange.name:
            self.published.append((exchange, routing_key, body, content_type, expiration, mandatory))
            return defer.fail(self.failures.pop(0))
        return super().publish(exchange, routing_key, body, content_type, expiration, mandatory)


class _Harness:
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.transport = FlakyTransport(broker=self.broker, clock=self.clock)
        self.client = RPCClient(self.transport, Target(topic="svc"), clock=self.clock)

    def make_server(self) -> Manager:
        transport = RecordingTransport(broker=self.broker, clock=self.clock)
        manager = Manager("host1")
        server = RPCServer(transport, Target(topic="svc", server="host1"), [manager], clock=self.clock)
        self.successResultOf(server.start())  # type: ignore[attr-defined]
        return manager

    def requests(self) -> List[tuple]:
        return [p for p in self.transport.published if p[0].name != ""]


class UnroutableTests(_Harness, SynchronousTestCase):
    """
    Requests that no queue takes.
    """

    def test_cast_waits_for_the_queue(self) -> None:
        """
        When a cast finds no queue and a server declares its queue 2 s later,
        then the cast is sent again every 0.25 s, the same bytes each time,
        its Deferred fires once a queue took it, and the method runs once.
        """
        d = self.client.cast({}, "note", value=7)
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 4)
        self.assertNoResult(d)
        manager = self.make_server()
        self.clock.advance(UNROUTABLE_RETRY_INTERVAL)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.transport.sent_at, [0, 0.25, 0.5, 0.75, 1.0, 1.25])
        self.assertEqual(manager.calls, [("note", 7)])
        bodies = {body for _, _, body, _, _, _ in self.requests()}
        self.assertEqual((len(self.requests()), len(bodies)), (6, 1))

    def test_cast_gives_up(self) -> None:
        """
        When no queue takes a cast for missing_consumer_retry_timeout
        seconds, then it fails with UnroutableError naming the method, the
        exchange, the routing key and how long it was tried.
        """
        client = RPCClient(self.transport, Target(topic="svc"), missing_consumer_retry_timeout=2, clock=self.clock)
        d = client.cast({}, "note", value=1)
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 7)
        self.assertNoResult(d)
        self.clock.advance(UNROUTABLE_RETRY_INTERVAL)
        error = self.failureResultOf(d, UnroutableError).value
        self.assertEqual(str(error), "no queue took the cast 'note' sent to exchange 'openstack' with routing key "
                                     "'svc' (8 sends over 2.00 s): no server of its target consumes it")
        self.assertEqual(self.transport.sent_at, [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
        self.clock.advance(10)
        self.assertEqual(len(self.requests()), 8)

    def test_no_retry_time(self) -> None:
        """
        When missing_consumer_retry_timeout is 0, then an unroutable cast
        fails at once, sent once.
        """
        client = RPCClient(self.transport, Target(topic="svc"), missing_consumer_retry_timeout=0, clock=self.clock)
        self.failureResultOf(client.cast({}, "note"), UnroutableError)
        self.assertEqual(len(self.requests()), 1)

    def test_fanout_cast_unroutable(self) -> None:
        """
        When a fanout cast finds no queue bound to its exchange, then it is
        sent again as a topic cast is.
        """
        client = RPCClient(self.transport, Target(topic="svc", fanout=True), missing_consumer_retry_timeout=1,
                           clock=self.clock)
        d = client.cast({}, "note")
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 4)
        self.failureResultOf(d, UnroutableError)
        self.assertEqual({key for _, key, _, _, _, _ in self.requests()}, {""})
        self.assertEqual(len(self.requests()), 4)

    def test_fanout_cast_one_queue_enough(self) -> None:
        """
        When a fanout cast finds the fanout queue of one server, then it is
        confirmed, and a server whose fanout queue appears later does not
        get it.
        """
        first = self.make_server()
        self.successResultOf(self.client.prepare(fanout=True).cast({}, "note", value=1))
        transport = RecordingTransport(broker=self.broker, clock=self.clock)
        late = Manager("host2")
        self.successResultOf(RPCServer(transport, Target(topic="svc", server="host2"), [late],
                                       clock=self.clock).start())
        self.clock.advance(60)
        self.assertEqual((first.calls, late.calls), ([("note", 1)], []))

    def test_cancel_stops_sending(self) -> None:
        """
        When an unroutable cast's Deferred is cancelled, then it is not sent
        again.
        """
        d = self.client.cast({}, "note")
        self.clock.advance(UNROUTABLE_RETRY_INTERVAL)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        sent = len(self.requests())
        self.clock.advance(60)
        self.assertEqual(len(self.requests()), sent)

    def test_one_probe_per_route(self) -> None:
        """
        When 100 casts to one topic find no queue, then one of them is sent
        again every 0.25 s, not each; once a queue takes it the 99 others
        are sent, and each runs once.
        """
        ds = [self.client.cast({}, "note", value=i) for i in range(100)]
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 4)
        self.assertEqual(len(self.requests()), 104)
        manager = self.make_server()
        self.clock.advance(UNROUTABLE_RETRY_INTERVAL)
        for d in ds:
            self.assertIsNone(self.successResultOf(d))
        self.assertEqual(sorted(value for _, value in manager.calls), list(range(100)))
        self.assertEqual(len(self.requests()), 204)
        self.assertEqual((self.client._routes, self.clock.getDelayedCalls()), ({}, []))

    def test_each_request_on_its_own_time(self) -> None:
        """
        When two casts wait for the same missing queue, sent 0.5 s apart,
        then each fails missing_consumer_retry_timeout seconds after it
        first came back.
        """
        client = RPCClient(self.transport, Target(topic="svc"), missing_consumer_retry_timeout=1, clock=self.clock)
        first = client.cast({}, "note", value=1)
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 2)
        second = client.cast({}, "note", value=2)
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 2)
        self.failureResultOf(first, UnroutableError)
        self.assertNoResult(second)
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 2)
        self.failureResultOf(second, UnroutableError)
        self.assertEqual((client._routes, self.clock.getDelayedCalls()), ({}, []))

    def test_call_waits_for_the_queue(self) -> None:
        """
        When a call finds no queue until a server declares it, then the same
        request (same _msg_id and _unique_id) is sent again with what is
        left of its timeout as expiration, and the reply arrives.
        """
        d = self.client.prepare(timeout=10).call({}, "echo", value=3)
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 4)
        self.make_server()
        self.clock.advance(UNROUTABLE_RETRY_INTERVAL)
        self.assertEqual(self.successResultOf(d), {"server": "host1", "value": 3})
        requests = self.requests()
        self.assertEqual(len({body for _, _, body, _, _, _ in requests}), 1)
        inner = _inner(requests[0][2])
        self.assertRegex(inner["_unique_id"], "^[0-9a-f]{32}$")
        self.assertEqual([expiration for _, _, _, _, expiration, _ in requests], [10000, 9750, 9500, 9250, 9000, 8750])

    def test_call_fails_fast(self) -> None:
        """
        When no queue takes a call for missing_consumer_retry_timeout seconds
        (shorter than its timeout), then it fails then with UnroutableError,
        not MessagingTimeout at its timeout, and nothing is kept for it.
        """
        client = RPCClient(self.transport, Target(topic="svc"), missing_consumer_retry_timeout=1, clock=self.clock)
        d = client.prepare(timeout=30).call({}, "echo")
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 5)
        self.failureResultOf(d, UnroutableError)
        self.assertEqual(self.clock.seconds(), 1.25)
        waiter = reply_waiter(self.transport, None)
        self.assertEqual((waiter.pending, waiter.unsent, self.clock.getDelayedCalls()), ({}, {}, []))

    def test_call_unroutable_until_timeout(self) -> None:
        """
        When a call's timeout comes first while no queue takes it, then it
        fails with UnroutableError (the server never had it) and is not sent
        again.
        """
        d = self.client.prepare(timeout=2).call({}, "echo")
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 8)
        self.assertIn("no queue took the call 'echo'", str(self.failureResultOf(d, UnroutableError).value))
        self.assertEqual((self.client._routes, self.clock.getDelayedCalls()), ({}, []))


class ResendTests(_Harness, SynchronousTestCase):
    """
    Requests lost with their connection, sent again as C{retry} says.
    """

    def test_cast_sent_again(self) -> None:
        """
        When a cast is lost with its connection three times, then it is sent
        again at once, then after 1 and 2 seconds, the same bytes each time,
        and runs once.
        """
        manager = self.make_server()
        self.transport.failures = [DisconnectedError("lost")] * 3
        d = self.client.cast({}, "note", value=1)
        self.clock.pump([0] + [0.5] * 5)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.transport.sent_at, [0, 0, 1, 3])
        self.assertEqual(manager.calls, [("note", 1)])
        self.assertEqual(len({body for _, _, body, _, _, _ in self.requests()}), 1)
        self.assertEqual(len(self.requests()), 4)

    def test_delays_capped(self) -> None:
        """
        When a cast is lost again and again, then the waits between sends
        double up to 30 s.
        """
        self.make_server()
        self.transport.failures = [DisconnectedError("lost")] * 9
        d = self.client.cast({}, "note", value=1)
        self.clock.pump([0] + [1] * 200)
        self.successResultOf(d)
        sent_at = self.transport.sent_at
        self.assertEqual([b - a for a, b in zip(sent_at, sent_at[1:])], [0, 1, 2, 4, 8, 16, 30, 30, 30])

    def test_retry_zero(self) -> None:
        """
        When retry is 0, then a cast lost with its connection fails with that
        error, sent once.
        """
        self.make_server()
        self.transport.failures = [DisconnectedError("lost")]
        d = self.client.prepare(retry=0).cast({}, "note")
        self.assertEqual(str(self.failureResultOf(d, DisconnectedError).value), "lost")
        self.assertEqual(len(self.requests()), 1)

    def test_prepared_client_resends_by_its_own_settings(self) -> None:
        """
        When a client that already cast makes a prepared client with retry
        0, then a cast of the prepared client lost with its connection fails
        at once, while the first client's is sent again.
        """
        self.make_server()
        self.successResultOf(self.client.cast({}, "note", value=1))
        prepared = self.client.prepare(retry=0)
        self.successResultOf(prepared.cast({}, "note", value=2))
        self.transport.failures = [DisconnectedError("lost")]
        self.failureResultOf(prepared.cast({}, "note", value=3), DisconnectedError)
        self.transport.failures = [DisconnectedError("lost")]
        d = self.client.cast({}, "note", value=4)
        self.clock.advance(0)
        self.successResultOf(d)

    def test_resent_to_the_same_exchange(self) -> None:
        """
        When a cast to a durable control exchange, or a fanout cast, is lost
        with its connection, then it is sent again to the very same exchange
        (name, type, durable and auto-delete flags).
        """
        self.make_server()
        durable = RPCServer(RecordingTransport(broker=self.broker, clock=self.clock),
                            Target(topic="dur", server="host1"), [Manager("host1")], durable_queues=True,
                            control_exchange="nova", clock=self.clock)
        self.successResultOf(durable.start())
        exchanges = []
        for client in (RPCClient(self.transport, Target(topic="dur"), durable_queues=True, control_exchange="nova",
                                 clock=self.clock),
                       RPCClient(self.transport, Target(topic="svc", fanout=True), clock=self.clock)):
            del self.transport.published[:]
            self.transport.failures = [DisconnectedError("lost")]
            d = client.cast({}, "note", value=1)
            self.clock.advance(0)
            self.successResultOf(d)
            sent = [(exchange, key) for exchange, key, _, _, _, _ in self.requests()]
            self.assertEqual(len(sent), 2)
            self.assertEqual(sent[0], sent[1])
            exchanges.append(sent[0][0])
        self.assertEqual(exchanges, [Exchange("nova", "topic", durable=True),
                                     Exchange("svc_fanout", "fanout", auto_delete=True)])

    def test_retry_n(self) -> None:
        """
        When retry is 2, then a call lost with its connection every time is
        sent three times and fails with DisconnectedError saying so.
        """
        self.make_server()
        self.transport.failures = [DisconnectedError("lost")] * 5
        d = self.client.prepare(retry=2).call({}, "echo")
        self.clock.pump([0, 1])
        error = self.failureResultOf(d, DisconnectedError).value
        self.assertIn("lost with the connection 3 times (retry=2)", str(error))
        self.assertEqual(len(self.requests()), 3)

    def test_retry_forever_within_call_timeout(self) -> None:
        """
        When retry is None, then a call is sent again until its timeout, and
        then fails with MessagingTimeout.
        """
        self.transport.failures = [DisconnectedError("lost")] * 100
        d = self.client.prepare(timeout=10).call({}, "echo")
        self.clock.pump([1] * 10)
        self.failureResultOf(d, MessagingTimeout)
        self.assertEqual(len(self.requests()), 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_other_errors_final(self) -> None:
        """
        When a publish fails for another reason (the transport is stopped, a
        nack), then the request is not sent again, whatever retry says.
        """
        self.transport.failures = [TransportError("refused")]
        self.failureResultOf(self.client.cast({}, "note"), TransportError)
        self.successResultOf(self.transport.stop())
        self.failureResultOf(self.client.call({}, "echo"), TransportError)
        # The cast went out once; the call not at all (a stopped transport
        # consumes no reply queue).
        self.assertEqual(len(self.requests()), 1)

    def test_unroutable_after_reconnect(self) -> None:
        """
        When a request is lost with its connection after finding no queue
        for a while, then the unroutable time counts again from the send
        after it.
        """
        client = RPCClient(self.transport, Target(topic="svc"), missing_consumer_retry_timeout=1, clock=self.clock)
        self.transport.failures = [UnroutableError("none")] * 3 + [DisconnectedError("lost")]
        d = client.cast({}, "note")
        self.clock.pump([UNROUTABLE_RETRY_INTERVAL] * 6)
        self.assertNoResult(d)
        self.clock.advance(UNROUTABLE_RETRY_INTERVAL)
        self.assertIn("(4 sends over 1.00 s)", str(self.failureResultOf(d, UnroutableError).value))
        self.assertEqual(self.transport.sent_at, [0, 0.25, 0.5, 0.75, 0.75, 1.0, 1.25, 1.5])

    def test_bad_retry(self) -> None:
        """
        When retry is not None or an integer >= -1, or the unroutable retry
        time is negative, then ValueError.
        """
        for retry in (-2, 1.5, True, "3"):
            self.assertRaises(ValueError, RPCClient, self.transport, Target(topic="svc"), retry=retry)
            self.assertRaises(ValueError, self.client.prepare, retry=retry)
        self.assertRaises(ValueError, RPCClient, self.transport, Target(topic="svc"),
                          missing_consumer_retry_timeout=-1)
        self.assertEqual(self.client.prepare(retry=-1).retry, -1)
