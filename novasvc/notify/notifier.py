# -*- test-case-name: tests.test_notify_notifier -*-
"""
L{Notifier}: send notifications as oslo.messaging's C{Notifier} does, with
the same drivers (L{novasvc.notify.drivers}), priorities, topics, C{retry},
C{prepare} and serializer, returning C{Deferred}s.

A notification is serialized once (payload through the serializer's
C{serialize_entity}, context through C{serialize_context} of its redacted
copy; a plain C{dict} or C{None} context is dropped, as oslo drops it),
stamped with a C{message_id} (uuid4 with dashes) and a C{timestamp}, and
handed to every driver. Each send returns a C{Deferred} that fires with
C{None} once every driver is done (for the messaging drivers: the broker
confirmed the message on every topic) and B{never fails}: a message that
could not be sent is logged (one ERROR line per message lost, client
values cut short) and counted as C{failed}
(L{novasvc.metrics.Recorder.notifier}), as oslo logs instead of raising.
L{Notifier.deliver} is the same send without the logging, failing with
L{novasvc.notify.drivers.MessageDeliveryFailure} instead (the
C{novasvc-rpc notify} command uses it).

While the broker is away, a message waits for the connection (at most the
transport's C{publish_wait}, 30 s by default, per try) and is tried again
as C{retry} says (see L{novasvc.notify._sending}): with C{retry} C{-1}
(the default, as oslo's) it is held in memory until the broker is back or
the transport stops; with C{N} it is logged as lost after N + 1 tries.
"""

import copy
import uuid
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Union

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc._reactor import global_reactor_if_none
from novasvc.interfaces import ITransport
from novasvc.metrics import FAILED, Recorder, get_recorder
from novasvc.notify.drivers import (
    INotificationDriver,
    MessageDeliveryFailure,
    make_driver,
    reason_of,
)
from novasvc.notify.message import PRIORITIES, Notification, utc_timestamp
from novasvc._text import clip
from novasvc.rpc.serializer import is_noop
from novasvc.transport.topology import QuorumQueues

__all__ = ["Notifier", "MessageDeliveryFailure"]

_log = Logger()
_UNSET: Any = object()
DriverSpec = Union[str, INotificationDriver]


def _check_retry(retry: Any) -> None:
    if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < -1):
        raise ValueError(f"retry must be None, -1 or an integer >= 0, not {clip(retry)}")


class _Shared:
    """
    What a notifier and the notifiers L{Notifier.prepare} makes from it
    share: the transport, the drivers, the serializer, the metrics.
    """

    def __init__(self, transport: Optional[ITransport], drivers: Sequence[INotificationDriver], serializer: Any,
                 recorder: Recorder) -> None:
        self.transport = transport
        self.drivers = tuple(drivers)
        self.serializer = serializer
        self.noop_serializer = is_noop(serializer)
        self.recorder = recorder
        self.warned_context = False


class Notifier:
    """
    Send notifications (see the module docstring).

    @ivar publisher_id: the C{publisher_id} of the notifications, e.g.
        C{"volume.host1"}, or C{None} (sent as C{null}, as oslo does).
    @ivar retry: oslo's C{retry} (C{None} or C{-1}: no limit; C{0}: one
        try; C{N}: N more tries).
    @ivar topics: the topics of the messaging drivers, a C{tuple}.
    """

    def __init__(self, transport: Optional[ITransport], publisher_id: Optional[str] = None,
                 driver: Union[None, DriverSpec, Iterable[DriverSpec]] = None,
                 topics: Optional[Sequence[str]] = None, serializer: Any = None, retry: Optional[int] = None,
                 control_exchange: str = "openstack", *, durable_queues: bool = False,
                 quorum: Optional[QuorumQueues] = None, clock: Any = None,
                 metrics: Optional[Recorder] = None) -> None:
        """
        @param transport: the broker connection (not started or stopped by
            the notifier); may be C{None} when no driver is a messaging
            one.
        @param publisher_id: see L{publisher_id}.
        @param driver: a driver name (C{messagingv2}, C{messaging}, C{log},
            C{noop}, C{test}), an L{INotificationDriver}, or a list of
            them; C{None} is C{messagingv2} (oslo reads its configuration
            there: L{from_config} does), an empty list sends nothing.
        @param topics: the topics of the messaging drivers; C{None} is
            C{["notifications"]}.
        @param serializer: turns payloads and contexts into wire values
            (an L{novasvc.rpc.serializer.ISerializer}); C{None}: unchanged.
        @param retry: see L{retry}.
        @param control_exchange: the exchange notifications go to (oslo's
            C{control_exchange}: C{openstack}; Nova's C{nova}).
        @param durable_queues: oslo's C{amqp_durable_queues}: the
            exchange's and the queues' durability, as the RPC layer's.
        @param quorum: quorum queue settings for the queues declared, or
            C{None}.
        @param clock: C{IReactorTime} for the waits between tries; the
            global reactor when C{None}, looked up on first use.
        @param metrics: where the notifications sent are counted; the
            process's recorder when C{None}.
        @raise ValueError: for an unknown driver name, no topic, a topic
            that is not a non-empty string, a messaging driver without a
            transport, or a bad C{retry}.
        """
        _check_retry(retry)
        topics = ("notifications",) if topics is None else topics
        if isinstance(topics, str) or not topics or not all(isinstance(t, str) and t for t in topics):
            raise ValueError(f"topics must be a non-empty list of non-empty strings, not {clip(topics)}")
        recorder = get_recorder() if metrics is None else metrics
        self._clock_arg = clock
        specs: List[DriverSpec]
        if driver is None:
            specs = ["messagingv2"]
        elif isinstance(driver, str) or INotificationDriver.providedBy(driver):
            specs = [driver]  # type: ignore[list-item]
        else:
            specs = list(driver)  # type: ignore[arg-type]
        drivers = []
        for spec in specs:
            if INotificationDriver.providedBy(spec):
                drivers.append(spec)
                continue
            if not isinstance(spec, str):
                raise ValueError(f"a notification driver is a name or an INotificationDriver, not {clip(spec)}")
            if spec in ("messagingv2", "messaging") and transport is None:
                raise ValueError(f"the {spec} notification driver needs a transport")
            drivers.append(make_driver(spec, transport=transport, topics=topics,  # type: ignore[arg-type]
                                       control_exchange=control_exchange, durable_queues=durable_queues,
                                       quorum=quorum, clock=lambda: self._clock, counts=recorder.notifier))
        self._shared = _Shared(transport, drivers, serializer, recorder)
        self.publisher_id = publisher_id
        self.retry = retry
        self.topics = tuple(topics)

    @classmethod
    def from_config(cls, transport: Optional[ITransport], config: Any, publisher_id: Optional[str] = None, *,
                    versioned: bool = False, serializer: Any = None, clock: Any = None,
                    metrics: Optional[Recorder] = None) -> "Notifier":
        """
        The notifier a configuration asks for, as Nova's C{get_notifier}
        and C{get_versioned_notifier} make theirs.

        @param transport: see L{__init__}.
        @param config: a L{novasvc.config.Config}; its C{notifications}
            section (C{driver}, C{topics}, C{notification_format},
            C{versioned_notifications_topics}, C{retry}),
            C{control_exchange}, C{durable_queues} and the quorum queue
            settings are used.
        @param publisher_id: see L{__init__}.
        @param versioned: C{True} for versioned notifications (on
            C{versioned_notifications_topics}, sent when
            C{notification_format} is C{versioned} or C{both}); C{False}
            for unversioned ones (on C{topics}, sent when it is
            C{unversioned} or C{both}). A notifier whose format is not
            sent has the C{noop} driver.
        @param serializer: see L{__init__}.
        @param clock: see L{__init__}.
        @param metrics: see L{__init__}.
        @return: a new L{Notifier}.
        """
        section = config.notifications
        wanted = "versioned" if versioned else "unversioned"
        enabled = section.notification_format in (wanted, "both")
        drivers = list(section.driver) if enabled else ["noop"]
        topics = section.versioned_notifications_topics if versioned else section.topics
        return cls(transport, publisher_id, drivers, list(topics), serializer, section.retry,
                   config.control_exchange, durable_queues=config.durable_queues,
                   quorum=QuorumQueues.from_config(config), clock=clock, metrics=metrics)

    @property
    def _clock(self) -> Any:
        if self._clock_arg is None:
            self._clock_arg = global_reactor_if_none()
        return self._clock_arg

    @property
    def drivers(self) -> tuple:
        """
        The drivers, in the order they get each notification (shared with
        the notifiers L{prepare} makes).
        """
        return self._shared.drivers

    def driver(self, name: str) -> INotificationDriver:
        """
        @return: the first driver called C{name}, e.g.
            C{notifier.driver("test").notifications}.
        @raise KeyError: when there is none.
        """
        for driver in self._shared.drivers:
            if driver.name == name:
                return driver
        raise KeyError(f"no notification driver {name!r} (drivers: "
                       f"{', '.join(d.name for d in self._shared.drivers) or 'none'})")

    def prepare(self, publisher_id: Optional[str] = _UNSET, retry: Optional[int] = _UNSET) -> "Notifier":
        """
        A notifier with another C{publisher_id} or C{retry}, sharing this
        one's transport, drivers and serializer (as oslo's C{prepare}).

        @raise ValueError: for a bad C{retry}.
        """
        prepared = copy.copy(self)
        if publisher_id is not _UNSET:
            prepared.publisher_id = publisher_id
        if retry is not _UNSET:
            _check_retry(retry)
            prepared.retry = retry
        return prepared

    def with_driver(self, driver: INotificationDriver) -> "Notifier":
        """
        A notifier like this one (transport, publisher id, retry, drivers,
        serializer) that also hands every notification to C{driver}, last
        (C{novasvc.testing.ServiceHarness} adds a C{test} driver so).

        @param driver: an L{INotificationDriver}.
        @return: a new L{Notifier}; this one is unchanged.
        """
        shared = self._shared
        added = copy.copy(self)
        added._shared = _Shared(shared.transport, (*shared.drivers, driver), shared.serializer, shared.recorder)
        return added

    def is_enabled(self) -> bool:
        """
        @return: C{False} when the notifier sends nothing (no driver, or
            only C{noop}), so callers can skip building payloads. (oslo's
            says C{True} for an empty driver list, which sends nothing as
            well.)
        """
        return any(driver.name != "noop" for driver in self._shared.drivers)

    # -- sending --------------------------------------------------------------

    def audit(self, ctxt: Any, event_type: str, payload: Any) -> defer.Deferred:
        """
        Send a notification at priority C{audit}; see the module docstring.

        @param ctxt: the request context: a L{novasvc.context.RequestContext}
            (or an object with C{redacted_copy()}), whose redacted copy
            travels; a C{dict} or C{None} sends no context.
        @param event_type: e.g. C{"volume.create.end"}.
        @param payload: what the serializer turns into JSON values.
        @return: a C{Deferred} firing with C{None} once sent or logged as
            lost; it never fails.
        """
        return self._notify(ctxt, event_type, payload, "audit")

    def debug(self, ctxt: Any, event_type: str, payload: Any) -> defer.Deferred:
        """
        As L{audit}, at priority C{debug}.
        """
        return self._notify(ctxt, event_type, payload, "debug")

    def info(self, ctxt: Any, event_type: str, payload: Any) -> defer.Deferred:
        """
        As L{audit}, at priority C{info}.
        """
        return self._notify(ctxt, event_type, payload, "info")

    def warn(self, ctxt: Any, event_type: str, payload: Any) -> defer.Deferred:
        """
        As L{audit}, at priority C{warn}.
        """
        return self._notify(ctxt, event_type, payload, "warn")

    warning = warn

    def error(self, ctxt: Any, event_type: str, payload: Any) -> defer.Deferred:
        """
        As L{audit}, at priority C{error}.
        """
        return self._notify(ctxt, event_type, payload, "error")

    def critical(self, ctxt: Any, event_type: str, payload: Any) -> defer.Deferred:
        """
        As L{audit}, at priority C{critical}.
        """
        return self._notify(ctxt, event_type, payload, "critical")

    def sample(self, ctxt: Any, event_type: str, payload: Any) -> defer.Deferred:
        """
        As L{audit}, at priority C{sample} (frequent, small measurements).
        """
        return self._notify(ctxt, event_type, payload, "sample")

    def deliver(self, ctxt: Any, event_type: str, payload: Any, priority: str = "info") -> defer.Deferred:
        """
        Send one notification and say whether it went everywhere; nothing
        is logged.

        @param ctxt: see L{audit}.
        @param event_type: see L{audit}.
        @param payload: see L{audit}.
        @param priority: one of L{novasvc.notify.PRIORITIES} (any case).
        @return: a C{Deferred} firing with C{None} once every driver sent
            it; failing with L{MessageDeliveryFailure} (one C{(where,
            reason)} per message not sent: the broker stayed away beyond
            C{retry}, refused it, the transport stopped, the payload or
            context could not be serialized or encoded), or with
            C{ValueError} for an unknown priority or an event type that is
            not a string. Cancelling it stops the tries.
        """
        if not isinstance(priority, str) or priority.lower() not in PRIORITIES:
            return defer.fail(ValueError(f"priority {clip(priority)} is not one of {', '.join(PRIORITIES)}"))
        if not isinstance(event_type, str):
            return defer.fail(ValueError(f"event_type must be a string, not {clip(event_type)}"))
        priority = priority.lower()
        shared = self._shared
        try:
            notification = self._prepare_notification(ctxt, event_type, payload, priority)
        except Exception:
            reason = reason_of(Failure())
            for driver in shared.drivers:
                if driver.name not in ("noop", "test"):
                    for _ in getattr(driver, "topics", None) or (None,):
                        shared.recorder.notifier.count(event_type, priority, FAILED)
            return defer.fail(MessageDeliveryFailure([("serializer", reason)]))
        sends = [defer.maybeDeferred(driver.notify, notification, self.retry).addErrback(_where, driver)
                 for driver in shared.drivers]
        return defer.gatherResults(sends).addCallback(_collect)

    def _prepare_notification(self, ctxt: Any, event_type: str, payload: Any, priority: str) -> Notification:
        shared = self._shared
        safe = self._sanitize_context(ctxt)
        if shared.noop_serializer:
            context = safe
        else:
            payload = shared.serializer.serialize_entity(ctxt, payload)
            context = shared.serializer.serialize_context(safe)
        context = dict(context if isinstance(context, Mapping) else context.to_dict())
        # The call-monitor timeout an RPC server put there is not a context
        # entry on the wire (the RPC client leaves it out too).
        context.pop("client_timeout", None)
        return Notification(publisher_id=self.publisher_id, event_type=event_type, priority=priority,
                            payload=payload, context=context,
                            metadata={"message_id": str(uuid.uuid4()), "timestamp": utc_timestamp()})

    def _sanitize_context(self, ctxt: Any) -> Any:
        # oslo's _sanitize_context: a plain dict or None is dropped; an
        # object travels as its redacted copy; any other object is dropped
        # with a warning (once per notifier here).
        if ctxt is None or type(ctxt) is dict:
            return {}
        redacted_copy = getattr(ctxt, "redacted_copy", None)
        if redacted_copy is None:
            shared = self._shared
            if not shared.warned_context:
                shared.warned_context = True
                _log.warn("A notification context of type {kind} has no redacted_copy(); notifications are sent "
                          "without their context", kind=type(ctxt).__name__)
            return {}
        return redacted_copy()

    def _notify(self, ctxt: Any, event_type: str, payload: Any, priority: str) -> defer.Deferred:
        d = self.deliver(ctxt, event_type, payload, priority)
        d.addErrback(self._lost, event_type, priority)
        return d

    def _lost(self, failure: Failure, event_type: Any, priority: str) -> None:
        error = failure.value
        failures = error.failures if isinstance(error, MessageDeliveryFailure) else [("notifier", reason_of(failure))]
        for where, reason in failures:
            _log.error("Notification {event_type} ({priority}) from {publisher} was not sent ({where}): {reason}",
                       event_type=clip(event_type), priority=priority, publisher=clip(self.publisher_id),
                       where=where, reason=reason)


def _where(failure: Failure, driver: INotificationDriver) -> Any:
    if failure.check(MessageDeliveryFailure):
        return failure.value.failures
    return [(driver.name, reason_of(failure))]


def _collect(results: List[Any]) -> None:
    failures = [entry for result in results if result for entry in result]
    if failures:
        raise MessageDeliveryFailure(failures)

