# -*- test-case-name: tests.test_api_service -*-
"""
L{APIService}: the API's site listening on C{api.listen}, as a Twisted
service: the last child of a L{novasvc.core.service.Service} when C{api.enabled}
is true (L{embed}, which C{twistd novasvc} calls: it starts after
everything else and stops first), or the heart of C{twistd novasvc-api}
(L{novasvc.api.standalone}).

Once listening it logs C{API listening on http://127.0.0.1:PORT} and keeps
the port in L{APIService.port}, which is how a C{tcp:0} listener tells the
free port it got. Stopping stops listening, lets requests under way finish
(up to C{graceful_shutdown_timeout} seconds), closes idle connections, then
runs the stoppers of L{APIContext.on_stop}.
"""

import sys
from typing import Any, List, Optional, Set

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc._phase import Phase, Shared, answer_repeated_start
from novasvc._reactor import global_reactor_if_none
from novasvc.api._share import ReactorShare
from novasvc.api.context import APIContext
from novasvc.api.site import APISite, build_site
from novasvc.config.api import embedded_refusal
from novasvc.exceptions import ConfigError

__all__ = ["APIService", "SWITCH_INTERVAL", "describe_address", "embed"]

#: B{Seconds} between the interpreter's thread switches
#: (C{sys.setswitchinterval}) while the API of a service runs: a thread
#: building a listing holds the GIL for at most this long once the reactor
#: thread wants it (Python's default is 5 ms).
SWITCH_INTERVAL = 0.0005

_log = Logger()


def describe_address(listen: str, address: Any) -> str:
    """
    @param listen: the endpoint string listened on (its type decides
        between C{http} and C{https}).
    @param address: the listening port's C{getHost()}.
    @return: where clients reach it: C{http://127.0.0.1:8774},
        C{https://[::1]:8443} or C{unix:/run/api.sock}.
    """
    scheme = "https" if listen.split(":", 1)[0].strip().lower() == "ssl" else "http"
    if isinstance(address, IPv6Address):
        return f"{scheme}://[{address.host}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{scheme}://{address.host}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name.decode("utf-8", "replace") if isinstance(address.name, bytes) \
            else address.name
        return f"unix:{name}"
    return str(address)


class _Connections:
    """
    The open connections of a site, to close them on stop.
    """

    def __init__(self, site: APISite, clock: Any) -> None:
        self._site = site
        self._clock = clock
        self._channels: Set[Any] = set()
        self._empty: List[defer.Deferred] = []
        site.connections = self

    def opened(self, channel: Any) -> None:
        self._channels.add(channel)

    def closed(self, channel: Any) -> None:
        self._channels.discard(channel)
        if not self._channels:
            waiters, self._empty = self._empty, []
            for waiter in waiters:
                waiter.callback(None)

    def close(self, timeout: float) -> defer.Deferred:
        """
        Close idle connections now, the others once their request is
        answered, and abort those still open after C{timeout} seconds
        (C{0}: no limit).

        @return: a C{Deferred} firing once every connection is closed.
        """
        self._site.closing = True
        for channel in list(self._channels):
            if not channel.requests:
                channel.transport.loseConnection()
        if not self._channels:
            return defer.succeed(None)
        done: defer.Deferred = defer.Deferred()
        self._empty.append(done)
        if timeout:
            call = self._clock.callLater(timeout, self._abort)
            done.addBoth(lambda result: (call.active() and call.cancel(), result)[1])
        return done

    def _abort(self) -> None:
        if self._channels:
            _log.warn("Closing {count} API connection(s) whose request did not finish in time",
                      count=len(self._channels))
        for channel in list(self._channels):
            channel.transport.abortConnection()


class APIService(Service):
    """
    The API listening on one endpoint.

    @ivar context: the L{APIContext}.
    @ivar site: the L{APISite} (built by L{build_site} at construction).
    @ivar listen: the endpoint string.
    @ivar port: the TCP port listened on (C{int}), once listening; C{None}
        before, after the stop, and for a unix socket.
    @ivar url: where clients reach the API (see L{describe_address}), once
        listening.
    @ivar switch_interval: B{seconds}, the interpreter's thread switch
        interval while it runs (the one before is put back when it stops),
        or C{None} to leave it (the API on its own).
    """

    switch_interval: Optional[float] = None
    _switch_before: Optional[float] = None

    name = "api"

    def __init__(self, context: APIContext, *, listen: Optional[str] = None,
                 reactor: Any = None, site: Optional[APISite] = None,
                 endpoint: Optional[IStreamServerEndpoint] = None) -> None:
        """
        @param context: the L{APIContext}.
        @param listen: the endpoint string (default: C{api.listen}).
        @param reactor: the reactor to listen with (default: the global one,
            looked up at the start).
        @param site: the site (default: L{build_site}C{(context)}).
        @param endpoint: where to listen instead of C{listen}'s endpoint
            (a worker process's inherited socket,
            L{novasvc.process.api_workers.InheritedEndpoint}); C{listen} then only
            tells the scheme of L{url}.
        @raise novasvc.exceptions.ConfigError: when the application or a
            filter cannot be loaded.
        """
        self.context = context
        self.listen = listen or context.config.api.listen
        self._reactor = reactor
        self._endpoint = endpoint
        self.site = site if site is not None else build_site(context)
        self._connections = _Connections(self.site, context.clock)
        self._listening: Optional[IListeningPort] = None
        #: Where it is in its lifecycle (L{novasvc._phase}'s table).
        self.phase = Phase.STOPPED
        self._start: Optional[Shared] = None
        self._stop: Optional[Shared] = None
        self.port: Optional[int] = None
        self.url: Optional[str] = None

    @classmethod
    def for_service(cls, service: Any) -> "APIService":
        """
        The API of a L{novasvc.core.service.Service}: its configuration, store,
        transport, clock and service down time, handling requests within
        C{api.service_max_in_flight} and C{api.service_max_waiting}, and
        taking at most C{api.service_reactor_share} of the reactor thread's
        time under load (L{novasvc.api._share.ReactorShare}).
        """
        context = APIContext(config=service.config, store=service.store,
                             transport=service.transport, clock=service.clock,
                             service_down_time=service.service_down_time,
                             notifier=getattr(service, "versioned_notifier", None),
                             tracing=getattr(service, "tracing", None),
                             row_deleted=lambda: bool(getattr(
                                 getattr(service, "report_state_service", None),
                                 "row_deleted", False)))
        reactor = service.clock if IReactorTCP.providedBy(service.clock) else None
        api = cls(context, reactor=reactor)
        # RPC first: the service's own API handles few requests at once.
        observer = getattr(api.site, "observer", None)
        if observer is not None:
            limits = service.config.api
            observer.max_in_flight = limits.service_max_in_flight
            observer.max_waiting = limits.service_max_waiting
            if limits.service_reactor_share < 1:
                observer.share = ReactorShare(limits.service_reactor_share)
        api.switch_interval = SWITCH_INTERVAL
        return api

    def startService(self) -> defer.Deferred:
        """
        Listen.

        @return: a C{Deferred} firing once listening, or failing (e.g.
            C{CannotListenError} when the port is taken); while starting,
            that start's outcome; while running, C{None}; while stopping, a
            L{novasvc.exceptions.LifecycleError}.
        """
        answer = answer_repeated_start(self, self.phase, self._start)
        if answer is not None:
            return answer
        self.phase = Phase.STARTING
        Service.startService(self)
        if self.switch_interval is not None and self._switch_before is None:
            self._switch_before = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval)
        self.site.closing = False
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = serverFromString(global_reactor_if_none(self._reactor), self.listen)
        d = defer.maybeDeferred(endpoint.listen, self.site)
        d.addCallback(self._listening_on)
        d.addErrback(self._restore_switch)
        self._start = Shared(d)
        return self._start.observe()

    def _listening_on(self, listening: IListeningPort) -> Any:
        if self.phase is not Phase.STARTING:
            # Stopped before the port was open: close it, it is nobody's.
            return defer.maybeDeferred(listening.stopListening).addCallback(lambda _: None)
        self.phase = Phase.RUNNING
        self._listening = listening
        address = listening.getHost()
        self.port = getattr(address, "port", None)
        self.url = describe_address(self.listen, address)
        _log.info("API listening on {url}", url=self.url)

    def stopService(self) -> defer.Deferred:
        """
        Stop listening, let the requests under way finish (up to
        C{graceful_shutdown_timeout} seconds), close the connections, run
        the context's stoppers.

        @return: a C{Deferred} firing once done; while stopping, that
            stop's outcome; when stopped, C{None} at once. A port still
            being opened is closed as soon as it is.
        """
        if self.phase is Phase.STOPPING and self._stop is not None:
            return self._stop.observe()
        if self.phase is Phase.STOPPED:
            return defer.succeed(None)
        self.phase = Phase.STOPPING
        Service.stopService(self)
        listening, self._listening = self._listening, None
        d = defer.maybeDeferred(listening.stopListening) if listening else defer.succeed(None)
        d.addCallback(lambda _: self._connections.close(
            self.context.config.graceful_shutdown_timeout))
        d.addCallback(lambda _: self.context.stop())
        d.addBoth(self._stopped)
        self._stop = Shared(d)
        return self._stop.observe()

    def _restore_switch(self, result: Any) -> Any:
        before, self._switch_before = self._switch_before, None
        if before is not None:
            sys.setswitchinterval(before)
        return result

    def _stopped(self, result: Any) -> Any:
        self.phase = Phase.STOPPED
        self._restore_switch(None)
        if self.url is not None:
            _log.info("API stopped listening on {url}", url=self.url)
        self.port = None
        return result if isinstance(result, Failure) else None


def embed(service: Any) -> APIService:
    """
    Serve the API in a service's process, as its last step
    (L{APIService.for_service}, given to the service's C{serve_api}).

    @param service: a L{novasvc.core.service.Service} not started yet.
    @return: the API, also the service's C{api}.
    @raise ConfigError: with C{api.workers} above 1
        (L{novasvc.config.api.embedded_refusal}: API worker processes are
        C{twistd novasvc-api}'s), or when the application or a filter
        cannot be loaded.
    """
    refusal = embedded_refusal(service.config.api)
    if refusal is not None:
        raise ConfigError(refusal)
    api = APIService.for_service(service)
    service.serve_api(api)
    return api
