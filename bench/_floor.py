# -*- test-case-name: tests.test_bench -*-
"""
The floor's connection set-up, shared by its server and client: a plain
C{TwistedProtocolConnection} (pika's Twisted adapter) over a TCP endpoint,
and one channel.

The floor then works on the adapter's underlying C{pika.channel.Channel}
(C{TwistedChannel._channel}): deliveries arrive through a direct
C{basic_consume} callback and publishes skip the per-call C{Deferred} the
wrapper makes, which is the cheapest sane way to use this client (the
wrapper's C{DeferredQueue} consumer costs 10-35% on casts).
"""

from typing import Any, Tuple
from urllib.parse import unquote, urlsplit

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

__all__ = ["connect"]


@defer.inlineCallbacks
def connect(reactor: Any, url: str) -> Any:
    """
    @param url: C{rabbit://user:pass@host:port/vhost} (or C{amqp://}).
    @return: a C{Deferred} firing with C{(connection, twisted_channel,
        channel)}: the L{TwistedProtocolConnection}, its C{TwistedChannel}
        (for the set-up methods that return C{Deferred}s), and the raw pika
        channel.
    """
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    parameters = pika.ConnectionParameters(
        virtual_host=vhost,
        credentials=pika.PlainCredentials(unquote(parts.username or "guest"), unquote(parts.password or "guest")),
        heartbeat=60,
    )
    endpoint = TCP4ClientEndpoint(reactor, parts.hostname or "localhost", parts.port or 5672)
    connection: TwistedProtocolConnection = yield connectProtocol(endpoint, TwistedProtocolConnection(parameters))
    yield connection.ready
    wrapped = yield connection.channel()
    result: Tuple[Any, Any, Any] = (connection, wrapped, wrapped._channel)
    return result
