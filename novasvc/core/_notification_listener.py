# -*- test-case-name: tests.test_core_service -*-
"""
The notification listener a L{novasvc.core.service.Service} runs for its
manager's C{notification_endpoints} (see L{novasvc.core.manager.Manager}).
"""

from typing import TYPE_CHECKING, Any, List, Optional

from novasvc.rpc.target import Target
from novasvc.transport.topology import QuorumQueues

if TYPE_CHECKING:
    from novasvc.notify.listener import NotificationListener

__all__ = ["manager_listener", "default_targets"]

#: The topic listened to when neither the manager nor the configuration
#: names one (oslo.messaging's default notification topic).
DEFAULT_TOPIC = "notifications"


def default_targets(config: Any) -> List[Target]:
    """
    @param config: a L{novasvc.config.Config}.
    @return: one L{Target} per topic of the configuration's
        C{notifications.topics} when it has that key, else
        C{[Target(topic="notifications")]}.
    """
    section = getattr(config, "notifications", None)
    topics = getattr(section, "topics", None)
    if isinstance(topics, str):
        topics = [topics]
    return [Target(topic=topic) for topic in topics or (DEFAULT_TOPIC,)]


def manager_listener(manager: Any, transport: Any, config: Any, *, serializer: Any = None,
                     clock: Any = None) -> Optional["NotificationListener"]:
    """
    The listener for a manager's notification endpoints.

    @param manager: a L{novasvc.core.manager.Manager} (its
        C{notification_endpoints}, C{notification_targets},
        C{notification_pool} and C{notification_allow_requeue}).
    @param transport: the service's L{novasvc.interfaces.ITransport}.
    @param config: the service's L{novasvc.config.Config} (control
        exchange, durable or quorum queues, the notification topics).
    @param serializer: the service's serializer; when C{None}, the
        manager's C{serializer} attribute if it is a serializer object.
    @param clock: the service's clock.
    @return: a L{NotificationListener}, not started; C{None} when the
        manager lists no endpoint.
    @raise ValueError: when no endpoint has a method named by a priority.
    """
    endpoints = list(getattr(manager, "notification_endpoints", None) or ())
    if not endpoints:
        return None
    from novasvc.notify.listener import NotificationListener  # only for a manager that listens
    if serializer is None:
        declared = getattr(manager, "serializer", None)
        if declared is not None and not isinstance(declared, type) and hasattr(declared, "deserialize_entity"):
            serializer = declared
    targets = getattr(manager, "notification_targets", None) or default_targets(config)
    return NotificationListener(
        transport, list(targets), endpoints, pool=getattr(manager, "notification_pool", None),
        allow_requeue=bool(getattr(manager, "notification_allow_requeue", False)), serializer=serializer,
        control_exchange=config.control_exchange, durable_queues=config.durable_queues,
        quorum=QuorumQueues.from_config(config), clock=clock,
    )
