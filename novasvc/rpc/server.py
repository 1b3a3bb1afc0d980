# -*- test-case-name: tests.test_rpc_server -*-
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
C{duplicate_window} ids (oslo remembers 16), at most C{max_inflight} methods
run at once (the consumers' prefetch is the same number), and a request that
cannot be decoded is rejected without requeue (logged once; a call still gets
a L{novasvc.rpc.errors.MalformedMessage} failure reply when its C{_msg_id}
and C{_reply_q} could be read). Nothing on the per-message path logs at INFO
or above except errors, and the consumer callback never raises. A call whose
method raised is logged once at WARNING (method, error class and message,
C{_msg_id}, request id), its traceback at DEBUG. Values a client chose
(method names, ids, routing keys, error messages) are cut to
200 characters in log lines.
"""

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Set, Union

from twisted.internet import defer, task
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure, format_frames

from novasvc._reactor import global_reactor_if_none
from novasvc.context import RequestContext
from novasvc.exceptions import UnroutableError
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.rpc import wire
from novasvc.rpc.wire import CONTEXT_PREFIX
from novasvc.rpc.dispatcher import RPCDispatcher
from novasvc.rpc.errors import InvalidTarget, MalformedMessage, NoSuchMethod, UnsupportedVersion
from novasvc.rpc.target import Target
from novasvc.transport.topology import DEFAULT_EXCHANGE, Binding, Exchange, Queue, QuorumQueues, topic_queue

__all__ = ["RPCServer", "server_queues"]

_OBSOLETE_REPLY_QUEUES = 200
_OBSOLETE_FOR = 60.0
_REQUEST_ID = CONTEXT_PREFIX + "request_id"
# The most characters of a client-chosen value shown in a log line.
_LOG_VALUE_LIMIT = 200


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
              bindings=(Binding(fanout, topic),)),
    )


class RPCServer:
    """
    Serve a topic's requests with a list of endpoints.

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
                 reply_retry_interval: float = 0.25, quorum: Optional[QuorumQueues] = None) -> None:
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
        @param reply_retry_timeout: how long, in B{seconds}, to retry a reply
            whose queue does not exist (oslo's
            C{kombu_missing_consumer_retry_timeout}, 60 s).
        @param reply_retry_interval: seconds between those retries (oslo:
            0.25 s).
        @param quorum: oslo's C{rabbit_quorum_queue} (see L{server_queues}).
        @raise InvalidTarget: when the target lacks a topic or a server.
        @raise ValueError: for a bad C{ack}, C{max_inflight} or
            C{duplicate_window}.
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
        self.dispatcher = endpoints if isinstance(endpoints, RPCDispatcher) else RPCDispatcher(endpoints)
        self._transport = transport
        self._clock_arg = clock
        self._max_inflight = int(max_inflight)
        self._ack_early = ack == "early"
        self._window = int(duplicate_window)
        self._retry_timeout = float(reply_retry_timeout)
        self._retry_interval = float(reply_retry_interval)
        self._consumers: List[IConsumer] = []
        self._running = 0
        self._backlog: Deque[IDelivery] = deque()
        self._pulling = False
        self._stopping = False
        self._drain_waiters: List[defer.Deferred] = []
        self._seen: Set[str] = set()
        self._seen_order: Deque[str] = deque()
        self._obsolete: Dict[str, float] = {}

    @property
    def _clock(self) -> Any:
        if self._clock_arg is None:
            self._clock_arg = global_reactor_if_none()
        return self._clock_arg

    @property
    def inflight(self) -> int:
        """
        How many requests are being handled now: dispatched and not yet
        settled (a call stays in flight until its reply is confirmed).
        """
        return self._running

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
        for queue in self.queues:
            self._consumers.append(self._transport.consume(queue, self._on_delivery, prefetch=self._max_inflight))
        return _gather([consumer.whenActive() for consumer in self._consumers])

    def stop(self) -> defer.Deferred:
        """
        Stop taking requests: cancel the consumers (C{basic.cancel}) and give
        back the received requests that have not started (rejected with
        requeue). Requests being handled go on.

        @return: a C{Deferred} firing with C{None} once the broker confirmed
            the cancellations.
        """
        self._stopping = True
        consumers, self._consumers = self._consumers, []
        while self._backlog:
            _settle(self._backlog.popleft().reject, True)
        return _gather([consumer.cancel() for consumer in consumers])

    def wait(self, timeout: Optional[float] = None) -> defer.Deferred:
        """
        Stop (if not stopped), wait for the requests in flight, then delete
        the fanout queue, as oslo.messaging's C{RPCServer.wait}.

        @param timeout: the most B{seconds} to wait for the requests in
            flight; C{None} waits for all of them. Requests still running
            then stay unsettled (under late ack) and go back to the broker
            when the transport closes, unless they finish before.
        @return: a C{Deferred} firing with C{True} when every request in
            flight finished, C{False} when the timeout passed first.
        """
        d = self.stop()
        d.addCallback(lambda _: self._when_drained(timeout))
        d.addCallback(self._delete_fanout_queue)
        return d

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
                          routing_key=_clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)
        _settle(delivery.reject, False)

    def _process(self, delivery: IDelivery) -> None:
        try:
            request = wire.decode_request(delivery.body, delivery.content_type)
        except MalformedMessage as error:
            self._reject_malformed(delivery, error)
            return
        unique_id = request.unique_id
        if unique_id is not None and self._window:
            if unique_id in self._seen:
                self._log.error(
                    "Ignoring duplicate RPC message {unique_id} (method {method!r}) from routing key "
                    "{routing_key!r}", unique_id=_clip(unique_id), method=_clip(request.method),
                    routing_key=_clip(delivery.routing_key),
                )
                delivery.ack()
                return
            self._seen.add(unique_id)
            self._seen_order.append(unique_id)
            if len(self._seen_order) > self._window:
                self._seen.discard(self._seen_order.popleft())
        if self._ack_early:
            delivery.ack()
        self._running += 1
        try:
            ctxt = RequestContext.from_dict(request.message, CONTEXT_PREFIX)
            ctxt.client_timeout = request.timeout
            result = self.dispatcher.invoke(ctxt, request.method, request.args, request.namespace, request.version)
        except Exception:
            self._dispatch_failed(Failure(), delivery, request, None)
            return
        if not isinstance(result, defer.Deferred):
            # The usual case, a plain method: no Deferred on the way.
            self._dispatched(result, delivery, request, None)
            return
        monitor = None
        if request.timeout is not None and request.is_call and not result.called:
            try:
                monitor = self._start_monitor(request)
            except Exception:
                self._log.failure("Could not start the call monitor of {msg_id}", msg_id=_clip(request.msg_id),
                                  level=LogLevel.error)
        result.addCallbacks(self._dispatched, self._dispatch_failed, callbackArgs=(delivery, request, monitor),
                            errbackArgs=(delivery, request, monitor))

    def _dispatched(self, result: Any, delivery: IDelivery, request: wire.Request,
                    monitor: Optional[task.LoopingCall]) -> None:
        try:
            if monitor is not None:
                monitor.stop()
            if not request.is_call:
                self._finish(delivery)
                return
            try:
                body = wire.encode_reply(request.msg_id, result)  # type: ignore[arg-type]
            except Exception:
                failure = Failure()
                self._log.error("Result of RPC call {method!r} ({msg_id}) cannot be encoded: {error}",
                                method=_clip(request.method), msg_id=_clip(request.msg_id),
                                error=_clip(failure.getErrorMessage()))
                body = wire.encode_reply(request.msg_id, failure=wire.serialize_failure(failure))  # type: ignore
            self._reply(request.reply_q, body).addBoth(self._replied, delivery)  # type: ignore[arg-type]
        except Exception:
            self._bug(delivery)

    def _dispatch_failed(self, failure: Failure, delivery: IDelivery, request: wire.Request,
                         monitor: Optional[task.LoopingCall]) -> None:
        try:
            if monitor is not None:
                monitor.stop()
            if request.is_call:
                self._call_failed(failure, request)
                body = wire.encode_reply(request.msg_id, failure=wire.serialize_failure(failure))  # type: ignore
                self._reply(request.reply_q, body).addBoth(self._replied, delivery)  # type: ignore[arg-type]
                return
            if failure.check(NoSuchMethod) and request.method.endswith("_ignore_errors"):
                self._log.debug("Cast {method!r}: {error}", method=_clip(request.method),
                                error=_clip(failure.getErrorMessage()))
            elif failure.check(NoSuchMethod, UnsupportedVersion):
                # The dispatcher refused it: the traceback would say nothing,
                # and the message quotes the client's method name in full.
                self._log.error("Cast {method!r} from routing key {routing_key!r} refused: {error_class}: "
                                "{error}", method=_clip(request.method), routing_key=_clip(delivery.routing_key),
                                error_class=_class_name(failure.type), error=_clip(failure.getErrorMessage()))
            else:
                self._log.failure("Exception during message handling: cast {method!r} from routing key "
                                  "{routing_key!r}", failure, level=LogLevel.error, method=_clip(request.method),
                                  routing_key=_clip(delivery.routing_key))
            self._finish(delivery)
        except Exception:
            self._bug(delivery)

    def _call_failed(self, failure: Failure, request: wire.Request) -> None:
        fields = dict(method=_clip(request.method), msg_id=_clip(request.msg_id),
                      request_id=_clip(request.message.get(_REQUEST_ID) or "-"))
        self._log.warn("RPC call {method!r} failed with {error_class}: {error} (msg_id {msg_id}, "
                       "request {request_id})", error_class=_class_name(failure.type),
                       error=_clip(failure.getErrorMessage()), **fields)
        self._log.debug("Traceback of RPC call {method!r} (msg_id {msg_id}, request {request_id}):\n"
                        "{traceback}", traceback=_Traceback(failure), **fields)

    def _bug(self, delivery: IDelivery) -> None:
        self._log.failure("Unexpected error completing an RPC request from routing key {routing_key!r}",
                          routing_key=_clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)
        self._finish(delivery, ok=False)

    def _replied(self, _: object, delivery: IDelivery) -> None:
        self._finish(delivery)

    def _finish(self, delivery: IDelivery, ok: bool = True) -> None:
        """
        The request is done: settle it (late ack), free its slot, start a
        waiting one, and tell C{wait} when nothing is left.
        """
        if not self._ack_early:
            if ok:
                _settle(delivery.ack)
            else:
                _settle(delivery.reject, False)
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
                        "{reason}", exchange=_clip(delivery.exchange), routing_key=_clip(delivery.routing_key),
                        reason=_clip(error.reason))
        delivery.reject(False)
        if error.msg_id is not None and error.reply_q is not None:
            self._reply(error.reply_q, wire.encode_reply(error.msg_id, failure=wire.serialize_failure(error)))

    # -- replies --------------------------------------------------------------

    def _reply(self, reply_q: str, body: bytes) -> defer.Deferred:
        """
        Publish a reply; retry while its queue is missing, as oslo.messaging.

        @return: a C{Deferred} firing with C{None} once the reply is
            confirmed or abandoned (it never fails; problems are logged).
        """
        if self._obsolete:
            expiry = self._obsolete.get(reply_q)
            if expiry is not None:
                if self._clock.seconds() < expiry:
                    self._log.debug("Dropping a reply to the missing queue {reply_q}", reply_q=_clip(reply_q))
                    return defer.succeed(None)
                del self._obsolete[reply_q]
        return self._publish_reply(reply_q, body, None)

    def _publish_reply(self, reply_q: str, body: bytes, started: Optional[float]) -> defer.Deferred:
        d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, body, mandatory=True)
        d.addErrback(self._reply_failed, reply_q, body, started)
        return d

    def _reply_failed(self, failure: Failure, reply_q: str, body: bytes,
                      started: Optional[float]) -> Optional[defer.Deferred]:
        now = self._clock.seconds()
        if started is None:
            started = now
        if failure.check(UnroutableError):
            if now - started + self._retry_interval <= self._retry_timeout:
                return task.deferLater(self._clock, self._retry_interval, self._publish_reply, reply_q, body, started)
            self._log.warn("A reply to {reply_q} failed to send after {elapsed} s because the queue is missing; "
                           "abandoning it", reply_q=_clip(reply_q), elapsed=now - started)
            if len(self._obsolete) >= _OBSOLETE_REPLY_QUEUES:
                self._obsolete.clear()
            self._obsolete[reply_q] = now + _OBSOLETE_FOR
        else:
            self._log.error("A reply to {reply_q} could not be published: {error}", reply_q=_clip(reply_q),
                            error=failure.getErrorMessage())
        return None

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
                           "no heartbeats", method=_clip(request.method), msg_id=_clip(request.msg_id),
                           timeout=_clip(repr(request.timeout)))
            return None
        loop = task.LoopingCall(self._heartbeat, request.reply_q, request.msg_id)
        loop.clock = self._clock
        loop.start(interval, now=False)
        return loop

    def _heartbeat(self, reply_q: str, msg_id: str) -> None:
        try:
            d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, wire.encode_reply(msg_id, ending=False),
                                        mandatory=True)
            d.addErrback(lambda f: self._log.debug("Heartbeat for {msg_id} not sent: {error}", msg_id=_clip(msg_id),
                                                   error=f.getErrorMessage()))
        except Exception:
            self._log.failure("Heartbeat for {msg_id} failed", msg_id=_clip(msg_id), level=LogLevel.error)


def _clip(value: Any) -> Optional[str]:
    """
    @return: C{value} (a client's choice) as text for a log line, cut to
        C{_LOG_VALUE_LIMIT} characters and saying how long it was; C{None}
        stays C{None}.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) <= _LOG_VALUE_LIMIT:
        return text
    return f"{text[:_LOG_VALUE_LIMIT]}... ({len(text)} characters)"


def _class_name(cls: Any) -> str:
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", repr(cls))
    return name if module in (None, "builtins") else f"{module}.{name}"


class _Traceback:
    """
    A failure's traceback, formatted only if a log observer shows it, with
    the error message (which may quote the client) cut as by L{_clip}.
    """

    __slots__ = ("_failure",)

    def __init__(self, failure: Failure) -> None:
        self._failure = failure

    def __str__(self) -> str:
        failure = self._failure
        lines = ["Traceback (most recent call last):\n"]
        format_frames(failure.frames, lines.append)
        lines.append(f"{_class_name(failure.type)}: {_clip(failure.getErrorMessage())}")
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
