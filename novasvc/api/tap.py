# -*- test-case-name: tests.test_api_tap -*-
"""
C{twistd novasvc-api}: the API on its own, without a manager (as Nova's
C{nova-api} runs apart from the services it shows), with its own services
table and broker connection: L{Options} and L{makeService}, used by the
plugin in C{twisted/plugins/novasvc_plugin.py} and by C{twistd novasvc
--api-only}.

Signals, systemd and the exit status are L{novasvc.launcher.HangupService}'s,
as for C{twistd novasvc}. With C{api.workers} above 1 the process is the
supervising parent of that many API worker processes
(L{novasvc.api.workers}). A database that cannot be reached at start-up does
not stop the API: C{/healthz} reports it, and opening it is retried in the
background (1, 2, 4... up to 30 seconds apart); a database refused for good
(L{novasvc.db.store.PermanentDatabaseError}) fails the start.
"""

from typing import Any, Optional

import attrs
from twisted.application.service import IService, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from novasvc.config import Config, load_config
from novasvc.config.api import check_listen, check_workers
from novasvc.exceptions import ConfigError
from novasvc.lifecycle import AsyncMultiService
from novasvc.tap import ArgvOptions

__all__ = ["Options", "StandaloneAPI", "makeService", "make_api_service", "serve"]

_log = Logger()

#: Seconds before the first new attempt to open the database; doubled up to
#: L{RETRY_MAX}.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


def _index(text: str) -> int:
    """
    Parse C{--worker-index}: an integer >= 1 (C{ValueError} otherwise, which
    L{usage.Options} shows).
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--worker-index: expected an integer >= 1, got {text[:40]!r}")
    return value


class Options(ArgvOptions):
    """
    Options of C{twistd novasvc-api}.

    @ivar settings: the L{Config} built by L{postOptions}, with C{--listen}
        applied to C{api.listen}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve the novasvc HTTP API (services table, health, metrics, RPC gateway) without "
        "running a manager. Settings come from --config (its api: section), then the built-in "
        "defaults; api.enabled is not needed."
    )
    optParameters = [
        ["config", "c", None, "YAML configuration file (every key: etc/novasvc.yaml)."],
        ["listen", "l", None,
         "Twisted endpoint to listen on, e.g. tcp:8774:interface=127.0.0.1 or tcp:0 "
         "(default: the config's api.listen)."],
        ["transport-url", None, None, "Broker URL, e.g. rabbit://user:password@host:5672/vhost."],
        ["database-connection", None, None, "SQLAlchemy URL of the services table's database."],
        ["log-level", None, None,
         "Lowest level logged: debug, info, warning, error or critical (config default: info)."],
        ["worker-index", None, None,
         "Internal: run as API worker K of the supervising parent that passes it.", _index],
    ]

    settings: Config

    def postOptions(self) -> None:
        """
        Load the configuration into L{settings}.

        @raise usage.UsageError: with the configuration's or C{--listen}'s
            error, which twistd prints without a traceback.
        """
        try:
            settings = load_config(self["config"], {
                "transport_url": self["transport-url"],
                "database_connection": self["database-connection"],
                "log_level": self["log-level"],
            })
            if self["listen"] is not None:
                try:
                    check_listen(self["listen"])
                except ConfigError as e:
                    raise ConfigError(f"command line option --listen: {e}") from None
                settings = settings.replace(api=attrs.evolve(settings.api, listen=self["listen"]))
                try:
                    check_workers(settings.api)
                except ConfigError as e:
                    raise ConfigError(f"command line option --listen: {e}") from None
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        self.settings = settings


class _Store(Service):
    """
    Opens the services table: the first attempt is waited for; if it fails
    in a way that may pass, the API starts anyway and the store is opened
    in the background.
    """

    name = "store"

    def __init__(self, store: Any, clock: Any) -> None:
        self._store = store
        self._clock = clock
        self._call: Optional[Any] = None
        self._delay = RETRY_FIRST
        self._attempts = 0

    def startService(self) -> defer.Deferred:
        Service.startService(self)
        return self._attempt(first=True)

    def _attempt(self, first: bool = False) -> defer.Deferred:
        self._call = None
        self._attempts += 1
        d = defer.maybeDeferred(self._store.start)
        d.addCallbacks(self._opened, self._failed, errbackArgs=(first,))
        return d

    def _opened(self, _: Any) -> None:
        if self._attempts > 1:
            _log.info("Recovered: opened the services table at attempt {attempt}",
                      attempt=self._attempts)

    def _failed(self, failure: Any, first: bool) -> Any:
        if not self.running:
            return None  # stopped meanwhile
        if failure.check(ConfigError):
            if first:
                return failure  # the start fails: no retry mends this
            _log.error("Cannot open the services table: {error}", error=failure.getErrorMessage())
            return None
        _log.warn("Could not open the services table (attempt {attempt}): {error}; retrying in "
                  "{delay:g} s; /healthz reports the database as down meanwhile",
                  attempt=self._attempts, error=" ".join(failure.getErrorMessage().split())[:500],
                  delay=self._delay)
        self._call = self._clock.callLater(self._delay, self._attempt)
        self._delay = min(self._delay * 2, RETRY_MAX)
        return None

    def stopService(self) -> defer.Deferred:
        Service.stopService(self)
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        return defer.maybeDeferred(self._store.stop)


class _Transport(Service):
    name = "transport"

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def startService(self) -> None:
        Service.startService(self)
        self._transport.start()

    def stopService(self) -> defer.Deferred:
        Service.stopService(self)
        return defer.maybeDeferred(self._transport.stop)


class StandaloneAPI(AsyncMultiService):
    """
    The API with a services table and a broker connection of its own:
    opened in that order, the API listening last, and closed in reverse.

    @ivar api: the L{novasvc.api.service.APIService}.
    """

    def __init__(self, store: Any, transport: Any, api: Any, clock: Any) -> None:
        AsyncMultiService.__init__(self)
        self.api = api
        _Store(store, clock).setServiceParent(self)
        _Transport(transport).setServiceParent(self)
        api.setServiceParent(self)

    def reset(self) -> None:
        """
        SIGHUP: nothing to reload beyond the log level (which the launcher
        re-reads).
        """


def make_api_service(config: Config, reactor: Any, endpoint: Any = None) -> StandaloneAPI:
    """
    Build the standalone API for C{config}: an SQL store on
    C{database.connection}, a transport on C{transport_url} and the API on
    C{api.listen}.

    @param endpoint: where to listen instead (an API worker's inherited
        socket), or C{None}.
    @raise ConfigError: for a database URL or transport URL that cannot be
        used, or an application or filter that cannot be loaded.
    """
    from novasvc.api.context import APIContext
    from novasvc.api.service import APIService
    from novasvc.db.store import SQLServiceStore
    from novasvc.transport import TLSOptions, get_transport

    store = SQLServiceStore(config.database.connection, reactor=reactor,
                            thread_pool_size=config.database.thread_pool_size)
    transport = get_transport(config.transport_url, reactor=reactor, client=config.amqp_client,
                              heartbeat=int(config.heartbeat_timeout_threshold),
                              tls=TLSOptions.from_config(config),
                              failover_strategy=config.kombu_failover_strategy)
    context = APIContext.create(config, store, transport, reactor)
    return StandaloneAPI(store, transport, APIService(context, reactor=reactor, endpoint=endpoint),
                         reactor)


def makeService(options: Options, reactor: Optional[Any] = None) -> IService:
    """
    Build the service for C{twistd novasvc-api}: L{serve}.

    This and L{novasvc.tap.makeService} are the only functions that touch
    the global reactor.

    @raise SystemExit: with a one-line message for a configuration error.
    """
    if reactor is None:
        from twisted.internet import reactor
    return serve(options, reactor, "novasvc-api")


def serve(options: Any, reactor: Any, plugin: str) -> IService:
    """
    The standalone API for parsed options (of C{twistd novasvc-api}, or of
    C{twistd novasvc --api-only}):

      - with C{api.workers} above 1 (and no C{--worker-index}), the
        supervising parent of that many workers, each running C{plugin}
        with the same options (L{novasvc.api.workers.make_api_supervisor});
      - with C{--worker-index}, one of those workers
        (L{novasvc.api.workers.make_api_worker});
      - otherwise L{make_api_service} inside a
        L{novasvc.launcher.HangupService} (signals, exit status, systemd,
        logging).

    @param options: the parsed options: C{settings}, C{argv}, C{config},
        C{log-level}, C{worker-index}.
    @param plugin: the twistd plugin the workers run.
    @raise SystemExit: with a one-line message (C{<plugin>: error: ...})
        for a configuration error.
    """
    try:
        if options["worker-index"] is not None:
            from novasvc.api.workers import make_api_worker

            return make_api_worker(options, reactor)
        if options.settings.api.workers > 1:
            from novasvc.api.workers import make_api_supervisor

            return make_api_supervisor(options, reactor, plugin)
        service = make_api_service(options.settings, reactor)
    except ConfigError as e:
        raise SystemExit(f"{plugin}: error: {e}") from None
    from novasvc.launcher import HangupService
    from novasvc.log import LogControl

    return HangupService(service, reactor, LogControl.from_options(options, reactor),
                         daemon=getattr(options, "parent", None))
