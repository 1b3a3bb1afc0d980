"""
The RabbitMQ transport on pika's Twisted adapter (the default
C{amqp_client}): L{AMQPTransport}, how it connects through pika, and its
fast path (L{novasvc.transport.pika._internals}).

It may import L{novasvc.transport.amqp}, the rest of L{novasvc.transport} and
the layers below; never L{novasvc.transport.txamqp}. L{AMQPTransport} is
imported on first use, so importing this package does not load pika.
"""

from typing import TYPE_CHECKING, Any, List

from novasvc._lazy import lazy_attribute

if TYPE_CHECKING:
    from novasvc.transport.pika._transport import AMQPTransport

_EXPORTS = {"AMQPTransport": "novasvc.transport.pika._transport"}

__all__ = ["AMQPTransport"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, globals(), _EXPORTS, name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
