# -*- test-case-name: tests.test_periodic -*-
"""
Periodic tasks: the L{periodic_task} decorator, the L{PeriodicTasks} mixin
that collects and runs decorated methods, and L{PeriodicTaskService}, the
dynamic timer that calls the runner.

The semantics are oslo.service's C{periodic_task} module (spacing, the
60-second default, the idle time returned by the runner, "nearest boundary"
bookkeeping with 0-5 % jitter) with these deliberate differences:

  - Time comes from an injected L{IReactorTime} (L{PeriodicTasks.clock}),
    never from C{time}; tests drive it with L{twisted.internet.task.Clock}.
  - With C{run_immediately=False} a task first runs one C{spacing} after
    the first runner pass that sees it (oslo counts from import time).
  - Tasks are collected per class by C{__init_subclass__}, not by a
    metaclass. A subclass attribute shadows the parent's task of the same
    attribute name (oslo keeps running the parent's function too): redefine
    it with the decorator to change it, without the decorator (or with
    C{enabled=False}) to drop it.
  - L{PeriodicTasks.add_periodic_task} adds a task to one instance, not to
    the whole class.
  - A task may return a C{Deferred} or a coroutine. A task never overlaps
    itself: while its previous run has not finished it is skipped and stays
    due.
  - Only L{Exception} is caught; C{SystemExit} and C{KeyboardInterrupt}
    propagate (oslo catches C{BaseException}).

Tasks run per process: every service process runs its own manager's tasks.
"""

import inspect
import math
import numbers
import random
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, TypeVar, overload

import attrs
from twisted.application import service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

__all__ = [
    "DEFAULT_INTERVAL",
    "periodic_task",
    "PeriodicTasks",
    "PeriodicTaskService",
    "fuzzy_delay",
]

DEFAULT_INTERVAL: float = 60.0
"""
Seconds: the spacing of a task declared with C{spacing=0}, and the longest
idle time L{PeriodicTasks.run_periodic_tasks} returns (as oslo.service).
"""

_SPEC_ATTRIBUTE = "_novasvc_periodic_task"

_log = Logger()

_F = TypeVar("_F", bound=Callable[..., Any])


class _Random(Protocol):
    def random(self) -> float: ...


class _RandInt(Protocol):
    def randint(self, a: int, b: int) -> int: ...


@attrs.frozen
class _Spec:
    """
    What the decorator recorded on a function; nothing is registered yet.
    """

    name: str
    spacing: float
    run_immediately: bool
    enabled: bool
    external_process_ok: bool


@attrs.frozen
class _Task:
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
    Mark a method of a L{PeriodicTasks} subclass as a periodic task, as
    oslo.service's decorator. Usable bare (C{@periodic_task}) or with
    keyword arguments (C{@periodic_task(spacing=10)}).

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
        L{PeriodicTasks.run_external_periodic_tasks} is C{False}.

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
        spec = _Spec(
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


def _spec_of(value: object) -> Optional[_Spec]:
    spec = getattr(value, _SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, _Spec) else None


def _task_from(
    spec: _Spec, function: Callable[..., Any], owner: str, attribute: Optional[str], log: bool
) -> Optional[_Task]:
    """
    @return: the task to register, or C{None} when the spec says it must not
        be (logged at INFO when C{log}).
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
    return _Task(
        name=spec.name,
        spacing=spec.spacing or DEFAULT_INTERVAL,
        run_immediately=spec.run_immediately,
        external_process_ok=spec.external_process_ok,
        function=function,
        bound=inspect.ismethod(function),
        attribute=attribute,
    )


def _collect(cls: type) -> Tuple[_Task, ...]:
    """
    Walk C{cls}'s MRO from the most basic class down: a decorated attribute
    registers a task (replacing, in place, the one an ancestor registered
    under the same attribute); any other value of that attribute removes it.

    @raise TypeError: when two attributes register the same task name.
    """
    by_attribute: Dict[str, _Task] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        # Ancestors that are PeriodicTasks logged their own skipped tasks
        # when they were created; plain mixins never were.
        log = klass is cls or not issubclass(klass, PeriodicTasks)
        for attribute, value in vars(klass).items():
            spec = _spec_of(value)
            task = None
            if spec is not None:
                task = _task_from(spec, value, klass.__name__, attribute, log)
            if task is not None:
                by_attribute[attribute] = task
            else:
                by_attribute.pop(attribute, None)
    by_name: Dict[str, _Task] = {}
    for task in by_attribute.values():
        other = by_name.setdefault(task.name, task)
        if other is not task:
            raise TypeError(
                f"{cls.__qualname__}: periodic task name {task.name!r} is used by both "
                f"{other.attribute!r} and {task.attribute!r}"
            )
    return tuple(by_attribute.values())


_UNSEEN = object()


@attrs.define
class _State:
    """
    One instance's runner bookkeeping.

    @ivar extra: tasks added with L{PeriodicTasks.add_periodic_task}.
    @ivar last_run: task name -> clock seconds of its last run (its
        "boundary"), or C{None} for "never run".
    @ivar running: task name -> the C{Deferred} of its unfinished run.
    @ivar waiters: L{PeriodicTasks.wait_for_periodic_tasks} results.
    """

    extra: List[_Task] = attrs.field(factory=list)
    last_run: Dict[str, Optional[float]] = attrs.field(factory=dict)
    running: Dict[str, Deferred] = attrs.field(factory=dict)
    waiters: List[Deferred] = attrs.field(factory=list)


class PeriodicTasks:
    """
    Mixin that collects the L{periodic_task} methods of each subclass and
    runs those that are due (oslo.service's C{PeriodicTasks}, without its
    metaclass and its C{conf} argument).

    Subclasses inherit their parents' tasks; redefining the attribute
    overrides (or, undecorated, drops) the inherited task. State is created
    on first use, so a subclass that forgets C{super().__init__()} still
    works.

    Class and instance attributes a user may set:

    @ivar clock: the time source (C{seconds()}), see L{clock}.
    @ivar run_external_periodic_tasks: C{False} skips tasks declared with
        C{external_process_ok=True} (oslo's option of the same name).
    @type run_external_periodic_tasks: C{bool}
    """

    run_external_periodic_tasks: bool = True

    _periodic_tasks: Tuple[_Task, ...] = ()
    _periodic_clock: Optional[IReactorTime] = None
    _periodic_random: _Random = random

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._periodic_tasks = _collect(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """
        Cooperative: passes any arguments on to the next class in the MRO.

        @raise TypeError: when arguments are left over and nothing after
            L{PeriodicTasks} in the MRO takes them.
        """
        mro = type(self).__mro__
        if (args or kwargs) and mro[mro.index(PeriodicTasks) + 1] is object:
            raise TypeError(
                f"{type(self).__qualname__}() got unexpected arguments: "
                f"args={args!r}, kwargs={sorted(kwargs)!r}"
            )
        super().__init__(*args, **kwargs)
        self._periodic_state()

    @property
    def clock(self) -> IReactorTime:
        """
        The L{IReactorTime} whose C{seconds()} times the tasks. Set it (the
        Service sets it to its own clock); until then it is the global
        reactor, resolved at each read.
        """
        clock = self._periodic_clock
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        return clock

    @clock.setter
    def clock(self, clock: Optional[IReactorTime]) -> None:
        self._periodic_clock = clock

    def _periodic_state(self) -> _State:
        try:
            return self.__dict__["_periodic_runtime"]
        except KeyError:
            state = self.__dict__["_periodic_runtime"] = _State()
            return state

    def add_periodic_task(self, function: Callable[..., Any]) -> bool:
        """
        Register one more task on this instance only (oslo adds it to the
        class).

        @param function: decorated with L{periodic_task}. A plain function is
            called as C{function(self, context)}, a bound method as
            C{method(context)}.
        @return: C{True} if registered, C{False} if the decorator disabled it
            (C{enabled=False} or negative spacing; logged at INFO).
        @raise TypeError: when C{function} was not decorated.
        @raise ValueError: when a task of the same name is registered.
        """
        spec = _spec_of(function)
        if spec is None:
            raise TypeError(f"{function!r} is not decorated with @periodic_task")
        task = _task_from(spec, function, type(self).__name__, None, log=True)
        if task is None:
            return False
        state = self._periodic_state()
        if any(t.name == task.name for t in self._periodic_all(state)):
            raise ValueError(
                f"{type(self).__qualname__} already has a periodic task named {task.name!r}"
            )
        state.extra.append(task)
        return True

    def _periodic_all(self, state: _State) -> Tuple[_Task, ...]:
        return type(self)._periodic_tasks + tuple(state.extra)

    def run_periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float:
        """
        Run every task that is due, once, in registration order (oslo.service's
        runner).

        The idle time starts at L{DEFAULT_INTERVAL}; each considered task
        lowers it to its spacing, and a task not yet due lowers it to the time
        it still has to wait. A due task gets its new last run at the nearest
        boundary (C{now - (now - last_run) % spacing}) plus a jitter of
        C{int(spacing * random() / 20)} whole seconds (0-5 %; none below 20 s
        spacing), then is called.

        A task whose previous run (a C{Deferred} or coroutine) has not
        finished is skipped (DEBUG) and stays due. An exception is logged as
        C{"Error during <Class>.<task>"} and the other tasks still run; an
        asynchronous failure is logged the same way when it arrives.

        @param context: passed to each task.
        @param raise_on_error: re-raise a task's synchronous exception (the
            remaining tasks are then not run this pass).
        @return: B{seconds} until the next pass is useful.
        @rtype: C{float}
        @raise Exception: the task's own, only with C{raise_on_error}.
        """
        state = self._periodic_state()
        idle_for = DEFAULT_INTERVAL
        for task in self._periodic_all(state):
            if task.external_process_ok and not self.run_external_periodic_tasks:
                continue
            idle_for = min(idle_for, task.spacing)
            now = self.clock.seconds()
            last_run = state.last_run.get(task.name, _UNSEEN)
            if last_run is _UNSEEN:
                last_run = None if task.run_immediately else now
                state.last_run[task.name] = last_run
            if last_run is not None:
                remaining = last_run + task.spacing - now
                if remaining > 0:
                    idle_for = min(idle_for, remaining)
                    continue
            full_name = f"{type(self).__name__}.{task.name}"
            if task.name in state.running:
                _log.debug(
                    "Skipping periodic task {task}: its previous run has not finished",
                    task=full_name,
                )
                continue
            state.last_run[task.name] = self._periodic_boundary(last_run, task.spacing, now)
            _log.debug("Running periodic task {task}", task=full_name)
            self._periodic_call(state, task, context, full_name, raise_on_error)
        return float(idle_for)

    def _periodic_boundary(self, last_run: Optional[float], spacing: float, now: float) -> float:
        if last_run is None:
            return now
        jitter = int(spacing * (self._periodic_random.random() / 20))
        return now - (now - last_run) % spacing + jitter

    def _periodic_call(
        self, state: _State, task: _Task, context: Any, full_name: str, raise_on_error: bool
    ) -> None:
        try:
            if task.bound:
                result = task.function(context)
            else:
                result = task.function(self, context)
        except Exception:
            if raise_on_error:
                raise
            _log.failure("Error during {task}", task=full_name, level=LogLevel.error)
            return
        if isinstance(result, Deferred):
            running = result
        elif inspect.iscoroutine(result):
            running = Deferred.fromCoroutine(result)
        else:
            return
        state.running[task.name] = running
        running.addBoth(self._periodic_finished, state, task.name, full_name, running)

    def _periodic_finished(
        self, result: object, state: _State, name: str, full_name: str, running: Deferred
    ) -> None:
        if state.running.get(name) is running:
            del state.running[name]
        if isinstance(result, Failure):
            _log.failure(
                "Error during {task}", failure=result, task=full_name, level=LogLevel.error
            )
        if not state.running and state.waiters:
            waiters, state.waiters = state.waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def wait_for_periodic_tasks(self) -> Deferred:
        """
        Wait until no task run is in progress (for a graceful stop: stop the
        timer first, then wait on this).

        @return: a C{Deferred} firing with C{None} at once when nothing runs,
            else when the last running task's C{Deferred} fires. Cancelling it
            only stops waiting.
        """
        state = self._periodic_state()
        if not state.running:
            return succeed(None)
        waiter: Deferred = Deferred(lambda d: state.waiters.remove(d))
        state.waiters.append(waiter)
        return waiter


def fuzzy_delay(periodic_fuzzy_delay: float, rng: Optional[_RandInt] = None) -> Optional[float]:
    """
    The first delay of the periodic timer, spreading services started
    together (Nova's C{Service.start}).

    @param periodic_fuzzy_delay: the configured maximum, B{seconds}.
    @param rng: a source with C{randint(a, b)} (default: the C{random}
        module).
    @return: C{rng.randint(0, int(periodic_fuzzy_delay))} seconds, or
        C{None} (no delay) when C{periodic_fuzzy_delay} is 0.
    @raise ValueError: when C{periodic_fuzzy_delay} is negative.
    """
    if periodic_fuzzy_delay < 0:
        raise ValueError(f"periodic_fuzzy_delay must be >= 0, not {periodic_fuzzy_delay!r}")
    if not periodic_fuzzy_delay:
        return None
    return (rng or random).randint(0, int(periodic_fuzzy_delay))


class PeriodicTaskService(service.Service):
    """
    The dynamic timer of oslo.service: call C{run} after C{initial_delay},
    then again after the idle time it returned, capped by C{interval_max}.

    It never dies of an error: when C{run} raises (or returns something that
    is not a number of seconds) the error is logged (with its traceback the
    first time in a row, briefly after that, and a "recovered" event once it
    succeeds again) and the next call comes after C{interval_max}, or
    L{DEFAULT_INTERVAL} without a maximum.

    It does not wait for tasks still running when stopped; chain
    L{PeriodicTasks.wait_for_periodic_tasks} for that.
    """

    def __init__(
        self,
        run: Callable[[], Optional[float]],
        *,
        clock: Optional[IReactorTime] = None,
        initial_delay: Optional[float] = None,
        interval_max: Optional[float] = None,
    ) -> None:
        """
        @param run: returns the B{seconds} to wait before the next call
            (typically C{lambda: manager.periodic_tasks(context)}). C{None}
            means C{interval_max} (an error when there is no maximum).
        @param clock: the timer's clock (default: the global reactor, resolved
            at start).
        @param initial_delay: B{seconds} before the first call; C{None} or 0
            call at once in L{startService} (see L{fuzzy_delay}).
        @param interval_max: the longest wait between calls, B{seconds}, or
            C{None} for no maximum.
        @raise ValueError: when C{initial_delay} is negative or
            C{interval_max} is not positive.
        """
        if initial_delay is not None and initial_delay < 0:
            raise ValueError(f"initial_delay must be >= 0 seconds, not {initial_delay!r}")
        if interval_max is not None and not interval_max > 0:
            raise ValueError(f"interval_max must be > 0 seconds or None, not {interval_max!r}")
        self._run = run
        self._clock = clock
        self.initial_delay = initial_delay
        self.interval_max = interval_max
        self._call: Optional[IDelayedCall] = None
        self._failures = 0

    @property
    def clock(self) -> IReactorTime:
        """
        The injected clock, or the global reactor when none was given.
        """
        if self._clock is None:
            from twisted.internet import reactor

            return reactor  # type: ignore[return-value]
        return self._clock

    def startService(self) -> None:
        """
        Schedule the first call (or make it now, without an initial delay).
        """
        super().startService()
        if self.initial_delay:
            self._schedule(self.initial_delay)
        else:
            self._tick()

    def stopService(self) -> None:
        """
        Cancel the pending call. A running C{run} is not interrupted.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        super().stopService()

    def _schedule(self, delay: float) -> None:
        self._call = self.clock.callLater(delay, self._tick)

    def _fallback(self) -> float:
        return self.interval_max if self.interval_max is not None else DEFAULT_INTERVAL

    def _delay_after(self, idle: object) -> float:
        if idle is None and self.interval_max is not None:
            return self.interval_max
        if isinstance(idle, bool) or not isinstance(idle, numbers.Real) or math.isnan(idle):
            raise TypeError(f"the periodic runner returned {idle!r}, not a number of seconds")
        delay = max(0.0, float(idle))
        if self.interval_max is not None:
            delay = min(delay, self.interval_max)
        return delay

    def _tick(self) -> None:
        self._call = None
        try:
            delay = self._delay_after(self._run())
        except Exception as error:
            delay = self._fallback()
            self._failures += 1
            if self._failures == 1:
                _log.failure(
                    "Periodic task runner failed; next run in {delay} s",
                    delay=delay,
                    level=LogLevel.error,
                )
            else:
                _log.warn(
                    "Periodic task runner still failing ({count} runs in a row): "
                    "{error!r}; next run in {delay} s",
                    count=self._failures,
                    error=error,
                    delay=delay,
                )
        else:
            if self._failures:
                _log.info(
                    "Periodic task runner recovered after {count} failed runs",
                    count=self._failures,
                )
                self._failures = 0
        if self.running:
            self._schedule(delay)
