# -*- test-case-name: tests.test_api_worker_metrics -*-
"""
C{/metrics} under API workers: each worker counts in its own process, so
each writes its metrics (Prometheus's text format) to a directory the
supervising parent made, every L{DUMP_INTERVAL} seconds, and the worker
that answers C{/metrics} renders its own afresh and those of the others
from their files, each sample with a C{worker} label (C{"1"}, C{"2"}...).
Sum them in a query (C{sum without (worker) (...)}). A worker's file is
at most L{DUMP_INTERVAL} seconds old; the parent removes the directory
when it stops.
"""

import os
import tempfile
from typing import Any, Dict, Iterator, Optional

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource

__all__ = ["DUMP_INTERVAL", "METRICS_DIR_ENV", "WorkerMetrics", "aggregate", "from_environ", "make_dir"]

_log = Logger()

#: The environment variable naming the directory (set by the parent).
METRICS_DIR_ENV = "NOVASVC_API_METRICS_DIR"
#: B{Seconds} between two writes of a worker's metrics.
DUMP_INTERVAL = 2.0


def make_dir() -> str:
    """
    Make the directory (private to the user) and name it in the
    environment the workers inherit.

    @return: its path.
    """
    path = tempfile.mkdtemp(prefix="novasvc-api-metrics-")
    os.environ[METRICS_DIR_ENV] = path
    return path


def _file(directory: str, index: int) -> str:
    return os.path.join(directory, f"worker-{index}.prom")


def aggregate(texts: Dict[int, str]) -> bytes:
    """
    @param texts: each worker's metrics in Prometheus's text format, by
        worker index.
    @return: one text with every worker's samples, labelled C{worker}.
    """
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: Dict[str, Metric] = {}
    for index in sorted(texts):
        for family in text_string_to_metric_families(texts[index]):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation,
                                                        family.type)
            for sample in family.samples:
                merged.add_sample(sample.name, {**sample.labels, "worker": str(index)},
                                  sample.value)

    class _All:
        def collect(self) -> Iterator[Metric]:
            return iter(list(families.values()))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_All())  # type: ignore[arg-type]
    return generate_latest(registry)


class WorkerMetrics:
    """
    One worker's side: its dumps, and the C{/metrics} resource that
    aggregates every worker's.
    """

    def __init__(self, directory: str, index: int, recorder: Any, clock: Any) -> None:
        self._directory = directory
        self._index = index
        self._recorder = recorder
        self._loop = LoopingCall(self.dump)
        self._loop.clock = clock

    def start(self) -> None:
        self._loop.start(DUMP_INTERVAL, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _own(self) -> str:
        from novasvc.metrics.prometheus import render

        return render(self._recorder)[0].decode("utf-8")

    def dump(self) -> None:
        """
        Write this worker's metrics to its file (replaced whole).
        """
        try:
            path = _file(self._directory, self._index)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(self._own())
            os.replace(path + ".tmp", path)
        except OSError as e:
            _log.warn("Could not write this worker's metrics: {error}", error=e)

    def texts(self) -> Dict[int, str]:
        """
        @return: every worker's metrics by index: this one's afresh, the
            others' from their files.
        """
        found: Dict[int, str] = {self._index: self._own()}
        try:
            names = os.listdir(self._directory)
        except OSError:
            names = []
        for name in names:
            if not (name.startswith("worker-") and name.endswith(".prom")):
                continue
            try:
                index = int(name[len("worker-"):-len(".prom")])
            except ValueError:
                continue
            if index == self._index:
                continue
            try:
                with open(os.path.join(self._directory, name), encoding="utf-8") as f:
                    found[index] = f.read()
            except OSError:
                continue
        return found

    def resource(self) -> Resource:
        """
        @return: the C{/metrics} resource of this worker.
        """
        return _AggregateResource(self)


class _AggregateResource(Resource):
    isLeaf = True

    def __init__(self, metrics: WorkerMetrics) -> None:
        Resource.__init__(self)
        self._metrics = metrics

    def render_GET(self, request: Any) -> bytes:
        from prometheus_client import CONTENT_TYPE_LATEST

        body = aggregate(self._metrics.texts())
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return body


def from_environ(recorder: Any, clock: Any, worker: Optional[int],
                 environ: Optional[Any] = None) -> Optional[WorkerMetrics]:
    """
    @param worker: the index of the API worker this process is (see
        L{novasvc.api.context.APIContext.worker}), or C{None}.
    @return: this worker's L{WorkerMetrics} when it is an API worker and
        its parent made the directory, else C{None}.
    """
    environ = os.environ if environ is None else environ
    directory = environ.get(METRICS_DIR_ENV)
    if not directory or worker is None:
        return None
    return WorkerMetrics(directory, worker, recorder, clock)
