# -*- test-case-name: tests.test_process_workers_spawn -*-
"""
L{ProcessSpawner}: starts worker processes with C{reactor.spawnProcess}
for a L{novasvc.process.workers.WorkerPool}.

Each worker gets (see L{novasvc.process.workers.child}):

  - standard input: a pipe closed at once (end of file);
  - standard output and error: pipes to the parent, whose lines the parent
    logs as the worker's (L{OutputRelay});
  - file descriptor 3: one end of a socket pair, the other end in the
    parent: the worker writes C{READY=1} there, and sees its end of file
    when the parent dies;
  - file descriptors 4, 5...: the shared listening sockets, if any;
  - the parent's environment without systemd's C{NOTIFY_SOCKET},
    C{LISTEN_FDS} and C{LISTEN_PID} (only the parent talks to systemd),
    plus the C{NOVASVC_WORKER_*} variables.
"""

import os
import socket
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from novasvc.process.workers._pool import IWorkerProcess, IWorkerSpawner, WorkerExit
from novasvc.process.workers._relay import OutputRelay
from novasvc.process.workers.child import WorkerIdentity
from novasvc.process.workers.sockets import ListeningSocket

__all__ = ["CHANNEL_FD", "ProcessSpawner"]

_log = Logger()

#: The worker's file descriptor of its link to the parent.
CHANNEL_FD = 3
#: Environment variables a worker does not inherit.
_WITHHELD = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")

Argv = Union[Sequence[str], Callable[[int, int], Sequence[str]]]


class _ParentEnd(LineOnlyReceiver):
    """
    The parent's end of a worker's link: C{READY=1} calls C{ready},
    C{STOPPING=1} calls C{stopping}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096

    def __init__(self, ready: Callable[[], None], stopping: Callable[[], None]) -> None:
        self._calls = {b"READY=1": ready, b"STOPPING=1": stopping}

    def lineReceived(self, line: bytes) -> None:
        call = self._calls.get(line.strip())
        if call is not None:
            call()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.transport.loseConnection()


class _WorkerProtocol(ProcessProtocol):
    def __init__(self, relay: OutputRelay, exited: Callable[[WorkerExit], None]) -> None:
        self._relay = relay
        self._exited = exited
        self.channel: Optional[Any] = None

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self._relay.feed(childFD, data)

    def processEnded(self, reason: Failure) -> None:
        self._relay.flush()
        if self.channel is not None:
            self.channel.loseConnection()
        status = reason.value
        self._exited(WorkerExit(code=getattr(status, "exitCode", None), signal=getattr(status, "signal", None),
                                last_error=self._relay.last_error))


@implementer(IWorkerProcess)
class _Process:
    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.pid: int = transport.pid

    def signal(self, name: str) -> None:
        self._transport.signalProcess(name)


@implementer(IWorkerSpawner)
class ProcessSpawner:
    """
    Starts a worker as a process of its own.
    """

    def __init__(self, reactor: Any, argv: Argv, *, env: Optional[Mapping[str, str]] = None,
                 sockets: Sequence[Union[ListeningSocket, socket.socket]] = (),
                 path: Optional[str] = None, observer: Optional[Any] = None) -> None:
        """
        @param reactor: provides C{IReactorProcess} and C{IReactorSocket}.
        @param argv: the command: a sequence (C{argv[0]} is looked up on
            C{PATH}), or a function of the worker's index (1-based) and the
            count returning one.
        @param env: the environment (default: this process's), which the
            worker gets as described in the module docstring.
        @param sockets: listening sockets every worker inherits, as file
            descriptors 4, 5... in this order (see
            L{novasvc.process.workers.listen_socket}).
        @param path: the working directory (default: this process's).
        @param observer: where the workers' log lines go (default: the
            global log publisher).
        """
        self._reactor = reactor
        self._argv = argv
        self._env = env
        self._sockets = list(sockets)
        self._path = path
        self._observer = observer

    def _command(self, index: int, count: int) -> List[str]:
        argv = self._argv(index, count) if callable(self._argv) else self._argv
        return [str(arg) for arg in argv]

    def _environ(self, index: int, count: int) -> Dict[str, str]:
        base = os.environ if self._env is None else self._env
        env = {key: value for key, value in base.items() if key not in _WITHHELD}
        listen = tuple(range(CHANNEL_FD + 1, CHANNEL_FD + 1 + len(self._sockets)))
        env.update(WorkerIdentity(index, count, CHANNEL_FD, listen).environ())
        return env

    def spawn(self, index: int, count: int, ready: Callable[[], None], stopping: Callable[[], None],
              exited: Callable[[WorkerExit], None]) -> IWorkerProcess:
        """
        See L{IWorkerSpawner.spawn}.
        """
        argv = self._command(index, count)
        relay = OutputRelay(index, self._observer)
        protocol = _WorkerProtocol(relay, exited)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fds: Dict[int, Any] = {0: "w", 1: "r", 2: "r", CHANNEL_FD: child_end.fileno()}
            for n, shared in enumerate(self._sockets):
                fds[CHANNEL_FD + 1 + n] = shared.fileno()
            try:
                transport = self._reactor.spawnProcess(
                    protocol, argv[0], argv, env=self._environ(index, count), path=self._path,
                    childFDs=fds)
            finally:
                child_end.close()
            relay.pid = transport.pid
            try:
                protocol.channel = self._adopt(parent_end, _ParentEnd(ready, stopping))
            except Exception:
                transport.signalProcess("KILL")  # a worker its parent cannot hear is no use
                raise
        finally:
            parent_end.close()
        transport.closeStdin()
        return _Process(transport)

    def _adopt(self, end: socket.socket, protocol: _ParentEnd) -> Any:
        self._reactor.adoptStreamConnection(end.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: protocol))
        return protocol.transport
