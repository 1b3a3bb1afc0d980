# -*- test-case-name: tests.test_transport_amqp -*-
"""
One AMQP channel of pika's Twisted connection, with Deferred-returning
synchronous methods (declare, bind, qos, consume, cancel, delete).

pika's own L{pika.adapters.twisted_connection.TwistedChannel} does the same
but also routes deliveries through a C{DeferredQueue} and logs through the
standard library for consumer tags it did not create; novasvc drives the
underlying L{pika.channel.Channel} directly (deliveries through a plain
callback, confirms counted by L{novasvc.transport.amqp._publish}), so this
small wrapper keeps only what novasvc needs: every pending call fails with
L{novasvc.exceptions.TransportError} when the channel closes, whatever the
reason (broker channel error, connection lost, client close).
"""

from typing import Any, Callable, List, Optional, Set

from pika import exceptions as pika_errors
from twisted.internet import defer

from novasvc.exceptions import TransportError

#: AMQP reply codes (0-9-1 spec) the transport reacts to.
NOT_FOUND = 404
PRECONDITION_FAILED = 406


def describe(reason: Optional[BaseException]) -> str:
    """
    Say why a channel or connection closed, for logs and error messages.

    @param reason: a pika exception (C{ChannelClosedByBroker},
        C{ConnectionClosedByBroker}, C{StreamLostError}...), any other
        exception, or C{None}.
    @return: e.g. C{"406 PRECONDITION_FAILED - inequivalent arg 'durable'
        for queue 'q' in vhost '/': received 'true' but current is 'false'"}.
        pika's reasons never carry the password.
    """
    if reason is None:
        return "closed"
    if isinstance(reason, (pika_errors.ChannelClosed, pika_errors.ConnectionClosed)):
        return f"{reason.reply_code} {reason.reply_text}"
    text = str(reason)
    name = type(reason).__name__
    return f"{name}: {text}" if text else name


def reply_code(reason: Optional[BaseException]) -> Optional[int]:
    """
    @return: the AMQP reply code of a broker-closed channel or connection, or
        C{None} for any other reason.
    """
    if isinstance(reason, (pika_errors.ChannelClosed, pika_errors.ConnectionClosed)):
        return reason.reply_code
    return None


class ChannelError(TransportError):
    """
    A channel closed while a call on it was pending.

    @ivar reason: pika's exception saying why, or C{None}.
    @ivar code: the AMQP reply code when the broker closed the channel (e.g.
        406 for C{PRECONDITION_FAILED}), else C{None}.
    @ivar by_broker: C{True} when the broker closed the channel itself (a
        channel-level error such as a declare mismatch); C{False} when the
        connection was lost or the client closed it.
    """

    def __init__(self, message: str, reason: Optional[BaseException] = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = reply_code(reason)
        self.by_broker = isinstance(reason, pika_errors.ChannelClosedByBroker)


class Channel:
    """
    A pika channel plus the calls pending on it.

    @ivar raw: the L{pika.channel.Channel}.
    @ivar closed_reason: pika's reason once the channel closed, else C{None}.
    @ivar is_closed: C{True} once closed (for any reason).
    """

    def __init__(self, raw: Any, on_close: Optional[Callable[["Channel", Optional[BaseException]], None]] = None):
        self.raw = raw
        self.is_closed = False
        self.closed_reason: Optional[BaseException] = None
        self._pending: Set[defer.Deferred] = set()
        self._on_close: List[Callable[["Channel", Optional[BaseException]], None]] = []
        if on_close is not None:
            self._on_close.append(on_close)
        self._watch(raw)

    def _watch(self, raw: Any) -> None:
        # Have the client library call _closed(raw, reason) when the channel
        # closes.
        raw.add_on_close_callback(self._closed)

    def add_on_close(self, callback: Callable[["Channel", Optional[BaseException]], None]) -> None:
        """
        Call C{callback(channel, reason)} once the channel closes (at once if
        it already has).
        """
        if self.is_closed:
            callback(self, self.closed_reason)
        else:
            self._on_close.append(callback)

    @property
    def is_usable(self) -> bool:
        """
        C{True} while the channel is open and not closing.
        """
        return not self.is_closed and self.raw.is_open

    def call(self, method: str, **kwargs: Any) -> defer.Deferred:
        """
        Call one of pika's callback-taking channel methods.

        @param method: the L{pika.channel.Channel} method name, e.g.
            C{"queue_declare"}.
        @param kwargs: its arguments, without C{callback}.
        @return: a C{Deferred} firing with the reply frame, or failing with
            L{ChannelError} when the channel closes first (or is closed).
        """
        if self.is_closed:
            return defer.fail(ChannelError(f"channel closed: {describe(self.closed_reason)}", self.closed_reason))
        d: defer.Deferred = defer.Deferred()
        pending = self._pending
        pending.add(d)

        def done(frame: Any = None) -> None:
            if d in pending:
                pending.discard(d)
                d.callback(frame)

        try:
            getattr(self.raw, method)(callback=done, **kwargs)
        except Exception as e:
            pending.discard(d)
            return defer.fail(ChannelError(f"{method} failed: {describe(e)}", e))
        return d

    def close(self) -> None:
        """
        Close the channel if it is open (client side, reply code 200); pending
        calls fail once it is closed. Never raises.
        """
        if self.is_closed:
            return
        try:
            self.raw.close(200, "Normal shutdown")
        except Exception:
            pass

    def _closed(self, _raw: Any, reason: Optional[BaseException]) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self.closed_reason = reason
        pending, self._pending = self._pending, set()
        if pending:
            error = ChannelError(f"channel closed: {describe(reason)}", reason)
            for d in pending:
                d.errback(error)
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback(self, reason)


def open_channel(connection: Any, on_close: Optional[Callable[[Channel, Optional[BaseException]], None]] = None
                 ) -> defer.Deferred:
    """
    Open a channel on an open pika connection.

    @param connection: the pika C{Connection} (the C{_impl} of pika's
        C{TwistedProtocolConnection}).
    @param on_close: called with C{(channel, reason)} when it closes.
    @return: a C{Deferred} firing with a L{Channel} once C{channel.open-ok}
        arrives, or failing with L{ChannelError}.
    """
    d: defer.Deferred = defer.Deferred()

    def opened(_raw: Any) -> None:
        if not d.called:
            d.callback(channel)

    def closed_first(_channel: Channel, reason: Optional[BaseException]) -> None:
        if not d.called:
            d.errback(ChannelError(f"channel closed while opening: {describe(reason)}", reason))

    try:
        raw = connection.channel(on_open_callback=opened)
    except Exception as e:
        return defer.fail(ChannelError(f"cannot open a channel: {describe(e)}", e))
    channel = Channel(raw, on_close)
    channel.add_on_close(closed_first)
    return d
