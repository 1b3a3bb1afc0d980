# -*- test-case-name: tests.test_rpc_client_delivery -*-
"""
What L{novasvc.rpc.client.RPCClient} does after a failed publish of a
request: wait for a queue when none took it (L{Route}, one per exchange and
routing key, in the client's L{Routes}), send it again after a lost
connection as C{retry} allows, and give up when its time is up (L{Sending});
L{CastResend} does it for a cast. Always the same bytes.

It does not import the client: a L{Sending} is handed the client that sends
it, and reads only what L{Sender} names of it.
"""

from typing import Any, Dict, Optional, Protocol, Tuple

from twisted.internet import defer
from twisted.python.failure import Failure

from novasvc.exceptions import DisconnectedError, UnroutableError
from novasvc.interfaces import ITransport
from novasvc.transport.topology import Exchange

__all__ = ["Sender", "Sending", "Routes", "Route", "CastResend", "UNROUTABLE_RETRY_INTERVAL", "RESEND_DELAY_MAX"]

#: Seconds between two tries of a route that no queue took (as oslo's
#: server sends a reply again while its queue is missing).
UNROUTABLE_RETRY_INTERVAL = 0.25
#: The longest wait, in seconds, before sending again a request lost with
#: its connection: the first is sent again at once (the transport holds it
#: until it is connected), the next after 1, 2, 4... seconds.
RESEND_DELAY_MAX = 30.0


class Sender(Protocol):
    """
    What a L{Sending} reads of the client that sends it (an
    L{novasvc.rpc.client.RPCClient}, or a client its C{prepare} made: they
    share their transport, clock and routes, not their C{retry}).

    @ivar retry: how many times a request lost with its connection is sent
        again: C{None} (or C{-1}) without limit, C{0} never.
    @ivar missing_consumer_retry_timeout: how long, in B{seconds}, a request
        that no queue takes waits for one.
    @ivar _transport: where requests are published.
    @ivar _clock: the C{IReactorTime} of the waits.
    @ivar _routes: the L{Routes} requests wait in while no queue takes them.
    """

    retry: Optional[int]
    missing_consumer_retry_timeout: float
    _transport: ITransport
    _routes: "Routes"

    @property
    def _clock(self) -> Any: ...


class Sending:
    """
    One encoded request and what decides whether, and when, it is sent
    again after a failed publish (see the module docstring).

    @ivar unroutable_since: when (clock B{seconds}) the first of the current
        run of unroutable sends came back, or C{None}.
    @ivar unroutable_sends: how many sends of that run came back.
    @ivar resends: how many times it was sent again after losing its
        connection.
    @ivar resend: the timer of the next send after a lost connection, or
        C{None}.
    @ivar route: the L{Route} it waits in while no queue takes it, or
        C{None}.
    """

    __slots__ = ("client", "method", "exchange", "routing_key", "body", "unroutable_since", "unroutable_sends",
                 "resends", "resend", "route")
    kind = "request"

    def __init__(self, client: Sender, method: str, exchange: Exchange, routing_key: str, body: bytes) -> None:
        self.client = client
        self.method = method
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.unroutable_since: Optional[float] = None
        self.unroutable_sends = 0
        self.resends = 0
        self.resend: Any = None
        self.route: Optional[Route] = None

    def send_again(self) -> None:
        """
        Publish the request again; L{sent_again} or L{after_failure} follow.
        """
        raise NotImplementedError()

    def give_up(self, failure: Failure) -> None:
        """
        Fail the request's C{Deferred} with C{failure} (it left its route).
        """
        raise NotImplementedError()

    def sent_again(self) -> None:
        """
        A queue took the request sent again: if it was its route's probe,
        the others waiting there go too.
        """
        route = self.route
        if route is not None:
            route.routed(self)

    def after_failure(self, failure: Failure) -> Optional[Failure]:
        """
        Act on a failed publish of the request: wait in its route when no
        queue took it, send it again later when it was lost with its
        connection and C{retry} allows.

        @return: the failure to report when it is not sent again, else
            C{None}.
        """
        client = self.client
        if failure.check(UnroutableError):
            now = client._clock.seconds()
            if self.unroutable_since is None:
                self.unroutable_since = now
            self.unroutable_sends += 1
            if not self.expired(now):
                client._routes.route(self.exchange.name, self.routing_key, client._clock).wait(self)
                return None
            self.stop()
            return Failure(self.unroutable_error(now))
        self.stop()
        if not failure.check(DisconnectedError):
            return failure
        self.unroutable_since = None
        self.unroutable_sends = 0
        retry, resends = client.retry, self.resends
        if retry is not None and 0 <= retry <= resends:
            if resends:
                return Failure(DisconnectedError(
                    f"the {self.kind} {self.method!r} was lost with the connection {resends + 1} times "
                    f"(retry={retry}): {failure.value}"))
            return failure
        self.resends = resends + 1
        delay = 0.0 if not resends else min(2.0 ** (resends - 1), RESEND_DELAY_MAX)
        self.resend = client._clock.callLater(delay, self.send_again)
        return None

    def expired(self, now: float) -> bool:
        """
        @return: whether the request has come back unroutable for as long
            as C{missing_consumer_retry_timeout} allows.
        """
        since = self.unroutable_since
        return since is not None and now - since + UNROUTABLE_RETRY_INTERVAL > self.client.missing_consumer_retry_timeout

    def stop(self) -> None:
        """
        Send it no more: cancel the next send, leave the route.
        """
        resend, self.resend = self.resend, None
        if resend is not None and resend.active():
            resend.cancel()
        if self.route is not None:
            self.route.leave(self)

    def unroutable_error(self, now: float) -> UnroutableError:
        """
        @return: the error saying that no queue took the request.
        """
        since = now if self.unroutable_since is None else self.unroutable_since
        return UnroutableError(
            f"no queue took the {self.kind} {self.method!r} sent to exchange {self.exchange.name!r} with routing "
            f"key {self.routing_key!r} ({self.unroutable_sends} sends over {now - since:.2f} s): "
            f"no server of its target consumes it")


class Routes(Dict[Tuple[str, str], "Route"]):
    """
    The L{Route}s of a client (shared with the clients its C{prepare}
    makes), by exchange and routing key; a route leaves once nothing waits
    in it.
    """

    __slots__ = ()

    def route(self, exchange: str, routing_key: str, clock: Any) -> "Route":
        """
        @param clock: the C{IReactorTime} of a new route's tries.
        @return: the route of requests waiting for a queue on this exchange
            and routing key, made when the first one comes back.
        """
        key = (exchange, routing_key)
        route = self.get(key)
        if route is None:
            route = self[key] = Route(self, key, clock)
        return route


class Route:
    """
    The requests to one exchange and routing key that no queue took: every
    C{UNROUTABLE_RETRY_INTERVAL} seconds one of them (the probe) is sent
    again, and once a queue takes it the others are sent too. So a missing
    queue costs the broker four publishes a second, however many requests
    wait for it; each request still fails on its own when its time is up.

    @ivar waiting: the requests waiting, oldest first.
    @ivar probe: the request sent to try the route, or C{None}.
    """

    def __init__(self, routes: Routes, key: Tuple[str, str], clock: Any) -> None:
        """
        @param routes: where it is kept, and leaves from when idle.
        @param key: its exchange and routing key.
        @param clock: the C{IReactorTime} of its tries.
        """
        self._routes = routes
        self._key = key
        self._clock = clock
        self.waiting: Dict[Sending, None] = {}
        self.probe: Optional[Sending] = None
        self._timer: Any = None

    def wait(self, sending: Sending) -> None:
        """
        C{sending} came back unroutable (again): wait for the route.
        """
        if self.probe is sending:
            self.probe = None
        sending.route = self
        self.waiting[sending] = None
        if self._timer is None:
            self._timer = self._clock.callLater(UNROUTABLE_RETRY_INTERVAL, self._tick)

    def leave(self, sending: Sending) -> None:
        """
        C{sending} waits no more (it ended, or it is sent another way).
        """
        sending.route = None
        if self.probe is sending:
            self.probe = None
        self.waiting.pop(sending, None)
        self._close_if_idle()

    def routed(self, sending: Sending) -> None:
        """
        A queue took C{sending}: send every request waiting.
        """
        sending.route = None
        if self.probe is sending:
            self.probe = None
        waiting, self.waiting = self.waiting, {}
        for other in waiting:
            other.route = None
            other.send_again()
        self._close_if_idle()

    def _tick(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        for sending in [sending for sending in self.waiting if sending.expired(now)]:
            del self.waiting[sending]
            sending.route = None
            sending.give_up(Failure(sending.unroutable_error(now)))
        if self.probe is None and self.waiting:
            probe = self.probe = next(iter(self.waiting))
            del self.waiting[probe]
            probe.send_again()
        if self.waiting or self.probe is not None:
            if self._timer is None:
                self._timer = self._clock.callLater(UNROUTABLE_RETRY_INTERVAL, self._tick)
        else:
            self._close_if_idle()

    def _close_if_idle(self) -> None:
        if self.waiting or self.probe is not None:
            return
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self._routes.get(self._key) is self:
            del self._routes[self._key]


class CastResend(Sending):
    """
    A cast whose first publish failed: sent again as L{Sending} decides,
    its C{Deferred} chained to the caller's.
    """

    __slots__ = ("deferred",)
    kind = "cast"

    def start(self, failure: Failure) -> defer.Deferred:
        """
        @param failure: why the first publish failed.
        @return: a C{Deferred} firing once a queue took the cast, or failing
            when it is not sent again; cancelling it stops the sending.
        """
        self.deferred: defer.Deferred = defer.Deferred(lambda _: self.stop())
        self._failed(failure)
        return self.deferred

    def send_again(self) -> None:
        self.resend = None
        if self.deferred.called:
            return
        try:
            d = self.client._transport.publish(self.exchange, self.routing_key, self.body, mandatory=True)
        except Exception:
            self._failed(Failure())
            return
        d.addCallbacks(self._sent, self._failed)

    def give_up(self, failure: Failure) -> None:
        if not self.deferred.called:
            self.deferred.errback(failure)

    def _sent(self, _: object) -> None:
        self.sent_again()
        if not self.deferred.called:
            self.deferred.callback(None)

    def _failed(self, failure: Failure) -> None:
        if self.deferred.called:
            return
        final = self.after_failure(failure)
        if final is not None:
            self.deferred.errback(final)
