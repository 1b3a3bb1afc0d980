# -*- test-case-name: tests.test_rpc_server,tests.test_metrics_instrumentation,tests.test_rpc_serializing -*-
"""
The RPC server: consume a topic's queues, dispatch each request to the
endpoints and reply to calls, in the oslo.messaging wire format.

Topology, as oslo.messaging's rabbit driver declares it (oslo-wire-protocol.md
§2-3): the queues C{<topic>} and C{<topic>.<server>} bound to the control
exchange (topic type), and a private queue C{<topic>_fanout_<uuid hex>} with
C{x-expires} bound to the fanout exchange C{<topic>_fanout} (auto-delete).

Delivery guarantees differ from oslo's on purpose, by default:

  - C{ack="late"} (default): a request is acknowledged once its method has
    finished and, for a call, once the broker confirmed the reply (or the
    reply was abandoned). A server killed mid-call leaves the request
    unacknowledged and the broker gives it to another server: at-least-once.
  - C{ack="early"}: acknowledged before dispatch, as oslo.messaging (§7):
    at-most-once.

In both modes requests are de-duplicated by C{_unique_id} over the last
C{duplicate_window} ids (oslo remembers 16). Under late ack an id counts as
seen only once its first run has finished and was acknowledged: a copy that
arrives while the original still runs (a redelivery after a lost connection,
a client's resend) waits, unacknowledged, and is acknowledged as a duplicate
when the original is; if the original could not be completed, the copy goes
back to the broker (rejected with requeue). A copy is never acknowledged
while the request it repeats could still be lost.

At most C{max_inflight} methods run at once (the consumers' prefetch is the
same number). A call holds its slot until its reply is confirmed, or found
unroutable: then the request is settled, the slot freed, and the reply
retried in the background as oslo.messaging does (every
C{reply_retry_interval} seconds for C{reply_retry_timeout} seconds, one probe
per missing queue), within a budget of C{reply_retry_max} replies and
C{reply_retry_bytes} bytes held. A reply queue that stayed missing that long
is remembered as gone for 60 s (the last 1,000 such queues): replies to it
are dropped at once. A caller that vanished never holds a slot that live
traffic needs.

Bad input never stops the consumer, and the consumer callback never raises.
A request that cannot be decoded (not JSON, nested too deeply, wrong types)
is rejected without requeue and logged once at ERROR; a call still gets a
L{novasvc.rpc.errors.MalformedMessage} failure reply when its C{_msg_id} and
C{_reply_q} could be read. A cast the dispatcher refuses (unknown or private
method, unsupported version) is one WARNING line without a traceback. A call
whose method raised is logged once at WARNING (method, error class and
message, C{_msg_id}, request id), its traceback at DEBUG. Values a client
chose (method names, ids, routing keys, versions, error messages quoting
them) are cut to 200 characters in log lines and in the errors the server
replies with (L{novasvc._text.clip}). Nothing on the per-message path
logs at INFO or above when requests succeed.

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
when metrics are scraped. A method the dispatcher refused is counted under
the method label C{<unknown>}: a client cannot create series.
"""

import hashlib
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Set, Union

from twisted.internet import defer, task
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure, format_frames

from novasvc._phase import Shared
from novasvc._reactor import global_reactor_if_none
from novasvc.context import context_from_message
from novasvc.exceptions import UnroutableError
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.metrics import ERROR, NO_SUCH_METHOD, OK, UNKNOWN_METHOD, UNSUPPORTED_VERSION, Recorder, get_recorder
from novasvc.rpc import _serializing, wire
from novasvc.rpc.wire import CONTEXT_PREFIX
from novasvc.rpc.dispatcher import RPCDispatcher
from novasvc._text import clip, quote
from novasvc.rpc.errors import InvalidTarget, MalformedMessage, NoSuchMethod, UnsupportedVersion
from novasvc.rpc.target import Target
from novasvc.transport.topology import DEFAULT_EXCHANGE, Binding, Exchange, Queue, QuorumQueues, topic_queue

__all__ = ["RPCServer", "server_queues"]

#: How many reply queues found gone are remembered, and for how many seconds.
_GONE_QUEUES = 1000
_GONE_FOR = 60.0
_REQUEST_ID = CONTEXT_PREFIX + "request_id"
#: Result types that are no Deferred, told without isinstance.
_PLAIN = frozenset((dict, list, tuple, str, bytes, int, float, bool, type(None)))
#: A C{_unique_id} longer than this is remembered by its digest: the window
#: holds a bounded number of bytes whatever clients send.
_ID_LIMIT = 64


def server_queues(target: Target, control_exchange: str = "openstack", *, durable_queues: bool = False,
                  transient_queues_ttl: Optional[float] = 1800.0,
                  fanout_suffix: Optional[str] = None, quorum: Optional[QuorumQueues] = None) -> Sequence[Queue]:
    """
    The three queues an RPC server for C{target} consumes, exactly as
    oslo.messaging declares them.

    @param target: needs C{topic} and C{server}; C{exchange} overrides
        C{control_exchange}.
    @param control_exchange: the topic exchange's name when the target has
        no exchange.
    @param durable_queues: oslo's C{amqp_durable_queues}: the control
        exchange and the two topic queues survive a broker restart.
    @param transient_queues_ttl: the fanout queue's C{x-expires}, in
        B{seconds}; C{0} or C{None} for none.
    @param fanout_suffix: the fanout queue's suffix; a fresh uuid4 hex when
        C{None}.
    @param quorum: oslo's C{rabbit_quorum_queue}: the two topic queues are
        quorum queues (see L{topic_queue}), and durable, as the exchange.
    @return: the queues C{<topic>}, C{<topic>.<server>} and
        C{<topic>_fanout_<suffix>}, in that order.
    @raise InvalidTarget: when C{target} lacks a topic or a server.
    """
    if not target.topic or not target.server:
        raise InvalidTarget("an RPC server needs a target with a topic and a server", target)
    topic, server = target.topic, target.server
    exchange = Exchange(target.exchange or control_exchange, "topic", durable=durable_queues or quorum is not None,
                        auto_delete=False)
    fanout = Exchange(f"{topic}_fanout", "fanout", durable=False, auto_delete=True)
    arguments = {"x-expires": int(transient_queues_ttl * 1000)} if transient_queues_ttl else {}
    return (
        topic_queue(topic, Binding(exchange, topic), durable_queues, quorum),
        topic_queue(f"{topic}.{server}", Binding(exchange, f"{topic}.{server}"), durable_queues, quorum),
        Queue(f"{topic}_fanout_{fanout_suffix or wire.new_id()}", arguments=arguments,
              bindings=(Binding(fanout, topic),), renew_prefix=f"{topic}_fanout_"),
    )


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
    @ivar queues: the three L{Queue}s consumed (see L{server_queues}).
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
        @param serializer: an L{novasvc.serializer.ISerializer} for the
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
        self._retry_timeout = float(reply_retry_timeout)
        self._retry_interval = float(reply_retry_interval)
        self._retry_max = int(reply_retry_max)
        self._retry_bytes = int(reply_retry_bytes)
        self._consumers: List[IConsumer] = []
        self._running = 0
        self._backlog: Deque[IDelivery] = deque()
        self._pulling = False
        self._stopping = False
        self._drain_waiters: List[defer.Deferred] = []
        # The call monitors running now (each a LoopingCall owned here, gone
        # once wait() has ended), the cancellation and the wait under way.
        self._monitors: Set[task.LoopingCall] = set()
        self._cancelling: Optional[Shared] = None
        self._waiting: Optional[Shared] = None
        # De-duplication: the ids seen (under late ack: whose first run
        # finished), oldest first; and under late ack the ids running now,
        # each with the copies waiting for it (None while there is none).
        self._seen: Set[str] = set()
        self._seen_order: Deque[str] = deque()
        self._active: Dict[str, Optional[List[IDelivery]]] = {}
        # Replies: the queues found missing (retried in the background), and
        # those found gone, with the time until which they stay so (oldest
        # first).
        self._missing: Dict[str, _MissingQueue] = {}
        self._gone: Dict[str, float] = {}
        self._held = 0
        self._held_bytes = 0
        self._budget_warned = False
        self._retrying = True
        self._tracing = tracing
        self._metrics = (get_recorder() if metrics is None else metrics).rpc_server(target.topic, target.server)
        self._metrics.watch(self)
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
        return self._held

    # -- lifecycle ------------------------------------------------------------

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
        self._retrying = True
        self._seconds = self._clock.seconds
        for queue in self.queues:
            self._consumers.append(self._transport.consume(queue, self._on_delivery, prefetch=self._max_inflight))
        return _gather([consumer.whenActive() for consumer in self._consumers])

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
        while self._backlog:
            _settle(self._backlog.popleft().reject, True)
        self._cancelling = Shared(_gather([consumer.cancel() for consumer in consumers]))
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
        d.addCallback(lambda _: self._when_drained(timeout))
        d.addCallback(self._stop_retrying)
        d.addCallback(self._delete_fanout_queue)
        self._waiting = Shared(d)
        return self._waiting.observe()

    def _stop_retrying(self, drained: bool) -> bool:
        self._retrying = False
        monitors, self._monitors = self._monitors, set()
        for monitor in monitors:
            if monitor.running:
                monitor.stop()
        if self._missing:
            missing, self._missing = self._missing, {}
            count = 0
            for queue in missing.values():
                if queue.call is not None and queue.call.active():
                    queue.call.cancel()
                count += len(queue.replies)
            self._held = self._held_bytes = 0
            self._budget_warned = False
            self._log.warn("RPC server {topic}.{server} stopped: dropping {count} reply(ies) held for {queues} "
                           "missing queue(s)", topic=self.target.topic, server=self.target.server, count=count,
                           queues=len(missing))
        return drained

    def _when_drained(self, timeout: Optional[float]) -> Union[bool, defer.Deferred]:
        if self._running == 0:
            return True
        d: defer.Deferred = defer.Deferred()
        self._drain_waiters.append(d)
        if timeout is not None:
            call = self._clock.callLater(timeout, self._drain_timed_out, d, timeout)
            d.addBoth(_cancel_call, call)
        return d

    def _drain_timed_out(self, d: defer.Deferred, timeout: float) -> None:
        if d in self._drain_waiters:
            self._drain_waiters.remove(d)
            self._log.warn(
                "RPC server {topic}.{server}: {count} request(s) still running after {timeout} s; "
                "their deliveries stay unsettled",
                topic=self.target.topic, server=self.target.server, count=self._running, timeout=timeout,
            )
            d.callback(False)

    def _delete_fanout_queue(self, drained: bool) -> defer.Deferred:
        d = self._transport.delete_queue(self.queues[2].name)
        d.addErrback(lambda f: self._log.warn("Could not delete fanout queue {queue}: {error}",
                                              queue=self.queues[2].name, error=f.getErrorMessage()))
        d.addCallback(lambda _: drained)
        return d

    # -- per message ----------------------------------------------------------

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

    def _unexpected(self, delivery: IDelivery) -> None:
        self._log.failure("Unexpected error handling an RPC message from routing key {routing_key!r}; rejected",
                          routing_key=clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)
        _settle(delivery.reject, False)

    def _process(self, delivery: IDelivery) -> None:
        try:
            request = wire.decode_request(delivery.body, delivery.content_type)
        except MalformedMessage as error:
            self._reject_malformed(delivery, error)
            return
        unique_id = request.unique_id
        if unique_id is not None and self._window:
            if len(unique_id) > _ID_LIMIT:
                unique_id = request.unique_id = _digest(unique_id)
            if unique_id in self._seen:
                self._log.error(
                    "Ignoring duplicate RPC message {unique_id} (method {method!r}) from routing key "
                    "{routing_key!r}", unique_id=clip(unique_id), method=clip(request.method),
                    routing_key=clip(delivery.routing_key),
                )
                delivery.ack()
                self._metrics.duplicate_dropped()
                return
            if self._ack_early:
                self._remember(unique_id)
            elif unique_id in self._active:
                self._park(unique_id, delivery, request)
                return
            else:
                self._active[unique_id] = None
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
            try:
                monitor = self._start_monitor(request)
            except Exception:
                self._log.failure("Could not start the call monitor of {msg_id}", msg_id=clip(request.msg_id),
                                  level=LogLevel.error)
        result.addCallbacks(self._dispatched, self._dispatch_failed, callbackArgs=(delivery, request, monitor, start),
                            errbackArgs=(delivery, request, monitor, start))

    def _remember(self, unique_id: str) -> None:
        """
        Count C{unique_id} as seen, forgetting the oldest beyond the window.
        """
        self._seen.add(unique_id)
        self._seen_order.append(unique_id)
        if len(self._seen_order) > self._window:
            self._seen.discard(self._seen_order.popleft())

    def _park(self, unique_id: str, delivery: IDelivery, request: wire.Request) -> None:
        """
        A copy of a request that is still running (late ack): keep it,
        unsettled, until the original is settled (see L{_settle_copies}).
        """
        self._log.debug("RPC message {unique_id} (method {method!r}) from routing key {routing_key!r} repeats a "
                        "request still running; it waits for it", unique_id=clip(unique_id),
                        method=clip(request.method), routing_key=clip(delivery.routing_key))
        copies = self._active[unique_id]
        if copies is None:
            self._active[unique_id] = [delivery]
        else:
            copies.append(delivery)

    def _settle_copies(self, unique_id: str, copies: List[IDelivery], done: bool) -> None:
        """
        The original of C{copies} was settled: acknowledge them as duplicates
        when it was acknowledged (C{done}), give them back to the broker
        otherwise.
        """
        for copy in copies:
            if done:
                self._log.error("Ignoring duplicate RPC message {unique_id} from routing key {routing_key!r}, "
                                "received while its original ran", unique_id=clip(unique_id),
                                routing_key=clip(copy.routing_key))
                _settle(copy.ack)
                self._metrics.duplicate_dropped()
            else:
                _settle(copy.reject, True)

    def _dispatched(self, result: Any, delivery: IDelivery, request: wire.Request,
                    monitor: Optional[task.LoopingCall], start: float) -> None:
        try:
            self._metrics.request(request.method, OK, self._seconds() - start)
            self._stop_monitor(monitor)
            if not request.is_call:
                self._finish(delivery, request.unique_id)
                return
            try:
                body = wire.encode_reply(request.msg_id, result)  # type: ignore[arg-type]
            except Exception:
                failure = Failure()
                self._log.error("Result of RPC call {method!r} ({msg_id}, request {request_id}) cannot be "
                                "encoded: {error}", method=clip(request.method), msg_id=clip(request.msg_id),
                                request_id=_request_id(request), error=clip(failure.getErrorMessage()))
                body = wire.encode_reply(request.msg_id, failure=wire.serialize_failure(failure))  # type: ignore
            self._send_reply(request, body, delivery)
        except Exception:
            self._bug(delivery, request.unique_id)

    def _dispatch_failed(self, failure: Failure, delivery: IDelivery, request: wire.Request,
                         monitor: Optional[task.LoopingCall], start: float) -> None:
        try:
            self._count_failure(failure, request, start)
            self._stop_monitor(monitor)
            # What the serializer was doing when it raised this, if it did.
            doing = _serializing.stage(failure) if self._serializing else None
            if request.is_call:
                self._call_failed(failure, request, doing)
                body = wire.encode_reply(request.msg_id,  # type: ignore[arg-type]
                                         failure=wire.serialize_failure(failure, clipped=doing is not None))
                self._send_reply(request, body, delivery)
                return
            request_id = _request_id(request)
            if doing is not None:
                # Not the method's failure: one line, the values it quotes cut.
                self._log.error("Cast {method!r} from routing key {routing_key!r} failed{cause} with "
                                "{error_class}: {error} (request {request_id})", method=clip(request.method),
                                routing_key=clip(delivery.routing_key), cause=_cause(doing),
                                error_class=_class_name(failure.type), error=clip(failure.getErrorMessage()),
                                request_id=request_id)
                self._log.debug("Traceback of cast {method!r} (request {request_id}):\n{traceback}",
                                method=clip(request.method), request_id=request_id, traceback=_Traceback(failure))
            elif failure.check(NoSuchMethod) and request.method.endswith("_ignore_errors"):
                self._log.debug("Cast {method!r}: {error}", method=clip(request.method),
                                error=clip(failure.getErrorMessage()))
            elif failure.check(NoSuchMethod, UnsupportedVersion):
                # The dispatcher refused it, a client's mistake: its traceback
                # would say nothing.
                self._log.warn("Cast {method!r} from routing key {routing_key!r} refused: {error_class}: "
                               "{error} (request {request_id})", method=clip(request.method),
                               routing_key=clip(delivery.routing_key), error_class=_class_name(failure.type),
                               error=clip(failure.getErrorMessage()), request_id=request_id)
            else:
                self._log.failure("Exception during message handling: cast {method!r} from routing key "
                                  "{routing_key!r} (request {request_id})", failure, level=LogLevel.error,
                                  method=clip(request.method), routing_key=clip(delivery.routing_key),
                                  request_id=request_id)
            self._finish(delivery, request.unique_id)
        except Exception:
            self._bug(delivery, request.unique_id)

    def _count_failure(self, failure: Failure, request: wire.Request, start: float) -> None:
        seconds = self._seconds() - start
        if failure.check(NoSuchMethod):
            self._metrics.request(UNKNOWN_METHOD, NO_SUCH_METHOD, seconds)
        elif failure.check(UnsupportedVersion):
            self._metrics.request(UNKNOWN_METHOD, UNSUPPORTED_VERSION, seconds)
        else:
            self._metrics.request(self._method_label(request), ERROR, seconds)

    def _method_label(self, request: wire.Request) -> str:
        """
        @return: the request's method name when the dispatcher serves it
            (the error came from the method), else L{UNKNOWN_METHOD} (it
            came before: a context that could not be read).
        """
        try:
            self.dispatcher.resolve(request.method, request.namespace, request.version)
        except Exception:
            return UNKNOWN_METHOD
        return request.method

    def _call_failed(self, failure: Failure, request: wire.Request, doing: Optional[str] = None) -> None:
        fields = dict(method=clip(request.method), msg_id=clip(request.msg_id), request_id=_request_id(request))
        self._log.warn("RPC call {method!r} failed{cause} with {error_class}: {error} (msg_id {msg_id}, "
                       "request {request_id})", cause=_cause(doing), error_class=_class_name(failure.type),
                       error=clip(failure.getErrorMessage()), **fields)
        self._log.debug("Traceback of RPC call {method!r} (msg_id {msg_id}, request {request_id}):\n"
                        "{traceback}", traceback=_Traceback(failure), **fields)

    def _bug(self, delivery: IDelivery, unique_id: Optional[str]) -> None:
        self._log.failure("Unexpected error completing an RPC request from routing key {routing_key!r}",
                          routing_key=clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)
        self._finish(delivery, unique_id, ok=False)

    def _send_reply(self, request: wire.Request, body: bytes, delivery: IDelivery) -> None:
        """
        Publish a call's reply as L{_reply} does, then finish the request
        once the reply is confirmed, held or dropped.
        """
        reply_q: str = request.reply_q  # type: ignore[assignment]
        if (self._gone or self._missing) and self._held_back(reply_q, body):
            self._finish(delivery, request.unique_id)
            return
        d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, body, mandatory=True)
        # One pair of callbacks, as few as a reply can do with.
        d.addCallbacks(self._replied, self._reply_failed, callbackArgs=(delivery, request.unique_id),
                       errbackArgs=(reply_q, body, delivery, request.unique_id))

    def _replied(self, _: object, delivery: IDelivery, unique_id: Optional[str]) -> None:
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
                copies = self._active.pop(unique_id, None)
                if ok:
                    self._remember(unique_id)
                if copies:
                    self._settle_copies(unique_id, copies, ok)
        self._running -= 1
        if self._backlog:
            self._pull_backlog()
        if self._running == 0 and self._drain_waiters:
            waiters, self._drain_waiters = self._drain_waiters, []
            for d in waiters:
                d.callback(True)

    def _pull_backlog(self) -> None:
        # A loop, not recursion: requests that complete synchronously would
        # otherwise nest one stack level per waiting delivery.
        if self._pulling:
            return
        self._pulling = True
        try:
            while self._backlog and self._running < self._max_inflight and not self._stopping:
                delivery = self._backlog.popleft()
                try:
                    self._process(delivery)
                except Exception:
                    self._unexpected(delivery)
        finally:
            self._pulling = False

    def _reject_malformed(self, delivery: IDelivery, error: MalformedMessage) -> None:
        self._log.error("Rejected a malformed RPC message from exchange {exchange!r} routing key {routing_key!r}: "
                        "{reason}", exchange=clip(delivery.exchange), routing_key=clip(delivery.routing_key),
                        reason=clip(error.reason))
        delivery.reject(False)
        self._metrics.malformed_rejected()
        if error.msg_id is not None and error.reply_q is not None:
            self._reply(error.reply_q, wire.encode_reply(error.msg_id, failure=wire.serialize_failure(error)))

    # -- replies --------------------------------------------------------------

    def _reply(self, reply_q: str, body: bytes) -> Optional[defer.Deferred]:
        """
        Publish a reply (mandatory). When its queue is missing, the reply is
        held and retried in the background (see L{_missing_reply}).

        @return: C{None} when the reply was dropped or held at once (its
            queue is known gone or missing); otherwise the publish's
            C{Deferred}, firing with C{None} once the reply is confirmed, held
            or dropped (it never fails; problems are logged).
        """
        if self._held_back(reply_q, body):
            return None
        d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, body, mandatory=True)
        d.addErrback(self._reply_failed, reply_q, body)
        return d

    def _held_back(self, reply_q: str, body: bytes) -> bool:
        """
        @return: C{True} when the reply was dropped (its queue is known gone)
            or held (its queue is known missing), C{False} when it is to be
            published.
        """
        if self._gone and self._is_gone(reply_q):
            self._log.debug("Dropping a reply to the gone queue {reply_q}", reply_q=clip(reply_q))
            return True
        if self._missing:
            queue = self._missing.get(reply_q)
            if queue is not None:
                self._hold(queue, body)
                return True
        return False

    def _reply_failed(self, failure: Failure, reply_q: str, body: bytes, delivery: Optional[IDelivery] = None,
                      unique_id: Optional[str] = None) -> None:
        """
        A reply was not published: hold it for a retry when no queue took
        it, else log it; then finish its request, if given.
        """
        try:
            if failure.check(UnroutableError):
                self._missing_reply(reply_q, body)
            else:
                self._log.error("A reply to {reply_q} could not be published: {error}", reply_q=clip(reply_q),
                                error=clip(failure.getErrorMessage()))
        finally:
            if delivery is not None:
                self._finish(delivery, unique_id)

    def _missing_reply(self, reply_q: str, body: bytes) -> None:
        """
        A reply came back unroutable: hold it for a retry, its queue now
        known missing (retried every C{reply_retry_interval} seconds, one
        reply at a time, until it appears or C{reply_retry_timeout} passed).
        """
        if self._gone and self._is_gone(reply_q):
            self._log.debug("Dropping a reply to the gone queue {reply_q}", reply_q=clip(reply_q))
            return
        queue = self._missing.get(reply_q)
        if queue is None:
            now = self._clock.seconds()
            if not self._retrying or self._retry_interval > self._retry_timeout or not self._fits(body):
                self._abandon(reply_q, _MissingQueue(now), now, 1)
                return
            queue = self._missing[reply_q] = _MissingQueue(now)
            queue.call = self._clock.callLater(self._retry_interval, self._retry, reply_q)
            self._log.debug("The reply queue {reply_q} is missing; its replies are retried for {timeout} s",
                            reply_q=clip(reply_q), timeout=self._retry_timeout)
        self._hold(queue, body)

    def _fits(self, body: bytes) -> bool:
        """
        @return: whether C{body} may be held within the retry budget (a
            WARNING when the budget first refuses one).
        """
        if self._held < self._retry_max and self._held_bytes + len(body) <= self._retry_bytes:
            return True
        if not self._budget_warned:
            self._budget_warned = True
            self._log.warn("Reply retry budget full ({count} replies, {size} bytes held for {queues} missing "
                           "queue(s)): dropping replies to missing queues until it frees",
                           count=self._held, size=self._held_bytes, queues=len(self._missing))
        return False

    def _hold(self, queue: "_MissingQueue", body: bytes) -> None:
        if not self._fits(body):
            queue.dropped += 1
            return
        queue.replies.append(body)
        self._held += 1
        self._held_bytes += len(body)

    def _release(self, body: bytes) -> None:
        self._held -= 1
        self._held_bytes -= len(body)
        self._budget_warned = False

    def _retry(self, reply_q: str) -> None:
        queue = self._missing.get(reply_q)
        if queue is None:
            return
        queue.call = None
        try:
            d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, queue.replies[0], mandatory=True)
            d.addCallbacks(self._found, self._retry_failed, callbackArgs=(reply_q, queue),
                           errbackArgs=(reply_q, queue))
        except Exception:
            del self._missing[reply_q]
            self._log.failure("Retrying the replies to {reply_q} failed; {count} reply(ies) dropped",
                              reply_q=clip(reply_q), count=self._drop(queue), level=LogLevel.error)

    def _found(self, _: object, reply_q: str, queue: "_MissingQueue") -> None:
        """
        The first held reply went through: send the others the usual way.
        """
        if self._missing.get(reply_q) is not queue:
            return  # dropped by wait() meanwhile
        del self._missing[reply_q]
        self._release(queue.replies.popleft())
        self._log.debug("The reply queue {reply_q} appeared after {elapsed} s", reply_q=clip(reply_q),
                        elapsed=self._clock.seconds() - queue.since)
        if queue.dropped:
            self._log.warn("{count} reply(ies) to {reply_q} were dropped while it was missing: the reply retry "
                           "budget was full", count=queue.dropped, reply_q=clip(reply_q))
        while queue.replies:
            body = queue.replies.popleft()
            self._release(body)
            self._reply(reply_q, body)

    def _retry_failed(self, failure: Failure, reply_q: str, queue: "_MissingQueue") -> None:
        if self._missing.get(reply_q) is not queue:
            return
        now = self._clock.seconds()
        if failure.check(UnroutableError) and now - queue.since + self._retry_interval <= self._retry_timeout:
            queue.call = self._clock.callLater(self._retry_interval, self._retry, reply_q)
            return
        del self._missing[reply_q]
        if failure.check(UnroutableError):
            self._abandon(reply_q, queue, now, 0)
            return
        self._log.error("{count} reply(ies) to {reply_q} dropped: the retry could not be published: {error}",
                        count=self._drop(queue), reply_q=clip(reply_q), error=clip(failure.getErrorMessage()))

    def _drop(self, queue: "_MissingQueue") -> int:
        """
        @return: how many replies to C{queue} were dropped, now that its held
            ones are.
        """
        for body in queue.replies:
            self._release(body)
        count = len(queue.replies) + queue.dropped
        queue.replies.clear()
        return count

    def _abandon(self, reply_q: str, queue: "_MissingQueue", now: float, extra: int) -> None:
        """
        Give up on a missing reply queue: drop what it held, and remember it
        as gone for C{_GONE_FOR} seconds, so replies to it are dropped at
        once (one log line here, DEBUG for each later one).

        @param extra: replies dropped that were not held.
        """
        count = self._drop(queue) + extra
        gone = self._gone
        gone.pop(reply_q, None)
        while len(gone) >= _GONE_QUEUES:
            del gone[next(iter(gone))]
        gone[reply_q] = now + _GONE_FOR
        self._log.warn("The reply queue {reply_q} is missing after {elapsed} s: abandoning {count} reply(ies), "
                       "and replies to it for the next {ttl} s", reply_q=clip(reply_q), elapsed=now - queue.since,
                       count=count, ttl=_GONE_FOR)

    def _is_gone(self, reply_q: str) -> bool:
        until = self._gone.get(reply_q)
        if until is None:
            return False
        if self._clock.seconds() < until:
            return True
        del self._gone[reply_q]
        return False

    # -- call monitoring ------------------------------------------------------

    def _start_monitor(self, request: wire.Request) -> Optional[task.LoopingCall]:
        """
        oslo.messaging's call-monitor watchdog: an C{ending: false} reply every
        C{int(_timeout) / 2} seconds while the method runs.
        """
        try:
            interval = int(request.timeout) / 2
        except (TypeError, ValueError, OverflowError):
            interval = 0
        if interval < 1:
            self._log.warn("Call {method!r} ({msg_id}) sent an unusable call-monitor timeout {timeout!r}; "
                           "no heartbeats", method=clip(request.method), msg_id=clip(request.msg_id),
                           timeout=quote(request.timeout))
            return None
        loop = task.LoopingCall(self._heartbeat, request.reply_q, request.msg_id)
        loop.clock = self._clock
        loop.start(interval, now=False)
        self._monitors.add(loop)
        return loop

    def _stop_monitor(self, monitor: Optional[task.LoopingCall]) -> None:
        if monitor is not None:
            self._monitors.discard(monitor)
            if monitor.running:
                monitor.stop()

    def _heartbeat(self, reply_q: str, msg_id: str) -> None:
        try:
            d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, wire.encode_reply(msg_id, ending=False),
                                        mandatory=True)
            d.addErrback(lambda f: self._log.debug("Heartbeat for {msg_id} not sent: {error}", msg_id=clip(msg_id),
                                                   error=f.getErrorMessage()))
        except Exception:
            self._log.failure("Heartbeat for {msg_id} failed", msg_id=clip(msg_id), level=LogLevel.error)


class _MissingQueue:
    """
    A reply queue found missing: the replies held for it, oldest first.

    @ivar since: when it was found missing, in seconds (the clock's).
    @ivar replies: the reply bodies held, a C{deque} of C{bytes}.
    @ivar dropped: how many replies to it the budget refused.
    @ivar call: the pending retry, or C{None} while a probe is out.
    """

    __slots__ = ("since", "replies", "dropped", "call")

    def __init__(self, since: float) -> None:
        self.since = since
        self.replies: Deque[bytes] = deque()
        self.dropped = 0
        self.call: Any = None


def _digest(unique_id: str) -> str:
    """
    @return: a C{_unique_id} too long to keep, as a fixed-size text that no
        id of at most C{_ID_LIMIT} characters can be.
    """
    return "#" * (_ID_LIMIT + 1) + hashlib.sha256(unique_id.encode("utf-8", "surrogatepass")).hexdigest()


def _request_id(request: wire.Request) -> str:
    """
    @return: the request id of C{request}'s context, cut by L{clip}, or
        C{"-"} when it has none.
    """
    return clip(request.message.get(_REQUEST_ID) or "-")  # type: ignore[return-value]


def _cause(doing: Optional[str]) -> str:
    """
    @return: what a failure log line says of a serializer's failure: C{""}
        when it is the method's.
    """
    return "" if doing is None else f" (the serializer raised it {doing})"


def _class_name(cls: Any) -> str:
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", repr(cls))
    return name if module in (None, "builtins") else f"{module}.{name}"


class _Traceback:
    """
    A failure's traceback, formatted only if a log observer shows it, with
    the error message (which may quote the client) cut by L{clip}.
    """

    __slots__ = ("_failure",)

    def __init__(self, failure: Failure) -> None:
        self._failure = failure

    def __str__(self) -> str:
        failure = self._failure
        lines = ["Traceback (most recent call last):\n"]
        format_frames(failure.frames, lines.append)
        lines.append(f"{_class_name(failure.type)}: {clip(failure.getErrorMessage())}")
        return "".join(lines)


def _settle(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        RPCServer._log.failure("Settling a delivery failed", level=LogLevel.error)


def _cancel_call(result: object, call: Any) -> object:
    if call.active():
        call.cancel()
    return result


def _gather(deferreds: List[defer.Deferred]) -> defer.Deferred:
    d = defer.gatherResults(deferreds, consumeErrors=True)
    d.addCallbacks(lambda _: None, lambda f: f.value.subFailure if f.check(defer.FirstError) else f)
    return d
