# -*- test-case-name: tests.test_text -*-
"""
Text for errors and log lines from values someone else chose: the bottom of the
house, imported by every layer that quotes a client's or a file's value.

A value a client chose (a method name, an id, a version, an argument name)
is quoted in an error, a reply or a log line only through L{clip} or
L{quote}, which cut it to L{QUOTE_LIMIT} characters: a megabyte of method
name is never a megabyte of log. L{show_value} describes a refused
configuration value.

Imports nothing from novasvc.
"""

import reprlib
from typing import Any, Optional

from twisted.python.failure import Failure, format_frames

__all__ = ["QUOTE_LIMIT", "clip", "quote", "ClippedTraceback", "show_value"]

#: The most characters of a client's value that an error, a reply or a log
#: line quotes.
QUOTE_LIMIT = 200

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = _repr.maxother = _repr.maxlong = QUOTE_LIMIT
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = 8


def clip(value: Any) -> Optional[str]:
    """
    A value a client chose, as text for an error or a log line.

    @param value: any value; not a C{str} is shown as L{quote} shows it.
    @return: C{value} cut to L{QUOTE_LIMIT} characters, saying how long it
        was when cut; C{None} stays C{None}.
    """
    if value is None:
        return None
    if type(value) is not str:
        return quote(value)
    if len(value) <= QUOTE_LIMIT:
        return value
    return f"{value[:QUOTE_LIMIT]}... ({len(value)} characters)"


def quote(value: Any) -> str:
    """
    The C{repr} of a value a client chose, cut to about L{QUOTE_LIMIT}
    characters (a string says how long it was; containers show a few items
    of a few levels), for an error or a log line. It never raises, whatever
    the value's depth.

    @param value: any value.
    @rtype: C{str}
    """
    if type(value) is str:
        if len(value) <= QUOTE_LIMIT:
            return repr(value)
        return f"{value[:QUOTE_LIMIT]!r}... ({len(value)} characters)"
    try:
        return _repr.repr(value)
    except Exception:  # a hostile __repr__, or a depth reprlib did not expect
        return f"<{type(value).__name__}>"


class ClippedTraceback:
    """
    A failure's traceback for a log line, formatted only if an observer
    shows it, its last line giving the error's class and its message cut by
    L{clip} (an error may quote a client's value).
    """

    __slots__ = ("_failure",)

    def __init__(self, failure: Failure) -> None:
        """
        @param failure: the failure whose traceback to show.
        """
        self._failure = failure

    def __str__(self) -> str:
        failure = self._failure
        lines = ["Traceback (most recent call last):\n"]
        format_frames(failure.frames, lines.append)
        cls = failure.type
        module, name = getattr(cls, "__module__", None), getattr(cls, "__qualname__", repr(cls))
        lines.append(f"{name if module in (None, 'builtins') else f'{module}.{name}'}: "
                     f"{clip(failure.getErrorMessage())}")
        return "".join(lines)


def show_value(value: Any) -> str:
    """
    @return: a short description of a refused YAML value (a long string is
        cut to 60 characters).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
