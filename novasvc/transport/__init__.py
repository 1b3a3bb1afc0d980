# -*- test-case-name: tests.test_transport_url,tests.test_transport_txamqp -*-
"""
Message transports behind L{novasvc.interfaces.ITransport}: C{memory://} (in
process, L{novasvc.transport.memory}) and C{rabbit://}/C{amqp://} (RabbitMQ
through pika's Twisted adapter, L{AMQPTransport}, or through txamqp when
asked for, L{TxAMQPTransport}).

The code both RabbitMQ transports share is in L{novasvc.transport.amqp};
what each client library needs is in L{novasvc.transport.pika} and
L{novasvc.transport.txamqp}. L{AMQPTransport} and L{TxAMQPTransport} are
imported on first use, so importing this package loads neither library.
"""

from typing import TYPE_CHECKING, Any, List, Union

from novasvc._lazy import lazy_attribute
from novasvc.exceptions import ConfigError
from novasvc.interfaces import ITransport
from novasvc.transport.url import TLSOptions, TransportURL

if TYPE_CHECKING:
    from novasvc.transport.pika._transport import AMQPTransport
    from novasvc.transport.txamqp._transport import TxAMQPTransport

# name -> the module defining it
_EXPORTS = {
    "AMQPTransport": "novasvc.transport.pika._transport",
    "TxAMQPTransport": "novasvc.transport.txamqp._transport",
}

#: The AMQP client libraries a RabbitMQ transport can use (configuration key
#: C{amqp_client}); the first is the default.
AMQP_CLIENTS = ("pika", "txamqp")


def get_transport(url: Union[str, TransportURL], *, reactor=None, client: str = "pika",
                  **options) -> ITransport:
    """
    Make the transport a C{transport_url} names. Nothing connects until the
    transport's C{start()}.

    @param url: e.g. C{rabbit://guest:guest@localhost:5672/} or C{memory://}.
    @param reactor: the reactor (and clock) to use; the global one when C{None}.
    @param client: for an AMQP URL, the client library: C{"pika"}
        (L{novasvc.transport.AMQPTransport}) or C{"txamqp"}
        (L{novasvc.transport.TxAMQPTransport}, which needs
        C{pip install 'novasvc[txamqp]'}). Ignored for C{memory://}.
    @param options: passed to the AMQP transport (e.g. C{heartbeat}, C{tls}).
    @raise novasvc.exceptions.ConfigError: for a URL that cannot be parsed,
        an unknown client, or txamqp asked for but not installed.
    """
    if not isinstance(url, TransportURL):
        url = TransportURL.parse(url)
    if client not in AMQP_CLIENTS:
        raise ConfigError(f"amqp_client must be one of {', '.join(AMQP_CLIENTS)}, not {client!r}")
    if url.scheme == "memory":
        from novasvc.transport.memory import MemoryTransport

        return MemoryTransport(url, clock=reactor)
    if client == "txamqp":
        try:
            from novasvc.transport.txamqp._transport import TxAMQPTransport
        except ImportError as e:
            raise ConfigError(f"amqp_client txamqp needs txamqp ({e}): pip install 'novasvc[txamqp]'") from None
        return TxAMQPTransport(url, reactor=reactor, **options)
    from novasvc.transport.pika._transport import AMQPTransport

    return AMQPTransport(url, reactor=reactor, **options)


__all__ = ["AMQP_CLIENTS", "AMQPTransport", "get_transport", "TLSOptions", "TransportURL", "TxAMQPTransport"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, globals(), _EXPORTS, name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
