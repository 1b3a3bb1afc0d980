# -*- test-case-name: tests.test_transport_amqp,tests.test_metrics_prometheus -*-
"""
L{AMQPTransport}: the L{ITransport} for RabbitMQ, on pika's Twisted adapter.

One AMQP connection per transport, kept up by Twisted's own
L{twisted.application.internet.ClientService} with
L{twisted.application.internet.backoffPolicy}: a broker that is absent at
start or lost later is logged (WARNING, URL with the password hidden) and
retried, round-robin over the URL's hosts, each with its own credentials,
and over TLS when the URL or the configuration asks for it (never plain TCP
then; see L{novasvc.transport._amqp_connect}). On every (re)connection the
transport opens

  - a B{publish channel} in publisher-confirm mode: every C{publish()}
    returns a C{Deferred} that fires on the broker's C{basic.ack};
  - a B{control channel} for exchange declares made on behalf of publishes
    and for C{delete_queue()}, so a declare the broker refuses (which closes
    the channel that asked) never fails unrelated publishes;
  - B{one channel per consumer}, on which the consumer's exchanges, queue and
    bindings are declared, its C{basic.qos} prefetch set and its
    C{basic.consume} issued. A refused declare is logged with the names and
    retried for that consumer alone, with the same backoff.

Deliveries reach C{on_message} through a plain callback on pika's channel;
acks made while a batch of incoming frames is handled go out as one
C{basic.ack} with C{multiple} when that is safe (see
L{novasvc.transport._amqp_consume}). A delivery settled after its channel is
gone (reconnection) is ignored: the broker has requeued it.

Publishing while not connected: the publish waits for the connection for at
most C{publish_wait} seconds (default 30; the longest reconnect delay is
C{retry_max}, 30 s by default, so one full retry fits), then fails with
L{DisconnectedError}. C{publish_wait=0} fails at once. Publishes sent but
not yet confirmed when the connection drops fail with L{DisconnectedError}:
the broker may or may not have the message, and the transport does not send
it again (that choice belongs to the caller; L{novasvc.rpc.client.RPCClient}
sends the same bytes again, as its C{retry} allows). L{AMQPTransport.stop} waits (within
C{close_timeout}) for the confirms of publishes already sent before closing;
after it, every publish fails at once.

What of pika is used beyond its documented API (the C{_impl} connection
of C{TwistedProtocolConnection}; on the B{fast path}, the frames of
C{basic.publish} and C{basic.ack} written directly) and the check that
decides, once per process, between the fast path and pika's public
C{basic_publish}/C{basic_ack} (C{NOVASVC_PIKA_FAST_PATH=0} forces the
latter): see L{novasvc.transport._pika_internals}.

Metrics (L{novasvc.metrics}): every connection fully set up after the first
one since L{AMQPTransport.start} counts as a broker reconnection.
"""

from collections import deque
from random import random
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from novasvc._reactor import global_reactor_if_none
from novasvc.exceptions import ConfigError, DisconnectedError, TransportError
from novasvc.metrics import Recorder, get_recorder
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.transport._amqp_channel import Channel, ChannelError, describe, open_channel
from novasvc.transport._amqp_connect import (
    AMQPProtocol,
    AMQPProtocolFactory,
    RoundRobinEndpoint,
    TLSCreator,
    client_tls,
    connection_parameters,
    default_connection_name,
)
from novasvc.transport._amqp_consume import AMQPConsumer, AMQPDelivery
from novasvc.transport._amqp_publish import Publisher
from novasvc.transport._pika_internals import verdict
from novasvc.transport.topology import Exchange, Queue
from novasvc.transport.url import TLSOptions, TransportURL

__all__ = ["AMQPTransport", "AMQPConsumer", "AMQPDelivery"]

_log = Logger()

_IDLE, _RUNNING, _STOPPING, _STOPPED = "idle", "running", "stopping", "stopped"


class _Session:
    """
    What belongs to one open AMQP connection: the protocol, the publisher,
    and the control channel (opened on first use, reopened after the broker
    closes it).
    """

    def __init__(self, protocol: AMQPProtocol) -> None:
        self.protocol = protocol
        self.connection = protocol.connection
        self.publisher: Optional[Publisher] = None
        self._control: Optional[Channel] = None
        self._opening: Optional[List[defer.Deferred]] = None

    @property
    def alive(self) -> bool:
        """
        C{True} until the TCP connection is lost.
        """
        return not self.protocol.lost

    def control(self) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with the open control L{Channel}.
        """
        channel = self._control
        if channel is not None and not channel.is_closed:
            return defer.succeed(channel)
        d: defer.Deferred = defer.Deferred()
        if self._opening is not None:
            self._opening.append(d)
            return d
        self._opening = [d]
        open_channel(self.connection).addBoth(self._control_opened)
        return d

    def _control_opened(self, result: Any) -> None:
        if not isinstance(result, Failure):
            self._control = result
        waiting, self._opening = self._opening or [], None
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)


class _Hooks:
    """
    The transport as its protocol and consumers see it (kept off the
    transport's public surface).
    """

    def __init__(self, transport: "AMQPTransport") -> None:
        self._transport = transport

    @property
    def clock(self) -> Any:
        return self._transport._clock

    def current_protocol(self) -> Any:
        session = self._transport._session
        return session.protocol if session is not None and session.alive else None

    def consumer_retry_delay(self, failures: int) -> float:
        return self._transport._policy(failures)

    def forget_consumer(self, consumer: AMQPConsumer) -> None:
        self._transport._consumers.pop(consumer, None)

    def protocol_connected(self, protocol: AMQPProtocol) -> None:
        self._transport._protocol_connected(protocol)

    def protocol_lost(self, protocol: AMQPProtocol, reason: Failure) -> None:
        self._transport._protocol_lost(protocol, reason)


@implementer(ITransport)
class AMQPTransport:
    """
    An L{ITransport} talking to RabbitMQ (AMQP 0-9-1) through pika's Twisted
    adapter; see the module docstring for the channels it uses and what
    happens while the broker is away.

    @ivar url: the L{TransportURL}; C{str(url)} hides the passwords. With
        TLS on, its scheme is C{rabbits} or C{amqps} and a host given
        without a port is on 5671 (see L{TransportURL.with_tls}).
    @ivar tls: the L{TLSOptions} in force (the URL's over the
        configuration's).
    @ivar connection_name: the C{connection_name} client property.
    @ivar fast_path: C{True} when this process writes the frames of
        C{basic.publish} and C{basic.ack} itself, C{False} when it uses
        pika's C{basic_publish} and C{basic_ack} (see
        L{novasvc.transport._pika_internals}); said in the log line of each
        connection.
    """

    def __init__(
        self,
        url: TransportURL,
        *,
        reactor: Any = None,
        heartbeat: int = 60,
        connection_name: Optional[str] = None,
        connect_timeout: float = 10.0,
        retry_interval: float = 1.0,
        retry_factor: float = 2.0,
        retry_max: float = 30.0,
        retry_jitter: float = 1.0,
        publish_wait: float = 30.0,
        close_timeout: float = 5.0,
        tls: Optional[TLSOptions] = None,
        metrics: Optional[Recorder] = None,
    ) -> None:
        """
        @param url: a C{rabbit://}, C{rabbits://}, C{amqp://} or C{amqps://}
            URL: hosts (tried in order, round-robin on reconnect), each with
            its credentials, vhost, and the TLS options of its query.
        @param reactor: provides C{IReactorTCP} and C{IReactorTime}; the global
            reactor when C{None}, looked up only then.
        @param heartbeat: AMQP heartbeat to ask for, in B{seconds} (0 disables;
            oslo's C{heartbeat_timeout_threshold} default is 60).
        @param connection_name: the C{connection_name} client property; by
            default C{"<argv0 basename>:<pid>:<uuid4>"} as oslo.messaging.
        @param connect_timeout: B{seconds} allowed for TCP connect, and again
            for the AMQP handshake, before the attempt is dropped and retried
            (a broker that stops answering later is caught by the heartbeat).
        @param retry_interval: first reconnect delay in B{seconds} (oslo's
            C{rabbit_retry_interval}, 1).
        @param retry_factor: each further delay is multiplied by this.
        @param retry_max: the longest delay in B{seconds} (oslo's
            C{rabbit_interval_max}, 30), before jitter.
        @param retry_jitter: up to this many B{seconds} of random jitter are
            added to each delay.
        @param publish_wait: how long, in B{seconds}, a publish made while
            disconnected waits for a connection before failing with
            L{TransportError}; 0 fails at once.
        @param close_timeout: B{seconds} L{stop} waits for the broker's
            C{connection.close-ok} before dropping the TCP connection.
        @param tls: the configuration's TLS options; what the URL says
            (scheme, query) beats them. With TLS on, every connection is
            TLS (never plain TCP as a fallback) and the broker's
            certificate and host name are verified.
        @param metrics: where to count reconnections; the process's
            L{novasvc.metrics.get_recorder} when C{None}.
        @raise ConfigError: for a URL whose scheme is not an AMQP one, a
            negative time, certificate files given with TLS off, or a
            certificate file that cannot be used (see L{client_tls}).
        @raise TransportError: for a pika release the transport cannot use
            at all (see L{novasvc.transport._pika_internals.connection_of}).
        """
        if url.scheme not in ("rabbit", "rabbits", "amqp", "amqps"):
            raise ConfigError(f"AMQPTransport needs a rabbit://, rabbits://, amqp:// or amqps:// transport_url, "
                              f"not {str(url)!r}")
        self.tls = url.tls.over(tls or TLSOptions())
        self.tls.check()
        self._tls: Optional[TLSCreator] = client_tls(self.tls) if self.tls.enabled else None
        if self.tls.enabled:
            url = url.with_tls()
        for name, value in [("heartbeat", heartbeat), ("connect_timeout", connect_timeout),
                            ("retry_interval", retry_interval), ("retry_max", retry_max),
                            ("retry_jitter", retry_jitter), ("publish_wait", publish_wait),
                            ("close_timeout", close_timeout)]:
            if value < 0:
                raise ConfigError(f"{name} must be >= 0 seconds, not {value!r}")
        if retry_factor < 1:
            raise ConfigError(f"retry_factor must be >= 1, not {retry_factor!r}")
        self.url = url
        self.connection_name = connection_name or default_connection_name()
        self._pika = verdict()
        self.fast_path = self._pika.fast_path
        self._reactor = reactor
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._publish_wait = publish_wait
        self._close_timeout = close_timeout
        self._policy: Callable[[int], float] = backoffPolicy(
            initialDelay=retry_interval, maxDelay=retry_max, factor=retry_factor,
            jitter=lambda: random() * retry_jitter,
        )
        self._hooks = _Hooks(self)
        self._consumers: Dict[AMQPConsumer, None] = {}
        self._protocol: Optional[AMQPProtocol] = None
        self._session: Optional[_Session] = None
        self._publisher: Optional[Publisher] = None
        self._waiting: Deque[list] = deque()
        self._service: Optional[ClientService] = None
        self._endpoint: Optional[RoundRobinEndpoint] = None
        self._state = _IDLE
        self._failures = 0
        self._problem = "not connected yet"
        self._stop_waiters: List[defer.Deferred] = []
        self._metrics = get_recorder() if metrics is None else metrics
        self._connected_before = False

    def __repr__(self) -> str:
        return f"<AMQPTransport {self.url} {self._state}>"

    @property
    def _clock(self) -> Any:
        if self._reactor is None:
            self._reactor = global_reactor_if_none()
        return self._reactor

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
        because of the broker; see L{ITransport.start}.
        """
        if self._state == _RUNNING:
            return
        if self._state == _STOPPING:
            self._when_stopped().addCallback(lambda _: self.start())
            return
        self._state = _RUNNING
        self._connected_before = False
        if self._service is None:
            clock = self._clock
            endpoint = self._endpoint = RoundRobinEndpoint(clock, self.url.hosts, self._connect_timeout,
                                                           self._connect_failed, self._tls)
            per_host = [connection_parameters(self.url, self._heartbeat, self.connection_name, index)
                        for index in range(len(self.url.hosts))]
            factory = AMQPProtocolFactory(lambda: per_host[endpoint.index], clock, self._hooks, self.fast_path)
            self._service = ClientService(self._endpoint, factory, retryPolicy=self._retry_delay, clock=clock,
                                          prepareConnection=self._prepare)
        self._service.startService()

    def stop(self) -> defer.Deferred:
        """
        Stop consuming, wait for the confirms of publishes already sent,
        close the connection (the broker requeues unsettled deliveries) and
        stop reconnecting. Idempotent.

        @return: a C{Deferred} firing with C{None} once the connection is
            closed (at most about C{close_timeout} seconds).
        """
        if self._state in (_STOPPING, _STOPPED):
            return self._when_stopped()
        was_idle = self._state == _IDLE
        self._state = _STOPPING
        self._fail_waiting(TransportError(f"{self.url}: the transport is stopped"))
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

    def _close(self, protocol: AMQPProtocol, publisher: Optional[Publisher]) -> defer.Deferred:
        # Wait for the confirms of publishes already sent, then close; drop
        # the connection if all that takes more than close_timeout seconds.
        lost = protocol.when_lost()
        clock = self._clock
        timer = clock.callLater(self._close_timeout, protocol.abort, "closing took too long")

        def close(_: Any) -> None:
            try:
                protocol.close()
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
        protocol: AMQPProtocol = proxy.unwrapped()
        done: defer.Deferred = defer.Deferred()
        clock = self._clock
        timer = clock.callLater(self._connect_timeout, self._set_up_timed_out, protocol)

        def handshake_over(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        def finished(_: Any) -> None:
            if timer.active():
                timer.cancel()
            if not done.called:
                done.callback(None)

        ready = protocol.ready
        if ready is None:
            ready = defer.succeed(None) if protocol.connection.is_open else defer.fail(TransportError("not open"))
        ready.addBoth(handshake_over)
        ready.addCallback(lambda _: self._open_session(protocol))
        ready.addErrback(self._set_up_failed, protocol)
        ready.addBoth(finished)
        protocol.when_lost().addCallback(finished)
        return done

    def _set_up_timed_out(self, protocol: AMQPProtocol) -> None:
        protocol.abort(f"no AMQP handshake within {self._connect_timeout} seconds")

    @defer.inlineCallbacks
    def _open_session(self, protocol: AMQPProtocol) -> Any:
        session = _Session(protocol)
        self._session = session
        connection = protocol.connection
        attached = [consumer.attach(protocol) for consumer in list(self._consumers)]
        publisher = yield Publisher.open(connection, session.control, self._publisher_closed, protocol.frame_writer)
        session.publisher = publisher
        yield defer.gatherResults(attached)
        if not session.alive or self._session is not session:
            return
        self._publisher = publisher
        self._failures = 0
        if self._connected_before:
            self._metrics.broker_reconnect()
        self._connected_before = True
        host, port = self._endpoint.current if self._endpoint else ("?", 0)
        _log.info("Connected to AMQP broker {url} at {host}:{port} as {name} ({pika})",
                  url=str(self.url), host=host, port=port, name=self.connection_name, pika=self._pika.describe())
        self._flush_waiting()

    def _set_up_failed(self, failure: Failure, protocol: AMQPProtocol) -> None:
        # When the connection is lost, _protocol_lost tells why (pika's
        # reason is only known once its callbacks have all run).
        if not protocol.lost:
            protocol.abort(f"cannot set up the connection: {failure.getErrorMessage()}")

    def _protocol_connected(self, protocol: AMQPProtocol) -> None:
        self._protocol = protocol

    def _protocol_lost(self, protocol: AMQPProtocol, reason: Failure) -> None:
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
        if self._publisher is session.publisher:
            self._publisher = None
        for consumer in self._consumers:
            consumer.detach()

    def _publisher_closed(self, publisher: Publisher, reason: Optional[BaseException]) -> None:
        if self._publisher is publisher:
            self._publisher = None
        session = self._session
        if session is None or session.publisher is not publisher or not session.alive or self._state != _RUNNING:
            return
        _log.warn("AMQP publish channel to {url} closed ({why}); opening another", url=str(self.url),
                  why=describe(reason))

        def reopened(new: Publisher) -> None:
            if self._session is session and session.alive:
                session.publisher = new
                self._publisher = new
                self._flush_waiting()

        def failed(failure: Failure) -> None:
            session.protocol.abort(f"cannot reopen the publish channel: {failure.getErrorMessage()}")

        Publisher.open(session.connection, session.control, self._publisher_closed,
                       session.protocol.frame_writer).addCallbacks(reopened, failed)

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
        return self._publish_later((exchange, routing_key, body, content_type, expiration, mandatory))

    def _publish_later(self, args: tuple) -> defer.Deferred:
        if self._state in (_STOPPING, _STOPPED):
            return defer.fail(TransportError(f"{self.url}: the transport is stopped"))
        if self._publish_wait <= 0:
            return defer.fail(DisconnectedError(f"not connected to {self.url}: {self._problem}"))
        entry: list = [args, None, None]

        def cancel(_: defer.Deferred) -> None:
            self._drop_waiting(entry)

        entry[1] = defer.Deferred(cancel)
        entry[2] = self._clock.callLater(self._publish_wait, self._publish_timed_out, entry)
        self._waiting.append(entry)
        return entry[1]

    def _drop_waiting(self, entry: list) -> None:
        try:
            self._waiting.remove(entry)
        except ValueError:
            return
        if entry[2].active():
            entry[2].cancel()

    def _publish_timed_out(self, entry: list) -> None:
        try:
            self._waiting.remove(entry)
        except ValueError:
            return
        entry[1].errback(DisconnectedError(
            f"not connected to {self.url} within {self._publish_wait} seconds: {self._problem}"
        ))

    def _flush_waiting(self) -> None:
        waiting, self._waiting = self._waiting, deque()
        for args, d, timer in waiting:
            if timer.active():
                timer.cancel()
            self.publish(*args).chainDeferred(d)

    def _fail_waiting(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, deque()
        for _args, d, timer in waiting:
            if timer.active():
                timer.cancel()
            d.errback(error)

    # -- consume -------------------------------------------------------------------

    def consume(self, queue: Queue, on_message: Callable[[IDelivery], None], prefetch: int = 0) -> IConsumer:
        """
        Declare C{queue} with its exchanges and bindings and consume it, now
        (or once connected) and after every reconnection; see
        L{ITransport.consume}. Each consumer has its own channel, so
        C{prefetch} limits this consumer alone.

        @raise ValueError: for a prefetch outside 0..65535.
        """
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or not 0 <= prefetch <= 65535:
            raise ValueError(f"prefetch must be an integer in 0..65535, not {prefetch!r}")
        consumer = AMQPConsumer(self._hooks, queue, on_message, prefetch)
        self._consumers[consumer] = None
        protocol = self._hooks.current_protocol()
        if protocol is not None and self._state == _RUNNING:
            consumer.attach(protocol)
        return consumer

    def delete_queue(self, name: str) -> defer.Deferred:
        """
        Delete queue C{name} (C{queue.delete}) on the control channel; see
        L{ITransport.delete_queue}. Consumers of this transport on that queue
        are cancelled first (as L{IConsumer.cancel}), so they do not declare
        it again.

        @return: a C{Deferred} firing with C{None}; it fails with
            L{TransportError} only when the broker refuses (e.g.
            C{ACCESS_REFUSED}).
        """
        ours = [consumer for consumer in self._consumers if consumer.queue.name == name]
        cancelled = defer.gatherResults([consumer.cancel() for consumer in ours])
        session = self._session
        if session is None or not session.alive:
            return cancelled.addCallback(lambda _: None)

        def delete(channel: Channel) -> defer.Deferred:
            return channel.call("queue_delete", queue=name)

        def failed(failure: Failure) -> Any:
            error = failure.value
            if isinstance(error, ChannelError) and (not error.by_broker or error.code == 404):
                return None
            return Failure(TransportError(f"cannot delete queue {name!r}: {error}"))

        return cancelled.addCallback(lambda _: session.control()).addCallback(delete).addCallbacks(
            lambda _: None, failed)
