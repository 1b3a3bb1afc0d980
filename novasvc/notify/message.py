# -*- test-case-name: tests.test_notify_message -*-
"""
The notification wire format, as oslo.messaging writes it
(oslo-wire-protocol.md §11): a JSON object with, in this order,
C{message_id} (a uuid4 with dashes, the same on every topic),
C{publisher_id} (C{null} when the notifier has none), C{event_type},
C{priority} (upper case), C{payload}, C{timestamp} (C{str(utcnow())}:
C{"YYYY-MM-DD HH:MM:SS.ffffff"}, no zone, the fraction left out when it is
zero), C{_unique_id} (uuid4 hex, a new one on each topic) and the context's
entries under C{_context_} (none for a plain-dict context, which oslo's
notifier drops); in the 2.0 envelope (driver C{messagingv2}) or bare
(driver C{messaging}). Routed C{<topic>.<priority>} (lower case) on the
control exchange. Checked against oslo.messaging's own notifier and
listener in C{tests/test_notify_interop.py}.
"""

import datetime
import uuid
from typing import Any, Dict, Mapping, Optional, Union

import attrs

from novasvc.rpc import wire
from novasvc._text import quote
from novasvc.rpc.errors import MalformedMessage

__all__ = ["PRIORITIES", "Notification", "routing_key", "encode_notification", "decode_notification"]

#: The priorities, lower case, in oslo.messaging's order; on the wire they
#: are upper case, and an endpoint's method is named by the lower case one.
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


def routing_key(topic: str, priority: str) -> str:
    """
    @return: C{<topic>.<priority>}, the priority in lower case.
    """
    return f"{topic}.{priority.lower()}"


def utc_timestamp(now: Optional[datetime.datetime] = None) -> str:
    """
    @return: oslo's C{str(timeutils.utcnow())} of C{now} (default: now).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return str(now)


def encode_notification(publisher_id: Optional[str], event_type: str, priority: str, payload: Any,
                        context: Mapping[str, Any], *, envelope: bool = True,
                        message_id: Optional[str] = None, timestamp: Optional[str] = None) -> bytes:
    """
    @param publisher_id: e.g. C{"volume.myhost"}, or C{None} (written
        C{null}, as oslo's notifier without a publisher id).
    @param event_type: e.g. C{"volume.create.end"}.
    @param priority: one of L{PRIORITIES} (any case; written upper case).
    @param payload: the serialized payload (JSON values).
    @param context: the context's entries without their prefix (written as
        C{_context_<key>}); C{{}} for none.
    @param envelope: C{True} for the 2.0 envelope (C{messagingv2}),
        C{False} for the bare message (C{messaging}).
    @param message_id: the C{message_id}; a fresh uuid4 with dashes when
        C{None}.
    @param timestamp: the C{timestamp}; now when C{None}.
    @return: the body.
    @raise TypeError: for a payload that cannot be encoded.
    """
    message: Dict[str, Any] = {
        "message_id": message_id or str(uuid.uuid4()),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority.upper(),
        "payload": payload,
        "timestamp": timestamp or utc_timestamp(),
        "_unique_id": wire.new_id(),
    }
    for key, value in context.items():
        message[wire.CONTEXT_PREFIX + key] = value
    if envelope:
        return wire.encode_envelope(message)
    return wire.dumps(message).encode("utf-8")


@attrs.frozen
class Notification:
    """
    A decoded notification (listener side), or one a notifier hands its
    drivers (the C{test} driver keeps them; L{unique_id} is then C{None}).

    @ivar publisher_id: C{str}, or C{None} when the sender had none.
    @ivar event_type: C{str}.
    @ivar priority: lower case, one of L{PRIORITIES} (C{str}).
    @ivar payload: the payload as received (JSON values).
    @ivar context: the context entries without their C{_context_} prefix
        (C{dict}), as oslo.messaging's listener hands them over: with
        C{client_timeout} (C{None} unless the message has a C{_timeout}),
        as it adds to every context it unpacks.
    @ivar metadata: C{{"message_id": ..., "timestamp": ...}}, as oslo's.
    @ivar unique_id: the C{_unique_id}, or C{None}.
    """

    publisher_id: Optional[str]
    event_type: str
    priority: str
    payload: Any
    context: Dict[str, Any]
    metadata: Dict[str, Any]
    unique_id: Optional[str] = None


def decode_notification(body: Union[bytes, str],
                        content_type: Optional[str] = wire.CONTENT_TYPE) -> Notification:
    """
    @param body: a delivery's body (enveloped or bare).
    @param content_type: its content type (C{application/json} required).
    @rtype: L{Notification}
    @raise MalformedMessage: when the body is not a JSON object, the content
        type is wrong, C{priority} or C{event_type} is missing or not a
        string, C{publisher_id} is neither a string nor C{null}, or the
        priority is unknown. Client values
        in the reason are cut by L{novasvc._text.quote}.
    """
    if content_type is None or content_type.split(";", 1)[0].strip().lower() != wire.CONTENT_TYPE:
        raise MalformedMessage(f"content type {quote(content_type)} is not {wire.CONTENT_TYPE}")
    message = wire.decode_body(body)
    priority = message.get("priority")
    if type(priority) is not str or priority.lower() not in PRIORITIES:
        raise MalformedMessage(f"priority {quote(priority)} is not one of {', '.join(PRIORITIES)}")
    if type(message.get("event_type")) is not str:
        raise MalformedMessage(f"event_type {quote(message.get('event_type'))} is not a string")
    publisher_id = message.get("publisher_id")
    if publisher_id is not None and type(publisher_id) is not str:
        raise MalformedMessage(f"publisher_id {quote(publisher_id)} is neither a string nor null")
    prefix, cut = wire.CONTEXT_PREFIX, len(wire.CONTEXT_PREFIX)
    context = {key[cut:]: value for key, value in message.items() if key.startswith(prefix)}
    context["client_timeout"] = message.get("_timeout")
    unique_id = message.get("_unique_id")
    return Notification(
        publisher_id=publisher_id, event_type=message["event_type"], priority=priority.lower(),
        payload=message.get("payload"), context=context,
        metadata={"message_id": message.get("message_id"), "timestamp": message.get("timestamp")},
        unique_id=unique_id if type(unique_id) is str else None,
    )
