"""
Vhosts of the shared RabbitMQ node (127.0.0.1:5672) for integration tests:
each test gets a vhost no other test used, so names (topics, exchanges,
queues) never meet between tests, and closing a vhost's connections
touches that test alone.

    vhost = yield make_vhost(self)        # deleted after the test's run
    transport = AMQPTransport(rabbit_url(vhost), ...)

Each C{rabbitmqctl} call starts an Erlang VM (about half a second of CPU),
so vhosts are made in batches with one call (C{import_definitions}, made
lazily by the first test that finds none left) and deleted in batches with
one call too: in the background once a batch of tests has used them, and
at exit for the rest. Their names, C{novasvc-test-<pid>-<hex>-<n>}, are
this process's own, so parallel runs and trial's workers never collide.

Outside CI a machine without the broker or C{rabbitmqctl} skips the test;
in CI (C{CI=true}) it fails it, as L{tests._services} does.
"""

import atexit
import json
import os
import shutil
import subprocess
import uuid
from typing import Any, List

from twisted.internet import defer, error, protocol, reactor
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests._services import in_ci, require_service

__all__ = ["make_vhost", "rabbitmqctl"]

HOST, PORT = "127.0.0.1", 5672
#: vhosts made by one C{rabbitmqctl} call, and deleted by one.
BATCH = 24


class _Collect(protocol.ProcessProtocol):
    def __init__(self, stdin: bytes, done: defer.Deferred) -> None:
        self._stdin = stdin
        self._done = done
        self.out: List[bytes] = []
        self.err: List[bytes] = []

    def connectionMade(self) -> None:
        if self._stdin:
            self.transport.write(self._stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        code = reason.value.exitCode if isinstance(reason.value, (error.ProcessDone, error.ProcessTerminated)) else 1
        self._done.callback((b"".join(self.out).decode(), b"".join(self.err).decode(), code))


def rabbitmqctl(*args: str, stdin: bytes = b"") -> defer.Deferred:
    """
    Run C{rabbitmqctl -q ARGS} against the shared node without blocking the
    reactor.

    @param stdin: written to its standard input.
    @return: a C{Deferred} firing with C{(stdout, stderr, exit code)}.
    """
    path = shutil.which("rabbitmqctl")
    if path is None:
        return defer.fail(RuntimeError("rabbitmqctl not found"))
    done: defer.Deferred = defer.Deferred()
    reactor.spawnProcess(_Collect(stdin, done), path, [path, "-q", *args], env=dict(os.environ))
    return done


def _unavailable(message: str) -> None:
    if in_ci():
        raise AssertionError(message)
    raise unittest.SkipTest(message)


class _Pool:
    """
    This process's vhosts: those made and not handed out yet, those used and
    not deleted yet, and the deletions running.
    """

    def __init__(self) -> None:
        self._prefix = f"novasvc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._made = 0
        self._ready: List[str] = []
        self._used: List[str] = []
        self._lock = defer.DeferredLock()
        self._deleting: List[subprocess.Popen] = []

    @defer.inlineCallbacks
    def take(self) -> Any:
        """
        @return: a C{Deferred} firing with a vhost nobody used, that
            C{guest} may use, made with a batch if none is left.
        """
        yield self._lock.run(self._fill)
        vhost = self._ready.pop(0)
        self._used.append(vhost)
        return vhost

    @defer.inlineCallbacks
    def _fill(self) -> Any:
        if self._ready:
            return
        names = [f"{self._prefix}-{self._made + n}" for n in range(BATCH)]
        self._made += BATCH
        definitions = {
            "vhosts": [{"name": name} for name in names],
            "permissions": [{"user": "guest", "vhost": name, "configure": ".*", "write": ".*", "read": ".*"}
                            for name in names],
        }
        out, err, code = yield rabbitmqctl("import_definitions", "--format", "json",
                                           stdin=json.dumps(definitions).encode())
        if code != 0:
            # Older CLIs: two commands for one vhost instead.
            names = names[:1]
            out, err, code = yield rabbitmqctl("add_vhost", names[0])
            if code == 0:
                out, err, code = yield rabbitmqctl("set_permissions", "-p", names[0], "guest", ".*", ".*", ".*")
        if code != 0:
            _unavailable(f"cannot make a RabbitMQ vhost with rabbitmqctl: {err.strip() or out.strip()}")
        self._ready.extend(names)

    def release(self) -> None:
        """
        A test that took a vhost is over (its transports are stopped): once a
        batch of used vhosts is there, delete them in the background.
        """
        self._deleting[:] = [process for process in self._deleting if process.poll() is None]
        if len(self._used) >= BATCH:
            self._deleting.append(self._delete(self._used))
            self._used = []

    def _delete(self, vhosts: List[str]) -> subprocess.Popen:
        names = ",".join(f'<<"{vhost}">>' for vhost in vhosts)
        expression = f'[rabbit_vhost:delete(V, <<"novasvc-tests">>) || V <- [{names}]].'
        return subprocess.Popen([shutil.which("rabbitmqctl") or "rabbitmqctl", "-q", "eval", expression],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self) -> None:
        """
        Delete every vhost left (used or not), and wait (with a deadline)
        for the deletions.
        """
        left = self._used + self._ready
        self._used, self._ready = [], []
        if left and shutil.which("rabbitmqctl") is not None:
            self._deleting.append(self._delete(left))
        for process in self._deleting:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


_POOL = _Pool()
atexit.register(_POOL.close)


@defer.inlineCallbacks
def make_vhost(case: unittest.TestCase) -> Any:
    """
    Give C{case} a vhost of the shared node of its own, deleted after it.

    @return: a C{Deferred} firing with its name.
    @raise SkipTest: outside CI, when the broker or C{rabbitmqctl} is missing.
    @raise AssertionError: in CI, when they are.
    """
    require_service("RabbitMQ", HOST, PORT)
    if shutil.which("rabbitmqctl") is None:
        _unavailable("rabbitmqctl is needed to make the tests' vhosts")
    vhost = yield _POOL.take()
    case.addCleanup(_POOL.release)
    return vhost
