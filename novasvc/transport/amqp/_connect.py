# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_tls -*-
"""
How both RabbitMQ transports reach the broker, whatever their client
library: an endpoint that walks the URL's hosts round-robin (or shuffled),
over TLS when asked (Twisted's C{wrapClientTLS}, the broker's certificate
and host name always verified), the backoff between attempts
(L{retry_policy}), and the connection name oslo.messaging would give.
"""

import os
import random
import sys
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.application.internet import backoffPolicy
from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from novasvc.exceptions import ConfigError
from novasvc._text import show_value
from novasvc.transport.url import TLSOptions

__all__ = ["FAILOVER_STRATEGIES", "RoundRobinEndpoint", "TLSCreator", "client_tls", "default_connection_name",
           "retry_policy"]


def default_connection_name() -> str:
    """
    A connection name the way oslo.messaging makes one, so operators find the
    process in C{rabbitmqctl list_connections name client_properties}.

    @return: C{"<basename of argv[0]>:<pid>:<uuid4>"}.
    """
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return f"{program}:{os.getpid()}:{uuid.uuid4()}"


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


def retry_policy(retry_interval: float = 1.0, retry_factor: float = 2.0, retry_max: float = 30.0,
                 retry_jitter: float = 1.0) -> Callable[[int], float]:
    """
    The reconnection (and consumer set-up retry) delays of both AMQP
    transports: Twisted's L{backoffPolicy}.

    @param retry_interval: the first delay in B{seconds} (oslo's
        C{rabbit_retry_interval}, 1).
    @param retry_factor: each further delay is multiplied by this.
    @param retry_max: the longest delay in B{seconds} (oslo's
        C{rabbit_interval_max}, 30), before jitter.
    @param retry_jitter: up to this many B{seconds} of random jitter are
        added to each delay.
    @return: a function of the number of failures in a row (0 for the first
        retry) giving the delay in seconds.
    @raise ConfigError: for a negative time or a factor below 1.
    """
    for name, value in [("retry_interval", retry_interval), ("retry_max", retry_max),
                        ("retry_jitter", retry_jitter)]:
        if value < 0:
            raise ConfigError(f"{name} must be >= 0 seconds, not {value!r}")
    if retry_factor < 1:
        raise ConfigError(f"retry_factor must be >= 1, not {retry_factor!r}")
    return backoffPolicy(initialDelay=retry_interval, maxDelay=retry_max, factor=retry_factor,
                         jitter=lambda: random.random() * retry_jitter)
