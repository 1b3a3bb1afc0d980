"""
A transport that does nothing, for the benchmarks that time the RPC server
alone (bench/serializer.py, bench/context.py): consumers are active at
once, publishes are confirmed at once, and L{Delivery} is the least a
delivery needs.
"""

from typing import Any

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
