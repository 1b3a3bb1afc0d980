# -*- test-case-name: tests.test_process_workers_twistd -*-
"""
C{twistd novasvc --workers N} (or C{workers: N} in the file), N > 1: the
process twistd runs becomes the supervising parent (L{make_supervisor}): it
loads no manager and opens no broker or database connection of its own,
and runs N workers, each C{twistd -n --pidfile= novasvc <the same options>
--worker-index K}, a whole service (L{make_worker}).

The workers share the service's C{services} row (same host and binary: the
first creates it, the others find it) and consume the same C{<topic>} and
C{<topic>.<host>} queues, so RabbitMQ spreads requests over them; each has
its own fanout queue, so a fanout cast reaches every worker (as with
oslo.messaging's workers).
"""

import signal
import sys
from typing import Any, List, Sequence

from twisted.application.service import IService

from novasvc.process.launcher import HangupService
from novasvc.process.log import LogControl
from novasvc.process.workers._pool import KILL_GRACE, WorkerPool
from novasvc.process.workers._spawn import ProcessSpawner
from novasvc.process.workers.child import ParentLink, WorkerIdentity

__all__ = ["make_supervisor", "make_worker", "worker_argv"]

# What the twistd script runs ("python -m twisted.scripts.twistd" does
# not), after ignoring SIGINT: a Ctrl-C to the process group is the
# parent's to handle, also while the worker still imports twistd (the
# reactor, once it runs, does not handle a SIGINT that is ignored).
_TWISTD = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
           "from twisted.scripts.twistd import run; run()")


def worker_argv(plugin_args: Sequence[str], index: int, executable: str = sys.executable,
                plugin: str = "novasvc") -> List[str]:
    """
    @param plugin_args: the options the parent's plugin was given.
    @param index: the worker's index (1-based).
    @param executable: the Python interpreter (default: this one).
    @param plugin: the twistd plugin (C{novasvc}, or C{novasvc-api} for
        the API's workers).
    @return: the command of worker C{index}: twistd in the foreground
        without a pid file, its log on standard output (which the parent
        reads), the same plugin options, and C{--worker-index}; SIGINT is
        ignored from its first line of Python on (see L{make_worker}).
    """
    return [executable, "-c", _TWISTD, "-n", "--pidfile=", plugin, *plugin_args,
            f"--worker-index={index}"]


def make_supervisor(options: Any, reactor: Any) -> IService:
    """
    The parent of C{options.settings.workers} workers: a L{WorkerPool} of
    processes running L{worker_argv}, inside a
    L{novasvc.process.launcher.HangupService} that is ready (systemd's C{READY=1},
    daemon mode's parent told 0) once every worker is ready, forwards
    SIGHUP, and on SIGTERM stops every worker and exits 0 once they have
    ended. A worker still running C{graceful_shutdown_timeout} + 10 s
    (L{KILL_GRACE}) after the SIGTERM gets SIGKILL (never, when the
    timeout is 0: no limit).

    @param options: parsed L{novasvc.process.tap.Options}; C{options.argv} are its
        arguments.
    @param reactor: the reactor.
    """
    settings = options.settings
    argv = list(options.argv)
    spawner = ProcessSpawner(reactor, lambda index, count: worker_argv(argv, index))
    timeout = settings.graceful_shutdown_timeout
    pool = WorkerPool(spawner, settings.workers, clock=reactor,
                      stop_timeout=timeout + KILL_GRACE if timeout else None)
    return HangupService(pool, reactor, LogControl.from_options(options, reactor),
                         daemon=getattr(options, "parent", None))


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_worker(service: IService, options: Any, reactor: Any) -> IService:
    """
    One worker around C{service}: when the parent started it (its
    L{WorkerIdentity} is in the environment), it logs JSON lines on
    standard output for the parent to relay, tells the parent it is ready
    through a L{ParentLink} (and stops when the parent is gone), and
    ignores SIGINT (a Ctrl-C in a terminal reaches the whole process
    group: the parent alone decides, and sends SIGTERM).

    @param service: the L{novasvc.core.service.Service}.
    @param options: parsed L{novasvc.process.tap.Options}.
    @param reactor: the reactor.
    @raise SystemExit: when the environment names a malformed identity.
    """
    try:
        identity = WorkerIdentity.from_environ()
    except ValueError as e:
        raise SystemExit(f"novasvc: error: {e}") from None
    parent = getattr(options, "parent", None)
    if identity is None:
        return HangupService(service, reactor, LogControl.from_options(options, reactor), daemon=parent)
    link = None
    if identity.channel_fd is not None:
        link = ParentLink(reactor, identity.channel_fd)
    reactor.callWhenRunning(_ignore_sigint)
    return HangupService(service, reactor, LogControl.from_options(options, reactor, log_format="json"),
                         notifier=link, daemon=parent, interrupt=False)
