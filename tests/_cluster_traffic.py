"""
The traffic of the cluster fault tests (L{tests.test_transport_cluster},
L{tests.test_transport_partition}): an RPC client and two RPC servers, each
with its own AMQP transport on a cluster of the test's own
(L{tests._rabbitmq_cluster}), a call every L{CALL_EVERY} seconds and a cast
every L{CAST_EVERY} seconds, and what happened to them (L{Traffic}).
"""

import time
from typing import Any, Dict, List, Optional

import attrs
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from novasvc.rpc.client import RPCClient
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport
from novasvc.transport.topology import QuorumQueues
from novasvc.transport.url import TransportURL
from tests._rabbitmq_cluster import RabbitMQCluster
from tests._services import poll

__all__ = ["CALL_EVERY", "CAST_EVERY", "Traffic", "wait_on_other_node"]

#: Seconds between two calls, and between two casts.
CALL_EVERY, CAST_EVERY = 0.2, 0.05


class _Recorder:
    """
    An endpoint that records the casts it got.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.casts: List[int] = []

    def echo(self, ctxt: Any, value: int) -> Dict[str, Any]:
        return {"server": self.name, "value": value}

    def note(self, ctxt: Any, value: int) -> None:
        self.casts.append(value)


@attrs.define
class _Call:
    started: float
    ended: Optional[float] = None
    ok: Optional[bool] = None
    error: str = ""


class Traffic:
    """
    The client and the two servers, and the calls and casts between them.
    """

    def __init__(self, case: unittest.TestCase, cluster: RabbitMQCluster, transport_class: Any = AMQPTransport) -> None:
        self.case = case
        self.cluster = cluster
        self.calls: List[_Call] = []
        self.cast_sent = 0
        self.cast_confirmed: List[int] = []
        self.cast_failed = 0
        self.endpoints = [_Recorder("a"), _Recorder("b")]
        self.transport_class = transport_class
        self.transports: Dict[str, AMQPTransport] = {}
        self._loops: List[task.LoopingCall] = []

    def transport(self, name: str, first: int) -> AMQPTransport:
        order = [first] + [i for i in range(len(self.cluster.nodes)) if i != first]
        transport = self.transport_class(TransportURL.parse(self.cluster.url_of(order)), reactor=reactor)
        transport.start()
        self.case.addCleanup(transport.stop)
        self.transports[name] = transport
        return transport

    def node_of(self, name: str) -> Optional[int]:
        """
        @return: the index of the node C{name}'s transport is connected to,
            or C{None} while it is not connected.
        """
        transport = self.transports[name]
        if not transport.is_connected or transport._endpoint is None:
            return None
        return self.cluster.index_of_port(transport._endpoint.current[1])

    @defer.inlineCallbacks
    def start(self) -> Any:
        target = Target(topic="faults", server=None)
        for name, first, endpoint in (("b", 1, self.endpoints[1]), ("a", 0, self.endpoints[0])):
            server = RPCServer(self.transport(f"server {name}", first), Target(topic="faults", server=name),
                               [endpoint], quorum=QuorumQueues())
            yield server.start()
            self.case.addCleanup(server.stop)
        self.client = RPCClient(self.transport("client", 0), target, timeout=10, durable_queues=True)
        yield self.client.call({}, "echo", value=-1)
        for every, tick in ((CALL_EVERY, self._call), (CAST_EVERY, self._cast)):
            loop = task.LoopingCall(tick)
            loop.start(every)
            self._loops.append(loop)
        self.case.addCleanup(self.stop)

    def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()

    def _call(self) -> None:
        call = _Call(time.monotonic())
        self.calls.append(call)

        def done(result: Any) -> None:
            call.ended, call.ok = time.monotonic(), True

        def failed(failure: Any) -> None:
            call.ended, call.ok, call.error = time.monotonic(), False, failure.getErrorMessage()[:200]

        self.client.call({}, "echo", value=len(self.calls)).addCallbacks(done, failed)

    def _cast(self) -> None:
        self.cast_sent += 1
        value = self.cast_sent
        self.client.cast({}, "note", value=value).addCallbacks(
            lambda _: self.cast_confirmed.append(value), lambda _: setattr(self, "cast_failed", self.cast_failed + 1))

    def first_success_after(self, moment: float) -> Optional[float]:
        """
        @return: seconds from C{moment} to the end of the first call started
            after it that succeeded, or C{None}.
        """
        ends = [call.ended for call in self.calls if call.started >= moment and call.ok]
        return min(ends) - moment if ends else None

    def failed_between(self, start: float, end: float) -> List[_Call]:
        return [call for call in self.calls if start <= call.started < end and call.ok is False]

    def lost(self) -> List[int]:
        received = set(self.endpoints[0].casts) | set(self.endpoints[1].casts)
        return [value for value in self.cast_confirmed if value not in received]

    @defer.inlineCallbacks
    def drain(self) -> Any:
        """
        Stop sending, then wait (at most 60 s) until every call has ended
        and every confirmed cast has arrived.
        """
        self.stop()
        yield poll(lambda: all(call.ended is not None for call in self.calls), "every call ended", 60, 0.2)
        yield poll(lambda: not self.lost(), "every confirmed cast received", 60, 0.2).addErrback(lambda _: None)


def wait_on_other_node(traffic: Traffic, names: List[str], lost: int, deadline: float) -> defer.Deferred:
    def moved() -> bool:
        nodes = [traffic.node_of(name) for name in names]
        return all(node is not None and node != lost for node in nodes)

    return poll(moved, f"{names} connected to a node other than node {lost}", deadline, 0.1)
