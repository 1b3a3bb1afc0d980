"""
Tests for L{novasvc.api.service}: listening (port 0, TLS), stopping with
requests under way, and the API as the last child of a
L{novasvc.core.service.Service}, in process and in a real C{twistd novasvc}
process whose C{/metrics} is read after RPC traffic on RabbitMQ.
"""

import os
import re
import signal
import subprocess
import sys
import uuid
from typing import Any, List

import treq
from twisted.internet import defer, error, reactor, ssl
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial import unittest
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from novasvc.api.service import APIService, describe_address, embed
from novasvc.config.api import APIConfig
from novasvc.config import Config
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.echo import EchoManager
from novasvc.exceptions import ConfigError, LifecycleError
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.core.service import Service
from novasvc.transport import AMQPTransport
from novasvc.transport.memory import MemoryBroker, MemoryTransport
from tests._api import capture_log, start_api
from tests._services import poll
from tests.test_api_app import GatewayRecorder, fake_module
from tests.test_core_service_process import TwistdProcessMixin
from tests._vhosts import make_vhost
from tests.test_transport_amqp import rabbit_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ListenTests(unittest.TestCase):
    """
    Where the API listens, and what it says about it.
    """

    async def test_port_zero(self) -> None:
        """
        When the API listens on port 0, then the port it got is readable as
        C{port}, its URL as C{url}, and logged; after the stop, C{port} is
        C{None} and the port is closed.
        """
        log = capture_log(self)
        live = await start_api(self)
        port = live.service.port
        self.assertIsInstance(port, int)
        self.assertGreater(port, 0)
        self.assertEqual(live.service.url, f"http://127.0.0.1:{port}")
        self.assertIn(f"API listening on http://127.0.0.1:{port}", log)
        self.assertEqual((await live.request("GET", "/healthz")).code, 200)
        await live.service.stopService()
        self.assertIsNone(live.service.port)
        self.assertIn(f"API stopped listening on http://127.0.0.1:{port}", log)
        with self.assertRaises(error.ConnectionRefusedError):
            await live.request("GET", "/healthz")

    async def test_port_taken(self) -> None:
        """
        When the port is taken, then the start fails with
        C{CannotListenError}.
        """
        live = await start_api(self)
        with self.assertRaises(error.CannotListenError):
            await start_api(self, listen=f"tcp:{live.service.port}:interface=127.0.0.1")

    async def test_tls(self) -> None:
        """
        When the API listens on an C{ssl:} endpoint, then its URL is
        https, a client trusting the CA is served, and plain HTTP is not.
        """
        from tests._tls_certs import make_certificates

        certs = make_certificates(os.path.abspath(self.mktemp()))
        live = await start_api(self, listen=f"ssl:0:interface=127.0.0.1:"
                                            f"privateKey={certs['server_key']}:"
                                            f"certKey={certs['server_cert']}")
        port = live.service.port
        self.assertEqual(live.url, f"https://127.0.0.1:{port}")
        with open(certs["ca"], "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
        agent = Agent(reactor, BrowserLikePolicyForHTTPS(trustRoot=trust), pool=live.pool)
        response = await treq.client.HTTPClient(agent).get(f"https://127.0.0.1:{port}/healthz")
        self.assertEqual((response.code, (await response.json())["status"]), (200, "ok"))
        with self.assertRaises(Exception):
            await treq.get(f"http://127.0.0.1:{port}/healthz", pool=live.pool, timeout=5)

    def test_describe(self) -> None:
        """
        When a listening address is described, then it is the URL clients
        use.
        """
        self.assertEqual(describe_address("tcp:0", IPv4Address("TCP", "0.0.0.0", 8774)),
                         "http://0.0.0.0:8774")
        self.assertEqual(describe_address("ssl:0", IPv6Address("TCP", "::1", 8443)),
                         "https://[::1]:8443")
        self.assertEqual(describe_address("unix:/x", UNIXAddress(b"/run/a.sock")), "unix:/run/a.sock")


class _HeldEndpoint:
    """
    An endpoint whose C{listen} waits until the test gives it a port.
    """

    def __init__(self) -> None:
        self.waiting: List[defer.Deferred] = []

    def listen(self, factory: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.waiting.append(d)
        return d


class _Port:
    def __init__(self) -> None:
        self.stopped = 0

    def getHost(self) -> Any:
        return IPv4Address("TCP", "127.0.0.1", 8774)

    def stopListening(self) -> None:
        self.stopped += 1


class LifecycleTests(unittest.SynchronousTestCase):
    """
    The API service's phases: starts and stops asked for at any time.
    """

    def service(self) -> Any:
        from twisted.internet import task

        from novasvc.api.context import APIContext
        from novasvc.api.service import APIService

        self.endpoint = _HeldEndpoint()
        context = APIContext.create(Config(host="h1"), MemoryServiceStore(), MemoryTransport(), task.Clock())
        return APIService(context, endpoint=self.endpoint)

    def test_stop_while_listening_starts(self) -> None:
        """
        When the API is stopped before its port is open, then the port is
        closed as soon as it opens, the start does not report it, and a
        second stop waits for the first.
        """
        api = self.service()
        starting = api.startService()
        self.assertEqual(len(self.endpoint.waiting), 1)
        first, second = api.stopService(), api.stopService()
        self.successResultOf(first)
        self.successResultOf(second)
        port = _Port()
        self.endpoint.waiting[0].callback(port)
        self.successResultOf(starting)
        self.assertEqual((port.stopped, api.port), (1, None))

    def test_second_start_and_stop(self) -> None:
        """
        When the API is started twice, then it listens once; stopped twice,
        it stops listening once.
        """
        api = self.service()
        first, second = api.startService(), api.startService()
        self.assertEqual(len(self.endpoint.waiting), 1)
        port = _Port()
        self.endpoint.waiting[0].callback(port)
        self.successResultOf(first)
        self.successResultOf(second)
        self.successResultOf(api.startService())
        self.assertEqual(len(self.endpoint.waiting), 1)
        self.successResultOf(api.stopService())
        self.successResultOf(api.stopService())
        self.assertEqual(port.stopped, 1)

    def test_switch_interval(self) -> None:
        """
        When the API has a switch interval (the API of a service), then
        the interpreter switches threads that often from its start, and as
        before once it stops, or once its start failed.
        """
        before = sys.getswitchinterval()
        self.addCleanup(sys.setswitchinterval, before)
        api = self.service()
        api.switch_interval = 0.0005
        starting = api.startService()
        self.assertEqual(sys.getswitchinterval(), 0.0005)
        self.endpoint.waiting[0].callback(_Port())
        self.successResultOf(starting)
        self.assertEqual(sys.getswitchinterval(), 0.0005)
        self.successResultOf(api.stopService())
        self.assertEqual(sys.getswitchinterval(), before)
        api = self.service()
        api.switch_interval = 0.0005
        starting = api.startService()
        self.endpoint.waiting[0].errback(error.CannotListenError("127.0.0.1", 1, OSError("taken")))
        self.failureResultOf(starting, error.CannotListenError)
        self.assertEqual(sys.getswitchinterval(), before)


class StopTests(unittest.TestCase):
    """
    Stopping with connections open.
    """

    def setUp(self) -> None:
        GatewayRecorder.made = []
        fake_module(self, "novasvc.api.gateway", RPCGateway=GatewayRecorder)

    async def slow_call(self, live: Any) -> defer.Deferred:
        answer: defer.Deferred = defer.Deferred()
        await live.request("POST", "/v1/rpc/echo", {"method": "warm-up"})
        GatewayRecorder.made[0].answer = answer
        pending = defer.ensureDeferred(live.request("POST", "/v1/rpc/echo", {"method": "slow"}))
        await poll(lambda: len(GatewayRecorder.made[0].calls) == 2, "the slow call reached the gateway")
        return answer, pending

    async def test_request_finishes(self) -> None:
        """
        When the API stops while a request is under way, then it stops
        listening at once, the request is answered, and the stop ends once
        it is; idle connections are closed.
        """
        live = await start_api(self)
        idle_pool = HTTPConnectionPool(reactor, persistent=True)
        self.assertEqual((await treq.get(live.url + "/healthz", pool=idle_pool)).code, 200)
        answer, pending = await self.slow_call(live)
        stopping = live.service.stopService()
        with self.assertRaises(error.ConnectionRefusedError):
            await live.request("GET", "/healthz")
        self.assertNoResult(stopping)
        answer.callback((200, {"result": "late"}))
        response = await pending
        self.assertEqual((response.code, response.json()), (200, {"result": "late"}))
        await stopping
        await idle_pool.closeCachedConnections()

    async def test_request_cut_after_timeout(self) -> None:
        """
        When a request is still under way C{graceful_shutdown_timeout}
        seconds after the stop began, then its connection is aborted and
        the stop ends.
        """
        live = await start_api(self, config=Config(graceful_shutdown_timeout=0.2))
        answer, pending = await self.slow_call(live)
        await live.service.stopService()
        with self.assertRaises(Exception):
            await pending


class ServiceChildTests(unittest.TestCase):
    """
    The API as the last child of a service (C{api.enabled: true}), given by
    L{embed} as C{twistd novasvc} gives it.
    """

    def make(self, **api: Any) -> Service:
        config = Config(host="h1", report_interval=0, periodic_enable=False,
                        api=APIConfig(enabled=True, listen="tcp:0:interface=127.0.0.1", **api))
        broker = MemoryBroker()
        service = Service.create(manager=EchoManager, config=config, store=MemoryServiceStore(),
                                 transport=MemoryTransport(broker=broker, clock=reactor),
                                 clock=reactor)
        embed(service)
        return service

    async def test_start_last_stop_first(self) -> None:
        """
        When the service starts, then the API starts after every other
        step (its record exists and RPC is consuming), and serves that
        record; when it stops, the API stops before the RPC server.
        """
        service = self.make()
        self.assertIs(list(service)[-1], service.api)
        events: List[Any] = []
        start, stop = service.api.startService, service.api.stopService
        rpc_stop = service.rpcserver.stop

        def api_start() -> Any:
            events.append(("api start", service.service_ref is not None))
            return start()

        def api_stop() -> Any:
            events.append("api stop")
            return stop()

        def rpc_stopping() -> Any:
            events.append("rpc stop")
            return rpc_stop()

        service.api.startService, service.api.stopService = api_start, api_stop
        service.rpcserver.stop = rpc_stopping
        await service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        self.assertEqual(events[0], ("api start", True))
        response = await treq.get(f"http://127.0.0.1:{service.api.port}/v1/services",
                                  pool=HTTPConnectionPool(reactor, persistent=False))
        [row] = (await response.json())["services"]
        self.assertEqual((row["host"], row["binary"], row["state"]), ("h1", "novasvc-echo", "up"))
        await service.stopService()
        self.assertEqual(events[1:3], ["api stop", "rpc stop"])

    def test_bad_app(self) -> None:
        """
        When C{api.app} cannot be imported, then embedding the API fails
        with C{ConfigError} naming it (before anything starts).
        """
        error = self.assertRaises(ConfigError, self.make, app="no.such.app")
        self.assertIn("api.app", str(error))

    def test_workers_refused(self) -> None:
        """
        When C{api.workers} is above 1, then embedding the API fails with
        C{ConfigError} pointing to C{twistd novasvc-api}.
        """
        error = self.assertRaises(ConfigError, self.make, workers=2)
        self.assertIn("novasvc-api", str(error))

    def test_not_built_by_the_service(self) -> None:
        """
        When the API is enabled but not embedded, then the service has no
        API child: the service never builds it.
        """
        service = Service.create(manager=EchoManager,
                                 config=Config(host="h1", api=APIConfig(enabled=True)),
                                 store=MemoryServiceStore(), transport=MemoryTransport(clock=reactor),
                                 clock=reactor)
        self.assertIsNone(service.api)
        self.assertNotIn("api", [child.name for child in service])

    def test_once_before_start(self) -> None:
        """
        When a service already serves an API, then it refuses a second one
        with L{LifecycleError}.
        """
        service = self.make()
        self.assertRaises(LifecycleError, service.serve_api, APIService.for_service(service))
        self.assertEqual([child.name for child in service].count("api"), 1)


class ImportCostTests(unittest.SynchronousTestCase):
    """
    The service core never loads the API: C{twistd novasvc} does, when on.
    """

    def modules(self, *lines: str) -> List[str]:
        code = "\n".join([
            "import sys",
            "from twisted.internet import reactor",
            "from novasvc.config.api import APIConfig",
            "from novasvc.config import Config",
            "from novasvc.db.memory import MemoryServiceStore",
            "from novasvc.examples.echo import EchoManager",
            "from novasvc.core.service import Service",
            "from novasvc.transport.memory import MemoryTransport",
            "api = APIConfig(enabled=True, listen='tcp:0:interface=127.0.0.1')",
            "s = Service.create(manager=EchoManager, config=Config(host='h', api=api),",
            "                   store=MemoryServiceStore(), transport=MemoryTransport(clock=reactor),",
            "                   clock=reactor)",
            *lines,
            "s.startService()",
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('klein', 'werkzeug')",
            "             or m.startswith('novasvc.api') or m == 'twisted.web.server'))",
        ])
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
        return eval(out)

    def test_core(self) -> None:
        """
        When a service with C{api.enabled} is created and started, then
        neither klein, werkzeug, twisted.web.server nor any module of
        C{novasvc.api} is imported (its section is read by
        C{novasvc.config.api}, outside that package).
        """
        self.assertEqual(self.modules(), [])

    def test_embedded(self) -> None:
        """
        When the API is embedded, then they are imported (the check above
        can fail).
        """
        loaded = self.modules("from novasvc.api.service import embed", "embed(s)")
        for name in ["klein", "twisted.web.server", "novasvc.api.service"]:
            self.assertIn(name, loaded)


class MetricsProcessTests(TwistdProcessMixin, unittest.TestCase):
    """
    C{GET /metrics} of a real C{twistd -n novasvc} process with
    C{api.enabled: true}, on RabbitMQ (a vhost of the test's own) and an
    SQLite file, after real RPC traffic.
    """

    timeout = 180

    async def test_metrics_after_traffic(self) -> None:
        """
        When a client makes 3 C{echo} calls and 1 C{fail} call to the echo
        service, then its C{/metrics}, parsed with C{prometheus_client}'s
        parser, counts 3 C{echo} requests ok and 1 C{fail} request in error
        for the service's topic and host, and the dispatch histogram's
        count of C{echo} is 3; SIGTERM then ends the process with status 0.
        """
        vhost = await make_vhost(self)
        topic = f"mx-{uuid.uuid4().hex[:8]}"
        config = os.path.abspath(self.mktemp()) + ".yaml"
        with open(config, "w") as f:
            f.write("api:\n  enabled: true\n  listen: tcp:0:interface=127.0.0.1\n")
        process = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager", f"--topic={topic}", "--host=mx-host",
            f"--transport-url=rabbit://guest:guest@127.0.0.1:5672/{vhost}",
            f"--database-connection=sqlite:///{os.path.abspath(self.mktemp())}.sqlite",
            f"--config={config}")

        def port() -> Any:
            found = re.search(r"API listening on http://127\.0\.0\.1:(\d+)", self.output())
            return found and int(found.group(1))

        number = await poll(port, "the API is listening", interval=0.1)
        transport = AMQPTransport(rabbit_url(vhost), reactor=reactor)
        transport.start()
        self.addCleanup(transport.stop)
        client = RPCClient(transport, Target(topic=topic), timeout=30, clock=reactor)
        for value in range(3):
            self.assertEqual(await client.call({}, "echo", value=value), value)
        with self.assertRaises(Exception):
            await client.call({}, "fail", message="on purpose")
        response = await treq.get(f"http://127.0.0.1:{number}/metrics",
                                  pool=HTTPConnectionPool(reactor, persistent=False))
        self.assertEqual(response.code, 200)
        from prometheus_client.parser import text_string_to_metric_families

        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families((await response.content()).decode())
                   for s in family.samples}

        def sample(name: str, **labels: str) -> float:
            return samples[(name, tuple(sorted(dict(topic=topic, host="mx-host", **labels).items())))]

        self.assertEqual(sample("novasvc_rpc_requests_total", method="echo", outcome="ok"), 3)
        self.assertEqual(sample("novasvc_rpc_requests_total", method="echo", outcome="error"), 0)
        self.assertEqual(sample("novasvc_rpc_requests_total", method="fail", outcome="error"), 1)
        self.assertEqual(sample("novasvc_rpc_dispatch_seconds_count", method="echo"), 3)
        self.assertEqual(sample("novasvc_rpc_dispatch_seconds_count", method="fail"), 1)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(await self.wait_exit(process), 0, self.output()[-5000:])
