# -*- test-case-name: tests.test_process_workers_pool -*-
"""
Worker processes: a supervising parent running N copies of a service, as
Nova's C{service.serve(server, workers=N)} on oslo.service's
C{ProcessLauncher}.

The parent's side:

  - L{WorkerPool}: starts N workers, restarts one that ends (with a
    L{Backoff}), forwards SIGHUP, stops them all (SIGTERM, then SIGKILL
    after a deadline);
  - L{ProcessSpawner}: how the pool starts a worker process (a command,
    its environment, the listening sockets it inherits; the workers' log
    lines are logged by the parent, naming the worker);
  - L{listen_socket}: a listening socket the parent binds for its workers
    to share (C{tcp:PORT:interface=ADDR}; port 0 allowed).

The worker's side (L{novasvc.process.workers.child}): L{WorkerIdentity} (worker K
of N), L{ParentLink} (it tells the parent it is ready; it stops when the
parent is gone), L{inherited_port} (serve a factory on the shared socket).

C{twistd novasvc --workers N} uses them through
L{novasvc.process.workers.twistd}.
"""

from novasvc.process.workers._backoff import Backoff
from novasvc.process.workers._pool import (
    HURRY_GRACE,
    KILL_GRACE,
    IWorkerProcess,
    IWorkerSpawner,
    WorkerExit,
    WorkerPool,
    WorkerStartError,
)
from novasvc.process.workers._spawn import ProcessSpawner
from novasvc.process.workers.child import ParentLink, WorkerIdentity, inherited_port
from novasvc.process.workers.sockets import ListeningSocket, adopt_listening_port, listen_socket

__all__ = [
    "Backoff",
    "HURRY_GRACE",
    "IWorkerProcess",
    "IWorkerSpawner",
    "KILL_GRACE",
    "ListeningSocket",
    "ParentLink",
    "ProcessSpawner",
    "WorkerExit",
    "WorkerIdentity",
    "WorkerPool",
    "WorkerStartError",
    "adopt_listening_port",
    "inherited_port",
    "listen_socket",
]
