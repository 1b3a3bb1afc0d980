# -*- test-case-name: tests.test_rpc_reply_waiter,tests.test_rpc_client -*-
"""
How an L{novasvc.rpc.client.RPCClient}'s calls get their replies: one reply
queue per transport, C{reply_<uuid hex>} with C{x-expires}, made on the
first call and shared by every client of that transport (oslo-wire-protocol.md
§3), and the calls waiting on it, matched to their replies by C{_msg_id}
(L{ReplyWaiter}, found with L{reply_waiter}); and one call waiting for its
reply (L{PendingCall}), with its timeout and call-monitor timeout.

A call's request is published once the reply queue's consumer is active,
and the queue is consumed again when its transport was stopped and started.
A reply is acknowledged as soon as it arrives and handed to the call waiting
for its C{_msg_id}. A reply for which nobody waits any more (it came after
the call timed out or was cancelled) is dropped with a DEBUG log, as oslo
does.
"""

import weakref
from typing import Any, Callable, Collection, Dict, Optional, Protocol, Tuple

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from novasvc._reactor import global_reactor_if_none
from novasvc.exceptions import DisconnectedError, TransportError
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.rpc import wire
from novasvc.rpc._deadlines import Deadlines
from novasvc.rpc._resend import Sender, Sending
from novasvc.rpc.errors import MalformedMessage, MessagingTimeout
from novasvc.rpc.target import Target
from novasvc.transport.topology import DIRECT_REPLY_TO, Exchange, Queue

__all__ = ["BRIDGE_AFTER", "Caller", "PendingCall", "ReplyWaiter", "reply_waiter"]

#: B{Seconds} after a failover to another broker host before calls use
#: direct reply-to while the new reply queue is still not consumed (a node
#: that died is forgotten by the cluster at once, and the queue is made in
#: milliseconds; a hung one holds every queue declare up for about
#: C{net_ticktime}).
BRIDGE_AFTER = 2.0

_log = Logger()


class Caller(Sender, Protocol):
    """
    What a L{PendingCall} reads of the client that makes it, besides what a
    L{Sender} has.

    @ivar target: the client's target, named by the timeout error.
    @ivar call_monitor_timeout: the call-monitor timeout in B{seconds}, or
        C{None}.
    @ivar allowed_remote_exmods: modules whose exceptions a failure reply
        may rebuild.
    @ivar _deadlines: the calls' timeouts, one timer for them all.
    """

    target: Target
    call_monitor_timeout: Optional[float]
    allowed_remote_exmods: Collection[str]
    _deadlines: Deadlines


class PendingCall(Sending):
    """
    One call waiting for its reply: its request, its Deferred, its timers
    and what the timeout error names.
    """

    __slots__ = ("waiter", "msg_id", "reply_q", "timeout", "started", "deferred", "timer", "monitor", "result")
    kind = "call"

    def __init__(self, client: Caller, waiter: "ReplyWaiter", msg_id: str, method: str, timeout: float,
                 exchange: Exchange, routing_key: str, body: bytes, reply_q: str) -> None:
        """
        @param reply_q: the C{_reply_q} written in C{body}.
        """
        Sending.__init__(self, client, method, exchange, routing_key, body)
        self.waiter = waiter
        self.msg_id = msg_id
        self.reply_q = reply_q
        self.timeout = timeout
        self.result: Any = None
        self.monitor: Any = None
        self.deferred: defer.Deferred = defer.Deferred(self._cancelled)
        now = self.started = client._clock.seconds()
        deadlines = client._deadlines
        self.timer = deadlines.add(timeout, self._timed_out, now)
        if client.call_monitor_timeout:
            self.monitor = deadlines.add(client.call_monitor_timeout, self._monitor_timed_out, now)

    def send(self) -> defer.Deferred:
        """
        Wait for replies and publish the request (once the reply queue is
        consumed).

        @return: the call's C{Deferred}.
        """
        self.waiter.pending[self.msg_id] = self
        try:
            self.waiter.publish_when_ready(self)
        except Exception:
            self.fail(Failure())
        return self.deferred

    def readdress(self, reply_q: str) -> None:
        """
        Have the request (not sent yet) name C{reply_q} as its reply queue.
        """
        if reply_q != self.reply_q:
            self.body = wire.readdress_request(self.body, reply_q)
            self.reply_q = reply_q

    def publish(self) -> None:
        """
        Publish the request, with the timeout as its expiration.
        """
        if self.deferred.called:
            return
        try:
            d = self.client._transport.publish(self.exchange, self.routing_key, self.body,
                                               expiration=max(1, int(self.timeout * 1000)), mandatory=True)
        except Exception:
            self.fail(Failure())
            return
        d.addErrback(self._publish_failed)

    def send_again(self) -> None:
        """
        Publish the request again, with what is left of the timeout as its
        expiration (only then: a first send keeps the message properties
        every call with this timeout shares).
        """
        self.resend = None
        if self.deferred.called:
            return
        remaining = self.timeout - (self.client._clock.seconds() - self.started)
        try:
            d = self.client._transport.publish(self.exchange, self.routing_key, self.body,
                                               expiration=max(1, int(remaining * 1000)), mandatory=True)
        except Exception:
            self._publish_failed(Failure())
            return
        d.addCallbacks(self._sent_again, self._publish_failed)

    def give_up(self, failure: Failure) -> None:
        self.fail(failure)

    def _sent_again(self, _: object) -> None:
        self.sent_again()

    def _publish_failed(self, failure: Failure) -> None:
        if self.deferred.called:
            return
        final = self.after_failure(failure)
        if final is not None:
            self.fail(final)

    def on_reply(self, reply: wire.Reply) -> None:
        if reply.is_heartbeat:
            monitor = self.monitor
            if monitor is not None and monitor[1] is not None:
                client = self.client
                client._deadlines.cancel(monitor)
                self.monitor = client._deadlines.add(client.call_monitor_timeout, self._monitor_timed_out,
                                                     client._clock.seconds())
            return
        if reply.failure is not None:
            self._done()
            self.deferred.errback(wire.deserialize_failure(reply.failure, self.client.allowed_remote_exmods))
            return
        if reply.result is not None:
            self.result = reply.result
        if reply.ending:
            self._done()
            self.deferred.callback(self.result)

    def fail(self, failure: Failure) -> None:
        if not self.deferred.called:
            self._done()
            self.deferred.errback(failure)

    def _done(self) -> None:
        waiter = self.waiter
        waiter.pending.pop(self.msg_id, None)
        if waiter.unsent:
            waiter.unsent.pop(self.msg_id, None)
        if waiter.retiring is not None:
            waiter.retire_bridge()
        if self.resend is not None or self.route is not None:
            self.stop()
        deadlines = self.client._deadlines
        deadlines.cancel(self.timer)
        if self.monitor is not None:
            deadlines.cancel(self.monitor)

    def _cancelled(self, _: defer.Deferred) -> None:
        self._done()

    def _timeout_error(self, why: str = "") -> MessagingTimeout:
        target = self.client.target
        fields = dict(topic=target.topic, server=target.server, method=self.method, msg_id=self.msg_id,
                      elapsed=self.client._clock.seconds() - self.started)
        message = f"{MessagingTimeout(**fields)}{why}" if why else None  # type: ignore[arg-type]
        return MessagingTimeout(message, **fields)  # type: ignore[arg-type]

    def _timed_out(self) -> None:
        self._done()
        if self.unroutable_since is not None:
            # Still waiting for a queue: the server never had it.
            self.deferred.errback(self.unroutable_error(self.client._clock.seconds()))
            return
        self.deferred.errback(self._timeout_error())

    def _monitor_timed_out(self) -> None:
        self._done()
        why = f": no heartbeat within the call monitor timeout of {self.client.call_monitor_timeout} s"
        self.deferred.errback(self._timeout_error(why))


class ReplyWaiter:
    """
    A transport's reply queue and the calls waiting on it.

    After a reconnection to another broker host, the transport consumes a
    new reply queue (L{novasvc.transport.topology.Queue.renew_prefix}); the
    calls waiting on the old one fail at once. Declaring the new queue can
    take as long as the broker needs to give up on a hung node (about
    C{net_ticktime}, 60 s by default), so when it is not consumed
    L{BRIDGE_AFTER} seconds after the failover, on a transport that has it
    (C{direct_reply_to}), calls get their replies through RabbitMQ's direct
    reply-to (the B{bridge}: nothing to declare, so nothing waits for the
    cluster). Once the new queue is consumed, new calls use it
    again, and the bridge is cancelled when its last call ended. A call
    whose reply was to come through a channel that is gone fails at once
    (L{DisconnectedError}).

    @ivar queue: the reply queue.
    @ivar pending: the calls waiting for a reply, by C{_msg_id}.
    @ivar unsent: those of them whose request waits for a reply consumer
        to be active.
    @ivar bridge_name: the direct reply-to name new calls use while the
        reply queue is not consumed, or C{None}.
    @ivar retiring: the direct reply-to name of the bridge while it waits
        for its last calls before it is cancelled, or C{None}.
    """

    def __init__(self, transport: ITransport, ttl: Optional[float], clock: Any = None) -> None:
        """
        @param ttl: the reply queue's C{x-expires}, in B{seconds}, or C{None}.
        @param clock: the C{IReactorTime} of the bridge's delay; the global
            reactor when C{None}.
        """
        self._clock = clock
        self._bridge_timer: Any = None
        self.queue = Queue(f"reply_{wire.new_id()}",
                           arguments={"x-expires": int(ttl * 1000)} if ttl else {}, renew_prefix="reply_")
        self.pending: Dict[str, PendingCall] = {}
        self.unsent: Dict[str, PendingCall] = {}
        self.bridge_name: Optional[str] = None
        self.retiring: Optional[str] = None
        self._transport: Callable[[], Any] = weakref.ref(transport) if _weakrefable(transport) else _Strong(transport)
        self._consumer: Optional[IConsumer] = None
        self._active = False
        self._bridge: Optional[IConsumer] = None

    def reply_to(self) -> str:
        """
        @return: the C{_reply_q} a call made now names: the reply queue, or
            the bridge's name while the reply queue is not consumed.
        """
        if not self._active and self.bridge_name is not None:
            return self.bridge_name
        return self.queue.name

    def publish_when_ready(self, call: PendingCall) -> None:
        """
        Publish C{call}'s request now if a reply consumer is active, else
        once one is (its C{_reply_q} then names that one). The consumer is
        made on the first call, and made again when the one there is
        cancelled (its transport was stopped): a consumer with a true
        C{cancelled} attribute, as both of novasvc's transports make,
        delivers nothing more.
        """
        consumer = self._consumer
        if self._active:
            if not getattr(consumer, "cancelled", False):
                call.readdress(self.queue.name)
                call.publish()
                return
            self._active = False
            consumer = self._consumer = None
        elif self.bridge_name is not None:
            call.readdress(self.bridge_name)
            call.publish()
            return
        self.unsent[call.msg_id] = call
        if consumer is None:
            transport = self._transport()
            consumer = self._consumer = transport.consume(self.queue, self._on_reply)  # type: ignore[union-attr]
            if hasattr(consumer, "renamed"):
                consumer.renamed = self._renamed
            if hasattr(consumer, "stopped"):
                consumer.stopped = lambda: self._stopped(consumer)
            if hasattr(consumer, "activated"):
                consumer.activated = lambda: self._reactivated(consumer)
            consumer.whenActive().addCallbacks(self._became_active, self._activation_failed,  # type: ignore[union-attr]
                                               callbackArgs=(consumer,), errbackArgs=(consumer,))

    def _became_active(self, _: object, consumer: IConsumer) -> None:
        if consumer is not self._consumer:
            return
        self._active = True
        self._cancel_bridge_timer()
        self._send_unsent(self.queue.name)
        if self._bridge is not None:
            self._retire()

    def _reactivated(self, consumer: IConsumer) -> None:
        # The reply queue is consumed again (after a reconnection).
        if consumer is self._consumer and not self._active and not getattr(consumer, "cancelled", False):
            self._became_active(None, consumer)

    def _send_unsent(self, reply_q: str) -> None:
        unsent, self.unsent = self.unsent, {}
        for call in unsent.values():
            try:
                call.readdress(reply_q)
            except Exception:
                call.fail(Failure())
                continue
            call.publish()

    def _activation_failed(self, failure: Failure, consumer: IConsumer) -> None:
        if consumer is not self._consumer:
            return
        self._consumer = None
        unsent, self.unsent = self.unsent, {}
        error = TransportError(f"cannot consume the reply queue {self.queue.name}: {failure.getErrorMessage()}")
        for call in unsent.values():
            call.fail(Failure(error))

    def _stopped(self, consumer: IConsumer) -> None:
        # The transport stopped (or the consumer was cancelled): no reply
        # can come any more, so the calls waiting fail now, not at their
        # timeout.
        if consumer is not self._consumer:
            return
        self._consumer, self._active = None, False
        self._cancel_bridge()
        transport = self._transport()
        entry = _unhashable_waiters.get(id(transport))
        if entry is not None and entry[1] is self:
            # Kept by identity (see reply_waiter): let the transport go.
            del _unhashable_waiters[id(transport)]
        calls = list(self.pending.values()) + [call for call in self.unsent.values()
                                                if call.msg_id not in self.pending]
        self.unsent = {}
        error = DisconnectedError(f"the transport was stopped while waiting for the reply on {self.queue.name}; "
                                  f"the request may or may not have run")
        for call in calls:
            call.fail(Failure(error))

    def _renamed(self, old: str, new: str) -> None:
        # The transport failed over to another broker host and consumes a
        # new reply queue: the replies to the calls waiting now go to the
        # old one, which nobody reads any more.
        self.queue = Queue(new, arguments=self.queue.arguments, renew_prefix=self.queue.renew_prefix)
        if hasattr(self._consumer, "activated"):
            # Not consumed until the consumer says so (_reactivated).
            self._active = False
        why = (f": its reply queue {old} was replaced by {new} when the connection failed over to another "
               f"broker host; the request may or may not have run")
        for call in [call for call in self.pending.values() if call.reply_q == old]:
            call.fail(Failure(call._timeout_error(why)))
        if not self._active and self._bridge is None and self._bridge_timer is None:
            clock = self._clock if self._clock is not None else global_reactor_if_none()
            self._bridge_timer = clock.callLater(BRIDGE_AFTER, self._start_bridge)

    # -- the bridge: direct reply-to while the reply queue is being made ---------

    def _cancel_bridge_timer(self) -> None:
        timer, self._bridge_timer = self._bridge_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _start_bridge(self) -> None:
        self._bridge_timer = None
        transport = self._transport()
        if self._active or self._consumer is None or self._bridge is not None or not getattr(transport, "direct_reply_to", False):
            return
        self.retiring = None
        try:
            bridge = self._bridge = transport.consume(Queue(DIRECT_REPLY_TO), self._on_reply)  # type: ignore[union-attr]
        except Exception:
            _log.failure("Cannot consume direct reply-to while the reply queue {queue} is made",
                         queue=self.queue.name, level=LogLevel.warn)
            return
        # It says renamed(name, DIRECT_REPLY_TO) when it stops, too.
        bridge.renamed = lambda old, new: self._bridge_renamed(bridge, old, new)  # type: ignore[attr-defined]

    def _bridge_renamed(self, bridge: IConsumer, old: str, new: str) -> None:
        if bridge is not self._bridge:
            return
        if old != DIRECT_REPLY_TO:
            why = DisconnectedError(f"the channel of the direct reply-to name {old} closed while waiting for the "
                                    f"reply; the request may or may not have run")
            for call in [call for call in self.pending.values() if call.reply_q == old]:
                call.fail(Failure(why))
        if new == DIRECT_REPLY_TO or self._active:
            # Gone with its connection, or no longer needed.
            self.bridge_name = None
            if self._active:
                self._retire()
            return
        _log.info("Calls get their replies through {name} until the reply queue {queue} is consumed",
                  name=new, queue=self.queue.name)
        self.bridge_name = new
        self._send_unsent(new)

    def _retire(self) -> None:
        # New calls use the reply queue again: cancel the bridge once no
        # call waits on it.
        self.retiring = self.bridge_name or DIRECT_REPLY_TO
        self.bridge_name = None
        self.retire_bridge()

    def retire_bridge(self) -> None:
        """
        Cancel the bridge if it is retiring and no call waits on it any
        more (called as calls end).
        """
        retiring = self.retiring
        if retiring is None or any(call.reply_q == retiring for call in self.pending.values()):
            return
        self._cancel_bridge()

    def _cancel_bridge(self) -> None:
        self._cancel_bridge_timer()
        bridge, self._bridge = self._bridge, None
        self.bridge_name = self.retiring = None
        if bridge is not None:
            bridge.cancel()

    def _on_reply(self, delivery: IDelivery) -> None:
        try:
            delivery.ack()
            try:
                reply = wire.decode_reply(delivery.body)
            except MalformedMessage as e:
                _log.warn("Dropping a malformed reply on {queue}: {reason}", queue=self.queue.name, reason=e.reason)
                return
            pending = self.pending.get(reply.msg_id)
            if pending is None:
                _log.debug("No call waiting for msg_id {msg_id}; reply dropped", msg_id=reply.msg_id)
                return
            pending.on_reply(reply)
        except Exception:
            _log.failure("Unexpected error handling a reply on {queue}", queue=self.queue.name, level=LogLevel.error)


def _weakrefable(obj: object) -> bool:
    try:
        weakref.ref(obj)
    except TypeError:
        return False
    return True


_waiters: "weakref.WeakKeyDictionary[Any, ReplyWaiter]" = weakref.WeakKeyDictionary()
_unhashable_waiters: Dict[int, Tuple[Callable[[], Any], ReplyWaiter]] = {}


def reply_waiter(transport: ITransport, ttl: Optional[float], clock: Any = None) -> ReplyWaiter:
    """
    The reply waiter of C{transport}, made on first use (with C{ttl} and
    C{clock}; see L{ReplyWaiter}): one reply queue per transport, as
    oslo.messaging's driver.
    """
    try:
        waiter = _waiters.get(transport)
        if waiter is None:
            waiter = _waiters[transport] = ReplyWaiter(transport, ttl, clock)
        return waiter
    except TypeError:
        # Not hashable or not weak-referenceable: keep it by identity,
        # until the transport stops (ReplyWaiter._stopped).
        entry = _unhashable_waiters.get(id(transport))
        if entry is None or entry[0]() is not transport:
            entry = _unhashable_waiters[id(transport)] = (_Strong(transport), ReplyWaiter(transport, ttl, clock))
        return entry[1]


class _Strong:
    """
    A strong reference with C{weakref.ref}'s call interface.
    """

    def __init__(self, value: Any) -> None:
        self._value = value

    def __call__(self) -> Any:
        return self._value
