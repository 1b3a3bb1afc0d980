"""
Tests for L{novasvc.process.workers._spawn}: real worker processes started by a
L{WorkerPool} in the test's own reactor.
"""

import json
import os
import signal
import sys
from typing import Any, Dict, List

from twisted.internet import defer, reactor
from twisted.logger import formatEvent
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from novasvc.process.workers import ProcessSpawner, WorkerExit, WorkerPool, listen_socket
from novasvc.process.workers._spawn import CHANNEL_FD
from tests._services import poll
from tests.test_core_service_process import _environ


class _Events:
    """
    Collects the log events the workers' output turns into.
    """

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []

    def __call__(self, event: Dict[str, Any]) -> None:
        self.events.append(event)

    def texts(self) -> List[str]:
        return [formatEvent(event) for event in self.events]


class SharedPortTests(TestCase):
    """
    Two workers answer on one port the parent bound; a killed one is
    replaced and the port keeps answering.
    """

    timeout = 120

    def setUp(self) -> None:
        self.bound = listen_socket("tcp:0:interface=127.0.0.1")
        self.addCleanup(self.bound.close)
        self.logged = _Events()
        spawner = ProcessSpawner(reactor, [sys.executable, "-m", "tests._pid_web"], env=_environ(),
                                 sockets=[self.bound], observer=self.logged)
        self.pool = WorkerPool(spawner, 2, clock=reactor, stop_timeout=30)
        self.agent = Agent(reactor)

    def tearDown(self) -> defer.Deferred:
        if self.pool.running:
            return self.pool.stopService()
        for pid in self.pool.pids():
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        return None

    @defer.inlineCallbacks
    def get_pid(self) -> Any:
        response = yield self.agent.request(b"GET", f"http://127.0.0.1:{self.bound.port}/".encode())
        return int((yield readBody(response)))

    def answer_from(self, pids, seen):
        """
        @return: a C{Deferred} firing once GET requests were answered by
            every pid of C{pids} (each answer added to C{seen}).
        """
        @defer.inlineCallbacks
        def asked():
            seen.append((yield self.get_pid()))
            return set(pids) <= set(seen)

        return poll(asked, f"answers from {sorted(pids)}", interval=0.01)

    @defer.inlineCallbacks
    def test_two_workers_one_port(self) -> None:
        """
        When two workers share the parent's socket, then both answer on its
        port; when one is SIGKILLed, then a new pid replaces it, the port
        answers meanwhile and after, and the stop ends both with status 0.
        """
        yield self.pool.startService()
        first = self.pool.pids()
        self.assertNotIn(None, first)
        seen: List[int] = []
        yield self.answer_from(first, seen)
        self.assertLessEqual(set(seen), set(first))

        os.kill(first[0], signal.SIGKILL)
        yield poll(lambda: self.pool.pids()[0] is None, "the parent saw the worker end", interval=0.01)
        answered_meanwhile = yield self.get_pid()  # the restart waits 1 s
        self.assertEqual(answered_meanwhile, first[1])
        yield poll(lambda: None not in self.pool.pids(), "the killed worker was replaced", interval=0.05)
        second = self.pool.pids()
        self.assertEqual(second[1], first[1])
        self.assertNotIn(second[0], first)
        yield poll(lambda: self.pool._slots[0].ready, "the new worker is ready", interval=0.05)
        after: List[int] = []
        yield self.answer_from(second, after)
        self.assertNotIn(first[0], after)

        yield self.pool.stopService()
        texts = self.logged.texts()
        self.assertIn(f"worker 1 of 2 serving on port {self.bound.port}", texts)
        systems = {event["log_system"] for event in self.logged.events}
        self.assertIn("worker-1 __main__#info", systems)
        self.assertIn("worker-2 __main__#info", systems)
        print(f"\n  pids {first} answered; SIGKILL {first[0]}; then {second} answered; "
              f"{len(seen) + len(after)} requests")


class SpawnTests(TestCase):
    """
    What a worker process gets from L{ProcessSpawner}, and how its end is
    reported.
    """

    timeout = 60

    def spawn(self, code: str, sockets=(), env=None):
        """
        Run C{python -c code} as worker 1 of 3.

        @return: a C{Deferred} firing with its L{WorkerExit}, and the
            events its output became.
        """
        logged = _Events()
        base = {**_environ(), **(env or {})}
        spawner = ProcessSpawner(reactor, lambda index, count: [sys.executable, "-c", code], env=base,
                                 sockets=sockets, observer=logged)
        ended: defer.Deferred = defer.Deferred()
        spawner.spawn(1, 3, lambda: None, lambda: None, ended.callback)
        return ended, logged

    @defer.inlineCallbacks
    def test_environment_and_descriptors(self) -> None:
        """
        When a worker starts, then it knows it is worker 1 of 3, its link
        is descriptor 3 (a Unix stream socket) and the shared socket
        descriptor 4; it has no other descriptor beyond the standard ones,
        no systemd variable, and standard input at end of file.
        """
        bound = listen_socket("tcp:0:interface=127.0.0.1")
        self.addCleanup(bound.close)
        code = (
            "import json, os, socket, sys\n"
            "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n"
            "kinds = {fd: socket.socket(fileno=os.dup(fd)).family.name for fd in (3, 4)}\n"
            "env = {k: v for k, v in os.environ.items() if k.startswith(('NOVASVC_WORKER', 'NOTIFY', 'LISTEN'))}\n"
            "print(json.dumps({'fds': fds, 'kinds': kinds, 'env': env, 'stdin': sys.stdin.read()}))\n"
        )
        ended, logged = self.spawn(code, sockets=[bound],
                                   env={"NOTIFY_SOCKET": "/run/x", "LISTEN_FDS": "1", "LISTEN_PID": "1"})
        how = yield ended
        self.assertEqual(how, WorkerExit(code=0))
        [text] = logged.texts()
        seen = json.loads(text)
        self.assertEqual(seen["env"], {"NOVASVC_WORKER_INDEX": "1", "NOVASVC_WORKER_COUNT": "3",
                                       "NOVASVC_WORKER_CHANNEL_FD": str(CHANNEL_FD),
                                       "NOVASVC_WORKER_LISTEN_FDS": "4"})
        self.assertEqual(seen["kinds"], {"3": "AF_UNIX", "4": "AF_INET"})
        self.assertEqual([fd for fd in seen["fds"] if fd > 4], [5])  # listdir's own descriptor
        self.assertEqual(seen["stdin"], "")

    @defer.inlineCallbacks
    def test_exit_status_and_last_error(self) -> None:
        """
        When a worker writes an error and exits 3, then its exit has status
        3 and that line.
        """
        ended, logged = self.spawn("import sys; sys.stderr.write('cannot go on\\n'); sys.exit(3)")
        self.assertEqual((yield ended), WorkerExit(code=3, last_error="cannot go on"))
        self.assertEqual([e["log_system"] for e in logged.events], ["worker-1 stderr"])

    @defer.inlineCallbacks
    def test_killed(self) -> None:
        """
        When a worker is killed by a signal, then its exit names the signal.
        """
        ended, _ = self.spawn("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        self.assertEqual((yield ended), WorkerExit(signal=signal.SIGKILL))

    def test_missing_program(self) -> None:
        """
        When the program does not exist, then the spawn raises (the pool
        logs it and tries again later).
        """
        spawner = ProcessSpawner(reactor, ["/nonexistent/novasvc-worker"])
        self.assertRaises(OSError, spawner.spawn, 1, 1, lambda: None, lambda: None, lambda how: None)

    @defer.inlineCallbacks
    def test_link_failure_kills(self) -> None:
        """
        When the parent cannot take its end of the link, then the process
        it started is killed (it could never say it is ready) and the spawn
        raises.
        """
        class Reactor:
            def spawnProcess(self, *args: Any, **kwargs: Any) -> Any:
                return reactor.spawnProcess(*args, **kwargs)

            def adoptStreamConnection(self, *args: Any) -> Any:
                raise OSError(24, "Too many open files")

        spawner = ProcessSpawner(Reactor(), [sys.executable, "-c", "import time; time.sleep(60)"],
                                 env=_environ())
        ended: defer.Deferred = defer.Deferred()
        self.assertRaises(OSError, spawner.spawn, 1, 1, lambda: None, lambda: None, ended.callback)
        self.assertEqual((yield ended), WorkerExit(signal=signal.SIGKILL))
