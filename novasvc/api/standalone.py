# -*- test-case-name: tests.test_api_standalone -*-
"""
The API on its own, without a manager (as Nova's C{nova-api} runs apart
from the services it shows): L{StandaloneAPI}, the API with a services
table and a broker connection of its own, and L{make_api_service}, which
builds it from the configuration. C{twistd novasvc-api}
(L{novasvc.process.api_tap}) runs it, in one process or in each API worker
(L{novasvc.process.api_workers}).

A database that cannot be reached at start-up does not stop the API:
C{/healthz} reports it, and opening it is retried in the background (1,
2, 4... up to 30 seconds apart); a database refused for good
(L{novasvc.db.store.PermanentDatabaseError}) fails the start.
"""

from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from novasvc.config import Config
from novasvc.exceptions import ConfigError
from novasvc.core.lifecycle import AsyncMultiService

__all__ = ["StandaloneAPI", "make_api_service"]

_log = Logger()

#: Seconds before the first new attempt to open the database; doubled up to
#: L{RETRY_MAX}.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


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


def make_api_service(config: Config, reactor: Any, endpoint: Any = None,
                     worker: Optional[int] = None) -> StandaloneAPI:
    """
    Build the standalone API for C{config}: an SQL store on
    C{database.connection}, a transport on C{transport_url} and the API on
    C{api.listen}.

    @param endpoint: where to listen instead (an API worker's inherited
        socket), or C{None}.
    @param worker: the index of the API worker this process is, or C{None}
        (see L{novasvc.api.context.APIContext.worker}).
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
    context = APIContext.create(config, store, transport, reactor, worker=worker)
    return StandaloneAPI(store, transport, APIService(context, reactor=reactor, endpoint=endpoint),
                         reactor)
