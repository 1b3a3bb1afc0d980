# -*- test-case-name: tests.test_transport_amqp -*-
"""
How L{novasvc.transport.amqp.AMQPTransport} reaches the broker: pika
connection parameters made from a L{TransportURL} (each host with its own
credentials), an endpoint that walks the URL's hosts round-robin, over TLS
when asked (Twisted's C{wrapClientTLS}, the broker's certificate and host
name always verified), and the protocol (pika's C{TwistedProtocolConnection})
that tells the transport when it connects and when it is lost.
"""

import os
import random
import sys
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import pika
from pika import exceptions as pika_errors
from pika import spec
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from novasvc.exceptions import ConfigError
from novasvc._text import show_value
from novasvc.transport._amqp_frames import FrameReader, FrameWriter
from novasvc.transport._amqp_link import Link
from novasvc.transport._pika_internals import connection_of
from novasvc.transport.url import TLSOptions, TransportURL


def default_connection_name() -> str:
    """
    A connection name the way oslo.messaging makes one, so operators find the
    process in C{rabbitmqctl list_connections name client_properties}.

    @return: C{"<basename of argv[0]>:<pid>:<uuid4>"}.
    """
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return f"{program}:{os.getpid()}:{uuid.uuid4()}"


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


#: Makes the TLS settings for one host name (see L{client_tls}).
TLSCreator = Callable[[str], IOpenSSLClientConnectionCreator]


def client_tls(options: TLSOptions) -> TLSCreator:
    """
    Read the certificate files C{options} names, once.

    @param options: TLS options with C{enabled} true (see
        L{TLSOptions.check}).
    @return: a function of a host name giving Twisted's TLS client settings
        for it (C{optionsForClientTLS}): the broker's certificate must chain
        to C{ca_file} (the platform's trust store when not given) and name
        that host (a DNS name, or an IP address for a host given as one);
        C{cert_file}/C{key_file} are the client certificate, when given.
    @raise ConfigError: when pyOpenSSL is not installed, or a file cannot be
        read, holds no usable PEM certificate or key, or the key does not
        belong to the certificate; the message names the option and the
        file.
    """
    try:
        from OpenSSL import SSL, crypto
        from twisted.internet import ssl
        from twisted.internet.error import VerifyError
    except ImportError:
        raise ConfigError("TLS to the broker needs pyOpenSSL and service_identity: "
                          "pip install 'novasvc[tls]'") from None
    trust: Any = None
    if options.ca_file is not None:
        pem = _read_pem("ssl_ca_file", options.ca_file)
        blocks = [b"-----BEGIN CERTIFICATE-----" + block for block in pem.split(b"-----BEGIN CERTIFICATE-----")[1:]]
        try:
            trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(block) for block in blocks])
        except (crypto.Error, ValueError, SSL.Error):
            blocks = []
        if not blocks:
            raise ConfigError(f"ssl_ca_file {show_value(options.ca_file)}: no PEM certificate in it")
    client: Any = None
    if options.cert_file is not None:
        pem = _read_pem("ssl_cert_file", options.cert_file)
        key = pem if options.key_file is None else _read_pem("ssl_key_file", options.key_file)
        try:
            certificate = ssl.Certificate.loadPEM(pem)
        except (crypto.Error, ValueError):
            raise ConfigError(f"ssl_cert_file {show_value(options.cert_file)}: no PEM certificate in it") from None
        key_option = "ssl_key_file" if options.key_file is not None else "ssl_cert_file"
        key_path = show_value(options.key_file or options.cert_file)
        try:
            # An empty passphrase, so that an encrypted key is refused
            # rather than asked for on the terminal.
            private = crypto.load_privatekey(crypto.FILETYPE_PEM, key, passphrase=b"")
        except (crypto.Error, ValueError):
            raise ConfigError(f"{key_option} {key_path}: no unencrypted PEM private key in it") from None
        try:
            client = ssl.PrivateCertificate.fromCertificateAndKeyPair(certificate, ssl.KeyPair(private))
        except VerifyError:
            raise ConfigError(f"{key_option} {key_path}: the key does not belong to the certificate in "
                              f"{show_value(options.cert_file)}") from None
    return lambda host: ssl.optionsForClientTLS(host, trust, client)


def _read_pem(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{option} {show_value(path)}: cannot read it: {e.strerror or e}") from None


def _endpoint_for(reactor: Any, host: str, port: int, timeout: float) -> IStreamClientEndpoint:
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


#: The orders in which a transport walks its URL's hosts (oslo's
#: C{kombu_failover_strategy}); the first is the default.
FAILOVER_STRATEGIES = ("round-robin", "shuffle")


@implementer(IStreamClientEndpoint)
class RoundRobinEndpoint:
    """
    Connect to each (host, port) of a transport URL in turn, as
    oslo.messaging's C{kombu_failover_strategy}: with C{round-robin} the
    first attempt goes to the first host and every later attempt (after a
    failure or a lost connection) to the next one; with C{shuffle} the hosts
    are walked in a random order, a new one for each round, never starting
    a round with the host the previous one ended with (so a lost host is not
    tried again at once).

    @ivar current: the (host, port) of the latest attempt.
    @ivar index: the position of L{current} in the hosts.
    """

    def __init__(self, reactor: Any, hosts: Tuple[Tuple[str, int], ...], timeout: float,
                 on_failure: Callable[[Tuple[str, int], Failure], None], tls: Optional[TLSCreator] = None,
                 strategy: str = "round-robin", shuffle: Callable[[List[int]], None] = random.shuffle) -> None:
        """
        @param hosts: (host, port) pairs, tried in order.
        @param timeout: TCP connect timeout in B{seconds}.
        @param on_failure: called with C{((host, port), failure)} when an
            attempt fails.
        @param tls: TLS settings per host name (L{client_tls}), or C{None}
            for plain TCP.
        @param strategy: one of L{FAILOVER_STRATEGIES}.
        @param shuffle: shuffles a list in place (C{random.shuffle}).
        @raise ConfigError: for an unknown strategy.
        """
        if strategy not in FAILOVER_STRATEGIES:
            raise ConfigError(f"kombu_failover_strategy must be one of {', '.join(FAILOVER_STRATEGIES)}, "
                              f"not {strategy!r}")
        self._reactor = reactor
        self._hosts = hosts
        self._timeout = timeout
        self._next = 0
        self._on_failure = on_failure
        self._tls = tls
        self._tls_by_host: Dict[str, IOpenSSLClientConnectionCreator] = {}
        self._strategy = strategy
        self._shuffle = shuffle
        self._round: List[int] = []
        self.current: Tuple[str, int] = hosts[0]
        self.index = 0

    def _next_index(self) -> int:
        if self._strategy == "round-robin":
            index = self._next % len(self._hosts)
            self._next += 1
            return index
        if not self._round:
            order = list(range(len(self._hosts)))
            self._shuffle(order)
            if self._next and len(order) > 1 and order[0] == self.index:
                order.append(order.pop(0))
            self._round = order
        self._next += 1
        return self._round.pop(0)

    def connect(self, protocolFactory: Any) -> defer.Deferred:
        """
        See L{IStreamClientEndpoint.connect}.
        """
        self.index = self._next_index()
        host = self.current = self._hosts[self.index]
        endpoint = _endpoint_for(self._reactor, host[0], host[1], self._timeout)
        if self._tls is not None:
            creator = self._tls_by_host.get(host[0])
            if creator is None:
                creator = self._tls_by_host[host[0]] = self._tls(host[0])
            endpoint = wrapClientTLS(creator, endpoint)
        d = endpoint.connect(protocolFactory)

        def failed(failure: Failure) -> Failure:
            self._on_failure(host, failure)
            return failure

        return d.addErrback(failed)

    def __repr__(self) -> str:
        return "<AMQP endpoint {}>".format(",".join(f"{h}:{p}" for h, p in self._hosts))


class GuardedTransport:
    """
    The Twisted transport as pika's connection (and L{AMQPProtocol}) see it:
    the same, except that C{loseConnection()} also tells the protocol, which
    aborts the connection if it is still there after
    L{novasvc.transport._amqp_link.DISCONNECT_GRACE} seconds. pika drops a
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
            the process's L{novasvc.transport._pika_internals.verdict}.
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
