"""
A transport that does nothing, for the benchmarks that time the RPC server
alone (bench/serializer.py, bench/context.py): consumers are active at
once, publishes are confirmed at once, and L{Delivery} is the least a
delivery needs. L{time_calls} is the timing loop both run.
"""

import gc
import os
import time
from typing import Any, Dict

from twisted.internet import defer


class Delivery:
    """
    One request's body, settled by nobody.
    """

    __slots__ = ("body",)
    content_type = "application/json"
    exchange = "openstack"
    routing_key = "bench"
    redelivered = False

    def __init__(self, body: bytes) -> None:
        self.body = body

    def ack(self) -> None:
        pass

    def reject(self, requeue: bool) -> None:
        pass


class _Consumer:
    def whenActive(self) -> Any:
        return defer.succeed(None)

    def cancel(self) -> Any:
        return defer.succeed(None)


class NullTransport:
    """
    The two methods of L{novasvc.interfaces.ITransport} an RPC server uses.
    """

    def consume(self, queue: Any, on_message: Any, prefetch: int = 0) -> _Consumer:
        return _Consumer()

    def publish(self, exchange: Any, routing_key: str, body: bytes, content_type: str = "application/json",
                expiration: Any = None, mandatory: bool = False) -> Any:
        return defer.succeed(None)


def time_calls(server: Any, method: str, args: Dict[str, Any], number: int, repeat: int) -> Dict[str, Any]:
    """
    Hand a started RPC server C{repeat} batches of C{number} calls of
    C{method(**args)}, each a fresh request with a request context, and
    time the best batch.

    @param server: a started L{novasvc.rpc.server.RPCServer} on a
        L{NullTransport}, from the tree this process imported.
    @return: C{module} (where C{novasvc} was imported from) and C{us} (CPU
        microseconds per call, the best batch).
    @raise AssertionError: when calls are still in flight afterwards.
    """
    import novasvc
    from novasvc.context import RequestContext
    from novasvc.rpc import wire

    context = RequestContext(user_id="bench-user", project_id="bench-project", roles=["member", "reader"]).to_dict()
    best = float("inf")
    for _ in range(repeat):
        deliveries = [Delivery(wire.encode_request(method, args, context, msg_id=wire.new_id(),
                                                   reply_q="reply_bench")) for _ in range(number)]
        gc.collect()
        on_delivery = server._on_delivery
        start = time.process_time()
        for delivery in deliveries:
            on_delivery(delivery)
        best = min(best, time.process_time() - start)
    if server.inflight:
        raise AssertionError(f"{server.inflight} calls did not finish")
    return {"module": os.path.dirname(os.path.abspath(novasvc.__file__)), "us": best / number * 1e6}
