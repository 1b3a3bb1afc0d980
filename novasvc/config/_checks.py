# -*- test-case-name: tests.test_config,tests.test_config_api -*-
"""
The general value checkers of the configuration file, shared by the
top-level keys (L{novasvc.config._keys}) and the C{api:} section
(L{novasvc.config.api}): each raises L{Bad} with a phrase saying what was
expected, which the caller puts after the key's place in its message.
"""

import math
from typing import Any, Callable


class Bad(Exception):
    """
    A value was refused; C{args[0]} says what was expected.
    """


def number(minimum: float, positive: bool = False, nullable: bool = False,
           integer: bool = False) -> Callable[[Any], Any]:
    """
    @return: a checker of a finite number (never a bool) >= C{minimum}, or
        > 0 if C{positive}; C{None} passes if C{nullable}. Seconds are
        returned as C{float}, integers as C{int}.
    """
    kind = "an integer" if integer else "a number of seconds"
    bound = "> 0" if positive else f">= {minimum:g}"
    expected = f"{kind} {bound}" + (" or null" if nullable else "")

    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if (isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
                or not math.isfinite(value) or value < minimum or (positive and value == 0)):
            raise Bad(expected)
        return value if integer else float(value)

    return check


def integer(minimum: int) -> Callable[[Any], Any]:
    """
    @return: a checker of an C{int} (never a bool) >= C{minimum}.
    """
    return number(minimum, integer=True)


def boolean(value: Any) -> bool:
    """
    @raise Bad: unless C{value} is C{True} or C{False}.
    """
    if not isinstance(value, bool):
        raise Bad("true or false")
    return value


def suggest(key: str, known: Any) -> str:
    """
    @return: the tail of an "unknown key" message: the closest known key
        (" (did you mean 'x'?)"), or else the list of known keys.
    """
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return "; expected one of: " + ", ".join(known)
