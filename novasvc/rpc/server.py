# -*- test-case-name: tests.test_rpc_server,tests.test_rpc_dedup,tests.test_rpc_replies,tests.test_rpc_monitor,tests.test_rpc_reporting,tests.test_metrics_instrumentation,tests.test_rpc_serializing -*-
"""
The RPC server: consume a topic's queues, dispatch each request to the
endpoints and reply to calls, in the oslo.messaging wire format.

Topology, as oslo.messaging's rabbit driver declares it: the three queues
of L{server_queues} (L{novasvc.rpc._queues}).

Delivery guarantees differ from oslo's on purpose, by default:

  - C{ack="late"} (default): a request is acknowledged once its method has
    finished and, for a call, once the broker confirmed the reply (or the
    reply was abandoned). A server killed mid-call leaves the request
    unacknowledged and the broker gives it to another server: at-least-once.
  - C{ack="early"}: acknowledged before dispatch, as oslo.messaging (§7):
    at-most-once.

In both modes requests are de-duplicated by C{_unique_id} over the last
C{duplicate_window} ids (oslo remembers 16); under late ack a copy that
arrives while its original runs waits for it, and is never acknowledged
while the request it repeats could still be lost (L{novasvc.rpc._dedup}).

At most C{max_inflight} methods run at once (the consumers' prefetch is the
same number); the deliveries beyond wait in a
L{novasvc.transport.consuming.Backlog}. A call holds its slot until its
reply is confirmed, or found unroutable: then the request is settled, the
slot freed, and the reply retried in the background within a budget, as
oslo.messaging does (L{novasvc.rpc._replies}). A caller that vanished never
holds a slot that live traffic needs. A call that sent a C{_timeout} gets
the call monitor's heartbeats while its method runs
(L{novasvc.rpc._monitor}).

Bad input never stops the consumer, and the consumer callback never raises.
A request that cannot be decoded (not JSON, nested too deeply, wrong types)
is rejected without requeue and logged once at ERROR; a call still gets a
L{novasvc.rpc.errors.MalformedMessage} failure reply when its C{_msg_id} and
C{_reply_q} could be read. A request that failed is logged as
L{novasvc.rpc._reporting} says: values a client chose are cut to 200
characters in log lines and in the errors the server replies with
(L{novasvc._text.clip}). Nothing on the per-message path logs at INFO or
above when requests succeed.

A serializer (C{serializer=}, see L{novasvc.rpc._serializing}) is used as
oslo.messaging's dispatcher uses it. One that raises fails that request
only: a call gets its exception in the error reply (values quoted cut by
L{novasvc._text.clip}), a cast is one ERROR line; either way the
request is settled as any failed request, and the consumer goes on.
Without one (or with a no-op one) each method gets a L{RequestContext}
read from the message only when first used.

Metrics (L{novasvc.metrics}): each request dispatched is counted by method
and outcome with its dispatch latency (from the dispatch to the method's
result, on the server's clock), and so are duplicates dropped and malformed
messages rejected; the requests in flight are read from L{RPCServer.inflight}
when metrics are scraped.
"""

from typing import Any, List, Optional, Sequence, Union

from twisted.internet import defer, task
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from novasvc._phase import Shared
from novasvc._reactor import global_reactor_if_none
from novasvc._text import clip
from novasvc.context import context_from_message
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.metrics import OK, Recorder, get_recorder
from novasvc.rpc import _serializing, wire
from novasvc.rpc._dedup import Duplicates
from novasvc.rpc._monitor import CallMonitors
from novasvc.rpc._queues import server_queues
from novasvc.rpc._replies import Replies
from novasvc.rpc._reporting import call_failed, cast_failed, count_failure, unencodable_result
from novasvc.rpc.dispatcher import RPCDispatcher
from novasvc.rpc.errors import MalformedMessage
from novasvc.rpc.target import Target
from novasvc.rpc.wire import CONTEXT_PREFIX
from novasvc.transport.consuming import Backlog, Drain, gather, settle
from novasvc.transport.topology import DEFAULT_EXCHANGE, QuorumQueues, is_direct_reply_to

__all__ = ["RPCServer", "server_queues"]

#: Result types that are no Deferred, told without isinstance.
_PLAIN = frozenset((dict, list, tuple, str, bytes, int, float, bool, type(None)))


class RPCServer:
    """
    Serve a topic's requests with a list of endpoints.

    Its lifecycle (oslo.messaging's C{start}, C{stop}, C{wait})::

        state      start()             stop()                 wait(timeout)
        ---------  ------------------  ---------------------  -----------------------------
        idle       consume -> serving  nothing to cancel      drained at once
        serving    nothing more        cancel -> draining     stop, then as draining
        draining   consume -> serving  the cancellation       wait for the requests in
                   (requests go on)    under way              flight (or the timeout), end
                                                              the call monitors and reply
                                                              retries, delete the fanout
                                                              queue -> idle
        (a wait while another one is under way gets its outcome)

    Every timer it makes (call-monitor heartbeats, reply retries, the drain
    deadline) is gone once C{wait()} has fired; a request still running
    then stays unsettled and goes back to the broker when the transport
    closes.

    @ivar target: the server's target (topic and server).
    @ivar queues: the three L{novasvc.transport.topology.Queue}s consumed (see
        L{server_queues}).
    @ivar dispatcher: the L{RPCDispatcher}.
    """

    _log = Logger()

    def __init__(self, transport: ITransport, target: Target,
                 endpoints: Union[Sequence[object], RPCDispatcher], *,
                 control_exchange: str = "openstack", clock: Any = None, max_inflight: int = 64,
                 ack: str = "late", duplicate_window: int = 1024, durable_queues: bool = False,
                 transient_queues_ttl: Optional[float] = 1800.0, reply_retry_timeout: float = 60.0,
                 reply_retry_interval: float = 0.25, reply_retry_max: int = 1000,
                 reply_retry_bytes: int = 16 * 1024 * 1024,
                 quorum: Optional[QuorumQueues] = None, tracing: Any = None,
                 metrics: Optional[Recorder] = None, serializer: Optional[Any] = None) -> None:
        """
        @param transport: the broker connection (not started or stopped by
            the server).
        @param target: C{topic} and C{server} (the host) are required.
        @param endpoints: the endpoint objects, or a ready L{RPCDispatcher}.
        @param control_exchange: the topic exchange (unless the target names
            one); oslo's default C{openstack}, Nova's C{nova}.
        @param clock: C{IReactorTime} for heartbeats, retries and C{wait}
            timeouts; the global reactor when C{None}.
        @param max_inflight: the most methods running at once, also the
            prefetch of each consumer.
        @param ack: C{"late"} (at-least-once) or C{"early"} (oslo's
            at-most-once), see the module docstring.
        @param duplicate_window: how many recent C{_unique_id}s to remember;
            C{0} disables de-duplication.
        @param durable_queues: oslo's C{amqp_durable_queues}.
        @param transient_queues_ttl: the fanout queue's C{x-expires} in
            B{seconds} (oslo's C{rabbit_transient_queues_ttl}).
        @param reply_retry_timeout: how long, in B{seconds}, to retry (in the
            background) the replies to a queue that does not exist (oslo's
            C{kombu_missing_consumer_retry_timeout}, 60 s); C{0} drops them
            after the first attempt.
        @param reply_retry_interval: seconds between those retries (oslo:
            0.25 s).
        @param reply_retry_max: the most replies held for retry at once, all
            missing queues together; a reply beyond it is dropped.
        @param reply_retry_bytes: the most bytes of replies held for retry at
            once; a reply beyond it is dropped.
        @param quorum: oslo's C{rabbit_quorum_queue} (see L{server_queues}).
        @param tracing: a L{novasvc.tracing.Tracing} making each request's
            run a span, or C{None} (no tracing, no cost).
        @param metrics: where to count requests (see the module docstring);
            the process's L{novasvc.metrics.get_recorder} when C{None}.
        @param serializer: an L{novasvc.rpc.serializer.ISerializer} for the
            requests' contexts and arguments and the calls' results, as
            oslo.messaging's C{RPCServer} takes one; C{None} or a no-op one:
            none. Given with a ready L{RPCDispatcher}, it must be that
            dispatcher's.
        @raise InvalidTarget: when the target lacks a topic or a server.
        @raise ValueError: for a bad C{ack}, C{max_inflight} or
            C{duplicate_window}, or a serializer given with a dispatcher
            that has another.
        @raise TypeError: when C{serializer} is not a serializer instance.
        """
        if ack not in ("late", "early"):
            raise ValueError(f"ack must be 'late' or 'early', not {ack!r}")
        if int(max_inflight) < 1:
            raise ValueError(f"max_inflight must be at least 1, not {max_inflight!r}")
        if int(duplicate_window) < 0:
            raise ValueError(f"duplicate_window must not be negative, not {duplicate_window!r}")
        self.queues = server_queues(target, control_exchange, durable_queues=durable_queues,
                                    transient_queues_ttl=transient_queues_ttl, quorum=quorum)
        self.target = target
        if not isinstance(endpoints, RPCDispatcher):
            endpoints = RPCDispatcher(endpoints, serializer)
        elif serializer is not None and serializer is not endpoints.serializer:
            raise ValueError("give the serializer to the RPCDispatcher, not beside it")
        self.dispatcher = endpoints
        self._serializing = endpoints.serializing
        self._transport = transport
        self._clock_arg = clock
        self._max_inflight = int(max_inflight)
        self._ack_early = ack == "early"
        self._window = int(duplicate_window)
        self._consumers: List[IConsumer] = []
        self._stopping = False
        # The requests in flight, the deliveries waiting for a slot, and the
        # waits for none to be left.
        self._running = 0
        self._backlog = Backlog()
        self._drain = Drain()
        # The cancellation and the wait under way.
        self._cancelling: Optional[Shared] = None
        self._waiting: Optional[Shared] = None
        self._tracing = tracing
        self._metrics = (get_recorder() if metrics is None else metrics).rpc_server(target.topic, target.server)
        self._metrics.watch(self)
        self._duplicates = Duplicates(self._window, self._ack_early, self._metrics)
        self._replies = Replies(transport, retry_timeout=reply_retry_timeout, retry_interval=reply_retry_interval,
                                retry_max=reply_retry_max, retry_bytes=reply_retry_bytes)
        self._monitors = CallMonitors(transport)
        self._seconds: Any = None

    @property
    def _clock(self) -> Any:
        if self._clock_arg is None:
            self._clock_arg = global_reactor_if_none()
        return self._clock_arg

    @property
    def serializer(self) -> Optional[Any]:
        """
        The serializer given (the dispatcher's), or C{None}.
        """
        return self.dispatcher.serializer

    @property
    def inflight(self) -> int:
        """
        How many requests are being handled now: dispatched and not yet
        settled (a call stays in flight until its reply is confirmed or found
        unroutable).
        """
        return self._running

    @property
    def held_replies(self) -> int:
        """
        How many replies to missing queues are held for a retry now.
        """
        return self._replies.held

    def start(self) -> defer.Deferred:
        """
        Declare the queues and start the three consumers.

        @return: a C{Deferred} firing with C{None} once all three consumers
            are active on the broker (it does not fire while the broker
            cannot be reached). Starting a started server does nothing.
        """
        if self._consumers:
            return defer.succeed(None)
        self._stopping = False
        clock = self._clock
        self._seconds = clock.seconds
        self._replies.clock = self._monitors.clock = clock
        self._replies.restart()
        for queue in self.queues:
            self._consumers.append(self._transport.consume(queue, self._on_delivery, prefetch=self._max_inflight))
        return gather([consumer.whenActive() for consumer in self._consumers])

    # -- one delivery, in the order it goes -----------------------------------

    def _on_delivery(self, delivery: IDelivery) -> None:
        try:
            if self._stopping:
                delivery.reject(True)
            elif self._running >= self._max_inflight:
                self._backlog.append(delivery)
            else:
                self._process(delivery)
        except Exception:
            self._unexpected(delivery)

    def _process(self, delivery: IDelivery) -> None:
        try:
            request = wire.decode_request(delivery.body, delivery.content_type)
        except MalformedMessage as error:
            self._reject_malformed(delivery, error)
            return
        if request.unique_id is not None and self._window and not self._duplicates.admit(request, delivery):
            return
        if self._ack_early:
            delivery.ack()
        self._running += 1
        start = self._seconds()
        try:
            if self._serializing:
                ctxt: Any = request.context  # what oslo hands its serializer
            else:
                ctxt = context_from_message(request.message, CONTEXT_PREFIX, request.timeout)
            tracing = self._tracing
            if tracing is None:
                result = self.dispatcher.invoke(ctxt, request.method, request.args, request.namespace,
                                                request.version)
            else:
                result = tracing.invoke(self.dispatcher, ctxt, request, self.target)
        except Exception:
            self._dispatch_failed(Failure(), delivery, request, None, start)
            return
        if type(result) in _PLAIN or not isinstance(result, defer.Deferred):
            # The usual case, a plain method: no Deferred on the way (and,
            # for the usual results, not even Deferred's isinstance, an ABC's).
            self._dispatched(result, delivery, request, None, start)
            return
        monitor = None
        if request.timeout is not None and request.is_call and not result.called:
            monitor = self._monitors.start(request)
        result.addCallbacks(self._dispatched, self._dispatch_failed, callbackArgs=(delivery, request, monitor, start),
                            errbackArgs=(delivery, request, monitor, start))

    def _dispatched(self, result: Any, delivery: IDelivery, request: wire.Request,
                    monitor: Optional[task.LoopingCall], start: float) -> None:
        try:
            self._metrics.request(request.method, OK, self._seconds() - start)
            if monitor is not None:
                self._monitors.stop(monitor)
            if not request.is_call:
                self._finish(delivery, request.unique_id)
                return
            try:
                body = wire.encode_reply(request.msg_id, result)  # type: ignore[arg-type]
            except Exception:
                failure = Failure()
                unencodable_result(failure, request)
                body = wire.encode_reply(request.msg_id, failure=wire.serialize_failure(failure))  # type: ignore
            self._send_reply(request, body, delivery)
        except Exception:
            self._bug(delivery, request.unique_id)

    def _dispatch_failed(self, failure: Failure, delivery: IDelivery, request: wire.Request,
                         monitor: Optional[task.LoopingCall], start: float) -> None:
        try:
            count_failure(self._metrics, self.dispatcher, failure, request, self._seconds() - start)
            if monitor is not None:
                self._monitors.stop(monitor)
            # What the serializer was doing when it raised this, if it did.
            doing = _serializing.stage(failure) if self._serializing else None
            if request.is_call:
                call_failed(failure, request, doing)
                body = wire.encode_reply(request.msg_id,  # type: ignore[arg-type]
                                         failure=wire.serialize_failure(failure, clipped=doing is not None))
                self._send_reply(request, body, delivery)
                return
            cast_failed(failure, delivery, request, doing)
            self._finish(delivery, request.unique_id)
        except Exception:
            self._bug(delivery, request.unique_id)

    def _send_reply(self, request: wire.Request, body: bytes, delivery: IDelivery) -> None:
        """
        Publish a call's reply as L{Replies.send} does, then finish the
        request once the reply is confirmed, held or dropped.
        """
        reply_q: str = request.reply_q  # type: ignore[assignment]
        replies = self._replies
        if (replies.gone or replies.missing) and replies.held_back(reply_q, body):
            self._finish(delivery, request.unique_id)
            return
        d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, body, mandatory=not is_direct_reply_to(reply_q))
        # One pair of callbacks, as few as a reply can do with.
        d.addCallbacks(self._replied, self._reply_failed, callbackArgs=(delivery, request.unique_id),
                       errbackArgs=(reply_q, body, delivery, request.unique_id))

    def _replied(self, _: object, delivery: IDelivery, unique_id: Optional[str]) -> None:
        self._finish(delivery, unique_id)

    def _reply_failed(self, failure: Failure, reply_q: str, body: bytes, delivery: IDelivery,
                      unique_id: Optional[str]) -> None:
        """
        A call's reply was not published: hold it for a retry when no queue
        took it, else log it; then finish its request.
        """
        try:
            self._replies.failed(failure, reply_q, body)
        finally:
            self._finish(delivery, unique_id)

    def _finish(self, delivery: IDelivery, unique_id: Optional[str], ok: bool = True) -> None:
        """
        The request is done: settle it (late ack) and the copies that waited
        for it, free its slot, start a waiting one, and tell C{wait} when
        nothing is left.
        """
        if not self._ack_early:
            try:
                if ok:
                    delivery.ack()
                else:
                    delivery.reject(False)
            except Exception:
                self._log.failure("Settling a delivery failed", level=LogLevel.error)
            if unique_id is not None and self._window:
                self._duplicates.settled(unique_id, ok)
        self._running -= 1
        if self._backlog:
            self._backlog.pull(self._has_room, self._process, self._unexpected)
        if self._running == 0 and self._drain.waiters:
            self._drain.drained()

    def _has_room(self) -> bool:
        return self._running < self._max_inflight and not self._stopping

    # -- what goes wrong on the way -------------------------------------------

    def _unexpected(self, delivery: IDelivery) -> None:
        self._log.failure("Unexpected error handling an RPC message from routing key {routing_key!r}; rejected",
                          routing_key=clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)
        settle(delivery.reject, False)

    def _reject_malformed(self, delivery: IDelivery, error: MalformedMessage) -> None:
        self._log.error("Rejected a malformed RPC message from exchange {exchange!r} routing key {routing_key!r}: "
                        "{reason}", exchange=clip(delivery.exchange), routing_key=clip(delivery.routing_key),
                        reason=clip(error.reason))
        delivery.reject(False)
        self._metrics.malformed_rejected()
        if error.msg_id is not None and error.reply_q is not None:
            self._replies.send(error.reply_q, wire.encode_reply(error.msg_id, failure=wire.serialize_failure(error)))

    def _bug(self, delivery: IDelivery, unique_id: Optional[str]) -> None:
        self._log.failure("Unexpected error completing an RPC request from routing key {routing_key!r}",
                          routing_key=clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)
        self._finish(delivery, unique_id, ok=False)

    # -- stopping -------------------------------------------------------------

    def stop(self) -> defer.Deferred:
        """
        Stop taking requests: cancel the consumers (C{basic.cancel}) and give
        back the received requests that have not started (rejected with
        requeue). Requests being handled go on.

        @return: a C{Deferred} firing with C{None} once the broker confirmed
            the cancellations; a stop while those are under way waits for
            them too.
        """
        self._stopping = True
        if not self._consumers and self._cancelling is not None and not self._cancelling.called:
            return self._cancelling.observe()
        consumers, self._consumers = self._consumers, []
        if consumers:
            # A failover may have renewed the fanout queue's name.
            self.queues = tuple(getattr(consumer, "queue", queue) for consumer, queue in zip(consumers, self.queues))
        self._backlog.give_back()
        self._cancelling = Shared(gather([consumer.cancel() for consumer in consumers]))
        return self._cancelling.observe()

    def wait(self, timeout: Optional[float] = None) -> defer.Deferred:
        """
        Stop (if not stopped), wait for the requests in flight, then delete
        the fanout queue, as oslo.messaging's C{RPCServer.wait}. Replies still
        held for missing queues are then dropped (logged once), and from then
        on a reply to a missing queue is not retried.

        @param timeout: the most B{seconds} to wait for the requests in
            flight; C{None} waits for all of them. Requests still running
            then stay unsettled (under late ack) and go back to the broker
            when the transport closes, unless they finish before.
        @return: a C{Deferred} firing with C{True} when every request in
            flight finished, C{False} when the timeout passed first. A wait
            while another one is under way (and no start came between)
            gets that wait's outcome. Once it fires, no timer of this
            server runs: the call monitors of the requests still running
            have stopped, and held replies are dropped.
        """
        if self._waiting is not None and not self._waiting.called and not self._consumers:
            return self._waiting.observe()
        d = self.stop()
        d.addCallback(lambda _: self._drain.wait(self._running, timeout, self._clock,
                                                 lambda: self._drain_timed_out(timeout)))
        d.addCallback(self._end_timers)
        d.addCallback(self._delete_fanout_queue)
        self._waiting = Shared(d)
        return self._waiting.observe()

    def _drain_timed_out(self, timeout: Optional[float]) -> None:
        self._log.warn(
            "RPC server {topic}.{server}: {count} request(s) still running after {timeout} s; "
            "their deliveries stay unsettled",
            topic=self.target.topic, server=self.target.server, count=self._running, timeout=timeout,
        )

    def _end_timers(self, drained: bool) -> bool:
        self._monitors.stop_all()
        self._replies.stop(self.target.topic, self.target.server)
        return drained

    def _delete_fanout_queue(self, drained: bool) -> defer.Deferred:
        d = self._transport.delete_queue(self.queues[2].name)
        d.addErrback(lambda f: self._log.warn("Could not delete fanout queue {queue}: {error}",
                                              queue=self.queues[2].name, error=f.getErrorMessage()))
        d.addCallback(lambda _: drained)
        return d

