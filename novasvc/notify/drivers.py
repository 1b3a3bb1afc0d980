# -*- test-case-name: tests.test_notify_drivers -*-
"""
The notification drivers a L{novasvc.notify.Notifier} hands each
notification to, as oslo.messaging's (C{[oslo_messaging_notifications]
driver}):

  - C{messagingv2} (L{MessagingDriver}): one message per topic, in the 2.0
    envelope, published to the control exchange with the routing key
    C{<topic>.<priority>}, after declaring the queue of that name (see
    L{novasvc.notify._sending} for the tries);
  - C{messaging}: the same, the message without envelope (oslo's 1.0
    format, for consumers that predate the envelope);
  - C{log} (L{LogDriver}): one log line per notification;
  - C{noop} (L{NoopDriver}): nothing;
  - C{test} (L{TestDriver}): kept in memory, read back by tests.

Every driver provides L{INotificationDriver}; an object providing it may
be given to the notifier in place of a name.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from novasvc.exceptions import NovaSvcError
from novasvc.interfaces import ITransport
from novasvc.metrics import FAILED, SENT, NotificationCounts
from novasvc.notify._sending import send
from novasvc.notify.message import Notification, encode_notification, routing_key
from novasvc.rpc import wire
from novasvc._text import clip
from novasvc.transport.topology import Binding, Exchange, Queue, QuorumQueues, topic_queue

__all__ = [
    "INotificationDriver",
    "MessageDeliveryFailure",
    "MessagingDriver",
    "LogDriver",
    "NoopDriver",
    "TestDriver",
    "DRIVER_NAMES",
    "LOG_LINE_LIMIT",
]

#: The driver names, as oslo.messaging's (without C{routing}).
DRIVER_NAMES = ("messagingv2", "messaging", "log", "noop", "test")
#: The most characters of a C{log} driver line (the notification's JSON),
#: beyond which it is cut and says how long it was.
LOG_LINE_LIMIT = 4096


class MessageDeliveryFailure(NovaSvcError):
    """
    A notification was not sent everywhere it should have gone (oslo's
    C{MessageDeliveryFailure}).

    @ivar failures: C{(where, reason)} pairs, one per message not sent:
        C{where} names the driver and routing key (C{"messagingv2 to
        notifications.info"}), C{reason} says why (C{str}, bounded).
    """

    def __init__(self, failures: Sequence[Tuple[str, str]]) -> None:
        self.failures = list(failures)
        super().__init__("; ".join(f"{where}: {reason}" for where, reason in self.failures))


def reason_of(failure: Failure) -> str:
    """
    @return: why a send failed, in one bounded line (C{<class>: <message>}
        cut to L{novasvc._text.QUOTE_LIMIT} characters).
    """
    error = failure.value
    if isinstance(error, MessageDeliveryFailure):
        return str(error)
    text = " ".join(str(error).split())
    name = type(error).__name__
    return clip(f"{name}: {text}" if text else name) or name


class INotificationDriver(Interface):
    """
    Where a notifier sends notifications.
    """

    name = Attribute("The driver's name (C{str}), e.g. C{messagingv2}; C{noop} means it sends nothing.")

    def notify(notification, retry):
        """
        Send one notification.

        @param notification: the notification, payload and context already
            serialized (JSON values); C{metadata} holds its C{message_id}
            and C{timestamp}.
        @type notification: L{novasvc.notify.message.Notification}
        @param retry: oslo's C{retry}: C{None} or C{-1} without limit,
            C{0} no retry, C{N} at most N (for drivers that can retry).
        @return: a C{Deferred} firing with C{None} once sent, failing with
            L{MessageDeliveryFailure} (or any error) otherwise.
        """


@implementer(INotificationDriver)
class MessagingDriver:
    """
    The C{messagingv2} and C{messaging} drivers: one message per topic to
    the control exchange (a topic exchange with the RPC layer's flags),
    routing key C{<topic>.<priority>}, the queue of that name declared
    first (durable as C{durable_queues} says, a quorum queue with
    C{rabbit_quorum_queue}; see
    L{novasvc.transport.topology.topic_queue}), so the message waits there
    until a listener comes.

    @ivar name: C{"messagingv2"} or C{"messaging"}.
    @ivar topics: the topics, a C{tuple} of C{str}.
    """

    def __init__(self, transport: ITransport, topics: Sequence[str], *, envelope: bool = True,
                 control_exchange: str = "openstack", durable_queues: bool = False,
                 quorum: Optional[QuorumQueues] = None, clock: Callable[[], Any],
                 counts: Optional[NotificationCounts] = None) -> None:
        """
        @param transport: the broker connection (not started or stopped
            here).
        @param topics: the topics.
        @param envelope: C{True} for C{messagingv2}, C{False} for
            C{messaging}.
        @param control_exchange: the exchange's name.
        @param durable_queues: the exchange's and the queues' durability
            (oslo's C{amqp_durable_queues}; it must match the RPC layer's
            and the listeners').
        @param quorum: quorum queue settings, or C{None} for classic queues.
        @param clock: returns the C{IReactorTime} for the waits between
            tries.
        @param counts: where each message is counted (C{sent} or
            C{failed}), or C{None}.
        """
        self.name = "messagingv2" if envelope else "messaging"
        self.topics = tuple(topics)
        self._transport = transport
        self._envelope = envelope
        self._exchange = Exchange(control_exchange, "topic", durable=durable_queues)
        self._durable = durable_queues
        self._quorum = quorum
        self._clock = clock
        self._counts = counts
        self._queues: Dict[str, Queue] = {}

    def _queue(self, key: str) -> Queue:
        queue = self._queues.get(key)
        if queue is None:
            if len(self._queues) > 1024:
                self._queues.clear()
            queue = self._queues[key] = topic_queue(key, Binding(self._exchange, key), self._durable, self._quorum)
        return queue

    def notify(self, notification: Notification, retry: Optional[int]) -> defer.Deferred:
        """
        See L{INotificationDriver.notify}: every topic's message has the
        same C{message_id} and C{timestamp}, and its own C{_unique_id}.
        """
        priority = notification.priority
        sends = []
        for topic in self.topics:
            key = routing_key(topic, priority)
            where = f"{self.name} to {key}"
            try:
                body = encode_notification(
                    notification.publisher_id, notification.event_type, priority, notification.payload,
                    notification.context, envelope=self._envelope,
                    message_id=notification.metadata["message_id"], timestamp=notification.metadata["timestamp"])
            except Exception:
                d = defer.fail()
            else:
                d = send(self._transport, self._exchange, self._queue(key), key, body, retry, self._clock())
            sends.append(d.addBoth(self._settled, notification, where))
        return defer.gatherResults(sends).addCallback(_raise_failures)

    def _settled(self, result: Any, notification: Notification, where: str) -> Optional[Tuple[str, str]]:
        failed = isinstance(result, Failure)
        if self._counts is not None:
            self._counts.count(notification.event_type, notification.priority, FAILED if failed else SENT)
        return (where, reason_of(result)) if failed else None


def _raise_failures(results: List[Optional[Tuple[str, str]]]) -> None:
    failures = [result for result in results if result is not None]
    if failures:
        raise MessageDeliveryFailure(failures)


#: Keys whose values the C{log} driver masks, matched as parts of a key
#: (case ignored), as oslo's C{mask_dict_password} does.
_SECRET_KEY_PARTS = ("password", "passwd", "admin_pass", "adminpass", "new_pass", "keypass", "secret",
                     "token", "private_key", "encrypted_key", "credential", "fernetkey", "sslkey")
_MASK = "***"
#: The log level of each priority (Twisted's levels have no audit or
#: sample: audit is logged at info, sample at debug).
_LEVELS = {"audit": LogLevel.info, "debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
           "error": LogLevel.error, "critical": LogLevel.critical, "sample": LogLevel.debug}


def mask_secrets(value: Any) -> Any:
    """
    @return: a copy of C{value} in which the value of every mapping key
        that names a secret (password, token, secret...) is C{"***"}, at
        any depth.
    """
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            lowered = key.lower() if isinstance(key, str) else ""
            if any(part in lowered for part in _SECRET_KEY_PARTS):
                masked[key] = _MASK
            else:
                masked[key] = mask_secrets(item)
        return masked
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    return value


@implementer(INotificationDriver)
class LogDriver:
    """
    The C{log} driver: each notification is one log line in the namespace
    C{novasvc.notification.<event type>}, at the level of its priority
    (C{audit} at info, C{sample} at debug), whose text is the JSON of the
    notification as oslo's log driver writes it (C{message_id},
    C{publisher_id}, C{event_type}, C{priority} upper case, C{payload},
    C{timestamp}; no context) with secrets masked, cut to
    L{LOG_LINE_LIMIT} characters.
    """

    name = "log"

    def __init__(self, counts: Optional[NotificationCounts] = None) -> None:
        """
        @param counts: where each notification is counted, or C{None}.
        """
        self._counts = counts

    def notify(self, notification: Notification, retry: Optional[int]) -> defer.Deferred:
        message = {
            "message_id": notification.metadata.get("message_id"),
            "publisher_id": notification.publisher_id,
            "event_type": notification.event_type,
            "priority": notification.priority.upper(),
            "payload": notification.payload,
            "timestamp": notification.metadata.get("timestamp"),
        }
        try:
            text = wire.dumps(mask_secrets(message))
        except Exception:
            if self._counts is not None:
                self._counts.count(notification.event_type, notification.priority, FAILED)
            return defer.fail(MessageDeliveryFailure([(self.name, reason_of(Failure()))]))
        if len(text) > LOG_LINE_LIMIT:
            text = f"{text[:LOG_LINE_LIMIT]}... ({len(text)} characters)"
        namespace = "novasvc.notification." + (clip(notification.event_type) or "")
        Logger(namespace=namespace).emit(_LEVELS[notification.priority], "{notification}", notification=text)
        if self._counts is not None:
            self._counts.count(notification.event_type, notification.priority, SENT)
        return defer.succeed(None)


@implementer(INotificationDriver)
class NoopDriver:
    """
    The C{noop} driver: sends nothing (a notifier whose drivers are all
    C{noop} is not enabled).
    """

    name = "noop"

    def notify(self, notification: Notification, retry: Optional[int]) -> defer.Deferred:
        return defer.succeed(None)


@implementer(INotificationDriver)
class TestDriver:
    """
    The C{test} driver: keeps every notification in memory, in order, for
    tests to read (as oslo's C{test} driver, per driver instead of per
    process).

    @ivar notifications: the L{Notification}s, oldest first; their
        C{payload} and C{context} as serialized, C{unique_id} C{None}.
    """

    name = "test"

    def __init__(self) -> None:
        self.notifications: List[Notification] = []

    def notify(self, notification: Notification, retry: Optional[int]) -> defer.Deferred:
        self.notifications.append(notification)
        return defer.succeed(None)

    def clear(self) -> None:
        """
        Forget the notifications kept so far.
        """
        del self.notifications[:]


def make_driver(name: str, *, transport: ITransport, topics: Sequence[str], control_exchange: str,
                durable_queues: bool, quorum: Optional[QuorumQueues], clock: Callable[[], Any],
                counts: Optional[NotificationCounts]) -> INotificationDriver:
    """
    @param name: one of L{DRIVER_NAMES}.
    @return: a new driver of that name (see L{MessagingDriver.__init__} for
        the other arguments).
    @raise ValueError: for an unknown name.
    """
    if name in ("messagingv2", "messaging"):
        return MessagingDriver(transport, topics, envelope=name == "messagingv2", control_exchange=control_exchange,
                               durable_queues=durable_queues, quorum=quorum, clock=clock, counts=counts)
    if name == "log":
        return LogDriver(counts)
    if name == "noop":
        return NoopDriver()
    if name == "test":
        return TestDriver()
    raise ValueError(f"unknown notification driver {clip(name)!r} (known: {', '.join(DRIVER_NAMES)})")
