"""
Fault test of the operator's API with real processes: C{twistd novasvc-api}
and a live C{twistd novasvc} service serving its own API too (C{api.enabled}),
on a PostgreSQL cluster of the test's own (L{tests._postgres_cluster}) and
the shared RabbitMQ, under a steady request load on C{/}, C{/v1/services},
C{/healthz} and C{/metrics} of both APIs, while the database first hangs
(every server process SIGSTOPped) and then stops (C{pg_ctl stop -m
immediate}), each time for a while before it returns.

The test is bounded, asserts its figures and prints them.
"""

import json
import os
import re
import signal
import subprocess
import textwrap
import time
import uuid
from typing import Any, Dict, List, Optional

import attrs
import sqlalchemy as sa
import treq
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from novasvc.config.api import DATABASE_DEADLINE, RETRY_AFTER
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport
from novasvc.transport.url import TransportURL
from tests._postgres_cluster import report_count, start_postgres_cluster
from tests._services import poll, require_service
from tests.test_core_service_process import _bin, _environ

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"
#: The routes under load, and how many clients send to each, one request
#: after the other: to the API on its own, and to the API of the service.
ROUTES = ("/", "/v1/services", "/healthz", "/metrics")
CLIENTS_PER_ROUTE = 2
SERVICE_CLIENTS_PER_ROUTE = 1
#: B{Seconds} an answer may come after the deadline of the API's database
#: calls (the defaults an operator runs with).
SLACK = 1.5
#: B{Seconds} the client waits before it counts a request as hung.
CLIENT_TIMEOUT = 20.0
#: B{Seconds} the API must answer 200 again after the database returns.
RECOVERY = 5.0

_WARNING = "The database is unavailable ("
_INFO = "The database is available again (after"


@attrs.define
class _Answer:
    route: str
    sent: float  # monotonic seconds
    seconds: float
    status: Any  # the HTTP status, or a text for a client-side failure
    retry_after: Optional[str] = None
    shape_ok: bool = True


def _shape_ok(route: str, status: int, body: bytes) -> bool:
    """
    Whether a 503 of C{route} has the shape the README gives it.
    """
    if route == "/":
        return b"Database unreachable since" in body
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    if route == "/healthz":
        return payload.get("status") == "degraded" and payload["checks"]["database"]["ok"] is False
    error = payload.get("error", {})
    return (error.get("code") == status and error.get("title") == "Service Unavailable"
            and error.get("type") == "DatabaseUnavailable" and bool(error.get("message")))


class _Load:
    """
    Clients that each send one request after the other to one route, over
    keep-alive connections, recording every answer.
    """

    def __init__(self, base: str, clients: int) -> None:
        self.base = base
        self.clients = clients
        self.answers: List[_Answer] = []
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = len(ROUTES) * clients
        self.pool.retryAutomatically = False
        self._running = False
        self._loops: List[defer.Deferred] = []

    def start(self) -> None:
        self._running = True
        for route in ROUTES:
            for _ in range(self.clients):
                self._loops.append(defer.ensureDeferred(self._client(route)))

    async def _client(self, route: str) -> None:
        while self._running:
            sent = time.monotonic()
            try:
                response = await treq.get(self.base + route, pool=self.pool, timeout=CLIENT_TIMEOUT)
                body = await response.content()
            except Exception as e:
                self.answers.append(_Answer(route, sent, time.monotonic() - sent, type(e).__name__))
                await task.deferLater(reactor, 0.05, lambda: None)
                continue
            answer = _Answer(route, sent, time.monotonic() - sent, response.code)
            if response.code == 503:
                answer.retry_after = (response.headers.getRawHeaders(b"retry-after") or [b""])[0].decode()
                answer.shape_ok = _shape_ok(route, response.code, body)
            self.answers.append(answer)

    async def stop(self) -> None:
        self._running = False
        await defer.DeferredList(self._loops)
        await self.pool.closeCachedConnections()

    def between(self, start: float, end: float) -> List[_Answer]:
        return [a for a in self.answers if start <= a.sent < end]

    def ok_again(self, since: float) -> Optional[float]:
        """
        @return: when every route had answered 200 to a request sent after
            C{since} (monotonic seconds), or C{None} before that.
        """
        firsts = []
        for route in ROUTES:
            times = [a.sent + a.seconds for a in self.answers
                     if a.route == route and a.sent >= since and a.status == 200]
            if not times:
                return None
            firsts.append(min(times))
        return max(firsts)


def _tcp_sockets() -> List[Any]:
    """
    @return: (local port, remote port, bytes unread, inode) of each IPv4
        TCP socket of this network namespace (C{/proc/net/tcp}).
    """
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            rows.append((int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16),
                         int(fields[4].split(":")[1], 16), int(fields[9])))
    return rows


def held_by_server(pid: int, port: int) -> int:
    """
    How many connections of process C{pid} to the server on C{port} have
    sent what the server has not read: during a hang, each is a thread of
    C{pid} waiting (a statement, or a new connection in the accept queue).
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    sockets = _tcp_sockets()
    ours = {local for local, remote, _, inode in sockets if remote == port and inode in inodes}
    return sum(1 for local, remote, unread, _ in sockets
               if local == port and remote in ours and unread > 0)


class _Twistd:
    """
    One C{twistd -n} process in a directory of its own, its output in a file.
    """

    def __init__(self, case: TestCase, *args: str) -> None:
        self.workdir = os.path.abspath(case.mktemp())
        os.makedirs(self.workdir)
        self.logpath = os.path.join(self.workdir, "twistd.log")
        logfile = open(self.logpath, "wb")
        case.addCleanup(logfile.close)
        self.process = subprocess.Popen([_bin("twistd"), "-n", "--pidfile=", *args], cwd=self.workdir,
                                        env=_environ(), stdout=logfile, stderr=subprocess.STDOUT)
        case.addCleanup(self._reap)

    def _reap(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        await poll(lambda: self.process.poll() is not None, "twistd exited", interval=0.1)
        return self.process.returncode


class PostgresUnderLoadTests(TestCase):
    """
    The standalone API and a service with its API on a PostgreSQL that
    hangs, then stops.
    """

    timeout = 120
    #: B{Seconds} the database hangs, then stays stopped.
    HUNG = 10.0
    STOPPED = 6.0

    async def _setUp(self) -> None:
        require_service("RabbitMQ", "127.0.0.1", 5672)
        self.cluster = await start_postgres_cluster(self)
        tag = uuid.uuid4().hex[:8]
        self.exchange, self.topic = f"novasvc-fault-{tag}", f"pgapi-{tag}"

    def setUp(self) -> defer.Deferred:
        return defer.ensureDeferred(self._setUp())

    def config_file(self, enabled: bool) -> str:
        path = os.path.abspath(self.mktemp()) + ".yaml"
        with open(path, "w") as f:
            f.write(textwrap.dedent(f"""\
                transport_url: {RABBIT}
                control_exchange: {self.exchange}
                database:
                  connection: {self.cluster.url}
                api:
                  enabled: {str(enabled).lower()}
                  listen: tcp:0:interface=127.0.0.1
                """))
        return path

    def report_count(self) -> Optional[int]:
        try:
            return report_count(self.cluster.url, self.topic)
        except sa.exc.OperationalError:
            return None

    async def rises(self, after: int) -> int:
        return await poll(lambda: deferToThread(self.report_count).addCallback(
            lambda n: n if n is not None and n > after else None),
            f"report_count rises past {after}", interval=0.2)

    async def listening(self, process: _Twistd) -> int:
        def port() -> Optional[int]:
            found = re.search(r"API listening on http://127\.0\.0\.1:(\d+)", process.output())
            return found and int(found.group(1))

        return await poll(port, "the API is listening", interval=0.1)

    async def outage(self, apis: List[Any], begin: Any, end: Any, lasts: float
                     ) -> Dict[str, Any]:
        """
        Begin an outage, let it last, end it, and wait until every route of
        each API answers 200 again and each logged that the database is
        back. In the middle and at the end of the outage, count each API
        process's connections the server has not read (L{held_by_server}).

        @param apis: (name, L{_Twistd}, L{_Load}) of each API.
        """
        logged = [process.output().count(_INFO) for _, process, _ in apis]
        began = time.monotonic()
        await deferToThread(begin)
        held: Dict[str, List[int]] = {name: [] for name, _, _ in apis}
        for _ in range(2):
            await task.deferLater(reactor, lasts / 2, lambda: None)
            for name, process, _ in apis:
                held[name].append(held_by_server(process.process.pid, self.cluster.port))
        await deferToThread(end)
        ended = time.monotonic()
        recovered = {}
        for (name, process, load), count in zip(apis, logged):
            ok_at = await poll(lambda: load.ok_again(ended), f"every route of {name} answers 200",
                               interval=0.05)
            recovered[name] = ok_at - ended
            await poll(lambda: process.output().count(_INFO) > count,
                       f"{name} logs the database back", interval=0.1)
        return {"began": began, "ended": ended, "recovered": recovered, "held": held}

    async def rpc_loop(self, client: RPCClient, results: List[Any], running: List[bool]) -> None:
        n = 0
        while running:
            began = time.monotonic()
            try:
                value = await client.call({}, "echo", value=n)
                results.append((time.monotonic() - began, value == n))
            except Exception as e:
                results.append((time.monotonic() - began, repr(e)))
            n += 1
            await task.deferLater(reactor, 0.2, lambda: None)

    def figures(self, name: str, load: _Load, hung: Dict[str, Any], stopped: Dict[str, Any]
                ) -> str:
        answers = load.answers
        statuses: Dict[Any, int] = {}
        for a in answers:
            statuses[a.status] = statuses.get(a.status, 0) + 1
        slowest = max(answers, key=lambda a: a.seconds)

        def window(outage: Dict[str, Any]) -> str:
            during = load.between(outage["began"], outage["ended"])
            by_status: Dict[Any, int] = {}
            for a in during:
                by_status[a.status] = by_status.get(a.status, 0) + 1
            return (f"{len(during)} requests {dict(sorted(by_status.items(), key=str))}, slowest "
                    f"{max(a.seconds for a in during):.2f} s; 200 on every route "
                    f"{outage['recovered'][name]:.2f} s after the return")

        settled = [a for a in answers if a.sent >= stopped["ended"] + stopped["recovered"][name]]
        return (f"\n  {name}: {len(answers)} requests ({dict(sorted(statuses.items(), key=str))}), "
                f"slowest {slowest.seconds:.2f} s ({slowest.route} {slowest.status})"
                f"\n    hung {self.HUNG:g} s: {window(hung)}; threads held at {self.HUNG / 2:g} "
                f"and {self.HUNG:g} s: {hung['held'][name]}"
                f"\n    stopped {self.STOPPED:g} s: {window(stopped)}"
                f"\n    after: {len(settled)} requests, slowest "
                f"{max((a.seconds for a in settled), default=0.0):.3f} s")

    def check(self, name: str, process: _Twistd, load: _Load, baseline: Any,
              outages: List[Dict[str, Any]], clients: int, log_after_hang: str) -> None:
        """
        The assertions on one API (see the test's docstring).
        """
        answers = load.answers
        unavailable = [a for a in answers if a.status == 503]
        self.assertEqual([a for a in answers if not isinstance(a.status, int)], [], name)
        self.assertEqual([a for a in answers if a.status not in (200, 503)], [], name)
        self.assertEqual([a for a in answers if a.seconds > DATABASE_DEADLINE + SLACK], [], name)
        self.assertEqual([a for a in load.between(*baseline)
                          if a.sent + a.seconds < baseline[1] and a.status != 200], [], name)
        self.assertEqual([a for a in answers if a.route == "/metrics" and a.status != 200], [],
                         name)
        self.assertEqual([a for a in unavailable if a.retry_after != str(RETRY_AFTER)], [], name)
        self.assertEqual([a for a in unavailable if not a.shape_ok], [], name)
        for outage in outages:
            during = load.between(outage["began"] + DATABASE_DEADLINE + SLACK, outage["ended"])
            for route in ("/", "/v1/services", "/healthz"):
                self.assertIn(503, {a.status for a in during if a.route == route}, (name, route))
            self.assertLess(outage["recovered"][name], RECOVERY, name)
        # What the hang held of the process's threads: the calls in flight
        # when it began (one per client of a route that needs the database,
        # one health check, a service's report, and one more for a call
        # caught between two of them), nothing sent afterwards (a new
        # connection gives up after its connect timeout): fewer than the
        # store's 10 threads.
        held = outages[0]["held"][name]
        self.assertLessEqual(max(held), 2 * clients + 3, name)
        self.assertLessEqual(held[1], held[0], name)
        out = process.output()
        self.assertEqual((log_after_hang.count(_WARNING), log_after_hang.count(_INFO)), (1, 1), out)
        self.assertEqual((out.count(_WARNING), out.count(_INFO)), (2, 2), out)
        self.assertNotIn("Traceback", out)
        settled = [a for a in answers
                   if a.sent >= outages[-1]["ended"] + outages[-1]["recovered"][name]]
        self.assertEqual([a for a in settled if a.status != 200], [], name)
        self.assertLess(max(a.seconds for a in settled), 1.5, name)

    async def test_hung_then_stopped(self) -> None:
        """
        When PostgreSQL hangs for 10 s, then stops for 6 s, under a steady
        load on the routes of the API on its own and of a service's API,
        then every request is answered within the database deadline plus a
        little, never with 500: 503 with Retry-After and the error shape on
        the routes that need the database, 200 on /metrics; the hang holds
        no more threads at its end than in its middle; each outage logs one
        WARNING and one INFO and nothing else; every route answers 200 again
        within a few seconds of the database's return; and the service
        keeps answering RPC and reports its state again after each return.
        """
        service = _Twistd(self, "novasvc", "--config", self.config_file(True),
                          "--manager=novasvc.examples.echo.EchoManager", f"--topic={self.topic}",
                          "--report-interval=1", "--no-periodic")
        api = _Twistd(self, "novasvc-api", "--config", self.config_file(False))
        standalone_port = await self.listening(api)
        service_port = await self.listening(service)
        await poll(lambda: "is ready" in service.output(), "the service is ready", interval=0.1)
        before_hang = await self.rises(0)
        transport = AMQPTransport(TransportURL.parse(RABBIT), reactor=reactor)
        transport.start()
        self.addCleanup(transport.stop)
        client = RPCClient(transport, Target(topic=self.topic), control_exchange=self.exchange,
                           timeout=5, clock=reactor)
        rpc: List[Any] = []
        rpc_running = [True]
        rpc_done = defer.ensureDeferred(self.rpc_loop(client, rpc, rpc_running))

        loads = {"api": _Load(f"http://127.0.0.1:{standalone_port}", CLIENTS_PER_ROUTE),
                 "service": _Load(f"http://127.0.0.1:{service_port}", SERVICE_CLIENTS_PER_ROUTE)}
        apis = [("api", api, loads["api"]), ("service", service, loads["service"])]
        started = time.monotonic()
        for load in loads.values():
            load.start()
        await task.deferLater(reactor, 1.5, lambda: None)
        baseline = (started, time.monotonic())

        hung = await self.outage(apis, self.cluster.hang, self.cluster.resume, self.HUNG)
        after_hang = await self.rises(before_hang)
        logs_after_hang = {name: process.output() for name, process, _ in apis}
        stopped = await self.outage(apis, lambda: self.cluster.stop("immediate"),
                                    self.cluster.start, self.STOPPED)
        after_stop = await self.rises(after_hang)
        await task.deferLater(reactor, 1.0, lambda: None)
        for load in loads.values():
            await load.stop()
        rpc_running.clear()
        await rpc_done
        finished = time.monotonic()

        rpc_failed = [r for r in rpc if r[1] is not True]
        print(f"\n  {finished - started:.1f} s under load; limit {DATABASE_DEADLINE + SLACK:g} s"
              + "".join(self.figures(name, load, hung, stopped) for name, load in loads.items())
              + f"\n  RPC calls {len(rpc)}, failed {len(rpc_failed)}, slowest "
              f"{max(r[0] for r in rpc):.3f} s; report_count {before_hang} -> {after_hang} -> "
              f"{after_stop}")
        self.check("api", api, loads["api"], baseline, [hung, stopped], CLIENTS_PER_ROUTE,
                   logs_after_hang["api"])
        self.check("service", service, loads["service"], baseline, [hung, stopped],
                   SERVICE_CLIENTS_PER_ROUTE, logs_after_hang["service"])
        self.assertEqual(rpc_failed, [])
        self.assertGreater(after_stop, after_hang)
        self.assertGreater(after_hang, before_hang)
        self.assertEqual(await api.stop(), 0, api.output())
        self.assertEqual(await service.stop(), 0, service.output())
