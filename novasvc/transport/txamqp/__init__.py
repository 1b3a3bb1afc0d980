"""
The RabbitMQ transport on txamqp (C{amqp_client: txamqp}):
L{TxAMQPTransport}, its protocol, channels and frame codec, and the machine
description of AMQP 0-9-1 txamqp needs (C{amqp0-9-1.xml}, package data).

It may import L{novasvc.transport.amqp}, the rest of L{novasvc.transport} and
the layers below; never L{novasvc.transport.pika}. L{TxAMQPTransport} is
imported on first use, so importing this package does not load txamqp.
"""

from typing import TYPE_CHECKING, Any, List

from novasvc._lazy import lazy_attribute

if TYPE_CHECKING:
    from novasvc.transport.txamqp._transport import TxAMQPTransport

_EXPORTS = {"TxAMQPTransport": "novasvc.transport.txamqp._transport"}

__all__ = ["TxAMQPTransport"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, globals(), _EXPORTS, name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
