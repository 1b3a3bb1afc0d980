"""
End-to-end tests of C{twistd novasvc --workers N}: a real supervising
parent and its worker processes, on RabbitMQ (a vhost per test) or the
memory transport.
"""

import os
import re
import signal
import sqlite3
import time
import uuid
from typing import Dict, List

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport
from novasvc.transport.url import TransportURL
from tests._journal_manager import read_journal
from tests._services import poll
from tests.test_core_service_process import TwistdProcessMixin
from tests._vhosts import make_vhost

_STARTED = re.compile(r"Started worker (\d+) \(pid (\d+)\) of (\d+)")


def _running(pid: int) -> bool:
    """
    @return: whether process C{pid} runs (a zombie does not).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class _WorkersMixin(TwistdProcessMixin):
    def workers(self) -> Dict[int, int]:
        """
        @return: worker index -> pid of its latest process, from the
            parent's log.
        """
        return {int(index): int(pid) for index, pid, _ in _STARTED.findall(self.output())}

    def ready(self, index: int, pid: int) -> bool:
        return f"worker {index} (pid {pid}) is ready" in self.output()

    def all_ready(self, count: int = 2) -> defer.Deferred:
        return poll(lambda: f"All {count} workers are ready" in self.output(), "every worker is ready",
                    interval=0.1)

    def reap_workers(self) -> None:
        """
        At cleanup, SIGKILL any worker still running.
        """
        def kill():
            for pid in self.workers().values():
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)

        self.addCleanup(kill)


class RPCWorkersProcessTests(_WorkersMixin, TestCase):
    """
    Two RPC workers of one service on RabbitMQ.
    """

    timeout = 240

    @defer.inlineCallbacks
    def setUp(self):
        vhost = yield make_vhost(self)
        self.url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
        self.topic = f"wk-{uuid.uuid4().hex[:8]}"
        self.dbpath = os.path.abspath(self.mktemp()) + ".sqlite"

    def client(self, timeout: float = 30) -> RPCClient:
        transport = AMQPTransport(TransportURL.parse(self.url), reactor=reactor)
        transport.start()
        self.addCleanup(transport.stop)
        return RPCClient(transport, Target(topic=self.topic), timeout=timeout, clock=reactor)

    def start(self, *args: str):
        process = self.start_twistd(
            f"--topic={self.topic}", "--host=wk-host", f"--transport-url={self.url}",
            f"--database-connection=sqlite:///{self.dbpath}", "--workers=2", "--periodic-fuzzy-delay=0",
            *args)
        self.reap_workers()
        return process

    def rows(self) -> List[tuple]:
        db = sqlite3.connect(self.dbpath)
        try:
            return db.execute("SELECT host, binary, topic FROM services WHERE deleted = 0").fetchall()
        finally:
            db.close()

    def answered_by(self, client: RPCClient, pids, seen: List[int]) -> defer.Deferred:
        """
        Call C{pid} until every pid of C{pids} answered.
        """
        @defer.inlineCallbacks
        def asked():
            seen.append((yield client.call({}, "pid")))
            return set(pids) <= set(seen)

        return poll(asked, f"calls answered by {sorted(pids)}", interval=0.01)

    @defer.inlineCallbacks
    def test_workers_share_queues_and_row(self) -> None:
        """
        When twistd runs the echo service with --workers 2, then two worker
        processes answer calls on the same topic, there is one services
        row; SIGHUP to the parent reaches both workers' reset(); a SIGKILLed
        worker is replaced by a new process after 1 s and calls go on
        being answered, by the new one too; SIGTERM to the parent ends both
        workers and the parent with status 0.
        """
        parent = self.start("--manager=novasvc.examples.echo.EchoManager")
        yield self.all_ready()
        first = self.workers()
        self.assertEqual(sorted(first), [1, 2])
        self.assertNotIn(parent.pid, first.values())
        client = self.client()
        seen: List[int] = []
        yield self.answered_by(client, first.values(), seen)
        self.assertLessEqual(set(seen), set(first.values()))
        self.assertEqual(self.rows(), [("wk-host", f"novasvc-{self.topic}", self.topic)])

        parent.send_signal(signal.SIGHUP)
        for index in (1, 2):
            yield poll(lambda i=index: f"[worker-{i} novasvc.process.launcher#info] SIGHUP received: resetting the "
                                       f"service" in self.output(), f"worker {index} was reset", interval=0.1)

        os.kill(first[1], signal.SIGKILL)
        yield poll(lambda: self.workers()[1] != first[1], "worker 1 was started again", interval=0.1)
        self.assertIn(f"worker 1 (pid {first[1]}) was killed by signal 9 (SIGKILL) after", self.output())
        self.assertIn("; restarting in 1 s", self.output())
        meanwhile = yield client.call({}, "pid")
        self.assertIn(meanwhile, (first[2], self.workers()[1]))
        second = self.workers()
        yield poll(lambda: self.ready(1, second[1]), "the new worker 1 is ready", interval=0.1)
        after: List[int] = []
        yield self.answered_by(client, second.values(), after)
        self.assertNotIn(first[1], after)
        self.assertEqual(len(self.rows()), 1)

        parent.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(parent)
        out = self.output()
        self.assertEqual(code, 0, out)
        self.assertFalse(any(_running(pid) for pid in second.values()))
        self.assertIn(f"worker 1 (pid {second[1]}) exited with status 0", out)
        self.assertIn(f"worker 2 (pid {second[2]}) exited with status 0", out)
        self.assertNotIn("Traceback", out)
        print(f"\n  workers {first} answered {len(seen)} calls; worker 1 SIGKILLed and replaced "
              f"by pid {second[1]}; {len(after)} more calls; exit {code}")

    def journal_config(self) -> str:
        self.journal = os.path.abspath(self.mktemp())
        path = os.path.abspath(self.mktemp()) + ".yaml"
        with open(path, "w") as f:
            f.write(f"journal:\n  path: {self.journal}\n")
        return path

    def began(self, key_prefix: str) -> Dict[int, int]:
        counts: Dict[int, int] = {}
        for event, pid, key in read_journal(self.journal):
            if event == "begin" and key.startswith(key_prefix):
                counts[pid] = counts.get(pid, 0) + 1
        return counts

    @defer.inlineCallbacks
    def test_fanout_and_drain(self) -> None:
        """
        When a fanout cast is sent to two workers, then each runs it; when
        the parent gets SIGTERM while both workers run slow calls, then
        every call is answered (each worker drains its own), the workers
        exit 0 and so does the parent.
        """
        parent = self.start(f"--config={self.journal_config()}",
                            "--manager=tests._journal_manager.JournalManager")
        yield self.all_ready()
        pids = self.workers()
        client = self.client(timeout=60)
        yield client.prepare(fanout=True).cast({}, "record", key="fan")
        yield poll(lambda: sorted(self.began("fan")) == sorted(pids.values()),
                   "the fanout cast ran in both workers", interval=0.1)

        calls = [client.call({}, "record", key=f"slow{n}", seconds=4) for n in range(6)]
        yield poll(lambda: len(self.began("slow")) == 2, "both workers began slow calls", interval=0.05)
        began = time.monotonic()
        parent.send_signal(signal.SIGTERM)
        results = yield defer.gatherResults(calls)
        self.assertEqual(results, [f"slow{n}" for n in range(6)])
        code = yield self.wait_exit(parent)
        out = self.output()
        self.assertEqual(code, 0, out)
        self.assertIn("Stopping 2 workers: SIGTERM", out)
        for index in (1, 2):
            self.assertIn(f"[worker-{index} novasvc.process.launcher#info] SIGTERM received: stopping gracefully", out)
            self.assertIn(f"worker {index} (pid {pids[index]}) exited with status 0", out)
        self.assertNotIn("stopping now", out)
        ended = {key for event, _, key in read_journal(self.journal) if event == "end"}
        self.assertLessEqual({f"slow{n}" for n in range(6)}, ended)
        print(f"\n  slow calls begun per worker {self.began('slow')}; all 6 answered; parent exit {code} "
              f"{time.monotonic() - began:.1f} s after SIGTERM")


class MemoryWorkersProcessTests(_WorkersMixin, TestCase):
    """
    The parent's start failure and death, on the memory transport.
    """

    timeout = 120

    def start(self, *args: str):
        process = self.start_twistd(
            "--transport-url=memory://", "--workers=2",
            f"--database-connection=sqlite:///{os.path.abspath(self.mktemp())}.sqlite", *args)
        self.reap_workers()
        return process

    @defer.inlineCallbacks
    def test_parent_killed(self) -> None:
        """
        When the parent is SIGKILLed, then its workers do not live on: each
        sees its link close and stops.
        """
        parent = self.start("--manager=novasvc.examples.echo.EchoManager")
        yield self.all_ready()
        pids = list(self.workers().values())
        parent.send_signal(signal.SIGKILL)
        yield self.wait_exit(parent)
        yield poll(lambda: not any(_running(pid) for pid in pids), "the workers stopped", interval=0.1)

    @defer.inlineCallbacks
    def test_start_failure(self) -> None:
        """
        When the workers cannot start (their manager cannot be imported),
        then the parent logs one line giving a worker's error, stops, and
        exits 1 without restarting them in a loop.
        """
        parent = self.start("--manager=no.such.Manager")
        code = yield self.wait_exit(parent)
        out = self.output()
        self.assertEqual(code, 1, out)
        failed = [line for line in out.splitlines() if "The service failed to start" in line]
        self.assertEqual(len(failed), 1, out)
        self.assertRegex(failed[0], r"#error\] The service failed to start: worker [12] of 2 exited with "
                                    r"status 1 before it was ready: novasvc: error: .*no\.such\.Manager")
        self.assertNotIn("restarting in", out)
        self.assertNotIn("Traceback", out)
        self.assertFalse(any(_running(pid) for pid in self.workers().values()))

    @defer.inlineCallbacks
    def test_daemon(self) -> None:
        """
        When twistd runs as a daemon with --workers 2, then its waiting
        parent process exits 0 once both workers are ready; the workers'
        lines are in the daemon's --logfile, naming each worker; SIGTERM
        to the daemon ends it and its workers and removes its pid file.
        """
        starter = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://", "--workers=2",
            f"--database-connection=sqlite:///{os.path.abspath(self.mktemp())}.sqlite",
            twistd=("--pidfile=twistd.pid", "--logfile=daemon.log"))
        logfile = os.path.join(self.workdir, "daemon.log")
        pidfile = os.path.join(self.workdir, "twistd.pid")

        def log():
            with open(logfile, encoding="utf-8", errors="replace") as f:
                return f.read()

        self.output = log  # the workers' pids come from the daemon's log
        self.reap_workers()
        code = yield self.wait_exit(starter)
        self.assertEqual(code, 0)
        self.assertIn("All 2 workers are ready", log())
        for index in (1, 2):
            self.assertIn(f"[worker-{index} novasvc.core.service#info] Service novasvc-echo on ", log())
        with open(pidfile) as f:
            daemon = int(f.read())
        workers = list(self.workers().values())
        os.kill(daemon, signal.SIGTERM)
        yield poll(lambda: not _running(daemon), "the daemon exited", interval=0.1)
        self.assertFalse(os.path.exists(pidfile))
        self.assertFalse(any(_running(pid) for pid in workers))
