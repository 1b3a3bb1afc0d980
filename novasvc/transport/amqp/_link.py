# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
What the protocols of both RabbitMQ transports keep about their TCP
connection, whatever the client library under them
(L{novasvc.transport.pika._connect.AMQPProtocol} on pika,
L{novasvc.transport.txamqp._protocol.TxAMQPProtocol} on txamqp): telling the
transport when it is made and lost, why it was lost, aborting it, and
holding the acks made while incoming data is handled (see
L{novasvc.transport.amqp._consume}).
"""

from typing import Any, List, Optional

from twisted.internet import defer
from twisted.python.failure import Failure

from novasvc.transport.amqp._channel import describe

#: Seconds a connection the client library decided to drop may take to close
#: before it is aborted.
DISCONNECT_GRACE = 2.0


class Link:
    """
    A mixin for an AMQP client protocol; call L{_link} from C{__init__}, and
    L{_made}, L{_receive} and L{_lost} from C{makeConnection},
    C{dataReceived} and C{connectionLost}.

    @ivar receiving: C{True} while incoming data is handled.
    @ivar error: the client library's latest reason for failing or closing
        (the broker's C{connection.close} as one of pika's exceptions), or
        C{None}.
    @ivar abort_reason: why novasvc dropped the connection, or C{None}.
    @ivar lost: C{True} once the TCP connection is gone.
    @ivar last_received: the clock time (B{seconds}) data last arrived, or
        the connection was made.
    """

    transport: Any

    def _link(self, owner: Any, clock: Any) -> None:
        """
        @param owner: told C{protocol_connected(protocol)} and
            C{protocol_lost(protocol, reason)}.
        @param clock: C{IReactorTime}.
        """
        self._owner = owner
        self._clock = clock
        self.error: Optional[BaseException] = None
        self.abort_reason: Optional[str] = None
        self.lost = False
        self.receiving = False
        self._lost_waiters: List[defer.Deferred] = []
        self._holding: List[Any] = []
        self._abort_call: Any = None
        self.last_received = clock.seconds()

    def unwrapped(self) -> Any:
        """
        @return: this protocol (Twisted's C{ClientService} hands
            C{prepareConnection} a proxy that forwards attribute lookups).
        """
        return self

    def when_lost(self) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with C{None} once the TCP connection is
            gone.
        """
        if self.lost:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._lost_waiters.append(d)
        return d

    def abort(self, why: Optional[str] = None) -> None:
        """
        Drop the TCP connection now (no AMQP close handshake).

        @param why: kept as L{abort_reason} for the log.
        """
        if why is not None and self.abort_reason is None:
            self.abort_reason = why
        if not self.lost and self.transport is not None:
            self.transport.abortConnection()

    def disconnect(self) -> None:
        """
        Close the TCP connection; abort it if it is not gone after
        L{DISCONNECT_GRACE} seconds (a plain C{loseConnection()} can wait
        forever on a dead peer with a full send buffer).
        """
        if self.transport is None or self.lost:
            return
        self.transport.loseConnection()
        self._dropping()

    def _dropping(self) -> None:
        # The TCP connection is being closed (by disconnect, or by a client
        # library calling the transport's loseConnection itself): abort it if
        # it is not gone after the grace period.
        if not self.lost and self._abort_call is None:
            self._abort_call = self._clock.callLater(DISCONNECT_GRACE, self.abort)

    def describe_loss(self, reason: Failure) -> str:
        """
        @param reason: what Twisted said when the connection was lost.
        @return: the best account of why: ours if we dropped it, a TLS
            failure, the client library's (e.g. C{"403 ACCESS_REFUSED -
            Login was refused..."}), else Twisted's.
        """
        if self.abort_reason is not None:
            return self.abort_reason
        tls = describe_tls(reason)
        if tls is not None:
            return tls
        if self.error is not None:
            return describe(self.error)
        return reason.getErrorMessage()

    def hold_acks(self, holder: Any) -> None:
        """
        C{holder} holds acks made while L{receiving}; its C{send_acks()} is
        called once the data at hand is handled (or before closing).
        """
        self._holding.append(holder)

    def send_acks(self) -> None:
        """
        Send every held ack now.
        """
        holding, self._holding = self._holding, []
        for holder in holding:
            holder.send_acks()

    def _made(self, transport: Any) -> None:
        self.last_received = self._clock.seconds()
        # Small frames go out at once (as pika's own adapters and py-amqp set
        # up their sockets): a reply or an ack must not wait for Nagle.
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:
                pass

    def _receive(self, handle: Any, data: bytes) -> None:
        # Hand data to the client library, then send the acks held
        # meanwhile.
        self.last_received = self._clock.seconds()
        self.receiving = True
        try:
            handle(data)
        finally:
            self.receiving = False
            if self._holding:
                self.send_acks()

    def _lost(self, reason: Failure, client_lost: Any) -> None:
        # The TCP connection is gone: let the client library know
        # (client_lost(reason)), then the owner, then the waiters.
        self.lost = True
        abort_call, self._abort_call = self._abort_call, None
        if abort_call is not None and abort_call.active():
            abort_call.cancel()
        try:
            client_lost(reason)
        finally:
            try:
                self._owner.protocol_lost(self, reason)
            finally:
                waiters, self._lost_waiters = self._lost_waiters, []
                for d in waiters:
                    d.callback(None)


def describe_tls(reason: Failure) -> Optional[str]:
    """
    @return: what went wrong when C{reason} is a TLS failure (the
        handshake, the broker's certificate or its host name), else C{None}.
    """
    try:
        from OpenSSL import SSL
        from service_identity import VerificationError
    except ImportError:
        return None
    if reason.check(VerificationError):
        return "TLS: the broker's certificate does not name the host connected to"
    if not reason.check(SSL.Error):
        return None
    texts = [entry[-1] for entry in (reason.value.args[0] if reason.value.args else [])
             if isinstance(entry, tuple) and entry]
    text = "; ".join(str(t) for t in texts) or str(reason.value)
    hint = " (is this port a TLS listener?)" if ("wrong version number" in text or "record layer" in text
                                                  or "packet length" in text) else ""
    return f"TLS handshake failed: {text}{hint}"
