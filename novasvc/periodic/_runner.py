# -*- test-case-name: tests.test_periodic_runner,tests.test_metrics_instrumentation -*-
"""
The runner: L{PeriodicTasks}, the mixin that holds a class's tasks (collected
by L{novasvc.periodic._decorator}) and runs those that are due, with the
oslo.service "nearest boundary" bookkeeping, and waits for the tasks still
running.

Each run is counted in the metrics (L{novasvc.metrics}) with its outcome
and duration on the runner's clock (for a C{Deferred} or coroutine: until it
fired).

Public through L{novasvc.periodic}.
"""

import inspect
import random
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from novasvc._reactor import global_reactor_if_none
from novasvc.metrics import Recorder, get_recorder
from novasvc.periodic._decorator import DEFAULT_INTERVAL, Task, collect, spec_of, task_from

__all__ = ["PeriodicTasks"]

_log = Logger(namespace="novasvc.periodic")


def _request_id(context: Any) -> Optional[str]:
    """
    @return: the C{request_id} of a task's context (a
        L{novasvc.context.RequestContext}), or C{None} when it has none.
    """
    request_id = getattr(context, "request_id", None)
    return request_id if isinstance(request_id, str) else None


def _error_format(context: Any) -> str:
    """
    @return: the format of a task's error line: with the context's request
        id when it has one.
    """
    if _request_id(context) is None:
        return "Error during {task}"
    return "Error during {task} (request {request_id})"


class _Random(Protocol):
    def random(self) -> float: ...


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

    extra: List[Task] = attrs.field(factory=list)
    last_run: Dict[str, Optional[float]] = attrs.field(factory=dict)
    running: Dict[str, Deferred] = attrs.field(factory=dict)
    waiters: List[Deferred] = attrs.field(factory=list)


class PeriodicTasks:
    """
    Mixin that collects the L{periodic_task
    <novasvc.periodic.periodic_task>} methods of each subclass and runs those
    that are due (oslo.service's C{PeriodicTasks}, without its metaclass and
    its C{conf} argument).

    Subclasses inherit their parents' tasks; redefining the attribute
    overrides (or, undecorated, drops) the inherited task. State is created
    on first use, so a subclass that forgets C{super().__init__()} still
    works.

    Class and instance attributes a user may set:

    @ivar clock: the time source (C{seconds()}), see L{clock}.
    @ivar run_external_periodic_tasks: C{False} skips tasks declared with
        C{external_process_ok=True} (oslo's option of the same name).
    @type run_external_periodic_tasks: C{bool}
    @ivar periodic_metrics: where runs are counted, see L{periodic_metrics}.
    """

    run_external_periodic_tasks: bool = True

    _periodic_tasks: Tuple[Task, ...] = ()
    _periodic_clock: Optional[IReactorTime] = None
    _periodic_recorder: Optional[Recorder] = None
    _periodic_random: _Random = random

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._periodic_tasks = collect(cls, PeriodicTasks)

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
        return global_reactor_if_none(self._periodic_clock)

    @clock.setter
    def clock(self, clock: Optional[IReactorTime]) -> None:
        self._periodic_clock = clock

    @property
    def periodic_metrics(self) -> Recorder:
        """
        The L{Recorder} counting task runs. Set it to use another; until
        then it is the process's (L{novasvc.metrics.get_recorder}).
        """
        recorder = self._periodic_recorder
        return get_recorder() if recorder is None else recorder

    @periodic_metrics.setter
    def periodic_metrics(self, recorder: Optional[Recorder]) -> None:
        self._periodic_recorder = recorder

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

        @param function: decorated with L{periodic_task
            <novasvc.periodic.periodic_task>}. A plain function is called as C{function(self, context)}, a bound method as
            C{method(context)}.
        @return: C{True} if registered, C{False} if the decorator disabled it
            (C{enabled=False} or negative spacing; logged at INFO).
        @raise TypeError: when C{function} was not decorated.
        @raise ValueError: when a task of the same name is registered.
        """
        spec = spec_of(function)
        if spec is None:
            raise TypeError(f"{function!r} is not decorated with @periodic_task")
        task = task_from(spec, function, type(self).__name__, None, log=True)
        if task is None:
            return False
        state = self._periodic_state()
        if any(t.name == task.name for t in self._periodic_all(state)):
            raise ValueError(
                f"{type(self).__qualname__} already has a periodic task named {task.name!r}"
            )
        state.extra.append(task)
        return True

    def _periodic_all(self, state: _State) -> Tuple[Task, ...]:
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
        C{"Error during <Class>.<task>"}, followed by C{"(request
        <request_id>)"} when the context has a request id (as the
        L{novasvc.context.RequestContext} the service passes does), and the
        other tasks still run; an
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
        self, state: _State, task: Task, context: Any, full_name: str, raise_on_error: bool
    ) -> None:
        clock = self.clock
        start = clock.seconds()
        try:
            if task.bound:
                result = task.function(context)
            else:
                result = task.function(self, context)
        except Exception:
            self.periodic_metrics.periodic_task_run(full_name, clock.seconds() - start, True)
            if raise_on_error:
                raise
            _log.failure(_error_format(context), task=full_name, request_id=_request_id(context),
                         level=LogLevel.error)
            return
        if isinstance(result, Deferred):
            running = result
        elif inspect.iscoroutine(result):
            running = Deferred.fromCoroutine(result)
        else:
            self.periodic_metrics.periodic_task_run(full_name, clock.seconds() - start, False)
            return
        state.running[task.name] = running
        running.addBoth(self._periodic_finished, state, task.name, full_name, running, start,
                        context)

    def _periodic_finished(
        self, result: object, state: _State, name: str, full_name: str, running: Deferred,
        start: float, context: Any = None,
    ) -> None:
        if state.running.get(name) is running:
            del state.running[name]
        self.periodic_metrics.periodic_task_run(full_name, self.clock.seconds() - start,
                                                isinstance(result, Failure))
        if isinstance(result, Failure):
            _log.failure(
                _error_format(context), failure=result, task=full_name,
                request_id=_request_id(context), level=LogLevel.error,
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
