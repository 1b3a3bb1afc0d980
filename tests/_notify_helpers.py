"""
Helpers for the notification listener tests on the memory transport: a
transport recording how each delivery was settled, and a publisher of
notifications in oslo's format.
"""

from typing import Any, List, Optional, Tuple

from twisted.internet import defer

from novasvc.notify.message import encode_notification, routing_key
from novasvc.transport.memory import MemoryTransport
from novasvc.transport.topology import Exchange


class _Recorded:
    """
    A delivery that records how it is settled in its transport's
    C{settled} list, as C{(event, body)}: C{"ack"}, C{"requeue"} or
    C{"reject"}.
    """

    def __init__(self, delivery: Any, settled: List[Tuple[str, bytes]]) -> None:
        self._delivery = delivery
        self._settled = settled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._delivery, name)

    def ack(self) -> None:
        self._settled.append(("ack", self._delivery.body))
        self._delivery.ack()

    def reject(self, requeue: bool) -> None:
        self._settled.append(("requeue" if requeue else "reject", self._delivery.body))
        self._delivery.reject(requeue)


class SettlingTransport(MemoryTransport):
    """
    The memory transport; its deliveries record how they were settled, and
    it keeps the consumers it made.

    @ivar settled: C{(event, body)} in the order deliveries were settled.
    @ivar consumers: the consumers made, in order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settled: List[Tuple[str, bytes]] = []
        self.consumers: List[Any] = []

    def consume(self, queue: Any, on_message: Any, prefetch: int = 0) -> Any:
        consumer = super().consume(queue, lambda d: on_message(_Recorded(d, self.settled)), prefetch)
        self.consumers.append(consumer)
        return consumer

    def events(self) -> List[str]:
        """
        @return: how each delivery was settled, in order.
        """
        return [event for event, _ in self.settled]


def send(transport: Any, priority: str = "info", event_type: str = "volume.create.end", payload: Any = None,
         *, topic: str = "notifications", exchange: str = "openstack", publisher_id: str = "volume.host1",
         context: Optional[dict] = None, envelope: bool = True, **kwargs: Any) -> bytes:
    """
    Publish one notification as oslo's notifier would.

    @return: its body.
    """
    body = encode_notification(publisher_id, event_type, priority, {"n": 1} if payload is None else payload,
                               {} if context is None else context, envelope=envelope, **kwargs)
    publish(transport, routing_key(topic, priority), body, exchange=exchange)
    return body


def publish(transport: Any, key: str, body: bytes, *, exchange: str = "openstack",
            content_type: Optional[str] = "application/json") -> None:
    """
    Publish a raw body to the topic exchange C{exchange}.
    """
    d: defer.Deferred = transport.publish(Exchange(exchange, "topic"), key, body, content_type)
    failures: List[Any] = []
    d.addErrback(failures.append)
    if failures:
        failures[0].raiseException()
