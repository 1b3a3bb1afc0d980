# -*- test-case-name: tests.test_periodic_decorator -*-
"""
The L{periodic_task} decorator, and the collector that turns the decorated
attributes of a class (and of its bases) into the tasks the runner calls.

Public through L{novasvc.periodic}.
"""

import inspect
import math
import numbers
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, overload

import attrs
from twisted.logger import Logger

__all__ = [
    "DEFAULT_INTERVAL",
    "periodic_task",
    "Spec",
    "Task",
    "spec_of",
    "task_from",
    "collect",
]

DEFAULT_INTERVAL: float = 60.0
"""
Seconds: the spacing of a task declared with C{spacing=0}, and the longest
idle time L{PeriodicTasks.run_periodic_tasks
<novasvc.periodic.PeriodicTasks.run_periodic_tasks>} returns (as
oslo.service).
"""

_SPEC_ATTRIBUTE = "_novasvc_periodic_task"

_log = Logger(namespace="novasvc.periodic")

_F = TypeVar("_F", bound=Callable[..., Any])


@attrs.frozen
class Spec:
    """
    What the decorator recorded on a function; nothing is registered yet.
    """

    name: str
    spacing: float
    run_immediately: bool
    enabled: bool
    external_process_ok: bool


@attrs.frozen
class Task:
    """
    A registered task.

    @ivar spacing: seconds between runs, always > 0.
    @ivar bound: C{True} when C{function} is a bound method, called as
        C{function(context)}; otherwise C{function(self, context)}.
    @ivar attribute: the class attribute it came from (C{None} when added
        at runtime).
    """

    name: str
    spacing: float
    run_immediately: bool
    external_process_ok: bool
    function: Callable[..., Any]
    bound: bool
    attribute: Optional[str]


@overload
def periodic_task(function: _F, /) -> _F: ...


@overload
def periodic_task(
    *,
    spacing: float = 0,
    run_immediately: bool = False,
    name: Optional[str] = None,
    enabled: bool = True,
    external_process_ok: bool = False,
) -> Callable[[_F], _F]: ...


def periodic_task(
    *args: Any,
    spacing: float = 0,
    run_immediately: bool = False,
    name: Optional[str] = None,
    enabled: bool = True,
    external_process_ok: bool = False,
) -> Any:
    """
    Mark a method of a L{PeriodicTasks <novasvc.periodic.PeriodicTasks>}
    subclass as a periodic task, as oslo.service's decorator. Usable bare
    (C{@periodic_task}) or with keyword arguments
    (C{@periodic_task(spacing=10)}).

    It only annotates the function (and returns it unchanged); the class
    registers it when it is created. The task is called as
    C{method(self, context)} and may return a value, a C{Deferred} or a
    coroutine.

    @param spacing: B{seconds} between two runs. C{0} means
        L{DEFAULT_INTERVAL} (60 s). A negative spacing means the task is
        never registered (an INFO event says so).
    @type spacing: C{int} or C{float}
    @param run_immediately: C{True}: run at the first runner pass.
        C{False}: first run one C{spacing} after the first pass that sees
        the task (oslo counts from import time instead).
    @param name: the task's name (default: the function's name); unique
        per class, used in logs and bookkeeping.
    @param enabled: C{False}: never registered (an INFO event says so).
    @param external_process_ok: C{True}: skipped while
        L{PeriodicTasks.run_external_periodic_tasks
        <novasvc.periodic.PeriodicTasks.run_external_periodic_tasks>} is
        C{False}.

    @return: the function itself (bare use) or a decorator.
    @raise TypeError: when given positional arguments other than one
        callable, or a spacing that is not a number, or a name that is not
        a non-empty string.
    @raise ValueError: when C{spacing} is not finite.
    """
    if isinstance(spacing, bool) or not isinstance(spacing, numbers.Real):
        raise TypeError(f"periodic_task: spacing must be a number of seconds, not {spacing!r}")
    if not math.isfinite(spacing):
        raise ValueError(f"periodic_task: spacing must be finite, not {spacing!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"periodic_task: name must be a non-empty string, not {name!r}")

    def decorate(function: _F) -> _F:
        if not callable(function):
            raise TypeError(f"periodic_task decorates a function, not {function!r}")
        spec = Spec(
            name=name if name is not None else function.__name__,
            spacing=float(spacing),
            run_immediately=bool(run_immediately),
            enabled=bool(enabled),
            external_process_ok=bool(external_process_ok),
        )
        setattr(function, _SPEC_ATTRIBUTE, spec)
        return function

    if not args:
        return decorate
    if len(args) == 1 and callable(args[0]):
        return decorate(args[0])
    raise TypeError(
        "periodic_task takes one function (bare use) or keyword arguments only, "
        f"not {args!r}"
    )


def spec_of(value: object) -> Optional[Spec]:
    """
    @param value: any object, typically a class attribute.
    @return: what L{periodic_task} recorded on C{value}, or C{None} when it
        was not decorated.
    """
    spec = getattr(value, _SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, Spec) else None


def task_from(
    spec: Spec, function: Callable[..., Any], owner: str, attribute: Optional[str], log: bool
) -> Optional[Task]:
    """
    @param spec: what the decorator recorded on C{function}.
    @param function: the function or bound method to call.
    @param owner: the class name, for log events.
    @param attribute: the class attribute C{function} came from, or
        C{None}.
    @param log: C{True} to log, at INFO, why a task is not registered.
    @return: the task to register, or C{None} when the spec says it must not
        be (disabled, or a negative spacing).
    """
    full_name = f"{owner}.{spec.name}"
    if not spec.enabled:
        if log:
            _log.info("Periodic task {task} is not registered: it is disabled", task=full_name)
        return None
    if spec.spacing < 0:
        if log:
            _log.info(
                "Periodic task {task} is not registered: its spacing is negative ({spacing} s)",
                task=full_name,
                spacing=spec.spacing,
            )
        return None
    return Task(
        name=spec.name,
        spacing=spec.spacing or DEFAULT_INTERVAL,
        run_immediately=spec.run_immediately,
        external_process_ok=spec.external_process_ok,
        function=function,
        bound=inspect.ismethod(function),
        attribute=attribute,
    )


def collect(cls: type, base: type) -> Tuple[Task, ...]:
    """
    Walk C{cls}'s MRO from the most basic class down: a decorated attribute
    registers a task (replacing, in place, the one an ancestor registered
    under the same attribute); any other value of that attribute removes it.

    @param cls: the class being created.
    @param base: the class whose subclasses collect their tasks when they
        are created (and so have already logged their skipped tasks).
    @return: the tasks, in registration order.
    @raise TypeError: when two attributes register the same task name.
    """
    by_attribute: Dict[str, Task] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        # Ancestors that subclass base logged their own skipped tasks
        # when they were created; plain mixins never were.
        log = klass is cls or not issubclass(klass, base)
        for attribute, value in vars(klass).items():
            spec = spec_of(value)
            task = None
            if spec is not None:
                task = task_from(spec, value, klass.__name__, attribute, log)
            if task is not None:
                by_attribute[attribute] = task
            else:
                by_attribute.pop(attribute, None)
    by_name: Dict[str, Task] = {}
    for task in by_attribute.values():
        other = by_name.setdefault(task.name, task)
        if other is not task:
            raise TypeError(
                f"{cls.__qualname__}: periodic task name {task.name!r} is used by both "
                f"{other.attribute!r} and {task.attribute!r}"
            )
    return tuple(by_attribute.values())
