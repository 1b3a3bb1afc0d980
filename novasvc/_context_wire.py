# -*- test-case-name: tests.test_context_wire,tests.test_context -*-
"""
A request context as a C{dict} of JSON values, the form it travels in: the
keys L{novasvc.context.RequestContext.to_dict} writes and C{from_dict}
reads, for one prefix (L{context_keys}), and the reading of their values
(L{read_fields}), which never fails: a value of the wrong type is dropped
with one WARNING for the context, naming at most L{_NAMED} of the keys.

The tables are made once per prefix (there are one or two: C{""} and the
RPC message's C{"_context_"}), from the context's field names, which
L{novasvc.context} passes: this module knows the wire, not the class.
"""

import datetime
import math
from typing import Any, Callable, Dict, Iterable, Mapping, Tuple

import attrs
from twisted.logger import Logger

#: The context's own namespace: its warnings read as they did before the
#: wire keys had a module of their own.
_log = Logger(namespace="novasvc.context")

__all__ = ["KEYS", "TIMESTAMP_FORMAT", "ContextKeys", "context_keys", "parse_timestamp", "read_fields",
           "timestamp_text"]

#: The C{strtime} format Nova uses for the context's C{timestamp}.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

_last_parsed: Tuple[Any, Any] = (None, None)


def parse_timestamp(value: Any) -> Any:
    """
    Nova sends the timestamp as a string; read it back as a naive UTC
    C{datetime}. Anything unreadable is kept as it came. The last text read
    and its C{datetime} (immutable, so shared safely) are kept: the requests
    of one client context all carry the same timestamp.
    """
    global _last_parsed
    if not isinstance(value, str):
        return value
    last = _last_parsed  # one read: another thread may replace it
    if value == last[0]:
        return last[1]
    try:
        parsed = datetime.datetime.fromisoformat(value)  # Python 3.11 reads "Z" too
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):  # not an instant; out of datetime's range in UTC
        return value
    _last_parsed = (value, parsed)
    return parsed


_last_timestamp: Tuple[Any, Any] = (None, None)


def timestamp_text(timestamp: Any) -> Any:
    """
    The context timestamp as written on the wire (Nova's C{strtime}
    format). The text of the last one is kept: a C{datetime} never changes,
    and a context sending several requests sends the same one each time.
    """
    global _last_timestamp
    last = _last_timestamp  # one read: another thread may replace it
    if timestamp is last[0]:
        return last[1]
    if not isinstance(timestamp, datetime.datetime):
        return timestamp
    if timestamp.tzinfo is None:
        # The same text as strftime(TIMESTAMP_FORMAT) for a naive datetime,
        # several times faster.
        text = timestamp.isoformat(timespec="microseconds")
    else:
        text = timestamp.strftime(TIMESTAMP_FORMAT)
    _last_timestamp = (timestamp, text)
    return text


#: The keys C{to_dict} writes, in order, each with the value written, an
#: expression of the context C{c}.
_WIRE = (
    ("user_id", "c.user_id"), ("project_id", "c.project_id"), ("user", "c.user_id"), ("project", "c.project_id"),
    ("domain", "c.domain_id"), ("user_domain", "c.user_domain_id"), ("project_domain", "c.project_domain_id"),
    ("system_scope", "c.system_scope"), ("is_admin", "c.is_admin"), ("read_only", "c.read_only"),
    ("show_deleted", "c.show_deleted"), ("auth_token", "c.auth_token"), ("request_id", "c.request_id"),
    ("global_request_id", "c.global_request_id"), ("resource_uuid", "c.resource_uuid"),
    ("roles", "list(c.roles)"), ("user_identity", "c.user_identity"), ("is_admin_project", "c.is_admin_project"),
    ("read_deleted", "c.read_deleted"), ("remote_address", "c.remote_address"),
    ("timestamp", "timestamp_text(c.timestamp)"), ("quota_class", "c.quota_class"), ("user_name", "c.user_name"),
    ("project_name", "c.project_name"), ("service_catalog", "list(c.service_catalog)"),
    ("client_timeout", "c.client_timeout"),
)
#: Aliases -> field name, read only when the field's own key is absent;
#: C{""} marks keys read as nothing (derived, or handled on their own).
_ALIAS_KEYS: Dict[str, str] = {
    "user": "user_id",
    "project": "project_id",
    "tenant": "",
    "domain": "domain_id",
    "user_domain": "user_domain_id",
    "project_domain": "project_domain_id",
    "user_identity": "",
}
_TEXT = frozenset((str, type(None)))
#: Field name -> the types a value read for it may have (C{roles} must
#: also hold only strings, C{client_timeout} be finite); the other fields
#: are str-or-None (L{_TEXT}), C{request_id} and C{timestamp} too.
_TYPES: Dict[str, frozenset] = {
    "is_admin": frozenset((bool,)), "read_only": frozenset((bool,)), "show_deleted": frozenset((bool,)),
    "is_admin_project": frozenset((bool,)), "roles": frozenset((list, type(None))),
    "service_catalog": frozenset((list, type(None))), "client_timeout": frozenset((int, float, type(None))),
    "read_deleted": frozenset((str,)),
}
#: The most keys one warning names.
_NAMED = 5


@attrs.frozen
class ContextKeys:
    """
    The wire keys of a context for one prefix.

    @ivar write: makes the C{dict} of the keys C{to_dict} writes
        (L{_WIRE}) for a context, extras aside.
    @ivar own: C{(key, field)} for each field's own key.
    @ivar aliases: C{(key, field)} for each alias (C{""}: read as nothing).
    @ivar known: every key in L{own} and L{aliases}.
    @ivar types: field name -> the types a value read for it may have.
    """

    write: Callable[[Any], Dict[str, Any]]
    own: Tuple[Tuple[str, str], ...]
    aliases: Tuple[Tuple[str, str], ...]
    known: frozenset
    types: Dict[str, frozenset]


#: Prefix -> its L{ContextKeys}, once made.
KEYS: Dict[str, ContextKeys] = {}


def context_keys(prefix: str, fields: Iterable[str]) -> ContextKeys:
    """
    @param prefix: put in front of every key.
    @param fields: the context's field names but C{extra}, each read from
        the key of its own name.
    @return: the key tables for C{prefix}, made on the first call for it
        and kept in L{KEYS}.
    """
    keys = KEYS.get(prefix)
    if keys is None:
        names = tuple(fields)
        own = tuple((prefix + name, name) for name in names)
        aliases = tuple((prefix + key, field) for key, field in _ALIAS_KEYS.items())
        keys = KEYS[prefix] = ContextKeys(_writer(prefix), own, aliases, frozenset(key for key, _ in own + aliases),
                                          {name: _TYPES.get(name, _TEXT) for name in names})
    return keys


def _writer(prefix: str) -> Callable[[Any], Dict[str, Any]]:
    """
    @return: a function making the C{dict} of the L{_WIRE} keys, each with
        C{prefix} in front, for a context: compiled from one C{dict}
        display, whose constant keys Python builds at once (a third of the
        cost of zipping keys and values).
    """
    entries = ", ".join(f"{prefix + key!r}: {value}" for key, value in _WIRE)
    namespace: Dict[str, Any] = {"timestamp_text": timestamp_text}
    exec(compile(f"def write(c):\n    return {{{entries}}}\n", f"<to_dict({prefix!r})>", "exec"), namespace)
    return namespace["write"]  # type: ignore[no-any-return]


def read_fields(values: Mapping[str, Any], prefix: str, keys: ContextKeys) -> Dict[str, Any]:
    """
    @param values: the context entries, e.g. a decoded request message.
    @param prefix: read only the keys that start with it, without it.
    @param keys: the tables of C{prefix}.
    @return: the keyword arguments of the context C{from_dict} makes of
        C{values}: the values of the wrong type left out (and logged,
        once), every unknown key in C{extra}.
    """
    own, aliases, known = keys.own, keys.aliases, keys.known
    # Look the known keys up rather than walk every entry: the RPC server
    # reads a request's context from its whole message.
    kwargs: Dict[str, Any] = {field: values[key] for key, field in own if key in values}
    found = len(kwargs)
    for key, field in aliases:
        if key in values:
            found += 1
            # A field's own key wins over its alias.
            if field and field not in kwargs:
                kwargs[field] = values[key]
    extra: Dict[str, Any] = {}
    if len(values) > found:
        skip = len(prefix)
        for key, value in values.items():
            if key not in known and isinstance(key, str) and key.startswith(prefix):
                extra[key[skip:]] = value
    if "project_id" not in kwargs and prefix + "tenant" in values:
        kwargs["project_id"] = values[prefix + "tenant"]
    types = keys.types
    dropped = [field for field, value in kwargs.items() if type(value) not in types[field]]
    roles = kwargs.get("roles")
    if roles and "roles" not in dropped and not all(type(role) is str for role in roles):
        dropped.append("roles")
    timeout = kwargs.get("client_timeout")
    if timeout is not None and "client_timeout" not in dropped and not math.isfinite(timeout):
        dropped.append("client_timeout")
    if dropped:
        for field in dropped:
            del kwargs[field]
        _log.warn("Request context {request_id}: ignored {count} value(s) of the wrong type or out of range "
                  "({fields}); their defaults are used", request_id=_request_id(kwargs.get("request_id")),
                  count=len(dropped), fields=", ".join(dropped[:_NAMED]) + (", ..." if len(dropped) > _NAMED else ""))
    timestamp = kwargs.get("timestamp")
    if timestamp is not None:
        kwargs["timestamp"] = parse_timestamp(timestamp)
    else:
        kwargs.pop("timestamp", None)
    if kwargs.get("request_id") is None:
        kwargs.pop("request_id", None)
    if kwargs.get("roles", ()) is None:
        del kwargs["roles"]
    if kwargs.get("service_catalog", ()) is None:
        del kwargs["service_catalog"]
    kwargs["extra"] = extra
    return kwargs


def _request_id(value: Any) -> str:
    return value[:64] if isinstance(value, str) else "(none)"
