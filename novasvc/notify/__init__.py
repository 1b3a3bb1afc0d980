# -*- test-case-name: tests.test_notify_message -*-
"""
Notifications in oslo.messaging's format: L{Notifier} sends them (drivers
C{messagingv2}, C{messaging}, C{log}, C{noop}, C{test}), a notification
listener consumes them and dispatches each to the endpoint method named by
its priority, as oslo.messaging's C{get_notification_listener}.

Layer: above L{novasvc.rpc} (whose JSON codec and 2.0 envelope it shares,
through L{novasvc.rpc.wire}) and the transport; below the service core. It
never imports the core (L{novasvc.core.service}, L{novasvc.core.manager}), the API
or the process layer.

Modules:
  - L{novasvc.notify.message}: the wire format (priorities, encoding and
    decoding a notification);
  - L{novasvc.notify.notifier}: L{Notifier};
  - L{novasvc.notify.drivers}: the drivers (L{INotificationDriver},
    L{TestDriver}...) and L{MessageDeliveryFailure};
  - L{novasvc.notify.listener}: the listeners, L{NotificationFilter} and
    L{NotificationResult}.

Each name here is imported from its module on first use.
"""

from novasvc._lazy import lazy_exports

# name -> the module defining it
_EXPORTS = {
    "PRIORITIES": "novasvc.notify.message",
    "Notification": "novasvc.notify.message",
    "Notifier": "novasvc.notify.notifier",
    "INotificationDriver": "novasvc.notify.drivers",
    "MessageDeliveryFailure": "novasvc.notify.drivers",
    "TestDriver": "novasvc.notify.drivers",
    "NotificationListener": "novasvc.notify.listener",
    "BatchNotificationListener": "novasvc.notify.listener",
    "NotificationFilter": "novasvc.notify.listener",
    "NotificationResult": "novasvc.notify.listener",
    "get_notification_listener": "novasvc.notify.listener",
    "get_batch_notification_listener": "novasvc.notify.listener",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
