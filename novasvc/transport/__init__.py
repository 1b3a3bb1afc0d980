# -*- test-case-name: tests.test_transport_url -*-
"""
Message transports behind L{novasvc.interfaces.ITransport}: C{memory://} (in
process) and C{rabbit://}/C{amqp://} (RabbitMQ through pika's Twisted adapter).
"""

from typing import Optional, Union

from novasvc.interfaces import ITransport
from novasvc.transport.url import TLSOptions, TransportURL


def get_transport(url: Union[str, TransportURL], *, reactor=None, **options) -> ITransport:
    """
    Make the transport a C{transport_url} names. Nothing connects until the
    transport's C{start()}.

    @param url: e.g. C{rabbit://guest:guest@localhost:5672/} or C{memory://}.
    @param reactor: the reactor (and clock) to use; the global one when C{None}.
    @param options: passed to the AMQP transport (e.g. C{heartbeat}, C{tls}).
    @raise novasvc.exceptions.ConfigError: for a URL that cannot be parsed.
    """
    if not isinstance(url, TransportURL):
        url = TransportURL.parse(url)
    if url.scheme == "memory":
        from novasvc.transport.memory import MemoryTransport

        return MemoryTransport(url, clock=reactor)
    from novasvc.transport.amqp import AMQPTransport

    return AMQPTransport(url, reactor=reactor, **options)


__all__ = ["get_transport", "TLSOptions", "TransportURL"]
