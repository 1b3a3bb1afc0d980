# -*- test-case-name: tests.test_transport_txamqp -*-
"""
One txamqp channel behind the channel surface both RabbitMQ transports use
(L{novasvc.transport.amqp._channel.Channel}): C{call()} with pika's method
and argument names, C{send()} for the methods without a reply, C{close()},
C{add_on_close()}.

Why a channel or the connection closed is told with pika's exception
classes, used as plain values (C{ChannelClosedByBroker(406, "...")},
C{ConnectionClosedByBroker(320, "...")}, C{ChannelClosedByClient}), so that
what the two transports share (L{novasvc.transport.amqp._channel.describe},
L{novasvc.transport.amqp._channel.ChannelError}, the consumer's retry rule)
reads them alike.
"""

from typing import Any, Callable, Optional

from pika import exceptions as pika_errors
from twisted.internet import defer
from twisted.python.failure import Failure
from txamqp.client import Closed
from txamqp.message import Message
from txamqp.protocol import AMQChannel

from novasvc.exceptions import TransportError
from novasvc.transport.amqp._channel import Channel, ChannelError, describe
from novasvc.transport.txamqp._codec import FRAME_METHOD, encode_method, frame

#: Arguments whose pika name differs from txamqp's.
_ARGUMENT_NAMES = {"exchange_type": "type"}


def as_reason(reason: Any) -> BaseException:
    """
    @param reason: why txamqp closed a channel or the connection: the
        broker's C{channel.close} or C{connection.close} message, a
        L{Failure}, or an exception.
    @return: the reason as one of pika's exceptions where the broker gave
        one (C{ChannelClosedByBroker}, C{ConnectionClosedByBroker}), else
        as an exception.
    """
    if isinstance(reason, Failure):
        reason = reason.value
    if isinstance(reason, Closed) and reason.args:
        reason = reason.args[0]
    if isinstance(reason, Message):
        code, text = reason.reply_code, reason.reply_text
        if reason.method.klass.name == "channel":
            return pika_errors.ChannelClosedByBroker(code, text)
        return pika_errors.ConnectionClosedByBroker(code, text)
    if isinstance(reason, BaseException):
        return reason
    return TransportError(str(reason))


class RawChannel(AMQChannel):
    """
    txamqp's channel, telling its L{TxChannel} when it closes, and leaving
    its connection's channels then.

    @ivar wrapper: the L{TxChannel}.
    """

    wrapper: Optional["TxChannel"] = None

    def do_close(self, reason: Any) -> None:
        if self.closed:
            return
        if self.wrapper is not None:
            # Closed before txamqp fails the calls waiting on it, so that
            # what their errbacks do sees it closed.
            self.wrapper._closed(self, as_reason(reason))
        AMQChannel.do_close(self, reason)
        if self.client.channels.get(self.id) is self:
            del self.client.channels[self.id]


class TxChannel(Channel):
    """
    One txamqp channel, with the common channel surface.

    @ivar raw: txamqp's channel (a L{RawChannel}).
    @ivar protocol: the L{novasvc.transport.txamqp._protocol.TxAMQPProtocol}.
    @ivar number: the channel number.
    @ivar handler: what gets the channel's incoming methods
        (C{handle_deliver(message)}, C{handle_return(message)},
        C{handle_confirm(tag, multiple, ack)}, C{broker_cancelled(tag)}),
        or C{None}.
    """

    def __init__(self, protocol: Any, raw: RawChannel,
                 on_close: Optional[Callable[[Channel, Optional[BaseException]], None]] = None) -> None:
        self.protocol = protocol
        self.number: int = raw.id
        self.handler: Any = None
        super().__init__(raw, on_close)

    def _watch(self, raw: RawChannel) -> None:
        raw.wrapper = self

    @property
    def is_usable(self) -> bool:
        """
        C{True} while the channel is open.
        """
        return not self.is_closed

    def call(self, method: str, **kwargs: Any) -> defer.Deferred:
        """
        Call a synchronous method of the channel.

        @param method: its name and arguments as pika spells them, e.g.
            C{"exchange_declare"} with C{exchange_type=}.
        @return: a C{Deferred} firing with the reply (a txamqp C{Message}),
            or failing with L{ChannelError} when the channel closes first
            (or is closed).
        """
        if self.is_closed:
            return defer.fail(ChannelError(f"channel closed: {describe(self.closed_reason)}", self.closed_reason))
        arguments = {_ARGUMENT_NAMES.get(name, name): value for name, value in kwargs.items()}
        try:
            d = getattr(self.raw, method)(**arguments)
        except Exception as e:
            return defer.fail(ChannelError(f"{method} failed: {describe(e)}", e))
        return d.addErrback(self._call_failed, method)

    def _call_failed(self, failure: Failure, method: str) -> Failure:
        if isinstance(failure.value, ChannelError):
            return failure
        reason = self.closed_reason if self.is_closed else as_reason(failure)
        return Failure(ChannelError(f"{method} failed: {describe(reason)}", reason))

    def send(self, method: str, *values: Any) -> None:
        """
        Send a method without a reply (e.g. C{"basic_reject"}) at once, its
        arguments in the spec's order.

        @raise ChannelError: when the channel or connection is closed.
        """
        if self.is_closed or self.protocol.lost:
            raise ChannelError(f"channel closed: {describe(self.closed_reason)}", self.closed_reason)
        self.protocol.write(frame(FRAME_METHOD, self.number, encode_method(self.protocol.method(method), values)))

    def close(self) -> None:
        """
        Close the channel if it is open (client side, reply code 200); pending
        calls fail once it is closed. Never raises.
        """
        if self.is_closed:
            return
        closing = self.raw.channel_close(reply_code=200, reply_text="Normal shutdown")
        reason = pika_errors.ChannelClosedByClient(200, "Normal shutdown")
        closing.addBoth(lambda _: self.raw.close(reason))
