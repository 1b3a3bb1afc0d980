# -*- test-case-name: tests.test_transport_txamqp -*-
"""
How L{novasvc.transport.TxAMQPTransport} speaks to the broker:
txamqp's C{AMQClient} (handshake, channels, synchronous methods, heartbeats,
dispatch of incoming methods to a delegate) with novasvc's frames
(L{novasvc.transport.txamqp._codec}) and channels
(L{novasvc.transport.txamqp._channel}).

txamqp internals used (0.8): C{AMQClient.channels}, C{channelFactory},
C{channelClass}, C{started}, C{closed}, C{heartbeatInterval},
C{MAX_LENGTH}, C{sendHB} and C{checkHB}, C{do_close}, and the routing of
frames by C{AMQChannel.dispatch} with the C{work} queue (txamqp's
C{process_frame} without its C{Deferred} per frame).
"""

import platform
from typing import Any, Callable, Dict, Optional, Tuple

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from txamqp.client import Closed, TwistedDelegate
from txamqp.protocol import AMQClient

from novasvc.transport.amqp._channel import ChannelError
from novasvc.transport.amqp._link import Link
from novasvc.transport.txamqp._channel import RawChannel, TxChannel, as_reason
from novasvc.transport.txamqp._codec import PROTOCOL_HEADER, FrameReader, ProtocolError, load_spec, pack_frame

_log = Logger()

#: The most channels novasvc asks for (RabbitMQ's default channel_max).
CHANNEL_MAX = 2047


class _Delegate(TwistedDelegate):
    """
    Handles the methods the broker sends: the handshake (PLAIN login, the
    client properties, tuning) and, for each channel, deliveries, returns,
    confirms and cancels, passed to its L{TxChannel.handler}.
    """

    client: "TxAMQPProtocol"

    def connection_start(self, ch: Any, msg: Any) -> None:
        client = self.client
        mechanisms = msg.mechanisms if isinstance(msg.mechanisms, str) else msg.mechanisms.decode("latin-1")
        if "PLAIN" not in mechanisms.split():
            client.abort(f"the broker does not offer the PLAIN login mechanism (it offers {mechanisms})")
            return
        ch.connection_start_ok(client_properties=client.client_properties, mechanism=client.mechanism,
                               response=client.response, locale=client.locale)

    def connection_tune(self, ch: Any, msg: Any) -> None:
        client = self.client
        client.channel_max = min(msg.channel_max or CHANNEL_MAX, CHANNEL_MAX)
        client.frame_max = msg.frame_max or 131072
        client.MAX_LENGTH = client.frame_max
        ch.connection_tune_ok(client.channel_max, client.frame_max, client.heartbeatInterval)
        client.started.fire()

    def connection_close(self, ch: Any, msg: Any) -> None:
        self.client.error = as_reason(msg)
        TwistedDelegate.connection_close(self, ch, msg)

    def connection_blocked(self, ch: Any, msg: Any) -> None:
        _log.warn("The AMQP broker blocks publishing: {reason}", reason=msg.reason)

    def connection_unblocked(self, ch: Any, msg: Any) -> None:
        _log.info("The AMQP broker accepts publishes again")

    def _handler(self, ch: Any) -> Any:
        wrapper = getattr(ch, "wrapper", None)
        return wrapper.handler if wrapper is not None else None

    def basic_deliver(self, ch: Any, msg: Any) -> None:
        handler = self._handler(ch)
        if handler is not None:
            self._safely(handler.handle_deliver, msg)

    def basic_return_(self, ch: Any, msg: Any) -> None:
        handler = self._handler(ch)
        if handler is not None:
            self._safely(handler.handle_return, msg)

    def basic_ack(self, ch: Any, msg: Any) -> None:
        handler = self._handler(ch)
        if handler is not None:
            self._safely(handler.handle_confirm, msg.delivery_tag, msg.multiple, True)

    def basic_nack(self, ch: Any, msg: Any) -> None:
        handler = self._handler(ch)
        if handler is not None:
            self._safely(handler.handle_confirm, msg.delivery_tag, msg.multiple, False)

    def basic_cancel(self, ch: Any, msg: Any) -> None:
        handler = self._handler(ch)
        if handler is not None:
            self._safely(handler.broker_cancelled, msg.consumer_tag)

    def _safely(self, handle: Callable[..., None], *args: Any) -> None:
        # An exception out of a delegate method makes txamqp close the
        # connection: log it instead.
        try:
            handle(*args)
        except Exception:
            _log.failure("Error while handling an incoming AMQP method")

    def close(self, reason: Any) -> None:
        client = self.client
        client.closed = True
        client.started.fail_if_not_fired(Closed(reason))
        client.disconnect()


class TxAMQPProtocol(Link, AMQClient):
    """
    txamqp's client protocol with novasvc's frames, telling its owner when
    the TCP connection is made and lost, keeping the reason the broker gives
    for closing, and holding acks made while incoming data is handled (see
    L{Link}).

    @ivar client_properties: what C{connection.start-ok} tells the broker.
    @ivar frame_max: the largest frame in bytes, once tuned.
    @ivar channel_max: the most channels, once tuned.
    """

    channelClass = RawChannel

    def __init__(self, owner: Any, clock: Any, login: Tuple[str, str], vhost: str, heartbeat: int,
                 client_properties: Dict[str, Any]) -> None:
        """
        @param owner: told C{protocol_connected(protocol)} and
            C{protocol_lost(protocol, reason)}.
        @param login: the user name and password (PLAIN); kept only in the
            C{response} txamqp sends, never logged.
        @param heartbeat: in B{seconds}, 0 for none.
        """
        AMQClient.__init__(self, _Delegate(), vhost, load_spec(), heartbeat=heartbeat, clock=clock)
        self._link(owner, clock)
        # What connection.start-ok sends (txamqp's names), set before the
        # broker's connection.start can arrive.
        self.response = f"\0{login[0]}\0{login[1]}"
        self.mechanism, self.locale = "PLAIN", "en_US"
        self._reader = FrameReader(self.spec)
        self.client_properties = client_properties
        self.channel_max = CHANNEL_MAX
        self.frame_max = 131072
        self._last_channel = 0
        self._methods: Dict[str, Any] = {}

    # -- what the transport uses -------------------------------------------------

    def handshake(self) -> defer.Deferred:
        """
        Log in (PLAIN) and open the vhost.

        @return: a C{Deferred} firing once the connection is open, failing
            when the broker refuses or the connection is lost first.
        """
        return self.start(self.response, mechanism=self.mechanism, locale=self.locale)

    def method(self, name: str) -> Any:
        """
        @param name: e.g. C{"basic_ack"}.
        @return: txamqp's C{Method} of the spec.
        """
        method = self._methods.get(name)
        if method is None:
            klass, _, rest = name.partition("_")
            method = self._methods[name] = self.spec.classes.byname[klass].methods.byname[rest.replace("_", "-")]
        return method

    def open_channel(self, on_close: Optional[Callable[[TxChannel, Optional[BaseException]], None]] = None
                     ) -> defer.Deferred:
        """
        Open a new channel.

        @param on_close: called with C{(channel, reason)} when it closes.
        @return: a C{Deferred} firing with a L{TxChannel} once
            C{channel.open-ok} arrives, or failing with L{ChannelError}.
        """
        if self.lost or self.closed:
            return defer.fail(ChannelError("cannot open a channel: the connection is closed"))
        number = self._free_channel()
        if number is None:
            return defer.fail(ChannelError(f"cannot open a channel: all {self.channel_max} are in use"))
        raw = self.channels[number] = self.channelFactory(number, self.outgoing, self)
        channel = TxChannel(self, raw, on_close)
        return channel.call("channel_open").addCallback(lambda _: channel)

    def _free_channel(self) -> Optional[int]:
        # Channel numbers go up, then wrap: a number just closed is not
        # reused while frames for it may still be on their way.
        for step in range(1, self.channel_max + 1):
            number = (self._last_channel + step - 1) % self.channel_max + 1
            if number not in self.channels:
                self._last_channel = number
                return number
        return None

    def write(self, data: bytes) -> None:
        """
        Send whole frames at once (publishes and acks go this way, around
        txamqp's outgoing queue, which writes them one frame at a time).
        """
        self.transport.write(data)

    def shut_down(self) -> None:
        """
        Send held acks, then close the connection (C{connection.close}, then
        the TCP connection once the broker's C{close-ok} comes).
        """
        if self._holding:
            self.send_acks()
        if self.lost or self.closed:
            return
        closing = self.channels[0].connection_close(reply_code=200, reply_text="Normal shutdown",
                                                    class_id=0, method_id=0)
        closing.addBoth(lambda _: self.do_close(ConnectionDone()))

    # -- txamqp's protocol, with novasvc's frames ------------------------------------

    def do_close(self, reason: Any) -> None:
        # txamqp's, over a copy of the channels (each leaves the dict as it
        # closes).
        for channel in list(self.channels.values()):
            channel.close(reason)
        for queue in self.queues.values():
            queue.close()
        self.delegate.close(reason)

    def send_init_string(self) -> None:
        self.transport.write(PROTOCOL_HEADER)

    def _pack_frame(self, item: Any) -> bytes:
        return pack_frame(item)

    def dataReceived(self, data: bytes) -> None:
        self._receive(self._frames_received, data)

    def _frames_received(self, data: bytes) -> None:
        try:
            frames = self._reader.feed(data)
        except ProtocolError as e:
            self.abort(f"bad data from the broker: {e}")
            return
        process = self._process
        for item in frames:
            process(item)
        if self.heartbeatInterval > 0 and not self.closed:
            self.reschedule_check_heartbeat()

    def _process(self, item: Any) -> None:
        # txamqp's process_frame without a Deferred per frame: the channel
        # routes the frame (a synchronous reply to the call waiting for it,
        # anything else through the work queue to the delegate).
        if item.payload.type == "frame_heartbeat":
            return
        channel = self.channels.get(item.channel)
        if channel is None:
            if item.channel != 0:
                return  # a frame for a channel already closed
            channel = self.channels[0] = self.channelFactory(0, self.outgoing, self)
        channel.dispatch(item, self.work)

    def reschedule_send_heartbeat(self) -> None:
        # Every half heartbeat, as pika and RabbitMQ do.
        if self.heartbeatInterval > 0 and not self.lost:
            if self.sendHB.running:
                self.sendHB.stop()
            self.sendHB.start(self.heartbeatInterval / 2, now=False)

    def check_heartbeat(self) -> None:
        self.abort(f"no heartbeat from the broker for {self.heartbeatInterval * self.MAX_UNSEEN_HEARTBEAT} seconds")

    def makeConnection(self, transport: Any) -> None:
        self._made(transport)
        AMQClient.makeConnection(self, transport)
        self._owner.protocol_connected(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost(reason, lambda why: AMQClient.connectionLost(self, why))


def txamqp_version() -> str:
    """
    @return: the installed txamqp's version (C{"?"} when it has no
        package metadata).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("txamqp")
    except PackageNotFoundError:  # pragma: no cover - installed without metadata
        return "?"


def client_properties(connection_name: str) -> Dict[str, Any]:
    """
    @return: the client properties novasvc's txamqp connections send: the
        capabilities RabbitMQ needs to send C{basic.nack}, consumer cancels
        and a refused login's reason, and oslo.messaging's
        C{connection_name}.
    """
    return {
        "product": "novasvc",
        "platform": f"Python {platform.python_version()}",
        "information": f"txamqp {txamqp_version()}",
        "connection_name": connection_name,
        "capabilities": {
            "publisher_confirms": True,
            "basic.nack": True,
            "consumer_cancel_notify": True,
            "exchange_exchange_bindings": True,
            "authentication_failure_close": True,
            "connection.blocked": True,
        },
    }


class TxAMQPProtocolFactory(Factory):
    """
    Builds one L{TxAMQPProtocol} per connection attempt.
    """

    noisy = False

    def __init__(self, login: Callable[[], Tuple[str, str]], vhost: str, heartbeat: int, connection_name: str,
                 clock: Any, owner: Any) -> None:
        """
        @param login: gives the user name and password of the host being
            connected to (hosts may have their own credentials).
        """
        self._login = login
        self._vhost = vhost
        self._heartbeat = heartbeat
        self._properties = client_properties(connection_name)
        self._clock = clock
        self._owner = owner

    def buildProtocol(self, addr: Any) -> TxAMQPProtocol:
        protocol = TxAMQPProtocol(self._owner, self._clock, self._login(), self._vhost, self._heartbeat,
                                  self._properties)
        protocol.factory = self
        return protocol
