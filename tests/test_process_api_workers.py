"""
Tests for L{novasvc.process.api_workers}: C{api.workers: N} for the standalone API.
The parent with a fake spawner and a L{task.Clock}, a worker's endpoint on
a real socket (HTTP and HTTPS), the configuration refusals, and real
C{twistd} processes: a parent and its workers on one port.

Which worker answered a request is read from the parent's log: every
worker's access log line reaches it named C{[worker-K ...]}; no route or
header tells a process's pid.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, List, Optional, Set

import treq
from twisted.internet import defer, reactor, ssl, task
from twisted.python import usage
from twisted.trial import unittest
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from zope.interface import implementer

from novasvc.process import api_tap
from novasvc.process.api_workers import (
    APIWorkerParent,
    InheritedEndpoint,
    SharedListen,
    make_api_worker,
    shared_listen,
)
from novasvc.config import Config
from novasvc.config.api import APIConfig, embedded_refusal
from novasvc.exceptions import ConfigError
from novasvc.process.launcher import HangupService
from novasvc.process.workers import IWorkerProcess, WorkerExit, WorkerIdentity, listen_socket
from tests._api import capture_log
from tests._services import poll
from tests.test_process_launcher import _ThreadCalls
from tests.test_core_service_process import _bin, _environ

HERE = os.path.dirname(os.path.abspath(__file__))


def _config_file(case: unittest.TestCase, text: str) -> str:
    path = os.path.abspath(case.mktemp()) + ".yaml"
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def _api_options(*args: str) -> api_tap.Options:
    options = api_tap.Options()
    options.parseOptions(list(args))
    return options


def _novasvc_options(*args: str) -> Any:
    from novasvc.process.tap import Options

    options = Options()
    options.parseOptions(list(args))
    return options


def _certificates(case: unittest.TestCase) -> Dict[str, str]:
    from tests._tls_certs import make_certificates

    return make_certificates(os.path.abspath(case.mktemp()))


def _https_client(certs: Dict[str, str], pool: HTTPConnectionPool) -> treq.client.HTTPClient:
    with open(certs["ca"], "rb") as f:
        trust = ssl.Certificate.loadPEM(f.read())
    return treq.client.HTTPClient(Agent(reactor, BrowserLikePolicyForHTTPS(trustRoot=trust), pool=pool))


class SharedListenTests(unittest.SynchronousTestCase):
    """
    L{shared_listen}: what the parent binds for each C{api.listen}.
    """

    def test_tcp(self) -> None:
        """
        When C{api.listen} is C{tcp:} or C{tcp6:}, then the parent binds it
        as it is, and the scheme is http.
        """
        for listen in ("tcp:8774:interface=127.0.0.1", "tcp:0", "tcp6:0:interface=\\:\\:1"):
            self.assertEqual(shared_listen(listen), SharedListen(listen, "http"))

    def test_ssl(self) -> None:
        """
        When C{api.listen} is C{ssl:}, then the parent binds its address,
        port and backlog as TCP, the scheme is https, and the workers get
        the endpoint's TLS context factory.
        """
        certs = _certificates(self)
        keys = f"privateKey={certs['server_key']}:certKey={certs['server_cert']}"
        shared = shared_listen(f"ssl:8443:interface=127.0.0.1:backlog=7:{keys}")
        self.assertEqual((shared.tcp, shared.scheme), ("tcp:8443:interface=127.0.0.1:backlog=7", "https"))
        self.assertTrue(callable(getattr(shared.tls, "getContext", None)))
        self.assertEqual(shared_listen(f"ssl:0:interface=\\:\\:1:{keys}").tcp,
                         "tcp6:0:interface=\\:\\:1:backlog=50")
        self.assertEqual(shared_listen(f"ssl:0:{keys}").tcp, "tcp:0:backlog=50")

    def test_refused(self) -> None:
        """
        When C{api.listen} is a unix socket, or an C{ssl:} endpoint whose key
        file is missing, then L{ConfigError} names C{api.listen}.
        """
        with self.assertRaises(ConfigError) as unix:
            shared_listen("unix:/run/api.sock")
        self.assertEqual(str(unix.exception), "api.listen: API workers share a tcp:, tcp6: or ssl: "
                                              "endpoint, got 'unix:/run/api.sock'")
        with self.assertRaises(ConfigError) as missing:
            shared_listen("ssl:0:privateKey=/nonexistent/key.pem")
        self.assertIn("api.listen: cannot be used by API workers", str(missing.exception))


@implementer(IWorkerProcess)
class _Process:
    def __init__(self, pid: int, ready: Callable[[], None], exited: Callable[[WorkerExit], None]) -> None:
        self.pid = pid
        self.ready = ready
        self.signals: List[str] = []
        self._exited = exited

    def signal(self, name: str) -> None:
        self.signals.append(name)
        if name == "TERM":
            self._exited(WorkerExit(code=0))


class _Spawner:
    """
    What the parent gives its spawner, and processes that are ready when
    told (L{ready}) and exit 0 on SIGTERM.
    """

    made: List["_Spawner"] = []

    def __init__(self, reactor: Any, argv: Callable[[int, int], List[str]], *, sockets: List[Any]) -> None:
        self.argv = argv
        self.sockets = sockets
        self.processes: List[_Process] = []
        _Spawner.made.append(self)

    def spawn(self, index: int, count: int, ready: Callable[[], None], stopping: Callable[[], None],
              exited: Callable[[WorkerExit], None]) -> _Process:
        process = _Process(1000 + index, ready, exited)
        self.processes.append(process)
        return process

    def ready(self) -> None:
        for process in self.processes:
            process.ready()


class ParentTests(unittest.TestCase):
    """
    L{APIWorkerParent} with a fake spawner: the socket it binds and hands
    on, its log line, SIGHUP and the stop.
    """

    def setUp(self) -> None:
        _Spawner.made = []
        self.clock = task.Clock()

    def parent(self, listen: str = "tcp:0:interface=127.0.0.1") -> APIWorkerParent:
        return APIWorkerParent(listen, 2, lambda k, n: ["worker", str(k), str(n)], self.clock,
                               stop_timeout=70, spawner=_Spawner)

    def test_start_and_stop(self) -> None:
        """
        When the parent starts on C{tcp:0}, then it binds a free port, logs
        C{API listening on http://127.0.0.1:PORT (2 workers)}, hands the
        bound socket to every worker, and is started once both are ready;
        SIGHUP reaches each worker; stopping closes its socket and sends
        SIGTERM to each.
        """
        logged = capture_log(self)
        parent = self.parent()
        started = parent.startService()
        [spawner] = _Spawner.made
        self.assertNoResult(started)
        spawner.ready()
        self.successResultOf(started)
        [bound] = spawner.sockets
        self.assertEqual((bound.host, bound.port, parent.port), ("127.0.0.1", parent.port, bound.port))
        self.assertNotEqual(parent.port, 0)
        self.assertEqual(parent.url, f"http://127.0.0.1:{parent.port}")
        self.assertIn(f"API listening on http://127.0.0.1:{parent.port} (2 workers)", logged)
        self.assertEqual(spawner.argv(2, 2), ["worker", "2", "2"])
        self.assertEqual(parent.pool.pids(), [1001, 1002])
        parent.reset()
        self.assertEqual([p.signals for p in spawner.processes], [["HUP"], ["HUP"]])
        self.successResultOf(parent.stopService())
        self.assertEqual(bound.sock.fileno(), -1)
        self.assertEqual([p.signals for p in spawner.processes], [["HUP", "TERM"], ["HUP", "TERM"]])
        self.assertIn(f"API stopped listening on http://127.0.0.1:{parent.port}", logged)

    def test_port_taken(self) -> None:
        """
        When the port is taken, then the start fails with a
        L{ConfigError} naming C{api.listen} and no worker is started.
        """
        taken = listen_socket("tcp:0:interface=127.0.0.1")
        self.addCleanup(taken.close)
        parent = self.parent(f"tcp:{taken.port}:interface=127.0.0.1")
        failure = self.failureResultOf(parent.startService(), ConfigError)
        self.assertIn(f"api.listen: cannot listen on 'tcp:{taken.port}:interface=127.0.0.1': ",
                      failure.getErrorMessage())
        self.assertEqual(_Spawner.made, [])
        self.successResultOf(parent.stopService())

    def test_https_url(self) -> None:
        """
        When C{api.listen} is C{ssl:}, then the parent's URL is https.
        """
        certs = _certificates(self)
        parent = self.parent(f"ssl:0:interface=127.0.0.1:privateKey={certs['server_key']}:"
                             f"certKey={certs['server_cert']}")
        started = parent.startService()
        _Spawner.made[0].ready()
        self.successResultOf(started)
        self.addCleanup(parent.stopService)
        self.assertEqual(parent.url, f"https://127.0.0.1:{parent.port}")
        self.assertEqual(_Spawner.made[0].sockets[0].description,
                         "tcp:0:interface=127.0.0.1:backlog=50")


class EndpointTests(unittest.TestCase):
    """
    L{InheritedEndpoint}: a worker serving the API's site on a socket bound
    elsewhere, in this process.
    """

    timeout = 60

    async def serve(self, listen: str) -> Any:
        from novasvc.api.context import APIContext
        from novasvc.api.service import APIService
        from novasvc.db.memory import MemoryServiceStore
        from novasvc.transport.memory import MemoryTransport

        shared = shared_listen(listen)
        bound = listen_socket(shared.tcp)
        self.addCleanup(bound.close)
        identity = WorkerIdentity(1, 1, None, (os.dup(bound.fileno()),))
        store = MemoryServiceStore()
        await store.start()
        await store.create("h1", "novasvc-echo", "echo")
        context = APIContext.create(Config(), store, MemoryTransport(clock=reactor), reactor)
        service = APIService(context, listen=listen, reactor=reactor,
                             endpoint=InheritedEndpoint(reactor, tls=shared.tls, identity=identity))
        await service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(service.port, bound.port)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        return service

    async def test_http(self) -> None:
        """
        When a worker serves the site on the inherited socket, then a
        client of the parent's port is answered.
        """
        service = await self.serve("tcp:0:interface=127.0.0.1")
        response = await treq.get(f"{service.url}/v1/services", pool=self.pool)
        self.assertEqual([s["host"] for s in (await response.json())["services"]], ["h1"])

    async def test_https(self) -> None:
        """
        When C{api.listen} is C{ssl:}, then the worker speaks TLS with the
        endpoint's certificate on the inherited socket.
        """
        certs = _certificates(self)
        service = await self.serve(f"ssl:0:interface=127.0.0.1:privateKey={certs['server_key']}:"
                                   f"certKey={certs['server_cert']}")
        self.assertEqual(service.url, f"https://127.0.0.1:{service.port}")
        response = await _https_client(certs, self.pool).get(f"{service.url}/healthz")
        self.assertEqual((response.code, (await response.json())["status"]), (200, "ok"))


class ConfigTests(unittest.SynchronousTestCase):
    """
    Where C{api.workers} above 1 is accepted, and where it is refused.
    """

    def test_unix_socket_refused(self) -> None:
        """
        When C{api.workers} is above 1 with a unix socket, in the file or
        by C{--listen}, then the configuration is refused naming the key.
        """
        path = _config_file(self, """\
            api:
              workers: 2
              listen: unix:/tmp/api.sock
            """)
        with self.assertRaises(usage.UsageError) as e:
            _api_options("--config", path)
        self.assertRegex(str(e.exception), r", line 2: api\.workers: 2 workers need a tcp:, tcp6: or "
                                           r"ssl: listen endpoint to share, got 'unix:/tmp/api\.sock'$")
        path = _config_file(self, "api:\n  workers: 2\n")
        with self.assertRaises(usage.UsageError) as e:
            _api_options("--config", path, "--listen", "unix:/tmp/api.sock")
        self.assertIn("command line option --listen: 2 workers need a tcp:", str(e.exception))

    def test_embedded_refused(self) -> None:
        """
        When C{api.enabled} (the API inside C{twistd novasvc}) comes with
        C{api.workers} above 1, or with RPC C{workers} above 1, then
        C{twistd novasvc} refuses to start with one line pointing to
        C{twistd novasvc-api}, and so does L{novasvc.api.service.embed}.
        """
        from novasvc.api.service import embed
        from novasvc.core.service import Service

        for text, needle in [("api:\n  enabled: true\n  workers: 2\n", "api.workers is 2"),
                             ("workers: 2\napi:\n  enabled: true\n", "api.enabled with workers: 2")]:
            path = _config_file(self, text)
            options = _novasvc_options("--config", path, "--manager=novasvc.examples.echo.EchoManager")
            with self.assertRaises(SystemExit) as e:
                from novasvc.process.tap import makeService

                makeService(options, reactor=_ThreadCalls())
            self.assertTrue(str(e.exception.code).startswith(f"novasvc: error: {needle}"), e.exception.code)
            self.assertIn("twistd novasvc-api", str(e.exception.code))
        config = Config(api=APIConfig(enabled=True, workers=3), transport_url="memory://")
        service = Service.create(manager="novasvc.examples.echo.EchoManager", config=config,
                                 clock=_ThreadCalls())
        with self.assertRaises(ConfigError) as e:
            embed(service)
        self.assertIn("api.workers is 3", str(e.exception))
        self.assertIsNone(embedded_refusal(APIConfig(enabled=False, workers=3), workers=4))
        self.assertIsNone(embedded_refusal(APIConfig(enabled=True)))


class MakeServiceTests(unittest.SynchronousTestCase):
    """
    L{novasvc.process.api_tap.makeService} and C{twistd novasvc --api-only} with
    C{api.workers} above 1.
    """

    def path(self) -> str:
        return _config_file(self, "graceful_shutdown_timeout: 5\napi:\n  workers: 3\n")

    def test_novasvc_api(self) -> None:
        """
        When C{twistd novasvc-api} has C{api.workers: 3}, then it is a
        L{HangupService} around an L{APIWorkerParent} of 3 workers, each
        running C{novasvc-api} with the parent's options and
        C{--worker-index}, SIGKILLed 10 s after the graceful timeout.
        """
        from twisted.scripts.twistd import ServerOptions

        options = _api_options("--config", self.path(), "--listen", "tcp:0")
        service = api_tap.makeService(options, reactor=_ThreadCalls())
        self.assertIsInstance(service, HangupService)
        parent = service.service
        self.assertIsInstance(parent, APIWorkerParent)
        self.assertEqual((parent._count, parent._stop_timeout), (3, 15))
        argv = parent._argv(2, 3)
        self.assertEqual(argv[:2], [sys.executable, "-c"])
        server = ServerOptions()
        server.parseOptions(argv[3:])
        self.assertEqual((server["nodaemon"], server["pidfile"], server.subCommand),
                         (True, "", "novasvc-api"))
        self.assertEqual((server.subOptions["worker-index"], server.subOptions["listen"]), (2, "tcp:0"))

    def test_api_only(self) -> None:
        """
        When C{twistd novasvc --api-only} has C{api.workers: 3}, then its
        workers run C{novasvc --api-only} with C{--worker-index}.
        """
        path = self.path()
        options = _novasvc_options("--api-only", "--config", path)
        from novasvc.process.tap import makeService

        parent = makeService(options, reactor=_ThreadCalls()).service
        self.assertIsInstance(parent, APIWorkerParent)
        self.assertEqual(parent._argv(1, 3)[3:],
                         ["-n", "--pidfile=", "novasvc", "--api-only", "--config", path,
                          "--worker-index=1"])

    def test_worker_outside_a_parent(self) -> None:
        """
        When C{--worker-index} is given to a process no parent started,
        then it stops with one line saying what the option is for.
        """
        options = _api_options("--config", self.path(), "--worker-index", "1")
        with self.assertRaises(SystemExit) as e:
            api_tap.makeService(options, reactor=_ThreadCalls())
        self.assertEqual(e.exception.code, "novasvc-api: error: --worker-index is for the processes the "
                                           "API's supervising parent starts (api.workers > 1): no "
                                           "listening socket was inherited")
        with self.assertRaises(ConfigError):
            make_api_worker(options, _ThreadCalls(), environ={"NOVASVC_WORKER_INDEX": "x"})

    def test_parent_imports_light(self) -> None:
        """
        When the parent is built, then neither the API's routes and site,
        twisted.web's server, klein, nor any database or broker module is
        imported.
        """
        code = (
            "import json, sys\n"
            "from novasvc.process.api_tap import Options, makeService\n"
            "from tests.test_process_launcher import _ThreadCalls\n"
            f"o = Options(); o.parseOptions(['--config', {self.path()!r}])\n"
            "makeService(o, reactor=_ThreadCalls())\n"
            "print(json.dumps(sorted(sys.modules)))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], env=_environ(), capture_output=True, check=True,
                             timeout=60, cwd=os.path.dirname(HERE)).stdout
        modules = set(json.loads(out))
        heavy = {"novasvc.api.app", "novasvc.api.site", "novasvc.api.service", "novasvc.api.context",
                 "twisted.web.server", "klein", "novasvc.db.store", "novasvc.transport.pika._transport",
                 "sqlalchemy", "pika", "novasvc.rpc.client"}
        self.assertEqual(heavy & modules, set())
        self.assertIn("novasvc.process.api_workers", modules)


_STARTED = re.compile(r"Started worker (\d+) \(pid (\d+)\) of (\d+)")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class ProcessTests(unittest.TestCase):
    """
    A real C{twistd -n} parent and its API workers on one port, the memory
    transport and an SQLite file.
    """

    timeout = 240

    def start_twistd(self, *args: str) -> subprocess.Popen:
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.logpath = os.path.join(self.workdir, "twistd.log")
        logfile = open(self.logpath, "wb")
        self.addCleanup(logfile.close)
        process = subprocess.Popen([_bin("twistd"), "-n", "--pidfile=", *args], cwd=self.workdir,
                                   env=_environ(), stdout=logfile, stderr=subprocess.STDOUT)

        def reap() -> None:
            if process.poll() is None:
                process.kill()
                process.wait()
            for pid in self.workers().values():
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)

        self.addCleanup(reap)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        return process

    def output(self) -> str:
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def workers(self) -> Dict[int, int]:
        """
        @return: worker index -> pid of its latest process, from the
            parent's log.
        """
        return {int(index): int(pid) for index, pid, _ in _STARTED.findall(self.output())}

    def config(self, listen: str, workers: int = 2) -> str:
        return _config_file(self, f"""\
            transport_url: memory://
            graceful_shutdown_timeout: 20
            database:
              connection: sqlite:///{os.path.abspath(self.mktemp())}.sqlite
            api:
              listen: {listen}
              workers: {workers}
            """)

    async def listening(self, scheme: str = "http") -> str:
        """
        @return: the parent's URL, once its workers are all ready.
        """
        def url() -> Optional[str]:
            found = re.search(rf"API listening on ({scheme}://127\.0\.0\.1:\d+) \(2 workers\)", self.output())
            return found.group(1) if found and "All 2 workers are ready" in self.output() else None

        return await poll(url, "the API workers are ready", interval=0.1)

    async def answered_by(self, get: Callable[[], Any], indexes: Set[int]) -> None:
        """
        Send requests until the access log lines of every worker of
        C{indexes} are in the parent's log.
        """
        async def asked() -> bool:
            response = await get()
            self.assertEqual(response.code, 200)
            await response.content()
            seen = set(map(int, re.findall(r'\[worker-(\d+) twisted\.python\.log#info\] API 127\.0\.0\.1 '
                                           r'"GET /healthz" 200 \d+ \d+\.\d{3}s request_id=req-\S+ user=-\n',
                                           self.output())))
            return indexes <= seen

        await poll(lambda: defer.ensureDeferred(asked()), f"requests answered by workers {sorted(indexes)}",
                   interval=0.05)

    async def stop(self, process: subprocess.Popen) -> None:
        pids = list(self.workers().values())
        process.send_signal(signal.SIGTERM)
        await poll(lambda: process.poll() is not None, "twistd exited", interval=0.1)
        self.assertEqual(process.returncode, 0, self.output()[-5000:])
        self.assertFalse(any(_running(pid) for pid in pids))
        self.assertIn("All workers have stopped", self.output())

    async def test_workers(self) -> None:
        """
        When C{twistd novasvc-api} runs with C{api.workers: 2} and C{--listen
        tcp:0}, then the parent logs the real port and both workers answer
        on it; SIGHUP reaches both; a SIGKILLed worker is started again
        while the port keeps answering; SIGTERM stops the workers and the
        parent exits 0.
        """
        process = self.start_twistd("novasvc-api", "--config", self.config("tcp:8774:interface=127.0.0.1"),
                                    "--listen", "tcp:0:interface=127.0.0.1")
        url = await self.listening()
        self.assertNotIn(":8774", url)

        def get() -> Any:
            return treq.get(f"{url}/healthz", pool=self.pool)

        await self.answered_by(get, {1, 2})
        process.send_signal(signal.SIGHUP)
        await poll(lambda: all(f"[worker-{k} novasvc.process.launcher#info] SIGHUP received" in self.output()
                               for k in (1, 2)), "both workers got SIGHUP", interval=0.1)
        victim = self.workers()[1]
        os.kill(victim, signal.SIGKILL)
        await poll(lambda: f"worker 1 (pid {victim}) was killed by signal 9" in self.output(),
                   "the parent saw the worker die", interval=0.05)
        response = await get()  # the other worker answers meanwhile
        self.assertEqual(response.code, 200)
        await response.content()
        await poll(lambda: self.workers()[1] != victim and
                   f"worker 1 (pid {self.workers()[1]}) is ready" in self.output(),
                   "worker 1 was started again", interval=0.1)
        self.assertIn("restarting in 1 s", self.output())
        await self.answered_by(get, {1, 2})
        await self.stop(process)
        self.assertIn(f"API stopped listening on {url}", self.output())

    async def test_metrics_of_every_worker(self) -> None:
        """
        When requests went to both workers, then /metrics from either one
        has both workers' HTTP counts, labelled worker 1 and worker 2.
        """
        process = self.start_twistd("novasvc-api", "--config",
                                    self.config("tcp:0:interface=127.0.0.1"))
        url = await self.listening()

        def get() -> Any:
            return treq.get(f"{url}/healthz", pool=self.pool)

        await self.answered_by(get, {1, 2})

        async def both() -> bool:
            response = await treq.get(f"{url}/metrics", pool=self.pool)
            text = (await response.content()).decode()
            return all(f'route="/healthz",status="200",worker="{k}"' in text for k in (1, 2))

        await poll(lambda: defer.ensureDeferred(both()), "both workers' metrics", interval=0.2)
        await self.stop(process)

    async def test_api_only_tls(self) -> None:
        """
        When C{twistd novasvc --api-only} runs with C{api.workers: 2} on an
        C{ssl:} endpoint, then both workers answer HTTPS on the parent's
        port, and SIGTERM ends them all with status 0.
        """
        certs = _certificates(self)
        listen = f"ssl:0:interface=127.0.0.1:privateKey={certs['server_key']}:certKey={certs['server_cert']}"
        process = self.start_twistd("novasvc", "--api-only", "--config", self.config(listen))
        url = await self.listening("https")
        client = _https_client(certs, self.pool)
        await self.answered_by(lambda: client.get(f"{url}/healthz"), {1, 2})
        await self.stop(process)
