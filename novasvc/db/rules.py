# -*- test-case-name: tests.test_db_rules -*-
"""
The rules for the values a services store may write (Nova's column types
and lengths), without SQLAlchemy: both stores
(L{novasvc.db.store.SQLServiceStore} and
L{novasvc.db.memory.MemoryServiceStore}) check their input with
L{check_create} and L{check_update}, so bad input gets the same error from
both, and a service on the memory store never loads SQLAlchemy.
"""

import datetime
from typing import Any, Dict, Mapping, Optional

#: The longest C{host}, C{binary}, C{topic} or C{disabled_reason}, in
#: characters (the columns are C{String(255)}).
MAX_STRING_LENGTH = 255
#: The largest service id (the C{id} column is a 32-bit integer).
MAX_SERVICE_ID = 2**31 - 1

#: The keys L{novasvc.interfaces.IServiceStore.update} accepts.
UPDATABLE_COLUMNS = frozenset(
    {"topic", "version", "disabled", "disabled_reason", "forced_down"}
)


def naive_utc(when: datetime.datetime) -> datetime.datetime:
    """
    @param when: a naive C{datetime} (taken to be UTC already) or an aware one.
    @return: C{when} as a naive UTC C{datetime}.
    @raise TypeError: if C{when} is not a C{datetime}.
    """
    if not isinstance(when, datetime.datetime):
        raise TypeError(f"expected a datetime, got {when!r}")
    if when.tzinfo is None:
        return when
    return when.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def default_utcnow() -> datetime.datetime:
    """
    @return: the current time as a naive UTC C{datetime} (the stores' clock
        when none is injected).
    """
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def unstorable(value: str) -> Optional[str]:
    """
    @return: why C{value} cannot be stored in a text column of every
        supported database (PostgreSQL refuses NUL; no UTF-8 encoding holds
        a lone surrogate), or C{None} when it can.
    """
    if "\x00" in value:
        return "holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate, which no UTF-8 text can"
    return None


def _check_string(name: str, value: Any, *, nullable: bool, empty: bool) -> None:
    if value is None:
        if nullable:
            return
        raise TypeError(f"{name} must be a string, not None")
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    if not empty and not value:
        raise ValueError(f"{name} must not be empty")
    if len(value) > MAX_STRING_LENGTH:
        raise ValueError(
            f"{name} is {len(value)} characters long; the most is {MAX_STRING_LENGTH}"
        )
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(f"{name} {problem}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")


_COLUMN_CHECKS = {
    "topic": lambda v: _check_string("topic", v, nullable=True, empty=False),
    "version": lambda v: _check_int("version", v),
    "disabled": lambda v: _check_bool("disabled", v),
    "disabled_reason": lambda v: _check_string("disabled_reason", v, nullable=True, empty=True),
    "forced_down": lambda v: _check_bool("forced_down", v),
}


def check_create(
    host: Any,
    binary: Any,
    topic: Any,
    version: Any = 0,
    disabled: Any = False,
    disabled_reason: Any = None,
) -> Dict[str, Any]:
    """
    Check the arguments of L{novasvc.interfaces.IServiceStore.create}.

    @param host: a non-empty C{str} of at most L{MAX_STRING_LENGTH} characters.
    @param binary: same as C{host}.
    @param topic: same as C{host}, or C{None} (as Nova's API services).
    @param version: an C{int}.
    @param disabled: a C{bool}.
    @param disabled_reason: a C{str} of at most L{MAX_STRING_LENGTH}
        characters, or C{None}.
    @return: the column values, keyed by column name.
    @rtype: C{dict}
    @raise TypeError: for a value of the wrong type.
    @raise ValueError: for an empty or too long string.
    """
    _check_string("host", host, nullable=False, empty=False)
    _check_string("binary", binary, nullable=False, empty=False)
    values = {
        "topic": topic,
        "version": version,
        "disabled": disabled,
        "disabled_reason": disabled_reason,
    }
    for name, value in values.items():
        _COLUMN_CHECKS[name](value)
    values.update(host=host, binary=binary)
    return values


def check_update(values: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Check the keyword arguments of L{novasvc.interfaces.IServiceStore.update}.

    @param values: column name to new value; the names must be in
        L{UPDATABLE_COLUMNS}.
    @return: a copy of C{values}.
    @rtype: C{dict}
    @raise ValueError: for a name not in L{UPDATABLE_COLUMNS} (the message
        lists the accepted names), or an empty or too long string.
    @raise TypeError: for a value of the wrong type.
    """
    unknown = sorted(set(values) - UPDATABLE_COLUMNS)
    if unknown:
        raise ValueError(
            f"cannot update {', '.join(unknown)}; accepted keys: "
            f"{', '.join(sorted(UPDATABLE_COLUMNS))}"
        )
    for name, value in values.items():
        _COLUMN_CHECKS[name](value)
    return dict(values)


def check_service_id(service_id: Any) -> int:
    """
    @param service_id: a services row id.
    @return: C{service_id}.
    @raise TypeError: if it is not an C{int}.
    """
    _check_int("service_id", service_id)
    return service_id


def check_filters(**filters: Any) -> Dict[str, Any]:
    """
    Check lookup values (C{host}, C{binary}, C{topic}) given to
    L{novasvc.interfaces.IServiceStore.get_by_host_and_binary} and
    L{novasvc.interfaces.IServiceStore.list_services}.

    @param filters: column name to a C{str}, or C{None} for "any".
    @return: the filters that are not C{None}.
    @rtype: C{dict}
    @raise TypeError: for a value that is neither a C{str} nor C{None}.
    @raise ValueError: for a value no database can hold (L{unstorable}).
    """
    for name, value in filters.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
        problem = None if value is None else unstorable(value)
        if problem is not None:
            raise ValueError(f"{name} {problem}")
    return {name: value for name, value in filters.items() if value is not None}
