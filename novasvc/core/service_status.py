# -*- test-case-name: tests.test_core_service_status -*-
"""
The versioned C{service.create}, C{service.update} and C{service.delete}
notifications, as Nova sends them when a service record is created, when
its C{disabled}, C{disabled_reason} or C{forced_down} changes, and when it
is deleted (Nova's C{nova.objects.service.Service._send_notification}).

The payload is Nova's C{ServiceStatusPayload} version 1.1 as
oslo.versionedobjects writes it: C{nova_object.name}, C{nova_object.namespace}
(C{"nova"}, so that a consumer written for Nova's service notifications
reads ours unchanged), C{nova_object.version}, C{nova_object.data} and
C{nova_object.changes}. The publisher is the service the record describes,
C{<binary>:<host>}, whoever made the change (a C{novasvc-manage} command or
the HTTP API), as Nova's C{NotificationPublisher.from_service_obj}. They go
to the versioned notifier: C{notifications.versioned_notifications_topics}
when C{notifications.notification_format} is C{versioned} or C{both}.
"""

import datetime
from typing import Any, Dict, Optional

from twisted.internet import defer

from novasvc.context import get_admin_context

__all__ = [
    "PAYLOAD_NAME",
    "PAYLOAD_NAMESPACE",
    "PAYLOAD_VERSION",
    "CREATE",
    "UPDATE",
    "DELETE",
    "service_status_payload",
    "publisher_id",
    "status_changed",
    "notify_service",
]

PAYLOAD_NAME = "ServiceStatusPayload"
PAYLOAD_NAMESPACE = "nova"
#: Nova's ServiceStatusPayload 1.1 (1.1 added C{uuid}).
PAYLOAD_VERSION = "1.1"
#: The actions, as the event types' second part.
CREATE, UPDATE, DELETE = "create", "update", "delete"
#: The record's fields whose change is a C{service.update} (Nova's list).
_STATUS_FIELDS = ("disabled", "disabled_reason", "forced_down")
_PREFIX = "nova_object."


def _isotime(when: Optional[datetime.datetime]) -> Optional[str]:
    """
    @return: oslo.versionedobjects' C{DateTimeField} form of a naive UTC
        time, C{"2026-12-07T19:35:21Z"}, or C{None}.
    """
    if when is None:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def service_status_payload(record: Any) -> Dict[str, Any]:
    """
    @param record: a L{novasvc.db.record.ServiceRecord}.
    @return: the C{ServiceStatusPayload} primitive of the record (JSON
        values): C{host}, C{binary}, C{topic}, C{report_count},
        C{disabled}, C{disabled_reason}, C{availability_zone} (always
        C{None}: novasvc has no zones), C{last_seen_up}, C{forced_down},
        C{version} and C{uuid} under C{nova_object.data}.
    """
    data = {
        "host": record.host,
        "binary": record.binary,
        "topic": record.topic,
        "report_count": record.report_count,
        "disabled": bool(record.disabled),
        "disabled_reason": record.disabled_reason,
        "availability_zone": None,
        "last_seen_up": _isotime(record.last_seen_up),
        "forced_down": bool(record.forced_down),
        "version": record.version,
        "uuid": record.uuid,
    }
    return {
        _PREFIX + "name": PAYLOAD_NAME,
        _PREFIX + "namespace": PAYLOAD_NAMESPACE,
        _PREFIX + "version": PAYLOAD_VERSION,
        _PREFIX + "data": data,
        _PREFIX + "changes": sorted(data),
    }


def publisher_id(record: Any) -> str:
    """
    @return: C{<binary>:<host>} of the service a record describes (Nova's
        versioned publisher id).
    """
    return f"{record.binary}:{record.host}"


def status_changed(before: Any, after: Any) -> bool:
    """
    @return: whether C{disabled}, C{disabled_reason} or C{forced_down}
        differ between two versions of a record: only then is a change a
        C{service.update} (as Nova's C{Service.save}).
    """
    return any(getattr(before, name) != getattr(after, name) for name in _STATUS_FIELDS)


def notify_service(notifier: Any, action: str, record: Any, ctxt: Any = None) -> defer.Deferred:
    """
    Send C{service.<action>} about C{record} at priority INFO.

    @param notifier: the versioned L{novasvc.notify.notifier.Notifier}
        (C{Notifier.from_config(..., versioned=True)}); a disabled one sends
        nothing.
    @param action: L{CREATE}, L{UPDATE} or L{DELETE}.
    @param record: the L{novasvc.db.record.ServiceRecord} after the change
        (for a delete, the record as it was).
    @param ctxt: the request context; an admin context when C{None}.
    @return: the notifier's C{Deferred}, which fires with C{None} once the
        broker confirmed the notification and never fails (the notifier
        logs what it could not send).
    """
    prepared = notifier.prepare(publisher_id=publisher_id(record))
    return prepared.info(get_admin_context() if ctxt is None else ctxt, f"service.{action}",
                         service_status_payload(record))
