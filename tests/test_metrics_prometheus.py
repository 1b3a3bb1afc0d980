"""
Tests for L{novasvc.metrics.prometheus}: the collector and L{render} read
with C{prometheus_client}'s own parser, the README's list of metrics,
L{MetricsResource} over real HTTP, and real RPC traffic on the local
RabbitMQ (with a forced reconnection) rendered and parsed.
"""

import ast
import os
import re
import subprocess
import sys
from typing import Any, Dict, List, Set, Tuple

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from novasvc.metrics import ERROR, NO_SUCH_METHOD, OK, UNKNOWN_METHOD, UNSUPPORTED_VERSION, Recorder, get_recorder
from novasvc.metrics.prometheus import CONTENT_TYPE, MetricsResource, RecorderCollector, render
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import RemoteError
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport
from tests._services import poll
from tests._vhosts import make_vhost, rabbitmqctl
from tests.test_transport_amqp import FAST, rabbit_url

_README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.rst")


def parse(body: bytes) -> Dict[str, Any]:
    """
    @return: metric family name -> family, as C{prometheus_client}'s parser
        reads C{body} (counter names without C{_total}).
    """
    return {family.name: family for family in text_string_to_metric_families(body.decode("utf-8"))}


def value(families: Dict[str, Any], sample_name: str, **labels: str) -> float:
    """
    @return: the value of the one sample named C{sample_name} with exactly
        C{labels} among its labels.
    @raise AssertionError: when there is not exactly one.
    """
    found = [sample.value for family in families.values() for sample in family.samples
             if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} samples {sample_name} {labels}")
    return found[0]


def exposed(body: bytes) -> Dict[str, str]:
    """
    @return: the metric names exposed (as in C{# TYPE} lines) -> their type.
    """
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", body.decode("utf-8"), re.M))


class _Server:
    def __init__(self, inflight: int) -> None:
        self.inflight = inflight


def _filled() -> Tuple[Recorder, _Server]:
    """
    @return: a recorder with one event of each kind, and the server object
        it watches (keep it alive).
    """
    recorder = Recorder()
    server = _Server(3)
    metrics = recorder.rpc_server("svc", "host1")
    metrics.watch(server)
    metrics.request("echo", OK, 0.002)
    metrics.request("echo", OK, 0.2)
    metrics.request("echo", ERROR, 7.0)
    metrics.request(UNKNOWN_METHOD, NO_SUCH_METHOD, 0.0)
    recorder.http.started()
    recorder.http.finished("/v1/services", "GET", 200, 0.01)
    metrics.duplicate_dropped()
    metrics.malformed_rejected()
    metrics.malformed_rejected()
    recorder.broker_reconnect()
    recorder.report_state_succeeded()
    recorder.report_state_failed()
    recorder.periodic_task_run("VolumeManager._check", 12.0, False)
    recorder.periodic_task_run("VolumeManager._check", 0.5, True)
    recorder.notifier.count("volume.create.end", "info", "sent")
    recorder.notifier.count("volume.create.end", "info", "failed")
    recorder.notifier.count("volume.create.end", "info", "sent")
    recorder.notification_listener.watch(server)
    recorder.notification_listener.count("volume.create.end", "info", "handled")
    recorder.notification_listener.count("<unknown>", "<unknown>", "malformed")
    return recorder, server


class RenderTests(SynchronousTestCase):
    """
    L{render} and L{RecorderCollector}, read back with C{prometheus_client}'s
    parser.
    """

    def test_empty(self) -> None:
        """
        When nothing was recorded, then every family is still exposed with
        its type, the process-wide counters at 0, and the content type is
        C{prometheus_client}'s.
        """
        body, content_type = render(Recorder())
        self.assertEqual(content_type, CONTENT_TYPE)
        self.assertTrue(content_type.startswith("text/plain"))
        self.assertEqual(exposed(body), {
            "novasvc_rpc_requests_total": "counter",
            "novasvc_rpc_dispatch_seconds": "histogram",
            "novasvc_rpc_inflight": "gauge",
            "novasvc_rpc_duplicates_dropped_total": "counter",
            "novasvc_rpc_malformed_rejected_total": "counter",
            "novasvc_broker_reconnects_total": "counter",
            "novasvc_report_state_total": "counter",
            "novasvc_periodic_task_runs_total": "counter",
            "novasvc_periodic_task_duration_seconds": "histogram",
            "novasvc_notifications_sent_total": "counter",
            "novasvc_notifications_received_total": "counter",
            "novasvc_notification_listener_inflight": "gauge",
        })
        families = parse(body)
        self.assertEqual(value(families, "novasvc_broker_reconnects_total"), 0)
        self.assertEqual(value(families, "novasvc_report_state_total", outcome="failed"), 0)

    def test_values(self) -> None:
        """
        When events were recorded, then the parsed output has their counts,
        the histograms' cumulative buckets, counts and sums, and the
        in-flight gauge read from the server.
        """
        recorder, _server = _filled()
        families = parse(render(recorder)[0])
        where = dict(topic="svc", host="host1")
        self.assertEqual(value(families, "novasvc_rpc_requests_total", method="echo", outcome=OK, **where), 2)
        self.assertEqual(value(families, "novasvc_rpc_requests_total", method="echo", outcome=ERROR, **where), 1)
        self.assertEqual(value(families, "novasvc_rpc_requests_total", method=UNKNOWN_METHOD,
                               outcome=NO_SUCH_METHOD, **where), 1)
        self.assertEqual(value(families, "novasvc_rpc_dispatch_seconds_count", method="echo", **where), 3)
        self.assertAlmostEqual(value(families, "novasvc_rpc_dispatch_seconds_sum", method="echo", **where), 7.202)
        buckets = {s.labels["le"]: s.value for s in families["novasvc_rpc_dispatch_seconds"].samples
                   if s.name.endswith("_bucket") and s.labels["method"] == "echo"}
        self.assertEqual((buckets["0.001"], buckets["0.0025"], buckets["0.25"], buckets["5.0"], buckets["10.0"],
                          buckets["+Inf"]), (0, 1, 2, 2, 3, 3))
        self.assertEqual(value(families, "novasvc_rpc_inflight", **where), 3)
        self.assertEqual(value(families, "novasvc_rpc_duplicates_dropped_total", **where), 1)
        self.assertEqual(value(families, "novasvc_rpc_malformed_rejected_total", **where), 2)
        self.assertEqual(value(families, "novasvc_broker_reconnects_total"), 1)
        self.assertEqual(value(families, "novasvc_report_state_total", outcome="ok"), 1)
        self.assertEqual(value(families, "novasvc_report_state_total", outcome="failed"), 1)
        task = "VolumeManager._check"
        self.assertEqual(value(families, "novasvc_periodic_task_runs_total", task=task, outcome="ok"), 1)
        self.assertEqual(value(families, "novasvc_periodic_task_runs_total", task=task, outcome="failed"), 1)
        self.assertEqual(value(families, "novasvc_periodic_task_duration_seconds_count", task=task), 2)
        self.assertEqual(value(families, "novasvc_periodic_task_duration_seconds_sum", task=task), 12.5)
        self.assertEqual(value(families, "novasvc_periodic_task_duration_seconds_bucket", task=task, le="10.0"), 1)
        sent = dict(event_type="volume.create.end", priority="info")
        self.assertEqual(value(families, "novasvc_notifications_sent_total", outcome="sent", **sent), 2)
        self.assertEqual(value(families, "novasvc_notifications_sent_total", outcome="failed", **sent), 1)
        received = "novasvc_notifications_received_total"
        self.assertEqual(value(families, received, outcome="handled", **sent), 1)
        self.assertEqual(value(families, received, outcome="error", **sent), 0)
        self.assertEqual(value(families, received, event_type="<unknown>", priority="<unknown>",
                               outcome="malformed"), 1)
        self.assertEqual(value(families, "novasvc_notification_listener_inflight"), 3)

    def test_received_series_kept_small(self) -> None:
        """
        When notifications were received, then an event type and priority
        has its handled, requeued and error series (even at 0), and its
        malformed and duplicate series only once counted; <unknown> has its
        malformed series only.
        """
        recorder, _server = _filled()
        families = parse(render(recorder)[0])
        series = {(s.labels["event_type"], s.labels["outcome"])
                  for s in families["novasvc_notifications_received"].samples}
        self.assertEqual(series, {("volume.create.end", "handled"), ("volume.create.end", "requeued"),
                                  ("volume.create.end", "error"), ("<unknown>", "malformed")})

    def test_series_kept_small(self) -> None:
        """
        When requests were recorded, then a method has its C{ok} and
        C{error} series (even at 0) and a refusal series only once one
        happened, and C{<unknown>} has refusal series only.
        """
        recorder, _server = _filled()
        families = parse(render(recorder)[0])
        series = {(s.labels["method"], s.labels["outcome"]) for s in families["novasvc_rpc_requests"].samples}
        self.assertEqual(series, {("echo", OK), ("echo", ERROR), (UNKNOWN_METHOD, NO_SUCH_METHOD)})
        recorder.rpc_server("svc", "host1").request(UNKNOWN_METHOD, UNSUPPORTED_VERSION, 0.0)
        families = parse(render(recorder)[0])
        self.assertIn((UNKNOWN_METHOD, UNSUPPORTED_VERSION),
                      {(s.labels["method"], s.labels["outcome"]) for s in families["novasvc_rpc_requests"].samples})

    def test_label_values_escaped(self) -> None:
        """
        When a label value holds quotes, backslashes and a newline, then the
        output still parses and gives the value back.
        """
        recorder = Recorder()
        recorder.periodic_task_run('M."odd"\\\nname', 0.0, False)
        families = parse(render(recorder)[0])
        self.assertEqual({s.labels["task"] for s in families["novasvc_periodic_task_runs"].samples},
                         {'M."odd"\\\nname'})

    def test_process_recorder(self) -> None:
        """
        When L{render} is given no recorder, then it renders the process's
        one.
        """
        get_recorder().rpc_server("render-default-topic", "h").malformed_rejected()
        families = parse(render()[0])
        self.assertGreaterEqual(value(families, "novasvc_rpc_malformed_rejected_total",
                                      topic="render-default-topic", host="h"), 1)

    def test_collector(self) -> None:
        """
        When the collector is collected directly, then it yields the ten
        families, each time read afresh from the recorder.
        """
        recorder = Recorder()
        collector = RecorderCollector(recorder)
        self.assertEqual(len(list(collector.collect())), 12)
        recorder.broker_reconnect()
        [reconnects] = [f for f in collector.collect() if f.name == "novasvc_broker_reconnects"]
        self.assertEqual(reconnects.samples[0].value, 1)


class ReadmeTests(SynchronousTestCase):
    """
    The README's "Metrics" list is what L{render} emits.
    """

    def test_readme_lists_every_metric(self) -> None:
        """
        When the README's "Metrics" list is read, then it names exactly the
        metrics L{render} exposes, each with its type and labels.
        """
        with open(_README, encoding="utf-8") as f:
            text = f.read()
        section = text.split("\nMetrics\n-------\n", 1)[1].split("\n-----", 1)[0]
        listed: Dict[str, Tuple[str, Set[str]]] = {}
        for name, kind, labels in re.findall(r"^- ``(novasvc_\w+)`` \((\w+)(?:; ([^)]*))?\)", section, re.M):
            listed[name] = (kind, set(re.findall(r"``(\w+)``", labels or "")))
        recorder, _server = _filled()
        body = render(recorder)[0]
        emitted: Dict[str, Tuple[str, Set[str]]] = {}
        types = exposed(body)
        for family in parse(body).values():
            name = family.name + "_total" if family.type == "counter" else family.name
            labels = {label for sample in family.samples for label in sample.labels} - {"le"}
            emitted[name] = (types[name], labels)
        self.assertEqual(listed, emitted)


class PackagingTests(SynchronousTestCase):
    """
    How C{prometheus_client} gets installed.
    """

    def test_missing(self) -> None:
        """
        When C{prometheus_client} cannot be imported, then importing the
        exporter fails with an C{ImportError} naming the C{api} extra.
        """
        code = ("import sys; sys.modules['prometheus_client'] = None\n"
                "try:\n    import novasvc.metrics.prometheus\n"
                "except ImportError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=os.path.dirname(_README)).stdout
        self.assertIn("pip install 'novasvc[api]'", out)

    def test_extras(self) -> None:
        """
        When setup.py is read, then the C{api} extra has C{prometheus_client}
        (beside klein) and the C{test} extra has it and C{treq}.
        """
        with open(os.path.join(os.path.dirname(_README), "setup.py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        [extras] = [ast.literal_eval(node.value) for node in ast.walk(tree)
                    if isinstance(node, ast.keyword) and node.arg == "extras_require"]
        names = {extra: {re.split(r"[<>=\[]", requirement)[0] for requirement in requirements}
                 for extra, requirements in extras.items()}
        self.assertEqual(names["api"], {"klein", "prometheus_client"})
        self.assertLessEqual({"prometheus_client", "treq"}, names["test"])


class ResourceTests(TestCase):
    """
    L{MetricsResource} served over real HTTP on the loopback interface.
    """

    timeout = 60

    @defer.inlineCallbacks
    def serve(self, recorder: Recorder) -> Any:
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(MetricsResource(recorder)))
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}/metrics"

    @defer.inlineCallbacks
    def test_get(self) -> Any:
        """
        When C{/metrics} is fetched with C{GET}, then the answer is 200 with
        C{prometheus_client}'s content type, not cached, and parses to the
        recorder's values as they are at each request; C{HEAD} is 200
        without a body.
        """
        recorder, _server = _filled()
        url = yield self.serve(recorder)
        response = yield treq.get(url, persistent=False)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), [CONTENT_TYPE])
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])
        body = yield response.content()
        self.assertEqual(value(parse(body), "novasvc_rpc_malformed_rejected_total", topic="svc", host="host1"), 2)
        response = yield treq.head(url, persistent=False)
        self.assertEqual((response.code, (yield response.content())), (200, b""))
        recorder.broker_reconnect()
        response = yield treq.get(url, persistent=False)
        body = yield response.content()
        self.assertEqual(value(parse(body), "novasvc_broker_reconnects_total"), 2)

    @defer.inlineCallbacks
    def test_other_methods(self) -> Any:
        """
        When C{/metrics} is sent a C{POST}, C{PUT} or C{DELETE}, then the
        answer is 405 and says C{GET} is allowed.
        """
        url = yield self.serve(Recorder())
        for method in ("POST", "DELETE", "PUT"):
            response = yield treq.request(method, url, data=b"x", persistent=False)
            yield response.content()
            self.assertEqual(response.code, 405, method)
            self.assertIn("GET", response.headers.getRawHeaders("allow")[0])


class Echo:
    """
    The endpoint of the traffic test.
    """

    def __init__(self) -> None:
        self.notes: List[Any] = []

    def echo(self, ctxt, value):
        return value

    def note(self, ctxt, value):
        self.notes.append(value)

    def fail(self, ctxt):
        raise ValueError("failed on purpose")


class RabbitMQTrafficTests(TestCase):
    """
    Real RPC traffic on the local RabbitMQ, in a vhost of the test's own,
    then L{render} parsed.
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_traffic(self) -> Any:
        """
        When a client makes 3 good calls, 1 that raises, 1 to an unknown
        method and 2 casts, then the broker closes every connection and one
        more call succeeds, then the rendered metrics count 4 + 2 C{echo}
        and C{note} requests as ok, 1 error, 1 refusal under C{<unknown>},
        the latency histogram's count equal to the requests and a sum
        within the calls' time, nothing in flight, and 1 reconnection of
        the server's transport.
        """
        vhost = yield make_vhost(self)
        recorder = Recorder()
        server_transport = AMQPTransport(rabbit_url(vhost), reactor=reactor, metrics=recorder, **FAST)
        client_transport = AMQPTransport(rabbit_url(vhost), reactor=reactor, metrics=Recorder(), **FAST)
        for transport in (server_transport, client_transport):
            transport.start()
            self.addCleanup(transport.stop)
        endpoint = Echo()
        server = RPCServer(server_transport, Target(topic="metrics", server="host1"), [endpoint], clock=reactor,
                           metrics=recorder)
        yield server.start()
        self.addCleanup(server.wait, 10)
        client = RPCClient(client_transport, Target(topic="metrics"), timeout=20)
        started = reactor.seconds()
        for i in range(3):
            self.assertEqual((yield client.call({}, "echo", value=i)), i)
        yield self.assertFailure(client.call({}, "fail"), ValueError)
        yield self.assertFailure(client.call({}, "no_such_method_from_a_client"), RemoteError)
        yield client.cast({}, "note", value=1)
        yield client.cast({}, "note", value=2)
        yield poll(lambda: len(endpoint.notes) == 2, "both casts ran")
        out, err, code = yield rabbitmqctl("close_all_connections", "-p", vhost, "novasvc metrics test")
        self.assertEqual(code, 0, err)
        yield poll(lambda: recorder.broker_reconnects == 1, "the server's transport reconnected")
        yield poll(lambda: client_transport.is_connected, "the client's transport reconnected")
        self.assertEqual((yield client.call({}, "echo", value="after")), "after")
        # The last call stays in flight until the broker confirmed its reply.
        yield poll(lambda: server.inflight == 0, "the last call settled")
        elapsed = reactor.seconds() - started

        families = parse(render(recorder)[0])
        where = dict(topic="metrics", host="host1")
        self.assertEqual(value(families, "novasvc_rpc_requests_total", method="echo", outcome=OK, **where), 4)
        self.assertEqual(value(families, "novasvc_rpc_requests_total", method="note", outcome=OK, **where), 2)
        self.assertEqual(value(families, "novasvc_rpc_requests_total", method="fail", outcome=ERROR, **where), 1)
        self.assertEqual(value(families, "novasvc_rpc_requests_total", method=UNKNOWN_METHOD,
                               outcome=NO_SUCH_METHOD, **where), 1)
        methods = {s.labels["method"] for s in families["novasvc_rpc_requests"].samples}
        self.assertEqual(methods, {"echo", "note", "fail", UNKNOWN_METHOD})
        self.assertEqual(value(families, "novasvc_rpc_dispatch_seconds_count", method="echo", **where), 4)
        self.assertEqual(value(families, "novasvc_rpc_dispatch_seconds_bucket", method="echo", le="+Inf",
                               **where), 4)
        echo_sum = value(families, "novasvc_rpc_dispatch_seconds_sum", method="echo", **where)
        self.assertTrue(0 <= echo_sum <= elapsed, (echo_sum, elapsed))
        self.assertEqual(value(families, "novasvc_rpc_inflight", **where), 0)
        self.assertEqual(value(families, "novasvc_rpc_duplicates_dropped_total", **where), 0)
        self.assertEqual(value(families, "novasvc_rpc_malformed_rejected_total", **where), 0)
        self.assertEqual(value(families, "novasvc_broker_reconnects_total"), 1)
