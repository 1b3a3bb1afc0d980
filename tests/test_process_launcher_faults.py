"""
Signals in every phase of a real C{twistd -n novasvc} process's start and
stop, and the broker or the database lost during them
(L{novasvc.process.launcher}, L{novasvc.core.service}).

Each process runs L{tests._gate_manager.GateManager}, whose hooks and
C{hold} requests wait while a gate file exists: the test reads the
journal to know the phase, sends the signal there, then opens the gates.
Every run is checked the same way (L{PhaseTestsMixin.assert_clean_end}):
exit status 0 after SIGTERM or SIGINT, the pid file removed, no process
left in the run's session (its workers), either ready then stopped or never
consuming, C{cleanup_host} at most once and after the drain, and the
services row as the README says (reported when the service was ready, none
when it stopped before registering).

The three signals of one phase run side by side (three processes), to keep
the module affordable.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa
from twisted.internet import defer, protocol, reactor
from twisted.internet.threads import deferToThread
from twisted.protocols import portforward
from twisted.trial.unittest import TestCase

from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport
from novasvc.transport.url import TransportURL
from tests._gate_manager import read_journal
from tests._services import poll, require_service
from tests._postgres_cluster import start_postgres_cluster

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"
#: Seconds a stop may take, from its signal to the exit, when nothing holds it.
STOP_DEADLINE = 15.0
_SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "HUP": signal.SIGHUP}


def _twistd():
    return os.path.join(os.path.dirname(sys.executable), "twistd")


def _environ():
    env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return env


def _session(sid):
    """
    @return: the pids of the processes of session C{sid} still alive (not
        zombies).
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


class _Run:
    """
    One C{twistd -n novasvc} process running L{GateManager}, in a session
    of its own, in a fresh directory with its gates, journal, pid file,
    log and (by default) SQLite file.
    """

    def __init__(self, case, name, gates=(), transport_url=RABBIT, database=None, args=(), grace=30):
        self.name = name
        self.dir = os.path.abspath(case.mktemp())
        self.gates = os.path.join(self.dir, "gates")
        os.makedirs(self.gates)
        for gate in gates:
            self.close(gate)
        tag = uuid.uuid4().hex[:8]
        self.host, self.exchange = f"phase-{tag}", f"novasvc-phase-{tag}"
        self.dbpath = os.path.join(self.dir, "services.sqlite")
        self.database = database or f"sqlite:///{self.dbpath}?timeout=0.2"
        self.pidfile = os.path.join(self.dir, "twistd.pid")
        self.logpath = os.path.join(self.dir, "twistd.log")
        config = os.path.join(self.dir, "novasvc.yaml")
        with open(config, "w") as f:
            f.write(f"gates:\n  dir: {self.gates}\ngraceful_shutdown_timeout: {grace}\n")
        with open(self.logpath, "wb") as log:
            self.process = subprocess.Popen(
                [_twistd(), "-n", f"--pidfile={self.pidfile}", "novasvc", f"--config={config}",
                 "--manager=tests._gate_manager.GateManager", f"--host={self.host}",
                 f"--transport-url={transport_url}", f"--control-exchange={self.exchange}",
                 f"--database-connection={self.database}", "--no-periodic", "--report-interval=30",
                 *args],
                cwd=self.dir, env=_environ(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.process.pid
        case.addCleanup(self.reap)

    def reap(self):
        for pid in _session(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.wait()

    def close(self, gate):
        open(os.path.join(self.gates, gate), "w").close()

    def open(self, gate):
        try:
            os.remove(os.path.join(self.gates, gate))
        except FileNotFoundError:
            pass

    def journal(self):
        return [(event, name) for event, name, _ in read_journal(self.gates)]

    def journals(self):
        """
        @return: the journal of each process (its workers, or itself) by
            pid, as L{journal}'s entries.
        """
        by_pid = {}
        for event, name, pid in read_journal(self.gates):
            by_pid.setdefault(pid, []).append((event, name))
        return by_pid

    def output(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, name, group=False):
        """
        Send SIGC{name} to the process, or to its whole process group (as
        a Ctrl-C in a terminal does).
        """
        if group:
            os.killpg(self.pid, _SIGNALS[name])
        else:
            self.process.send_signal(_SIGNALS[name])

    def when(self, predicate, what, timeout=30):
        def check():
            if self.process.poll() is not None and not predicate():
                raise AssertionError(f"{self.name} exited ({self.process.returncode}) before: {what}\n"
                                     f"{self.output()}")
            return predicate()

        return poll(check, f"{self.name}: {what}", timeout=timeout, interval=0.02)

    def entered(self, name):
        return self.when(lambda: ("enter", name) in self.journal(), f"{name} entered")

    def logged(self, text, timeout=30):
        return self.when(lambda: text in self.output(), repr(text), timeout=timeout)

    def exited(self, timeout=STOP_DEADLINE):
        d = poll(lambda: self.process.poll() is not None, f"{self.name} exited", timeout=timeout,
                 interval=0.02)
        return d.addCallback(lambda _: self.process.returncode)

    def row(self):
        """
        @return: C{(report_count, deleted)} of the service's row, or
            C{None} when there is none.
        """
        engine = sa.create_engine(self.database, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                row = conn.execute(sa.text("SELECT report_count, deleted FROM services WHERE host = :host"),
                                   {"host": self.host}).fetchone()
        except sa.exc.OperationalError:
            return None  # no services table: never opened
        finally:
            engine.dispose()
        return None if row is None else tuple(row)


class _SilentBroker(protocol.Protocol):
    """
    A TCP peer that accepts and never answers: a broker that does not
    complete the connection.
    """


class PhaseTestsMixin:
    """
    Starting runs, driving them to a phase, and the checks every run ends
    with.
    """

    timeout = 120

    def client(self, run):
        transport = AMQPTransport(TransportURL.parse(RABBIT), reactor=reactor)
        transport.start()
        self.addCleanup(transport.stop)
        return RPCClient(transport, Target(topic="echo", server=run.host), control_exchange=run.exchange,
                         timeout=60, clock=reactor)

    @defer.inlineCallbacks
    def ready_with_request(self, run):
        """
        Wait until C{run} is ready, then call C{hold} on it and wait until
        the request runs.

        @return: the call's C{Deferred}.
        """
        yield run.logged("is ready")
        call = self.client(run).call({}, "hold", key="k1")
        yield run.entered("hold:k1")
        return call

    @defer.inlineCallbacks
    def all_of(self, runs):
        """
        Wait for every run's C{Deferred} in C{runs} (a C{dict} by name);
        fail naming each one that failed.
        """
        results = yield defer.DeferredList(list(runs.values()), consumeErrors=True)
        failed = [f"--- {name}: {result.getErrorMessage()}" for name, (ok, result) in zip(runs, results)
                  if not ok]
        if failed:
            self.fail("\n".join(failed))

    @defer.inlineCallbacks
    def assert_clean_end(self, run, code, *, ready, row, drained=True, consumed=False):
        """
        Check how C{run} ended.

        @param code: its exit status.
        @param ready: whether it must have been ready (else it must never
            have consumed: no C{post_start_hook}, no "ready" line, "Stopped
            before the service was ready" logged).
        @param row: C{"reported"} (a row, not deleted, reported at least
            once), C{"none"} (no row), or C{None} (not checked).
        @param consumed: for a run that was not ready, whether it may have
            started consuming (stopped in C{post_start_hook}).
        @param drained: whether every request must have finished before
            C{cleanup_host} (C{False} after a stop now: they are left
            unfinished, never acknowledged).
        """
        out = run.output()
        self.assertEqual(code, 0, f"{run.name}:\n{out}")
        self.assertFalse(os.path.exists(run.pidfile), f"{run.name}: the pid file is left\n{out}")
        left = yield poll(lambda: not _session(run.pid), f"{run.name}: no process left", timeout=10,
                          interval=0.05).addErrback(lambda _: _session(run.pid))
        self.assertIn(left, (True, []), f"{run.name}: processes left: {left}")
        self.assertNotIn("Traceback", out, run.name)
        if ready:
            self.assertIn("is ready", out, run.name)
        else:
            self.assertNotIn("is ready", out, run.name)
            self.assertIn("Stopped before the service was ready", out, run.name)
        for pid, journal in run.journals().items():
            if not ready and not consumed:
                self.assertNotIn(("enter", "post_start_hook"), journal, f"{run.name}: consumed\n{out}")
            cleanups = [i for i, entry in enumerate(journal) if entry == ("enter", "cleanup_host")]
            self.assertLessEqual(len(cleanups), 1, f"{run.name}: {journal}")
            if cleanups and drained:
                self.assertIn(("enter", "init_host"), journal[:cleanups[0]], run.name)
                requests = [name for event, name in journal if name.startswith("hold:")]
                finished = [name for event, name in journal[:cleanups[0]] if event == "leave"]
                self.assertTrue(all(name in finished for name in requests),
                                f"{run.name} (pid {pid}): cleanup_host before the drain: {journal}")
        if row == "reported":
            count, deleted = run.row()
            self.assertGreaterEqual(count, 1, run.name)
            self.assertEqual(deleted, 0, run.name)
        elif row == "none":
            self.assertIsNone(run.row(), run.name)


class StartPhaseTests(PhaseTestsMixin, TestCase):
    """
    SIGTERM, SIGINT and SIGHUP in each phase of the start.
    """

    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)

    @defer.inlineCallbacks
    def each_signal(self, reach, finish, hup_ready=True, **expected):
        """
        Start one run per signal, drive each with C{reach(run)} to the
        phase, send the signal, then C{finish(run)}; a SIGHUP run must
        reset, become ready (unless C{hup_ready} is false) and stop on a
        SIGTERM; the others must stop.

        @param expected: for L{assert_clean_end} after SIGTERM or SIGINT
            (and after SIGHUP then SIGTERM when C{hup_ready} is false).
        """
        runs = self.runs = {name: self.make_run(name) for name in _SIGNALS}

        @defer.inlineCallbacks
        def drive(name, run):
            yield reach(run)
            run.signal(name)
            if name == "HUP":
                yield run.logged("SIGHUP received")
                yield finish(run)
                if hup_ready:
                    yield run.logged("is ready")
                yield run.when(lambda: ("reset", "-") in run.journal(), "reset")
                run.signal("TERM")
                code = yield run.exited()
                yield self.assert_clean_end(run, code, **(dict(ready=True, row="reported") if hup_ready
                                                          else expected))
            else:
                yield run.logged("Stopping")
                yield finish(run)
                code = yield run.exited()
                yield self.assert_clean_end(run, code, **expected)

        yield self.all_of({name: drive(name, run) for name, run in runs.items()})

    @defer.inlineCallbacks
    def test_before_the_broker_connects(self):
        """
        When a signal arrives while the broker does not answer the
        connection (the service registered, waiting to consume), then
        SIGTERM and SIGINT stop it with status 0 before it consumed, and
        SIGHUP resets it and it goes on waiting (a SIGTERM then stops it
        the same way).
        """
        silent = reactor.listenTCP(0, protocol.Factory.forProtocol(_SilentBroker), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        url = f"rabbit://guest:guest@127.0.0.1:{silent.getHost().port}/"
        self.make_run = lambda name: _Run(self, name, transport_url=url)
        yield self.each_signal(lambda run: run.when(lambda: ("leave", "pre_start_hook") in run.journal(),
                                                    "registered"),
                               lambda run: None, hup_ready=False, ready=False, row=None)

    @defer.inlineCallbacks
    def test_init_host(self):
        """
        When a signal arrives while init_host runs, then SIGTERM and
        SIGINT stop the service with status 0 without a row, and SIGHUP
        resets it and it starts.
        """
        self.make_run = lambda name: _Run(self, name, gates=["init_host"])
        yield self.each_signal(lambda run: run.entered("init_host"), lambda run: run.open("init_host"),
                               ready=False, row="none")

    @defer.inlineCallbacks
    def test_registration(self):
        """
        When a signal arrives while the service's row is being written
        (the database locked by another writer: the create is retried),
        then SIGTERM and SIGINT stop the service with status 0 without a
        row, and SIGHUP resets it and it starts once the lock is gone.
        """
        self.make_run = lambda name: _Run(self, name, gates=["init_host"])
        locks = {}

        @defer.inlineCallbacks
        def reach(run):
            yield run.entered("init_host")
            lock = locks[run.name] = sqlite3.connect(run.dbpath, timeout=5, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
            run.open("init_host")
            yield run.logged("Could not create the service record")

        def finish(run):
            locks[run.name].execute("ROLLBACK")
            locks[run.name].close()

        yield self.each_signal(reach, finish, ready=False, row="none")

    @defer.inlineCallbacks
    def test_post_start_hook(self):
        """
        When a signal arrives while post_start_hook runs (consuming, not yet
        ready), then SIGTERM and SIGINT stop the service with status 0,
        never ready, cleanup_host run once, its row registered but never
        reported; SIGHUP resets it and it becomes ready.
        """
        self.make_run = lambda name: _Run(self, name, gates=["post_start_hook"])
        yield self.each_signal(lambda run: run.entered("post_start_hook"), lambda run: run.open("post_start_hook"),
                               ready=False, consumed=True, row=None)
        for run in self.runs.values():
            if run.name != "HUP":
                self.assertEqual(run.row(), (0, 0), run.name)
                self.assertEqual(run.journal().count(("enter", "cleanup_host")), 1, run.name)

    @defer.inlineCallbacks
    def test_ready(self):
        """
        When a signal arrives once the service is ready, then SIGTERM and
        SIGINT stop it with status 0 (its row kept, reported), and SIGHUP
        resets it.
        """
        self.make_run = lambda name: _Run(self, name)
        yield self.each_signal(lambda run: run.logged("is ready"), lambda run: None, ready=True, row="reported")


class StopPhaseTests(PhaseTestsMixin, TestCase):
    """
    SIGTERM, SIGINT and SIGHUP while a request runs, during the drain of
    a graceful stop, and during C{cleanup_host}.
    """

    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)

    @defer.inlineCallbacks
    def test_request_running(self):
        """
        When a signal arrives while a call runs, then SIGTERM and SIGINT
        drain it (the caller gets its result) before cleanup_host and exit
        0; SIGHUP resets the service and the call finishes too.
        """
        @defer.inlineCallbacks
        def drive(name):
            run = _Run(self, name, gates=["request"])
            call = yield self.ready_with_request(run)
            run.signal(name)
            yield run.logged("SIGHUP received" if name == "HUP" else "Stopping")
            self.assertNotIn(("enter", "cleanup_host"), run.journal(), name)
            run.open("request")
            self.assertEqual((yield call), "k1")
            if name == "HUP":
                yield run.when(lambda: ("reset", "-") in run.journal(), "reset")
                run.signal("TERM")
            code = yield run.exited()
            yield self.assert_clean_end(run, code, ready=True, row="reported")

        yield self.all_of({name: drive(name) for name in _SIGNALS})

    @defer.inlineCallbacks
    def test_drain(self):
        """
        When a second signal arrives while a graceful stop waits for a
        request, then SIGTERM and SIGINT stop now (exit 0 at once, the
        request left unfinished), and SIGHUP changes nothing: the drain
        ends with the request, then cleanup_host, then exit 0.
        """
        @defer.inlineCallbacks
        def drive(name):
            run = _Run(self, name, gates=["request"])
            call = yield self.ready_with_request(run)
            call.addErrback(lambda _: None)
            run.signal("TERM")
            yield run.logged("Stopping")
            run.signal(name)
            if name == "HUP":
                yield run.logged("SIGHUP received")
                self.assertIsNone(run.process.poll(), run.output())
                run.open("request")
                self.assertEqual((yield call), "k1")
                code = yield run.exited()
                yield self.assert_clean_end(run, code, ready=True, row="reported")
            else:
                yield run.logged(f"SIG{name} received again: stopping now")
                code = yield run.exited()
                call.cancel()
                self.assertNotIn(("leave", "hold:k1"), run.journal(), name)
                yield self.assert_clean_end(run, code, ready=True, row="reported", drained=False)

        yield self.all_of({name: drive(name) for name in _SIGNALS})

    @defer.inlineCallbacks
    def test_cleanup_host(self):
        """
        When a second signal arrives while cleanup_host runs in a graceful
        stop, then SIGTERM and SIGINT stop now (exit 0 without waiting for
        cleanup_host), and SIGHUP changes nothing: the stop goes on once
        cleanup_host returns, then exit 0.
        """
        @defer.inlineCallbacks
        def drive(name):
            run = _Run(self, name, gates=["cleanup_host"])
            yield run.logged("is ready")
            run.signal("TERM")
            yield run.entered("cleanup_host")
            run.signal(name)
            if name == "HUP":
                yield run.logged("SIGHUP received")
                self.assertIsNone(run.process.poll(), run.output())
                run.open("cleanup_host")
            else:
                yield run.logged(f"SIG{name} received again: stopping now")
            code = yield run.exited()
            self.assertEqual(("leave", "cleanup_host") in run.journal(), name == "HUP", name)
            yield self.assert_clean_end(run, code, ready=True, row="reported")

        yield self.all_of({name: drive(name) for name in _SIGNALS})


class WorkerPhaseTests(PhaseTestsMixin, TestCase):
    """
    The same signals to the supervising parent of two workers (SIGINT to
    the whole process group, as a Ctrl-C in a terminal), while the workers
    start Python, during init_host and during the drain of a stop.
    """

    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)

    def in_both(self, run, event, name):
        return run.when(lambda: sum((event, name) in j for j in run.journals().values()) == 2,
                        f"both workers: {event} {name}")

    @defer.inlineCallbacks
    def test_init_host(self):
        """
        When a signal reaches the parent while both workers run init_host,
        then SIGTERM and SIGINT stop them all with status 0, no row and no
        process left. (A SIGHUP to workers not ready yet: L{test_boot}.)
        """
        @defer.inlineCallbacks
        def drive(name):
            run = _Run(self, name, gates=["init_host"], args=["--workers=2"])
            yield self.in_both(run, "enter", "init_host")
            run.signal(name, group=name == "INT")
            # Each worker's stop cancels its init_host before the gate opens.
            yield self.in_both(run, "cancel", "init_host")
            run.open("init_host")
            code = yield run.exited()
            yield self.assert_clean_end(run, code, ready=False, row="none")

        yield self.all_of({name: drive(name) for name in ("TERM", "INT")})

    @defer.inlineCallbacks
    def test_drain(self):
        """
        When a second signal reaches the parent while one worker drains a
        request, then SIGTERM and SIGINT stop now (exit 0, no process
        left). (A SIGHUP while stopping is the parent's own, as in
        L{StopPhaseTests.test_drain}.)
        """
        @defer.inlineCallbacks
        def drive(name):
            run = _Run(self, name, gates=["request"], args=["--workers=2"])
            yield run.logged("All 2 workers are ready")
            call = self.client(run).call({}, "hold", key="k1")
            call.addErrback(lambda _: None)
            yield run.entered("hold:k1")
            run.signal("TERM")
            yield run.logged("Stopping 2 workers")
            run.signal(name, group=name == "INT")
            yield run.logged(f"SIG{name} received again: stopping now")
            code = yield run.exited()
            call.cancel()
            yield self.assert_clean_end(run, code, ready=True, row="reported", drained=False)

        yield self.all_of({name: drive(name) for name in ("TERM", "INT")})

    @defer.inlineCallbacks
    def test_boot(self):
        """
        When a signal reaches the parent (SIGINT: the whole group) while
        its workers are still starting Python, before their reactor runs,
        then SIGTERM and SIGINT stop them all with status 0 and no process
        left, and SIGHUP kills no worker: both become ready without a
        restart, then reset.
        """
        @defer.inlineCallbacks
        def drive(name):
            run = _Run(self, name, args=["--workers=2"])
            yield run.logged("Started worker 2")
            run.signal(name, group=name == "INT")
            if name == "HUP":
                yield run.logged("All 2 workers are ready")
                self.assertNotIn("killed by signal", run.output())
                yield run.when(lambda: sum(("reset", "-") in j for j in run.journals().values()) == 2,
                               "both workers reset once ready")
                run.signal("TERM")
                code = yield run.exited()
                yield self.assert_clean_end(run, code, ready=True, row="reported")
            else:
                code = yield run.exited()
                yield self.assert_clean_end(run, code, ready=False, row="none")

        yield self.all_of({name: drive(name) for name in _SIGNALS})


class _Relay:
    """
    A TCP relay from a free local port to a server on 127.0.0.1, which the
    test cuts: every connection through it is aborted (a reset, as when the
    server's host dies) and its port closed, so new connections are
    refused.

    @ivar port: the relay's port.
    """

    def __init__(self, port):
        servers = self._servers = []

        class Server(portforward.ProxyServer):
            def connectionMade(self):
                servers.append(self)
                portforward.ProxyServer.connectionMade(self)

        factory = portforward.ProxyFactory("127.0.0.1", port)
        factory.protocol = Server
        self._listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.port = self._listening.getHost().port

    def cut(self):
        """
        @return: a C{Deferred} firing once the port is closed.
        """
        closed = defer.maybeDeferred(self._listening.stopListening)
        for server in self._servers:
            for side in (server, server.peer):
                if side is not None and side.transport is not None:
                    side.transport.abortConnection()
        return closed


class LossTests(PhaseTestsMixin, TestCase):
    """
    The broker, then the database, lost while one service runs init_host
    and another drains a request in its graceful stop.
    """

    @defer.inlineCallbacks
    def test_broker_lost(self):
        """
        When the broker's connections are cut (and new ones refused) while
        one service runs init_host and another drains a call, then the
        first registers, waits for the broker, and on SIGTERM stops with
        status 0 without consuming; the second finishes the call, waits
        for its reply to leave at most graceful_shutdown_timeout (the
        broker may come back; 1 s here), runs cleanup_host after it and
        exits 0 (SIGINT).

        A broker node of the test's own (L{tests._rabbitmq_node}) took 28 s
        to boot on the 2-core machine this was written on; the relay shows
        the service the same loss (its connections reset, then refused).
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        relay = _Relay(5672)
        self.addCleanup(relay.cut)
        url = f"rabbit://guest:guest@127.0.0.1:{relay.port}/"
        starting = _Run(self, "starting", gates=["init_host"], transport_url=url)
        stopping = _Run(self, "stopping", gates=["request"], transport_url=url, grace=1)
        yield starting.entered("init_host")
        yield starting.logged("Connected to AMQP broker")
        call = yield self.ready_with_request(stopping)
        call.addErrback(lambda _: None)  # the reply cannot leave: the broker is gone
        stopping.signal("INT")
        yield stopping.logged("Stopping")
        yield relay.cut()
        cut_at = time.monotonic()
        starting.open("init_host")
        stopping.open("request")
        yield starting.when(lambda: ("leave", "pre_start_hook") in starting.journal(), "registered")
        starting.signal("TERM")
        codes = yield defer.gatherResults([starting.exited(), stopping.exited()])
        seconds = time.monotonic() - cut_at
        call.cancel()
        yield self.assert_clean_end(starting, codes[0], ready=False, row=None)
        self.assertEqual(starting.row(), (0, 0))  # registered, never reported
        yield self.assert_clean_end(stopping, codes[1], ready=True, row="reported")
        self.assertIn(("leave", "hold:k1"), stopping.journal())
        print(f"\n  broker cut: both exited 0, {seconds:.1f} s after the cut")

    @defer.inlineCallbacks
    def test_database_lost(self):
        """
        When PostgreSQL (a cluster of the test's own) stops while one
        service runs init_host and another drains a call, then the first
        retries its row, and on SIGINT stops with status 0 without a row;
        the second finishes the call (the caller gets it), runs
        cleanup_host after it and exits 0 (SIGTERM), its row kept.
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        cluster = yield start_postgres_cluster(self)
        starting = _Run(self, "starting", gates=["init_host"], database=cluster.url)
        stopping = _Run(self, "stopping", gates=["request"], database=cluster.url)
        yield starting.entered("init_host")
        call = yield self.ready_with_request(stopping)
        stopping.signal("TERM")
        yield stopping.logged("Stopping")
        yield deferToThread(cluster.stop, "immediate")
        lost_at = time.monotonic()
        starting.open("init_host")
        stopping.open("request")
        yield starting.logged("Could not create the service record")
        starting.signal("INT")
        self.assertEqual((yield call), "k1")
        codes = yield defer.gatherResults([starting.exited(), stopping.exited()])
        seconds = time.monotonic() - lost_at
        yield self.assert_clean_end(starting, codes[0], ready=False, row=None)
        yield self.assert_clean_end(stopping, codes[1], ready=True, row=None)
        yield deferToThread(cluster.start)
        self.assertIsNone((yield deferToThread(starting.row)))
        count, deleted = yield deferToThread(stopping.row)
        self.assertEqual((count >= 1, deleted), (True, 0))
        print(f"\n  database stopped: both exited 0, {seconds:.1f} s after")
