# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_tls -*-
"""
How L{novasvc.transport.AMQPTransport} speaks AMQP through pika: pika
connection parameters made from a L{TransportURL} (each host with its own
credentials), and the protocol (pika's C{TwistedProtocolConnection}) that
tells the transport when it connects and when it is lost. The endpoint it
connects through is the shared one
(L{novasvc.transport.amqp._connect.RoundRobinEndpoint}).
"""

from typing import Any, Callable, Optional, Union

import pika
from pika import exceptions as pika_errors
from pika import spec
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from novasvc.transport.amqp._frames import FrameReader, FrameWriter
from novasvc.transport.amqp._link import Link
from novasvc.transport.pika._internals import connection_of
from novasvc.transport.url import TransportURL

__all__ = ["AMQPProtocol", "AMQPProtocolFactory", "GuardedTransport", "connection_parameters"]


def connection_parameters(url: TransportURL, heartbeat: int, connection_name: str,
                          index: int = 0) -> pika.ConnectionParameters:
    """
    pika's parameters for host C{index} of C{url}: its credentials, the
    vhost, heartbeat and the client properties (pika's own capabilities plus
    C{connection_name}). Host and port are not used by pika's Twisted
    adapter; the endpoint picks them.

    @param heartbeat: the heartbeat to ask for, in B{seconds} (0 disables).
    @param index: the position of the host in C{url.hosts}.
    """
    username, password = url.login(index)
    return pika.ConnectionParameters(
        virtual_host=url.virtual_host,
        credentials=pika.PlainCredentials(username, password),
        heartbeat=heartbeat,
        client_properties={"connection_name": connection_name},
    )


class GuardedTransport:
    """
    The Twisted transport as pika's connection (and L{AMQPProtocol}) see it:
    the same, except that C{loseConnection()} also tells the protocol, which
    aborts the connection if it is still there after
    L{novasvc.transport.amqp._link.DISCONNECT_GRACE} seconds. pika drops a
    connection only through C{loseConnection()}, so this needs no hook inside
    pika.
    """

    def __init__(self, transport: Any, dropping: Callable[[], None]) -> None:
        """
        @param transport: the TCP (or TLS) transport.
        @param dropping: called after each C{loseConnection()}.
        """
        self.wrapped = transport
        self._dropping = dropping
        self.write = transport.write
        self.writeSequence = transport.writeSequence

    def loseConnection(self) -> None:
        """
        Close once the data written is sent; abort after a grace period.
        """
        self.wrapped.loseConnection()
        self._dropping()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


class AMQPProtocol(Link, TwistedProtocolConnection):
    """
    pika's Twisted protocol, telling its owner when the TCP connection is made
    and lost (see L{Link}), and keeping the reason pika gives when AMQP fails
    (which pika's C{ready} Deferred replaces with a bare
    C{AMQPConnectionError}).

    @ivar fast_path: C{True} when L{frame_writer} gives writers.
    @ivar frame_reader: on the fast path, the L{FrameReader} all incoming
        data goes through; else C{None} (pika reads it all).
    """

    def __init__(self, parameters: pika.ConnectionParameters, reactor: Any, owner: Any,
                 fast_path: bool = False) -> None:
        """
        @param fast_path: write the frames of C{basic.publish} and
            C{basic.ack} directly (see L{frame_writer}) and read those of
            deliveries and confirms (see L{frame_reader}); the transport passes
            the process's L{novasvc.transport.pika._internals.verdict}.
        @raise TransportError: for a pika without the connection novasvc
            needs (see L{connection_of}).
        """
        TwistedProtocolConnection.__init__(self, parameters, custom_reactor=reactor)
        self._link(owner, reactor)
        self.fast_path = fast_path
        connection = self._connection = connection_of(self)
        self.frame_reader: Optional[FrameReader] = None
        self._read = super().dataReceived
        if fast_path:
            reader = self.frame_reader = FrameReader(connection, self._read)
            self._read = reader.data_received
        connection.add_on_open_error_callback(self._record_error, remove_default=False)
        connection.add_on_close_callback(self._record_error)
        # pika's Twisted adapter replaces the broker's connection.close reason
        # (e.g. 403 ACCESS_REFUSED, 320 CONNECTION_FORCED) with Twisted's
        # ConnectionDone once the socket closes; catch the frame itself
        # (through pika's public but undocumented callback registry, when it
        # is there: without it, the log gives Twisted's reason).
        add = getattr(getattr(connection, "callbacks", None), "add", None)
        if callable(add):
            try:
                add(0, spec.Connection.Close, self._broker_closing, one_shot=False)
            except TypeError:
                pass

    @property
    def connection(self) -> Any:
        """
        The pika C{Connection} under this protocol (channels open on it).
        """
        return self._connection

    def frame_writer(self, raw: Any) -> Optional[FrameWriter]:
        """
        @param raw: an open pika C{Channel} of this connection.
        @return: the L{FrameWriter} for it on the fast path, else (or when
            the connection is gone) C{None}: use pika's C{basic_publish} and
            C{basic_ack}.
        """
        if not self.fast_path or self.transport is None or self.lost:
            return None
        return FrameWriter.for_channel(raw, self.transport.write)

    def dataReceived(self, data: bytes) -> None:
        """
        Hand C{data} to pika (through the L{frame_reader} on the fast path),
        then send the acks held meanwhile (see L{hold_acks}).
        """
        self._receive(self._read, data)

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> Any:
        """
        Send held acks, then close the connection (AMQP C{connection.close}).
        """
        if self._holding:
            self.send_acks()
        return super().close(reply_code, reply_text)

    def _record_error(self, _connection: Any, error: Optional[BaseException] = None) -> None:
        if error is not None and not isinstance(self.error, pika_errors.ConnectionClosedByBroker):
            self.error = error

    def _broker_closing(self, frame: Any) -> None:
        self.error = pika_errors.ConnectionClosedByBroker(frame.method.reply_code, frame.method.reply_text)

    def makeConnection(self, transport: Any) -> None:
        self._made(transport)
        # pika drops the connection (heartbeat timeout, close-ok) through the
        # transport's loseConnection(): guarded, as Link.disconnect does it.
        super().makeConnection(GuardedTransport(transport, self._dropping))
        self._owner.protocol_connected(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost(reason, super().connectionLost)


class AMQPProtocolFactory(Factory):
    """
    Builds one L{AMQPProtocol} per connection attempt.
    """

    noisy = False

    def __init__(self, parameters: Union[pika.ConnectionParameters, Callable[[], pika.ConnectionParameters]],
                 reactor: Any, owner: Any, fast_path: bool = False) -> None:
        """
        @param parameters: pika's parameters, or a function giving those of
            the host being connected to (hosts may have their own
            credentials).
        @param fast_path: see L{AMQPProtocol.fast_path}.
        """
        self._parameters = parameters
        self._reactor = reactor
        self._owner = owner
        self._fast_path = fast_path

    def buildProtocol(self, addr: Any) -> AMQPProtocol:
        parameters = self._parameters() if callable(self._parameters) else self._parameters
        protocol = AMQPProtocol(parameters, self._reactor, self._owner, self._fast_path)
        protocol.factory = self
        return protocol
