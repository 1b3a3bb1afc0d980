# -*- test-case-name: tests.test_process_api_workers -*-
"""
The standalone API in worker processes: C{api.workers: N}, N > 1, for
C{twistd novasvc-api} and C{twistd novasvc --api-only} (Nova's
C{osapi_compute_workers}, run as oslo.service's C{ProcessLauncher} runs
a C{WSGIService}).

The process twistd runs becomes the supervising parent
(L{make_api_supervisor}, L{APIWorkerParent}): it opens no database or
broker connection and imports neither the API's routes nor twisted.web. It
binds C{api.listen} itself (L{novasvc.process.workers.listen_socket}), logs
C{API listening on http://127.0.0.1:PORT (N workers)} (the real port when
C{tcp:0} was asked for), and runs N workers (L{novasvc.process.workers.WorkerPool}),
each C{twistd -n --pidfile= <plugin> <the same options> --worker-index=K}
(L{make_api_worker}): a whole standalone API, with its own store and
transport, serving L{novasvc.api.site.build_site} on the inherited socket
(L{InheritedEndpoint}). The kernel spreads the connections over the
workers; a worker that ends is restarted with the pool's backoff while the
others keep answering; SIGHUP is forwarded to every worker; SIGTERM stops
the parent listening at once and each worker drains its requests.

An C{ssl:} endpoint works too: the parent binds its address as TCP, and
each worker wraps the site in Twisted's TLS (C{TLSMemoryBIOFactory}) with
the context factory the endpoint string describes (its key and
certificate). Other endpoints (a unix socket) cannot be shared: they are
refused at configuration time (L{novasvc.config.api.check_workers}).
"""

import os
import shutil
import tempfile
from typing import Any, Callable, List, Optional, Sequence

import attrs
from twisted.application.service import IService, Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorSSL, IReactorTCP, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from novasvc.exceptions import ConfigError
from novasvc._text import show_value
from novasvc.process.workers import (
    KILL_GRACE,
    ListeningSocket,
    ProcessSpawner,
    WorkerIdentity,
    WorkerPool,
    inherited_port,
    listen_socket,
)

__all__ = ["APIWorkerParent", "InheritedEndpoint", "SharedListen", "make_api_supervisor",
           "make_api_worker", "shared_listen"]

_log = Logger()

#: As L{novasvc.api.worker_metrics.METRICS_DIR_ENV} (not imported here: the
#: parent loads nothing of twisted.web).
METRICS_DIR_ENV = "NOVASVC_API_METRICS_DIR"


@attrs.frozen
class SharedListen:
    """
    How the workers share one C{api.listen} endpoint.

    @ivar tcp: the C{tcp:} or C{tcp6:} endpoint string the parent binds
        (L{novasvc.process.workers.listen_socket}).
    @ivar scheme: C{"http"}, or C{"https"} for an C{ssl:} endpoint.
    @ivar tls: the TLS context factory of an C{ssl:} endpoint (what
        Twisted's C{listenSSL} would get), or C{None}.
    """

    tcp: str
    scheme: str = "http"
    tls: Any = attrs.field(default=None, repr=False)


@implementer(IReactorTCP, IReactorSSL)
class _Recorder:
    """
    Stands in for a reactor so that Twisted's own parser reads an endpoint
    string: it records what C{listenTCP} or C{listenSSL} is asked, and
    listens on nothing.
    """

    def __init__(self) -> None:
        self.tcp: Optional[tuple] = None
        self.ssl: Optional[tuple] = None

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> None:
        self.tcp = (port, backlog, interface)

    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                  interface: str = "") -> None:
        self.ssl = (port, backlog, interface, contextFactory)

    def connectTCP(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - never asked
        raise NotImplementedError()

    def connectSSL(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - never asked
        raise NotImplementedError()


def shared_listen(listen: str) -> SharedListen:
    """
    Read an C{api.listen} endpoint string for workers to share. An C{ssl:}
    endpoint reads its key and certificate files here.

    @param listen: a C{tcp:}, C{tcp6:} or C{ssl:} server endpoint string.
    @return: the L{SharedListen}.
    @raise ConfigError: naming C{api.listen} for any other endpoint, or one
        Twisted cannot build.
    """
    recorder = _Recorder()
    try:
        endpoint = serverFromString(recorder, listen)
    except Exception as e:
        raise ConfigError(f"api.listen: cannot be used by API workers: {show_value(listen)} "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    try:
        endpoint.listen(Factory()).addErrback(lambda _: None)
    except Exception:
        pass  # asked the recorder for something else than listenTCP or listenSSL
    if recorder.ssl is not None:
        port, backlog, interface, context = recorder.ssl
        address = interface.replace(":", "\\:")
        kind = "tcp6" if ":" in interface else "tcp"
        return SharedListen(f"{kind}:{port}:interface={address}:backlog={backlog}" if interface
                            else f"tcp:{port}:backlog={backlog}", "https", context)
    if recorder.tcp is not None:
        return SharedListen(listen)
    raise ConfigError(f"api.listen: API workers share a tcp:, tcp6: or ssl: endpoint, got "
                      f"{show_value(listen)}")


def _url(scheme: str, bound: ListeningSocket) -> str:
    host = f"[{bound.host}]" if ":" in bound.host else bound.host
    return f"{scheme}://{host}:{bound.port}"


class APIWorkerParent(Service):
    """
    The supervising parent of the API's workers: it binds the shared
    socket, runs a L{WorkerPool} of workers that inherit it, and closes
    its own copy when it stops.

    @ivar url: where clients reach the API (C{http://127.0.0.1:8774}),
        once bound.
    @ivar port: the TCP port bound (C{int}), once bound.
    @ivar pool: the L{WorkerPool}, once started.

    It also makes the directory where each worker writes its metrics, so
    that C{/metrics} shows every worker's (L{novasvc.api.worker_metrics}),
    and removes it once the workers ended.
    """

    name = "api-workers"

    def __init__(self, listen: str, count: int, argv: Callable[[int, int], Sequence[str]],
                 reactor: Any, *, stop_timeout: Optional[float] = None,
                 spawner: Callable[..., Any] = ProcessSpawner) -> None:
        """
        @param listen: C{api.listen}.
        @param count: how many workers (C{int} > 1).
        @param argv: worker K of N's command, C{argv(K, N)}.
        @param reactor: provides C{IReactorProcess}, C{IReactorSocket} and
            C{IReactorTime}.
        @param stop_timeout: B{seconds} after SIGTERM before a worker still
            running gets SIGKILL, or C{None} for no limit.
        @param spawner: makes the L{novasvc.process.workers.IWorkerSpawner},
            C{spawner(reactor, argv, sockets=[bound])}.
        @raise ConfigError: see L{shared_listen}.
        """
        self._shared = shared_listen(listen)
        self._listen = listen
        self._count = count
        self._argv = argv
        self._reactor = reactor
        self._stop_timeout = stop_timeout
        self._spawner = spawner
        self._socket: Optional[ListeningSocket] = None
        self.pool: Optional[WorkerPool] = None
        self.url: Optional[str] = None
        self.port: Optional[int] = None
        self._metrics_dir: Optional[str] = None

    def startService(self) -> defer.Deferred:
        """
        Bind the socket and start the workers.

        @return: a C{Deferred} firing once every worker is ready; failing
            with L{ConfigError} when the address cannot be bound, or as
            L{WorkerPool.startService} does.
        """
        Service.startService(self)
        try:
            bound = listen_socket(self._shared.tcp)
        except (CannotListenError, ValueError) as e:
            reason = getattr(e, "socketError", None) or e
            return defer.fail(ConfigError(f"api.listen: cannot listen on {show_value(self._listen)}: "
                                          f"{getattr(reason, 'strerror', None) or reason}"))
        self._socket = bound
        self.port = bound.port
        # Where each worker writes its metrics for the others' /metrics
        # (novasvc.api.worker_metrics); the workers inherit the variable.
        self._metrics_dir = tempfile.mkdtemp(prefix="novasvc-api-metrics-")
        os.environ[METRICS_DIR_ENV] = self._metrics_dir
        self.url = _url(self._shared.scheme, bound)
        _log.info("API listening on {url} ({count} workers)", url=self.url, count=self._count)
        spawner = self._spawner(self._reactor, self._argv, sockets=[bound])
        self.pool = WorkerPool(spawner, self._count, clock=self._reactor,
                               stop_timeout=self._stop_timeout, name="api-workers")
        return self.pool.startService()

    def stopService(self) -> defer.Deferred:
        """
        Close the parent's copy of the socket at once (it stops listening
        once the workers closed theirs: no new connection waits for a
        worker that is stopping), then stop the workers, each draining its
        requests.

        @return: a C{Deferred} firing once every worker has ended.
        """
        Service.stopService(self)
        bound, self._socket = self._socket, None
        if bound is not None:
            bound.close()
        if self.pool is None:
            return defer.succeed(None)
        d = self.pool.stopService()
        d.addCallback(lambda _: _log.info("API stopped listening on {url}", url=self.url))
        d.addBoth(self._remove_metrics_dir)
        return d

    def _remove_metrics_dir(self, result: Any) -> Any:
        directory, self._metrics_dir = self._metrics_dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            if os.environ.get(METRICS_DIR_ENV) == directory:
                del os.environ[METRICS_DIR_ENV]
        return result

    def reset(self) -> None:
        """
        SIGHUP: forward it to every worker.
        """
        if self.pool is not None:
            self.pool.reset()

    def stop_now(self) -> None:
        """
        A second SIGTERM: hurry every worker (see L{WorkerPool.stop_now}).
        """
        if self.pool is not None:
            self.pool.stop_now()


@implementer(IStreamServerEndpoint)
class InheritedEndpoint:
    """
    A worker's endpoint: the listening socket inherited from the parent
    (L{novasvc.process.workers.inherited_port}), with TLS around the factory for
    an C{ssl:} endpoint.
    """

    def __init__(self, reactor: Any, tls: Any = None,
                 identity: Optional[WorkerIdentity] = None) -> None:
        """
        @param reactor: provides C{adoptStreamPort}.
        @param tls: the TLS context factory (L{SharedListen.tls}), or
            C{None} for plain HTTP.
        @param identity: this worker (default: from the environment).
        """
        self._reactor = reactor
        self._tls = tls
        self._identity = identity

    def listen(self, factory: Any) -> "defer.Deferred[IListeningPort]":
        """
        @return: a C{Deferred} firing with the listening port.
        """
        if self._tls is not None:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            factory = TLSMemoryBIOFactory(self._tls, False, factory)
        return defer.execute(inherited_port, self._reactor, factory, 0, self._identity)


def _worker_command(plugin: str, argv: List[str]) -> Callable[[int, int], List[str]]:
    from novasvc.process.workers.twistd import worker_argv

    return lambda index, count: worker_argv(argv, index, plugin=plugin)


def make_api_supervisor(options: Any, reactor: Any, plugin: str) -> IService:
    """
    The parent of C{api.workers} API workers inside a
    L{novasvc.process.launcher.HangupService}: ready (systemd's C{READY=1}, the
    daemon's waiting parent told 0) once every worker is ready; SIGHUP
    forwarded; on SIGTERM the workers are stopped and the process exits 0
    once they have ended; a worker still running
    C{graceful_shutdown_timeout} + 10 s after the SIGTERM gets SIGKILL
    (never when the timeout is 0).

    @param options: the parsed plugin options: C{settings}, C{argv} (its
        arguments, given again to each worker), C{config}, C{log-level}.
    @param reactor: the reactor.
    @param plugin: the twistd plugin the workers run (C{novasvc-api}, or
        C{novasvc} whose C{argv} has C{--api-only}).
    @raise ConfigError: see L{shared_listen}.
    """
    from novasvc.process.launcher import HangupService
    from novasvc.process.log import LogControl

    settings = options.settings
    timeout = settings.graceful_shutdown_timeout
    parent = APIWorkerParent(settings.api.listen, settings.api.workers,
                             _worker_command(plugin, list(options.argv)), reactor,
                             stop_timeout=timeout + KILL_GRACE if timeout else None)
    return HangupService(parent, reactor, LogControl.from_options(options, reactor),
                         daemon=getattr(options, "parent", None))


def make_api_worker(options: Any, reactor: Any, environ: Optional[Any] = None) -> IService:
    """
    One API worker: the standalone API (L{novasvc.api.standalone.make_api_service})
    serving on the socket inherited from the parent, around
    L{novasvc.process.workers.twistd.make_worker} (JSON log lines for the parent,
    C{READY=1} on its link, stops when the parent is gone).

    @param options: the parsed plugin options, with C{--worker-index}.
    @param reactor: the reactor.
    @param environ: the environment (default: C{os.environ}).
    @raise ConfigError: when this process was not started by an API
        parent (no inherited socket), or C{api.listen} cannot be shared.
    """
    from novasvc.api.standalone import make_api_service
    from novasvc.process.workers.twistd import make_worker

    try:
        identity = WorkerIdentity.from_environ(os.environ if environ is None else environ)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if identity is None or not identity.listen_fds:
        raise ConfigError("--worker-index is for the processes the API's supervising parent "
                          "starts (api.workers > 1): no listening socket was inherited")
    shared = shared_listen(options.settings.api.listen)
    endpoint = InheritedEndpoint(reactor, tls=shared.tls, identity=identity)
    return make_worker(make_api_service(options.settings, reactor, endpoint=endpoint,
                                        worker=identity.index), options, reactor)
