# -*- test-case-name: tests.test_process_workers_child -*-
"""
The worker's side: who it is (L{WorkerIdentity}, from the environment the
supervising parent sets), its link to the parent (L{ParentLink}: it says
when it is ready and stopping, and it stops when the parent is gone), and
the listening sockets it inherits (L{inherited_port}).

A worker process gets from its parent:

  - C{NOVASVC_WORKER_INDEX} and C{NOVASVC_WORKER_COUNT}: it is worker K
    (1-based) of N;
  - C{NOVASVC_WORKER_CHANNEL_FD}: a file descriptor, a stream socket whose
    other end the parent holds: the worker writes C{READY=1} and
    C{STOPPING=1} lines to it (systemd's words), and reads its end of file
    when the parent has died;
  - C{NOVASVC_WORKER_LISTEN_FDS}: the listening sockets it shares with the
    other workers, as comma-separated file descriptors (maybe empty).
"""

import os
import signal
import socket
from typing import Any, Callable, Mapping, Optional, Tuple

import attrs
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc.process.workers.sockets import adopt_listening_port

__all__ = ["ENV_CHANNEL_FD", "ENV_COUNT", "ENV_INDEX", "ENV_LISTEN_FDS", "ParentLink",
           "WorkerIdentity", "inherited_port"]

_log = Logger()

ENV_INDEX = "NOVASVC_WORKER_INDEX"
ENV_COUNT = "NOVASVC_WORKER_COUNT"
ENV_CHANNEL_FD = "NOVASVC_WORKER_CHANNEL_FD"
ENV_LISTEN_FDS = "NOVASVC_WORKER_LISTEN_FDS"


def _number(environ: Mapping[str, str], name: str, minimum: int) -> int:
    text = environ.get(name, "")
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {text[:40]!r}")
    return value


@attrs.frozen
class WorkerIdentity:
    """
    Which worker this process is, as its parent said.

    @ivar index: K in "worker K of N" (C{int}, 1-based).
    @ivar count: N (C{int}).
    @ivar channel_fd: the file descriptor of the link to the parent, or
        C{None}.
    @ivar listen_fds: the inherited listening sockets' file descriptors,
        in the order the parent gave them (C{tuple} of C{int}).
    """

    index: int
    count: int
    channel_fd: Optional[int] = None
    listen_fds: Tuple[int, ...] = ()

    @classmethod
    def from_environ(cls, environ: Optional[Mapping[str, str]] = None) -> Optional["WorkerIdentity"]:
        """
        @param environ: the environment (default: C{os.environ}).
        @return: the identity, or C{None} when C{NOVASVC_WORKER_INDEX} is
            unset (not a worker).
        @raise ValueError: when a variable is set but malformed.
        """
        if environ is None:
            environ = os.environ
        if ENV_INDEX not in environ:
            return None
        index = _number(environ, ENV_INDEX, 1)
        count = _number(environ, ENV_COUNT, index)
        channel = _number(environ, ENV_CHANNEL_FD, 0) if environ.get(ENV_CHANNEL_FD) else None
        fds: Tuple[int, ...] = ()
        if environ.get(ENV_LISTEN_FDS):
            parts = environ[ENV_LISTEN_FDS].split(",")
            if not all(part.strip().isdigit() for part in parts):
                raise ValueError(f"{ENV_LISTEN_FDS} must be file descriptors separated by commas, "
                                 f"got {environ[ENV_LISTEN_FDS][:40]!r}")
            fds = tuple(int(part) for part in parts)
        return cls(index, count, channel, fds)

    def environ(self) -> dict:
        """
        @return: the environment variables that give this identity.
        """
        env = {ENV_INDEX: str(self.index), ENV_COUNT: str(self.count),
               ENV_LISTEN_FDS: ",".join(str(fd) for fd in self.listen_fds)}
        if self.channel_fd is not None:
            env[ENV_CHANNEL_FD] = str(self.channel_fd)
        return env


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class _ChildEnd(Protocol):
    def __init__(self, link: "ParentLink") -> None:
        self._link = link

    def dataReceived(self, data: bytes) -> None:
        pass  # the parent says nothing yet

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._link._lost()


class ParentLink:
    """
    The worker's end of its link to the supervising parent. It has the
    methods of L{novasvc.process.systemd.Notifier} that
    L{novasvc.process.launcher.HangupService} calls, so it is given as the
    launcher's C{notifier}: the parent hears C{READY=1} and C{STOPPING=1}.

    When the parent's end closes before this worker began to stop (the
    parent died, even by SIGKILL), the worker stops as on SIGTERM: it
    drains its work and exits, instead of living on without a parent.
    """

    def __init__(self, reactor: Any, fd: int,
                 on_parent_gone: Optional[Callable[[], None]] = None) -> None:
        """
        @param reactor: provides C{adoptStreamConnection}.
        @param fd: the link's file descriptor; it is adopted, then closed
            (the reactor keeps its own copy).
        @param on_parent_gone: what to do when the parent is gone (default:
            send SIGTERM to this process, so the launcher stops it
            gracefully).
        """
        self._on_parent_gone = on_parent_gone or _terminate_self
        self._stopping = False
        self._gone = False
        self._protocol = _ChildEnd(self)
        reactor.adoptStreamConnection(fd, socket.AF_UNIX, Factory.forProtocol(lambda: self._protocol))
        os.close(fd)

    def _send(self, line: str) -> bool:
        transport = self._protocol.transport
        if transport is None or self._gone:
            return False
        transport.write(line.encode("ascii") + b"\n")
        return True

    def ready(self, status: Optional[str] = None, mainpid: Optional[int] = None) -> bool:
        """
        Tell the parent this worker is ready.

        @return: whether it was sent.
        """
        return self._send("READY=1")

    def stopping(self, status: Optional[str] = None) -> bool:
        """
        Tell the parent this worker is stopping; from now on the link
        closing is expected.

        @return: whether it was sent.
        """
        self._stopping = True
        return self._send("STOPPING=1")

    def status(self, text: str) -> bool:
        """
        @return: C{False}: the parent shows no status line of a worker.
        """
        return False

    def _lost(self) -> None:
        if self._gone:
            return
        self._gone = True
        if self._stopping:
            return
        _log.warn("The supervising parent process is gone: stopping as on SIGTERM")
        self._on_parent_gone()


def inherited_port(reactor: Any, factory: Factory, index: int = 0,
                   identity: Optional[WorkerIdentity] = None) -> IListeningPort:
    """
    Serve C{factory} on a listening socket inherited from the parent (the
    child-side counterpart of L{novasvc.process.workers.listen_socket}).

    @param reactor: provides C{adoptStreamPort}.
    @param index: which of the inherited sockets, in the order the parent
        gave them.
    @param identity: this worker (default: from the environment).
    @return: the listening port; stopping it closes this worker's copy of
        the socket only.
    @raise ValueError: when this process is not a worker or has no such
        socket.
    """
    if identity is None:
        identity = WorkerIdentity.from_environ()
    if identity is None:
        raise ValueError(f"not a worker process: {ENV_INDEX} is not set")
    if not 0 <= index < len(identity.listen_fds):
        raise ValueError(f"worker {identity.index} inherited {len(identity.listen_fds)} listening "
                         f"sockets, there is no socket {index}")
    return adopt_listening_port(reactor, identity.listen_fds[index], factory)
