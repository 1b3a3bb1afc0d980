# -*- test-case-name: tests.test_reactor -*-
"""
The one fallback to Twisted's global reactor, for the classes that take an
injected reactor or clock and use the global reactor when given none.

Only L{novasvc.tap.makeService} takes the global reactor on purpose; every
other module goes through L{global_reactor_if_none}, which looks the global
reactor up when it is called, never when a module is imported.
"""

from typing import Any, Optional, TypeVar, overload

__all__ = ["global_reactor_if_none"]

_R = TypeVar("_R")


@overload
def global_reactor_if_none(reactor: None = None) -> Any: ...


@overload
def global_reactor_if_none(reactor: _R) -> _R: ...


def global_reactor_if_none(reactor: Optional[object] = None) -> Any:
    """
    The reactor (or clock) given, else the global one.

    @param reactor: the injected reactor or clock (for instance an
        L{IReactorTime <twisted.internet.interfaces.IReactorTime>} such as
        L{twisted.internet.task.Clock}), or C{None}.
    @return: C{reactor} itself when it is not C{None}; otherwise
        C{twisted.internet.reactor}, looked up now (the first lookup in a
        process installs Twisted's default reactor when none is installed
        yet).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor
