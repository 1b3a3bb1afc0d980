# -*- test-case-name: tests.test_rpc_client,tests.test_rpc_client_delivery,tests.test_rpc_serializing -*-
"""
The RPC client: C{call} (request and reply) and C{cast} (one way, to one
server of a topic, one host, or every server with fanout), as
oslo.messaging's C{RPCClient}, returning C{Deferred}s.

Every request is published C{mandatory}, so a request that no queue takes
(the server is re-declaring its queues after a broker restart, or there is
no server) comes back instead of being confirmed and dropped. The requests
to one exchange and routing key that came back wait together: every 0.25 s
one of them is sent again, and once a queue takes it the others follow.
Each fails with L{novasvc.exceptions.UnroutableError} once
C{missing_consumer_retry_timeout} seconds (oslo's
C{kombu_missing_consumer_retry_timeout}, 60 s) have passed since it first
came back. A request lost with its
channel or connection before the broker confirmed it
(L{novasvc.exceptions.DisconnectedError}) is sent again once the transport
is back, as many times as C{retry} allows (oslo's C{retry}: C{None} for
ever, C{0} never, C{N} at most N times). Either way it is the same bytes
again, with the same C{_unique_id}, so a server drops the copy it already
ran. A call never waits past its timeout for any of this.

Replies come back through one reply queue per transport, shared by every
client of that transport, where each is matched to its call by C{_msg_id}
(L{novasvc.rpc._reply_waiter}). The timeouts of a client's calls (and of the
clients L{RPCClient.prepare} made from it) are watched by one timer
(L{novasvc.rpc._deadlines}), not one per call.

With a serializer (C{serializer=}, see L{novasvc.rpc._serializing}), as
oslo.messaging's client: the context goes through C{serialize_context}, each
argument through C{serialize_entity}, a call's result through
C{deserialize_entity}; failures are left as they are. A serializer that
raises fails that call or cast, and nothing is sent. With none (or a no-op
one) nothing more is done.

A client given a running L{novasvc.tracing.Tracing} (its C{tracing}
argument; a service's manager has its service's as C{manager.tracing})
makes each call and cast a span and carries its W3C trace context in the
request context; a client given none traces nothing, whatever else runs in
the process.
"""

import copy
from typing import Any, Collection, Dict, Mapping, Optional, Tuple, Union

from twisted.internet import defer
from twisted.python.failure import Failure

from novasvc._reactor import global_reactor_if_none
from novasvc.context import CONTEXT_TYPES, RequestContext
from novasvc.interfaces import ITransport
from novasvc.rpc import _serializing, wire
from novasvc.rpc._deadlines import Deadlines
from novasvc.rpc._reply_waiter import PendingCall, reply_waiter
from novasvc.rpc._resend import RESEND_DELAY_MAX, UNROUTABLE_RETRY_INTERVAL, CastResend, Routes
from novasvc.rpc.errors import InvalidTarget, RPCVersionCapError
from novasvc.rpc.target import Target, parse_version, version_is_compatible
from novasvc.transport.topology import Exchange

__all__ = ["RPCClient", "UNROUTABLE_RETRY_INTERVAL", "RESEND_DELAY_MAX"]

_UNSET: Any = object()
_ContextLike = Union[RequestContext, Mapping[str, Any], None]


class RPCClient:
    """
    Send requests to a target.

    @ivar target: the L{Target} requests go to.
    @ivar timeout: the call timeout in B{seconds}, or C{None} for
        C{rpc_response_timeout}.
    @ivar version_cap: the highest version this client may send, or C{None}.
    @ivar call_monitor_timeout: the call-monitor timeout in B{seconds}, or
        C{None}.
    @ivar allowed_remote_exmods: modules whose exceptions are rebuilt as
        themselves (see L{novasvc.rpc.wire.deserialize_failure}).
    @ivar retry: how many times a request lost with its connection is sent
        again: C{None} (or C{-1}) without limit, C{0} never.
    @ivar missing_consumer_retry_timeout: how long, in B{seconds}, a request
        that no queue takes waits for one before it fails.
    @ivar serializer: the serializer given, or C{None}.
    """

    def __init__(self, transport: ITransport, target: Target, *, timeout: Optional[float] = None,
                 version_cap: Optional[str] = None, control_exchange: str = "openstack",
                 allowed_remote_exmods: Collection[str] = (), call_monitor_timeout: Optional[float] = None,
                 rpc_response_timeout: float = 60.0, transient_queues_ttl: Optional[float] = 1800.0,
                 durable_queues: bool = False, retry: Optional[int] = None,
                 missing_consumer_retry_timeout: float = 60.0, clock: Any = None,
                 serializer: Optional[Any] = None, tracing: Optional[Any] = None) -> None:
        """
        @param transport: the broker connection (not started or stopped by
            the client).
        @param target: where requests go (C{topic} required to send).
        @param timeout: seconds a call waits for its reply; C{None} means
            C{rpc_response_timeout}. It is also the request's AMQP
            C{expiration}, as oslo.messaging.
        @param version_cap: requests above this version fail with
            L{RPCVersionCapError} before being sent.
        @param control_exchange: the topic exchange (unless the target names
            one); oslo's default C{openstack}, Nova's C{nova}.
        @param allowed_remote_exmods: module names whose exceptions a failure
            reply may rebuild (oslo's C{allowed_remote_exmods}); builtins are
            always rebuilt; anything else becomes
            L{novasvc.rpc.errors.RemoteError}.
        @param call_monitor_timeout: sent as C{_timeout}: the server then
            sends a heartbeat every C{int(value)/2} s, and the call fails when
            neither a reply nor a heartbeat came for this many B{seconds}.
        @param rpc_response_timeout: the default call timeout, B{seconds}.
        @param transient_queues_ttl: the reply queue's C{x-expires} in
            B{seconds} (only the client that makes a transport's reply queue
            decides it).
        @param durable_queues: oslo's C{amqp_durable_queues}; must match the
            servers', since it is the control exchange's C{durable} flag.
        @param retry: as oslo.messaging's C{retry}: how many times a request
            lost with its channel or connection before the broker confirmed
            it (L{novasvc.exceptions.DisconnectedError}) is sent again once
            the transport is back; C{None} or C{-1} without limit, C{0}
            never, C{N} at most N times. The transport's C{publish_wait}
            bounds each wait for a connection; a call's timeout bounds them
            all.
        @param missing_consumer_retry_timeout: how long, in B{seconds}, a
            request that no queue took (L{novasvc.exceptions.UnroutableError})
            waits for one, tried every 0.25 s, before its C{Deferred} fails
            (oslo's C{kombu_missing_consumer_retry_timeout}); C{0} fails at
            once.
        @param clock: C{IReactorTime} for call timeouts and the waits
            between sends; the global reactor when C{None}.
        @param serializer: an L{novasvc.rpc.serializer.ISerializer} for the
            context, the arguments and the results (see the module
            docstring); C{None} or a no-op one: none.
        @param tracing: a L{novasvc.tracing.Tracing} making each call and
            cast a CLIENT span while it runs (between its C{start} and
            C{stop}), or C{None}: no tracing, no cost.
        @raise InvalidTarget: when the target's version is not a version.
        @raise ValueError: when C{version_cap} is not a version, C{retry} is
            neither C{None} nor an integer >= -1, or
            C{missing_consumer_retry_timeout} is negative.
        @raise TypeError: when C{serializer} is not a serializer instance.
        """
        self._transport = transport
        self._clock_arg = clock
        self._control_exchange = control_exchange
        self._durable = durable_queues
        self._rpc_response_timeout = float(rpc_response_timeout)
        self._ttl = transient_queues_ttl
        self.allowed_remote_exmods: Tuple[str, ...] = tuple(allowed_remote_exmods)
        self.target = target
        self.timeout = timeout
        self.version_cap = version_cap
        self.call_monitor_timeout = call_monitor_timeout
        # Shared with the clients prepare() makes.
        self._routes = Routes()
        # The calls' timeouts, one timer for them all (shared too).
        self._deadlines = Deadlines(clock)
        self.retry = retry
        self.serializer = serializer
        self._serializer = _serializing.active(serializer)
        self._tracing = tracing
        self.missing_consumer_retry_timeout = float(missing_consumer_retry_timeout)
        if not self.missing_consumer_retry_timeout >= 0:
            raise ValueError("missing_consumer_retry_timeout must be a number of seconds >= 0, "
                             f"not {missing_consumer_retry_timeout!r}")
        self._check_versions()

    @classmethod
    def from_config(cls, transport: ITransport, config: Any, target: Optional[Target] = None, *,
                    clock: Any = None, **overrides: Any) -> "RPCClient":
        """
        A client with the broker settings of a configuration, as
        C{twistd novasvc} reads them.

        @param transport: see L{__init__}.
        @param config: a L{novasvc.config.Config}; its C{control_exchange},
            C{allowed_remote_exmods}, C{rpc_response_timeout},
            C{transient_queues_ttl}, C{durable_queues},
            C{kombu_missing_consumer_retry_timeout} and C{serializer} (when
            set: the serializer it names is made, see
            L{novasvc.rpc.serializer.load_serializer}) are used.
        @param target: where requests go; an empty L{Target} (set the topic
            with L{prepare}) when C{None}.
        @param clock: see L{__init__}.
        @param overrides: more L{__init__} keyword arguments, which beat
            the configuration's (e.g. C{timeout}, C{retry}).
        @return: a new L{RPCClient}.
        @raise ValueError: as L{__init__}.
        @raise novasvc.exceptions.LoadError: when the configured serializer
            cannot be made.
        """
        settings: Dict[str, Any] = dict(
            control_exchange=config.control_exchange, allowed_remote_exmods=config.allowed_remote_exmods,
            rpc_response_timeout=config.rpc_response_timeout, transient_queues_ttl=config.transient_queues_ttl,
            durable_queues=config.durable_queues,
            missing_consumer_retry_timeout=config.kombu_missing_consumer_retry_timeout)
        if getattr(config, "serializer", None) is not None and "serializer" not in overrides:
            from novasvc.rpc.serializer import load_serializer

            settings["serializer"] = load_serializer(config.serializer, "the configuration key serializer")
        settings.update(overrides)
        return cls(transport, Target() if target is None else target, clock=clock, **settings)

    def _check_versions(self) -> None:
        retry = self.retry
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < -1):
            raise ValueError(f"retry must be None, -1 or an integer >= 0, not {retry!r}")
        if self.target.version is not None:
            try:
                parse_version(self.target.version)
            except ValueError as e:
                raise InvalidTarget(str(e), self.target) from None
        if self.version_cap is not None:
            parse_version(self.version_cap)

    @property
    def _clock(self) -> Any:
        if self._clock_arg is None:
            self._clock_arg = global_reactor_if_none()
        return self._clock_arg

    def prepare(self, exchange: Optional[str] = _UNSET, topic: Optional[str] = _UNSET,
                namespace: Optional[str] = _UNSET, version: Optional[str] = _UNSET,
                server: Optional[str] = _UNSET, fanout: bool = _UNSET, timeout: Optional[float] = _UNSET,
                version_cap: Optional[str] = _UNSET, call_monitor_timeout: Optional[float] = _UNSET,
                retry: Optional[int] = _UNSET, serializer: Optional[Any] = _UNSET) -> "RPCClient":
        """
        A client with some settings changed, as oslo.messaging's
        C{RPCClient.prepare}; arguments not given keep their value, C{None}
        resets one. The new client shares this one's transport and reply
        queue.

        @return: a new L{RPCClient}.
        @raise InvalidTarget: when C{version} is not a version.
        @raise ValueError: when C{version_cap} is not a version, or C{retry}
            is neither C{None} nor an integer >= -1.
        @raise TypeError: when C{serializer} is not a serializer instance.
        """
        changes = {
            name: value
            for name, value in (("exchange", exchange), ("topic", topic), ("namespace", namespace),
                                ("version", version), ("server", server), ("fanout", fanout))
            if value is not _UNSET
        }
        prepared = copy.copy(self)
        prepared.__dict__.pop("_on_cast_failure", None)  # bound to self
        if changes:
            prepared.target = self.target.replace(**changes)
        if timeout is not _UNSET:
            prepared.timeout = timeout
        if version_cap is not _UNSET:
            prepared.version_cap = version_cap
        if call_monitor_timeout is not _UNSET:
            prepared.call_monitor_timeout = call_monitor_timeout
        if retry is not _UNSET:
            prepared.retry = retry
        if serializer is not _UNSET:
            prepared._serializer = _serializing.active(serializer)
            prepared.serializer = serializer
        prepared._check_versions()
        return prepared

    def can_send_version(self, version: Optional[str] = _UNSET) -> bool:
        """
        @param version: a version; the target's when not given. A missing
            version counts as C{"1.0"} (what a server assumes).
        @return: C{True} when there is no C{version_cap} or C{version} is
            compatible with it (as oslo.messaging's C{can_send_version}).
        @raise ValueError: when C{version} is not a version.
        """
        if version is _UNSET:
            version = self.target.version
        if self.version_cap is None:
            return True
        return version_is_compatible(self.version_cap, version or "1.0")

    def _check(self, call: bool) -> Optional[Exception]:
        target = self.target
        if not target.topic:
            return InvalidTarget("a request needs a target with a topic", target)
        if call and target.fanout:
            return InvalidTarget("a call cannot go to a fanout target", target)
        if self.version_cap is not None and not self.can_send_version():
            return RPCVersionCapError(target.version or "1.0", self.version_cap)
        return None

    def _address(self) -> Tuple[Exchange, str]:
        """
        The topic exchange and routing key of the target, made once per
        target (the target may be replaced, never changed in place).
        """
        target = self.target
        address = self.__dict__.get("_address_of")
        if address is None or address[0] is not target:
            exchange = Exchange(target.exchange or self._control_exchange, "topic", durable=self._durable)
            key = f"{target.topic}.{target.server}" if target.server else target.topic
            address = self._address_of = (target, exchange, key)
        return address[1], address[2]  # type: ignore[return-value]

    def call(self, ctxt: _ContextLike, method: str, **kwargs: Any) -> defer.Deferred:
        """
        Call C{method} on one server of the target and wait for its reply.

        @param ctxt: a L{RequestContext}, a C{dict} of context entries, or
            C{None}.
        @param method: the remote method's name.
        @param kwargs: its keyword arguments (JSON values, or what
            L{novasvc.rpc.wire.dumps} converts).
        @return: a C{Deferred} firing with the method's result, or failing
            with: L{novasvc.rpc.errors.MessagingTimeout} (no reply in time); the remote exception
            (see L{novasvc.rpc.wire.deserialize_failure}), e.g.
            L{novasvc.rpc.errors.RemoteError}; L{InvalidTarget} (no topic, or
            a fanout target); L{RPCVersionCapError}; C{TypeError} for
            arguments that cannot be encoded;
            L{novasvc.exceptions.UnroutableError} when no queue took the
            request within C{missing_consumer_retry_timeout} seconds or the
            timeout, whichever ends first;
            L{novasvc.exceptions.DisconnectedError} when the request was
            lost with the connection more often than C{retry} allows;
            L{novasvc.exceptions.TransportError} when the broker does not
            take the request (e.g. the transport is stopped); or with what
            the serializer raised (then nothing was sent, or, for the
            result, nothing more is done). Cancelling it stops waiting (a
            late reply is then dropped).
        """
        error = self._check(call=True)
        if error is not None:
            return defer.fail(error)
        timeout = self.timeout if self.timeout is not None else self._rpc_response_timeout
        waiter = self.__dict__.get("_waiter")
        if waiter is None:
            # The transport's, made on its first call; kept (it never
            # changes), as the clients prepare() makes keep it.
            waiter = self._waiter = reply_waiter(self._transport, self._ttl, self._clock)
        msg_id = wire.new_id()
        target = self.target
        exchange, key = self._address()
        tracing, span = self._tracing, None
        if tracing is not None and not tracing.running:
            tracing = None
        serializer = self._serializer
        try:
            if serializer is None:
                context, prefixed = _context_entries(ctxt)
            else:
                sent, kwargs = _serializing.serialize_request(serializer, ctxt, kwargs)
                context, prefixed = _context_entries(sent)
            if tracing is not None:
                context, span = tracing.client_span(target, "call", method, context, prefixed, key, msg_id)
            reply_q = waiter.reply_to()
            body = wire.encode_request(method, kwargs, context, namespace=target.namespace,
                                       version=target.version, msg_id=msg_id, reply_q=reply_q,
                                       timeout=self.call_monitor_timeout, prefixed=prefixed)
        except Exception:
            d = defer.fail()
        else:
            d = PendingCall(self, waiter, msg_id, method, timeout, exchange, key, body, reply_q).send()
            if serializer is not None:
                d.addCallback(_serializing.deserialize_result, serializer, ctxt)
        return d if span is None else tracing.follow(d, span)

    def cast(self, ctxt: _ContextLike, method: str, **kwargs: Any) -> defer.Deferred:
        """
        Send C{method} without waiting for it to run: to one server of the
        topic, to C{<topic>.<server>} when the target names a server, or to
        every server of the topic (exchange C{<topic>_fanout}, routing key
        C{""}) when the target is C{fanout}.

        @param ctxt: a L{RequestContext}, a C{dict} of context entries, or
            C{None}.
        @param method: the remote method's name.
        @param kwargs: its keyword arguments.
        @return: a C{Deferred} firing with C{None} once the broker confirmed
            that a queue took the request, or failing with
            L{InvalidTarget}, L{RPCVersionCapError}, C{TypeError},
            L{novasvc.exceptions.UnroutableError} (no queue took it within
            C{missing_consumer_retry_timeout} seconds: no server of the
            target is consuming), L{novasvc.exceptions.DisconnectedError}
            (lost with the connection more often than C{retry} allows) or
            L{novasvc.exceptions.TransportError}, or with what the
            serializer raised (then nothing was sent). Cancelling it stops
            the sending (a copy already sent may still run).
        """
        error = self._check(call=False)
        if error is not None:
            return defer.fail(error)
        target = self.target
        if target.fanout:
            exchange, key = Exchange(f"{target.topic}_fanout", "fanout", auto_delete=True), ""
        else:
            exchange, key = self._address()
        tracing, span = self._tracing, None
        if tracing is not None and not tracing.running:
            tracing = None
        serializer = self._serializer
        try:
            if serializer is None:
                context, prefixed = _context_entries(ctxt)
            else:
                sent, kwargs = _serializing.serialize_request(serializer, ctxt, kwargs)
                context, prefixed = _context_entries(sent)
            if tracing is not None:
                context, span = tracing.client_span(target, "fanout" if target.fanout else "cast", method, context,
                                                    prefixed, exchange.name if target.fanout else key)
            body = wire.encode_request(method, kwargs, context, namespace=target.namespace,
                                       version=target.version, prefixed=prefixed)
            d = self._transport.publish(exchange, key, body, mandatory=True)
        except Exception:
            d = defer.fail()
        else:
            # What a resend needs, as values the garbage collector stops
            # tracking (str, bytes, bool), and the errback made once per
            # client: a burst of casts waiting for their confirms is what the
            # collector walks again and again.
            on_failure = self.__dict__.get("_on_cast_failure")
            if on_failure is None:
                on_failure = self._on_cast_failure = self._cast_failed
            d.addErrback(on_failure, exchange.name, exchange.type, exchange.durable, exchange.auto_delete, key,
                         body, method)
        return d if span is None else tracing.follow(d, span)

    def _cast_failed(self, failure: Failure, exchange_name: str, exchange_type: str, durable: bool,
                     auto_delete: bool, routing_key: str, body: bytes, method: str) -> defer.Deferred:
        # Only a cast that failed pays for the state of sending it again.
        exchange = Exchange(exchange_name, exchange_type, durable=durable, auto_delete=auto_delete)
        return CastResend(self, method, exchange, routing_key, body).start(failure)


def _context_entries(ctxt: _ContextLike) -> Tuple[Mapping[str, Any], bool]:
    """
    @return: the context's entries, and whether they already carry the
        message's C{_context_} prefix (a L{RequestContext} writes them so in
        one step).
    @raise TypeError: for something that is not a context.
    """
    if type(ctxt) in CONTEXT_TYPES:
        return ctxt.to_dict(wire.CONTEXT_PREFIX), True  # type: ignore[union-attr]
    if ctxt is None:
        return {}, False
    if isinstance(ctxt, Mapping):
        return ctxt, False
    to_dict = getattr(ctxt, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"the context must be a RequestContext, a dict or None, not {type(ctxt).__name__}")
    return to_dict(), False
