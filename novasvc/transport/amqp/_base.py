# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
What the two RabbitMQ transports share, whatever AMQP client library speaks
the protocol for them (pika for L{novasvc.transport.AMQPTransport},
txamqp for L{novasvc.transport.TxAMQPTransport}): one connection kept
up by Twisted's L{ClientService} with one backoff policy
(L{novasvc.transport.amqp._connect.retry_policy}), the hosts of the URL
walked round-robin, the sessions set up on every (re)connection
(L{novasvc.transport.amqp._session}), publishes made while disconnected held
for at most C{publish_wait} seconds (L{novasvc.transport._held}), the
stop that waits for outstanding confirms, and the connection's metrics
(every connection fully set up after the first one since
L{BaseAMQPTransport.start} counts as a broker reconnection:
L{novasvc.metrics.Recorder.broker_reconnect}).

Its lifecycle, the phases of L{novasvc._phase} (L{BaseAMQPTransport.phase})
with one more before the first start, and no STARTING (C{start()} does
not wait for the broker: connecting and reconnecting is RUNNING)::

    phase     start()                         stop()
    --------  ------------------------------  ---------------------------------
    idle      -> RUNNING: connect             -> STOPPED at once
    (made: publishes and declare_queue wait for the first connection)
    RUNNING   done at once                    -> STOPPING: consumers cancelled,
                                              waiting publishes and
                                              declarations failed, confirms
                                              drained, connection closed,
                                              reconnecting stopped
    STOPPING  waits: -> RUNNING once the      the stop under way; a start
              stop has fired                  waiting for it is dropped
    STOPPED   -> RUNNING: connect again       done at once

Once stopped, C{publish} and C{declare_queue} fail with L{TransportError}
and C{consume} returns a consumer cancelled at once. Every timer the
transport makes (reconnection backoff, connection and set-up timeouts,
liveness checks, publish and declaration waits, consumer retries, the
close timeout) is gone when its stop fires.

L{BaseAMQPTransport} does all that; a subclass says how its client library
connects, shakes hands, opens a channel, a publisher and a consumer
(L{novasvc.transport.amqp._client.ClientLibrary}). The channels, publishers
and consumers it makes keep the interfaces of
L{novasvc.transport.amqp._channel.Channel},
L{novasvc.transport.amqp._publish.Publisher} and
L{novasvc.transport.amqp._consume.AMQPConsumer}.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.application.internet import ClientService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc._phase import Phase
from novasvc._reactor import at_most, global_reactor_if_none
from novasvc.exceptions import ConfigError, TransportError
from novasvc.interfaces import IConsumer, IDelivery
from novasvc.metrics import Recorder, get_recorder
from novasvc.transport.amqp._channel import ChannelError, describe
from novasvc.transport.amqp._client import ClientLibrary
from novasvc.transport.amqp._connect import (RoundRobinEndpoint, TLSCreator, client_tls, default_connection_name,
                                             retry_policy)
from novasvc.transport._held import HeldPublishes
from novasvc.transport.amqp._session import Session, TransportHooks
from novasvc.transport.amqp._setup import SetupSteps, set_up_connection, watch_liveness
from novasvc.transport.amqp._liveness import LivenessPolicy
from novasvc.transport.amqp._declare import QueueDeclarations
from novasvc.transport.consuming import gather as _gather
from novasvc.transport.topology import Exchange, Queue
from novasvc.transport.url import TLSOptions, TransportURL

_log = Logger()

_IDLE, _RUNNING, _STOPPING, _STOPPED = "idle", "running", "stopping", "stopped"
_PHASES = {_IDLE: Phase.STOPPED, _RUNNING: Phase.RUNNING, _STOPPING: Phase.STOPPING, _STOPPED: Phase.STOPPED}

#: The URL schemes an AMQP transport takes.
AMQP_SCHEMES = ("rabbit", "rabbits", "amqp", "amqps")
#: The most B{seconds} a new connection's publishes wait for its consumers'
#: first set-up (their queues declared and bound again) and for the queues
#: of L{BaseAMQPTransport.declare_queue}.
CONSUMERS_WAIT = 2.0


class BaseAMQPTransport(ClientLibrary):
    """
    The L{novasvc.interfaces.ITransport} behaviour both RabbitMQ transports
    share; see the module docstring. Subclasses say how their client library
    does its part (L{ClientLibrary}).

    @ivar url: the L{TransportURL}; C{str(url)} hides the passwords. With
        TLS on, its scheme is C{rabbits} or C{amqps} and a host given
        without a port is on 5671 (see L{TransportURL.with_tls}).
    @ivar tls: the L{TLSOptions} in force (the URL's over the
        configuration's).
    @ivar connection_name: the C{connection_name} client property.
    @cvar direct_reply_to: C{True}: C{consume()} takes
        L{novasvc.transport.topology.DIRECT_REPLY_TO}, RabbitMQ's direct
        reply-to (see L{novasvc.transport.amqp._direct_reply}).
    """

    direct_reply_to = True

    def __init__(
        self,
        url: TransportURL,
        *,
        reactor: Any = None,
        heartbeat: int = 10,
        connection_name: Optional[str] = None,
        connect_timeout: float = 5.0,
        retry_interval: float = 1.0,
        retry_factor: float = 2.0,
        retry_max: float = 30.0,
        retry_jitter: float = 1.0,
        publish_wait: float = 30.0,
        close_timeout: float = 5.0,
        tls: Optional[TLSOptions] = None,
        metrics: Optional[Recorder] = None,
        failover_strategy: str = "round-robin",
        liveness: Optional[LivenessPolicy] = None,
    ) -> None:
        """
        @param url: a C{rabbit://}, C{rabbits://}, C{amqp://} or C{amqps://}
            URL: hosts (tried in order, round-robin on reconnect), each with
            its credentials, vhost, and the TLS options of its query.
        @param reactor: provides C{IReactorTCP} and C{IReactorTime}; the global
            reactor when C{None}, looked up only then.
        @param heartbeat: AMQP heartbeat to ask for, in B{seconds} (0 disables;
            oslo's C{heartbeat_timeout_threshold} default is 60, novasvc's
            10): a connection from which nothing arrived for this long plus
            a margin is dropped (see L{novasvc.transport.amqp._liveness}).
        @param connection_name: the C{connection_name} client property; by
            default C{"<argv0 basename>:<pid>:<uuid4>"} as oslo.messaging.
        @param connect_timeout: B{seconds} allowed for TCP connect, and again
            for the AMQP handshake and the publish channel, before the attempt
            is dropped and the next host tried (a broker that stops
            answering later is caught by the liveness checks).
        @param retry_interval: first reconnect delay in B{seconds}; see
            L{novasvc.transport.amqp._connect.retry_policy} for it and the
            three next.
        @param retry_factor: each further delay is multiplied by this.
        @param retry_max: the longest delay in B{seconds}, before jitter.
        @param retry_jitter: up to this many B{seconds} of random jitter.
        @param publish_wait: how long, in B{seconds}, a publish made while
            disconnected waits for a connection before failing with
            L{novasvc.exceptions.DisconnectedError}; 0 fails at once.
        @param close_timeout: B{seconds} L{stop} waits for the broker's
            C{connection.close-ok} before dropping the TCP connection.
        @param tls: the configuration's TLS options; what the URL says
            (scheme, query) beats them. With TLS on, every connection is
            TLS (never plain TCP as a fallback) and the broker's
            certificate and host name are verified.
        @param metrics: where to count reconnections; the process's
            L{novasvc.metrics.get_recorder} when C{None}.
        @param failover_strategy: the order the URL's hosts are tried in:
            C{"round-robin"} or C{"shuffle"} (oslo's
            C{kombu_failover_strategy}; see L{RoundRobinEndpoint}).
        @param liveness: when a silent connection counts as dead; by
            default L{LivenessPolicy} with C{heartbeat}.
        @raise ConfigError: for a URL whose scheme is not an AMQP one, a
            negative time, certificate files given with TLS off, or a
            certificate file that cannot be used (see L{client_tls}).
        """
        if url.scheme not in AMQP_SCHEMES:
            raise ConfigError(f"{type(self).__name__} needs a rabbit://, rabbits://, amqp:// or amqps:// "
                              f"transport_url, not {str(url)!r}")
        self.tls = url.tls.over(tls or TLSOptions())
        self.tls.check()
        self._tls: Optional[TLSCreator] = client_tls(self.tls) if self.tls.enabled else None
        if self.tls.enabled:
            url = url.with_tls()
        for name, value in [("heartbeat", heartbeat), ("connect_timeout", connect_timeout),
                            ("publish_wait", publish_wait), ("close_timeout", close_timeout)]:
            if value < 0:
                raise ConfigError(f"{name} must be >= 0 seconds, not {value!r}")
        self._policy: Callable[[int], float] = retry_policy(retry_interval, retry_factor, retry_max, retry_jitter)
        self._failover_strategy = failover_strategy
        self._liveness_policy = liveness or LivenessPolicy(heartbeat=heartbeat)
        self._last_host: Optional[Tuple[str, int]] = None
        self.url = url
        self.connection_name = connection_name or default_connection_name()
        self._reactor = reactor
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._hooks = TransportHooks(self)
        self._consumers: Dict[Any, None] = {}
        self._protocol: Any = None
        self._session: Optional[Session] = None
        self._publisher: Any = None
        self._service: Optional[ClientService] = None
        self._endpoint: Optional[RoundRobinEndpoint] = None
        self._state = _IDLE
        self._failures = 0
        self._problem = "not connected yet"
        self._stop_waiters: List[defer.Deferred] = []
        self._start_pending = False
        self._metrics = get_recorder() if metrics is None else metrics
        self._connected_before = False
        self._declarations = QueueDeclarations(lambda: self._clock, publish_wait, str(url))
        self._held = HeldPublishes(lambda: self._clock, publish_wait, str(url), lambda: self._problem)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {self._state}>"

    @property
    def _clock(self) -> Any:
        if self._reactor is None:
            self._reactor = global_reactor_if_none()
        return self._reactor

    @property
    def phase(self) -> Phase:
        """
        Where the transport is in its lifecycle (see the module docstring):
        L{Phase.STOPPED} before the first start too.
        """
        return _PHASES[self._state]

    @property
    def is_connected(self) -> bool:
        """
        C{True} while a connection is open and its publish channel usable.
        """
        return self._publisher is not None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """
        Begin connecting (and reconnecting, until L{stop}). Never raises
        because of the broker; see L{ITransport.start}. While a stop is
        under way, the start waits for it (a L{stop} meanwhile drops it).
        """
        if self._state == _RUNNING:
            return
        if self._state == _STOPPING:
            if not self._start_pending:
                self._start_pending = True
                self._when_stopped().addCallback(self._start_after_stop)
            return
        self._state = _RUNNING
        self._connected_before = False
        if self._service is None:
            clock = self._clock
            endpoint = self._endpoint = RoundRobinEndpoint(clock, self.url.hosts, self._connect_timeout,
                                                           self._connect_failed, self._tls,
                                                           self._failover_strategy)
            self._service = ClientService(endpoint, self._client_factory(endpoint), retryPolicy=self._retry_delay,
                                          clock=clock, prepareConnection=self._prepare)
        self._service.startService()

    def _start_after_stop(self, _: Any) -> None:
        if self._start_pending:
            self._start_pending = False
            self.start()

    def stop(self) -> defer.Deferred:
        """
        Stop consuming, wait for the confirms of publishes already sent,
        close the connection (the broker requeues unsettled deliveries) and
        stop reconnecting. Idempotent: while stopping, the stop under way
        (a start waiting for it is dropped).

        @return: a C{Deferred} firing with C{None} once the connection is
            closed (at most about C{close_timeout} seconds) and every timer
            of the transport is gone.
        """
        if self._state in (_STOPPING, _STOPPED):
            self._start_pending = False
            return self._when_stopped()
        was_idle = self._state == _IDLE
        self._state = _STOPPING
        self._held.fail(TransportError(f"{self.url}: the transport is stopped"))
        self._declarations.stop(TransportError(f"{self.url}: the transport is stopped"))
        for consumer in list(self._consumers):
            consumer._shutdown()
        self._consumers.clear()
        if was_idle or self._service is None:
            self._finish_stop(None)
            return self._when_stopped()
        protocol = self._protocol
        closing = self._close(protocol, self._publisher) if protocol is not None else defer.succeed(None)
        service = self._service
        closing.addCallback(lambda _: service.stopService())
        closing.addBoth(self._finish_stop)
        return self._when_stopped()

    def _when_stopped(self) -> defer.Deferred:
        if self._state == _STOPPED:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._stop_waiters.append(d)
        return d

    def _finish_stop(self, result: Any) -> None:
        if isinstance(result, Failure):
            _log.failure("Error while stopping the AMQP transport for {url}", result, url=str(self.url))
        self._state = _STOPPED
        self._failures = 0
        waiters, self._stop_waiters = self._stop_waiters, []
        for d in waiters:
            d.callback(None)

    def _close(self, protocol: Any, publisher: Any) -> defer.Deferred:
        # Wait for the confirms of publishes already sent, then close; drop
        # the connection if all that takes more than close_timeout seconds.
        lost = protocol.when_lost()
        clock = self._clock
        timer = clock.callLater(self._close_timeout, protocol.abort, "closing took too long")

        def close(_: Any) -> None:
            try:
                self._client_close(protocol)
            except Exception:
                protocol.abort()

        drained = publisher.confirms.when_drained() if publisher is not None else defer.succeed(None)
        drained.addCallback(close)

        def closed(_: Any) -> None:
            if timer.active():
                timer.cancel()

        return lost.addCallback(closed)

    # -- connection management (ClientService hooks) --------------------------

    def _retry_delay(self, _attempt: int) -> float:
        delay = self._policy(self._failures)
        self._failures += 1
        if self._state == _RUNNING:
            _log.warn("AMQP broker {url}: {problem}; retrying in {delay:.1f} seconds",
                      url=str(self.url), problem=self._problem.rstrip("."), delay=delay)
        return delay

    def _connect_failed(self, host: Tuple[str, int], failure: Failure) -> None:
        if not failure.check(defer.CancelledError):
            self._problem = f"cannot connect to {host[0]}:{host[1]}: {failure.getErrorMessage()}"

    def _prepare(self, proxy: Any) -> defer.Deferred:
        # ClientService's prepareConnection hook. The Deferred returned never
        # fails, and fires at the latest when the connection is lost (before
        # ClientService hears of the loss): ClientService (Twisted 26.10) has
        # no transition for a connection lost while preparing, nor after a
        # failed preparation, so every failure here is turned into a lost
        # connection instead, and the backoff counts it (self._failures is
        # reset only once a session is fully set up).
        # The whole set-up (handshake, then the publish channel) gets
        # connect_timeout seconds; each step that waits says so once.
        protocol = proxy.unwrapped()
        host, port = self._endpoint.current if self._endpoint else ("?", 0)
        return set_up_connection(self._clock, self._connect_timeout, f"AMQP broker {self.url} at {host}:{port}",
                                 protocol, self._client_handshake,
                                 lambda steps: self._open_session(protocol, steps))

    @defer.inlineCallbacks
    def _open_session(self, protocol: Any, steps: SetupSteps) -> Any:
        # The publish channel makes the connection usable; the consumers
        # come back each on its own (a queue whose node is unreachable holds
        # up its own consumer only, and says so in the log).
        session = Session(protocol, lambda: self._client_channel(protocol))
        self._session = session
        watch_liveness(self._clock, self._liveness_policy, session, self._liveness_lost)
        host = self._endpoint.current if self._endpoint else None
        renew = self._last_host is not None and host != self._last_host
        self._last_host = host
        attached = [consumer.attach(protocol, renew) for consumer in list(self._consumers)]
        publisher = yield steps.step("opening the publish channel", self._client_publisher(session))
        session.publisher = publisher
        # Publishes (those made while disconnected too) wait a moment for the
        # consumers' queues and bindings and the queues given to
        # declare_queue to be back, so that a message to one of them is not
        # lost or returned unroutable; never longer than CONSUMERS_WAIT
        # seconds, which is what a hung node costs here (a publisher of
        # notifications waits for its own queue anyway: declare_queue).
        declared = self._declarations.connected(session)
        yield at_most(self._clock, defer.DeferredList(attached + [declared], consumeErrors=True),
                       CONSUMERS_WAIT)
        if not session.alive or self._session is not session:
            return
        self._publisher = publisher
        self._failures = 0
        if self._connected_before:
            self._metrics.broker_reconnect()
        self._connected_before = True
        host, port = self._endpoint.current if self._endpoint else ("?", 0)
        _log.info("Connected to AMQP broker {url} at {host}:{port} as {name} ({client})",
                  url=str(self.url), host=host, port=port, name=self.connection_name,
                  client=self._client_description())
        self._held.send(self.publish)

    def _protocol_connected(self, protocol: Any) -> None:
        self._protocol = protocol

    def _liveness_lost(self, session: Session, why: str) -> None:
        host, port = self._endpoint.current if self._endpoint else ("?", 0)
        _log.warn("AMQP broker {url} at {host}:{port} looks hung: {why}; dropping the connection",
                  url=str(self.url), host=host, port=port, why=why)
        session.protocol.abort(f"the broker looked hung: {why}")

    def _protocol_lost(self, protocol: Any, reason: Failure) -> None:
        if self._protocol is protocol:
            self._protocol = None
        host, port = self._endpoint.current if self._endpoint else ("?", 0)
        why = protocol.describe_loss(reason)
        session = self._session
        if session is None or session.protocol is not protocol:
            self._problem = f"AMQP connection to {host}:{port} failed: {why}"
            return
        self._problem = f"connection to {host}:{port} lost: {why}"
        self._session = None
        self._declarations.disconnected(self._problem)
        if self._publisher is session.publisher:
            self._publisher = None
        for consumer in self._consumers:
            consumer.detach()

    def _publisher_closed(self, publisher: Any, reason: Any) -> None:
        if self._publisher is publisher:
            self._publisher = None
        session = self._session
        if session is None or session.publisher is not publisher or not session.alive or self._state != _RUNNING:
            return
        _log.warn("AMQP publish channel to {url} closed ({why}); opening another", url=str(self.url),
                  why=describe(reason))

        def reopened(new: Any) -> None:
            if self._session is session and session.alive:
                session.publisher = new
                self._publisher = new
                self._held.send(self.publish)

        def failed(failure: Failure) -> None:
            session.protocol.abort(f"cannot reopen the publish channel: {failure.getErrorMessage()}")

        self._client_publisher(session).addCallbacks(reopened, failed)

    # -- publish -----------------------------------------------------------------

    def publish(self, exchange: Exchange, routing_key: str, body: bytes,
                content_type: Optional[str] = "application/json", expiration: Optional[int] = None,
                mandatory: bool = False) -> defer.Deferred:
        """
        Publish one message with oslo's properties (C{content_encoding}
        C{utf-8}, C{delivery_mode} 2, C{expiration} as a string of
        milliseconds); see L{ITransport.publish}.

        @return: a C{Deferred} firing with C{None} on the broker's confirm;
            failing with L{novasvc.exceptions.UnroutableError} when a
            mandatory message reached no queue;
            L{novasvc.exceptions.DisconnectedError} on channel or
            connection loss before the confirm, or no connection within
            C{publish_wait} seconds; L{TransportError} on nack, an exchange
            declare the broker refused, or after L{stop}; C{ValueError} for
            a negative C{expiration}.
        """
        publisher = self._publisher
        if publisher is not None:
            return publisher.publish(exchange, routing_key, body, content_type, expiration, mandatory)
        if self._state in (_STOPPING, _STOPPED):
            return defer.fail(TransportError(f"{self.url}: the transport is stopped"))
        return self._held.hold((exchange, routing_key, body, content_type, expiration, mandatory))

    # -- consume -------------------------------------------------------------------

    def consume(self, queue: Queue, on_message: Callable[[IDelivery], None], prefetch: int = 0) -> IConsumer:
        """
        Declare C{queue} with its exchanges and bindings and consume it, now
        (or once connected) and after every reconnection; see
        L{ITransport.consume}. Each consumer has its own channel, so
        C{prefetch} limits this consumer alone. Once the transport is
        stopped (or stopping) the consumer is cancelled at once (its
        C{whenActive} fails with C{CancelledError}).

        @raise ValueError: for a prefetch outside 0..65535.
        """
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or not 0 <= prefetch <= 65535:
            raise ValueError(f"prefetch must be an integer in 0..65535, not {prefetch!r}")
        consumer = self._client_consumer(queue, on_message, prefetch)
        if self._state in (_STOPPING, _STOPPED):
            consumer._shutdown()  # nothing waits for a start that may never come
            return consumer
        self._consumers[consumer] = None
        protocol = self._hooks.current_protocol()
        if protocol is not None and self._state == _RUNNING:
            consumer.attach(protocol)
        return consumer

    def declare_queue(self, queue: Queue) -> defer.Deferred:
        """
        Declare C{queue} with its exchanges and bindings, on a channel of
        its own, now (or once connected, waiting up to C{publish_wait}
        seconds) and on every connection until L{stop}; see
        L{ITransport.declare_queue} and
        L{novasvc.transport.amqp._declare.QueueDeclarations}.
        """
        if self._state in (_STOPPING, _STOPPED):
            return defer.fail(TransportError(f"{self.url}: the transport is stopped"))
        return self._declarations.declare(queue)

    def delete_queue(self, name: str) -> defer.Deferred:
        """
        Delete queue C{name} (C{queue.delete}) on the control channel; see
        L{ITransport.delete_queue}. Consumers of this transport on that queue
        are cancelled first (as L{IConsumer.cancel}), so they do not declare
        it again, and a queue given to L{declare_queue} is no longer
        declared on reconnection.

        @return: a C{Deferred} firing with C{None}; it fails with
            L{TransportError} only when the broker refuses (e.g.
            C{ACCESS_REFUSED}).
        """
        self._declarations.forget(name)
        ours = [consumer for consumer in self._consumers if consumer.queue.name == name]
        cancelled = _gather([consumer.cancel() for consumer in ours])
        session = self._session
        if session is None or not session.alive:
            return cancelled.addCallback(lambda _: None)

        def delete(channel: Any) -> defer.Deferred:
            return channel.call("queue_delete", queue=name)

        def failed(failure: Failure) -> Any:
            error = failure.value
            if isinstance(error, ChannelError) and (not error.by_broker or error.code == 404):
                return None
            return Failure(TransportError(f"cannot delete queue {name!r}: {error}"))

        return cancelled.addCallback(lambda _: session.control()).addCallback(delete).addCallbacks(
            lambda _: None, failed)


__all__ = ["AMQP_SCHEMES", "BaseAMQPTransport", "Session"]
