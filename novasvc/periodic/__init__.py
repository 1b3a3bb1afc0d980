# -*- test-case-name: tests.test_periodic,tests.test_periodic_decorator,tests.test_periodic_runner,tests.test_periodic_timer -*-
"""
Periodic tasks: the L{periodic_task} decorator, the L{PeriodicTasks} mixin
that collects and runs decorated methods, and L{PeriodicTaskService}, the
dynamic timer that calls the runner.

One module a job, public only through this package:
L{novasvc.periodic._decorator} (the decorator and the per-class collector),
L{novasvc.periodic._runner} (the runner) and L{novasvc.periodic._timer} (the
timer service).

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

Layer: beside L{novasvc.rpc} and L{novasvc.db}, above the metrics and the
base modules; it imports neither of its siblings.
"""

from novasvc.periodic._decorator import DEFAULT_INTERVAL, periodic_task
from novasvc.periodic._runner import PeriodicTasks
from novasvc.periodic._timer import PeriodicTaskService, fuzzy_delay

__all__ = [
    "DEFAULT_INTERVAL",
    "periodic_task",
    "PeriodicTasks",
    "PeriodicTaskService",
    "fuzzy_delay",
]
