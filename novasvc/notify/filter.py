# -*- test-case-name: tests.test_notify_filter -*-
"""
L{NotificationFilter}: which notifications an endpoint wants, by regular
expressions on their fields, as oslo.messaging's C{NotificationFilter}.

An endpoint names its filter in its C{filter_rule} attribute; the listener
calls that endpoint only with the notifications the filter matches.
"""

import re
from typing import Any, Dict, Mapping, Optional, Pattern

__all__ = ["NotificationFilter"]


def _compile_all(regexes: Optional[Mapping[str, str]]) -> Dict[str, Pattern[str]]:
    if regexes is None:
        return {}
    return {key: re.compile(regex) for key, regex in regexes.items()}


def _as_mapping(value: Any) -> Optional[Mapping[Any, Any]]:
    """
    @return: C{value} when it is a mapping, C{value.to_dict()} when it has
        that method (a L{novasvc.context.RequestContext} a serializer made),
        else C{None}.
    """
    if isinstance(value, Mapping):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            value = to_dict()
        except Exception:
            return None
        if isinstance(value, Mapping):
            return value
    return None


def _text_matches(value: Any, regex: Pattern[str]) -> bool:
    return isinstance(value, str) and regex.match(value) is not None


def _entries_match(value: Any, regexes: Dict[str, Pattern[str]]) -> bool:
    if not regexes:
        return True
    entries = _as_mapping(value)
    if entries is None:
        return False
    for key, regex in regexes.items():
        if key not in entries or not _text_matches(entries[key], regex):
            return False
    return True


class NotificationFilter:
    """
    Regular expressions a notification must match, field by field, for an
    endpoint to receive it (oslo.messaging's C{NotificationFilter}, with its
    arguments in its order)::

        class Endpoint:
            filter_rule = NotificationFilter(
                publisher_id=r"^compute\\.",
                event_type=r"^volume\\.create\\.",
                context={"project_id": "^p1$"},
                payload={"state": "^available$"},
            )

            def info(self, ctxt, publisher_id, event_type, payload, metadata):
                ...

    The rules, as oslo's: a field matches when its regular expression
    matches at the start of its value (C{re.match}: add C{$} to match the
    whole value); a field given no expression always matches; a value that
    is not a string never matches an expression. For C{context},
    C{metadata} and C{payload} each key's expression must match that key's
    value, and a missing key does not match. A notification matches when
    every field does.

    One difference: where oslo raises (and then treats the notification as
    an endpoint error) for a context or payload that is not a dictionary
    while the filter has expressions for its keys, this filter matches an
    object with C{to_dict()} (such as a L{novasvc.context.RequestContext}
    a serializer made) through that dictionary, and does not match
    anything else.
    """

    def __init__(self, context: Optional[Mapping[str, str]] = None, publisher_id: Optional[str] = None,
                 event_type: Optional[str] = None, metadata: Optional[Mapping[str, str]] = None,
                 payload: Optional[Mapping[str, str]] = None) -> None:
        """
        @param context: C{{key: regex}} for the context's entries.
        @param publisher_id: a regex for the publisher id.
        @param event_type: a regex for the event type.
        @param metadata: C{{key: regex}} for C{message_id} and
            C{timestamp}.
        @param payload: C{{key: regex}} for the payload's entries.
        @raise re.error: for an expression that does not compile.
        """
        self._publisher_id = None if publisher_id is None else re.compile(publisher_id)
        self._event_type = None if event_type is None else re.compile(event_type)
        self._context = _compile_all(context)
        self._metadata = _compile_all(metadata)
        self._payload = _compile_all(payload)

    def match(self, context: Any, publisher_id: Any, event_type: Any, metadata: Any, payload: Any) -> bool:
        """
        @param context: the context as the endpoint receives it.
        @param publisher_id: the publisher id.
        @param event_type: the event type.
        @param metadata: C{{"message_id": ..., "timestamp": ...}}.
        @param payload: the payload as the endpoint receives it.
        @return: whether the endpoint receives this notification (see the
            class docstring). Never raises.
        """
        if self._publisher_id is not None and not _text_matches(publisher_id, self._publisher_id):
            return False
        if self._event_type is not None and not _text_matches(event_type, self._event_type):
            return False
        return (_entries_match(context, self._context) and _entries_match(metadata, self._metadata)
                and _entries_match(payload, self._payload))

    def __repr__(self) -> str:
        fields = []
        for name, value in (("publisher_id", self._publisher_id), ("event_type", self._event_type)):
            if value is not None:
                fields.append(f"{name}={value.pattern!r}")
        for name, regexes in (("context", self._context), ("metadata", self._metadata), ("payload", self._payload)):
            if regexes:
                fields.append(f"{name}={ {key: regex.pattern for key, regex in regexes.items()} !r}")
        return f"NotificationFilter({', '.join(fields)})"
