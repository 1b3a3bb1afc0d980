# -*- test-case-name: tests.test_bench -*-
"""
The second floor: oslo.messaging's RPC protocol over RabbitMQ written by
hand on the B{public} API of pika's Twisted adapter (C{TwistedProtocolConnection},
C{TwistedChannel}: its C{DeferredQueue} consumers and its per-publish
confirm C{Deferred}s), the straightforward implementation a reader would
write from C{oslo-wire-protocol.md}. What it costs beside L{_floor}'s bare
pattern is what the protocol costs; what novasvc costs beside it is what
the framework costs.

The protocol, as novasvc's bench system speaks it:

  - the control exchange (topic, not durable, not auto-delete) declared by
    both sides; the server's queues C{<topic>} and C{<topic>.<host>} bound
    to it, and C{<topic>_fanout_<uuid hex>} (C{x-expires}) bound to the
    fanout exchange C{<topic>_fanout}; three consumers, manual acks, a
    prefetch of 64 (novasvc's default C{rpc_max_inflight});
  - bodies in the 2.0 envelope, C{{"oslo.version": "2.0", "oslo.message":
    <the inner message's JSON text>}}, JSON by the standard library (as
    oslo's C{jsonutils}); requests carry C{method}, C{args}, C{_unique_id}
    and the context as C{_context_<key>} entries (the 26 entries of
    novasvc's C{RequestContext.to_dict()}, a plain C{dict} here, its
    C{client_timeout} travelling as C{_timeout}); calls add C{_msg_id} and
    C{_reply_q}; replies are C{{result, failure, ending, _msg_id,
    _unique_id}} on the default exchange;
  - every publish C{mandatory}, persistent (C{delivery_mode} 2),
    C{content_type} C{application/json}, C{content_encoding} C{utf-8}, and
    confirmed by the broker (a call request also carries its timeout as
    C{expiration}); a casts batch counts as published when every cast is
    confirmed;
  - late acks: a cast is acked once its method returned, a call once its
    reply is confirmed.

Not here, by design: a context object, de-duplication, the dispatcher's
version, namespace and access rules (only names starting with C{_} are
refused), a client-side call timer, retries of unroutable replies (a reply
the broker returns is dropped), reconnection.

Only the standard library, pika and Twisted: the test suite loads this file
on its own.
"""

import json
import sys
import traceback
import uuid
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import unquote, urlsplit

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.python.failure import Failure

__all__ = ["Client", "RemoteFailure", "Server", "connect", "context_entries", "decode_body", "encode_body",
           "request_message"]

CONTENT_TYPE = "application/json"
ENVELOPE_VERSION = "2.0"
CONTEXT_PREFIX = "_context_"
#: The server consumers' prefetch: novasvc's default C{rpc_max_inflight}.
PREFETCH = 64
#: Reply and fanout queues' C{x-expires}, in B{seconds} (the bench's value).
TRANSIENT_TTL = 120
#: A call's C{expiration}, in B{seconds} (the bench's client timeout).
CALL_TIMEOUT = 120


def _properties(expiration: Optional[str] = None) -> pika.BasicProperties:
    return pika.BasicProperties(content_type=CONTENT_TYPE, content_encoding="utf-8", delivery_mode=2,
                                expiration=expiration)


_PROPERTIES = _properties()
_CALL_PROPERTIES = _properties(str(CALL_TIMEOUT * 1000))


def context_entries(user_id: str = "bench-user", project_id: str = "bench-project") -> Dict[str, Any]:
    """
    @return: the 26 context entries novasvc's C{RequestContext.to_dict()}
        writes for a context with this user and project and the roles
        C{member} and C{reader} (Nova's keys and oslo.context's), as a
        plain C{dict}.
    """
    return {
        "user_id": user_id, "project_id": project_id, "user": user_id, "project": project_id, "domain": None,
        "user_domain": None, "project_domain": None, "system_scope": None, "is_admin": False, "read_only": False,
        "show_deleted": False, "auth_token": None, "request_id": f"req-{uuid.uuid4()}", "global_request_id": None,
        "resource_uuid": None, "roles": ["member", "reader"], "user_identity": f"{user_id} {project_id} - - -",
        "is_admin_project": True, "read_deleted": "no", "remote_address": None,
        "timestamp": "2026-12-01T00:00:00.000000", "quota_class": None, "user_name": None, "project_name": None,
        "service_catalog": [], "client_timeout": None,
    }


def encode_body(message: Dict[str, Any]) -> bytes:
    """
    @return: C{message} in the 2.0 envelope (double JSON), as bytes.
    """
    return json.dumps({"oslo.version": ENVELOPE_VERSION, "oslo.message": json.dumps(message)}).encode()


def decode_body(body: bytes) -> Dict[str, Any]:
    """
    @return: the inner message of a 2.0 envelope, or the body itself when
        it is a bare JSON object (oslo's "1.0" format).
    @raise ValueError: for a body that is not JSON, an envelope of another
        major version, or a message that is not an object.
    """
    outer = json.loads(body)
    if type(outer) is dict and "oslo.message" in outer and "oslo.version" in outer:
        if not str(outer["oslo.version"]).startswith("2."):
            raise ValueError(f"envelope version {str(outer['oslo.version'])[:20]!r}")
        outer = json.loads(outer["oslo.message"])
    if type(outer) is not dict:
        raise ValueError("the message is not an object")
    return outer


def request_message(method: str, args: Dict[str, Any], context: Dict[str, Any], msg_id: Optional[str] = None,
                    reply_q: Optional[str] = None) -> Dict[str, Any]:
    """
    @param context: the context entries (e.g. L{context_entries}).
    @return: an inner request: a call when C{msg_id} is given, else a cast.
    """
    message: Dict[str, Any] = {"method": method, "args": args}
    if msg_id is not None:
        message["_msg_id"] = msg_id
        message["_reply_q"] = reply_q
        message["_timeout"] = context.get("client_timeout")
    message["_unique_id"] = uuid.uuid4().hex
    for key, value in context.items():
        if key != "client_timeout":
            message[CONTEXT_PREFIX + key] = value
    return message


def _failure_text(error: BaseException) -> str:
    """
    @return: a reply's C{failure}: the JSON of C{{class, module, message,
        tb, args, kwargs}} (oslo-wire-protocol.md §9.1).
    """
    kwargs = getattr(error, "kwargs", None)
    return json.dumps({
        "class": type(error).__name__, "module": type(error).__module__, "message": str(error),
        "tb": traceback.format_exception(type(error), error, error.__traceback__),
        "args": [repr(arg) if not isinstance(arg, (str, int, float, bool, type(None))) else arg
                 for arg in error.args],
        "kwargs": kwargs if isinstance(kwargs, dict) else {},
    }, default=repr)


class RemoteFailure(Exception):
    """
    A call's reply carried a C{failure}.

    @ivar failure: the decoded failure C{dict} (C{class}, C{module},
        C{message}...).
    """

    def __init__(self, failure: Dict[str, Any]) -> None:
        Exception.__init__(self, f"{failure.get('class')}: {failure.get('message')}")
        self.failure = failure


@defer.inlineCallbacks
def connect(reactor: Any, url: str) -> Any:
    """
    @param url: C{rabbit://user:pass@host:port/vhost} (or C{amqp://}).
    @return: a C{Deferred} firing with C{(connection, channel)}: the
        L{TwistedProtocolConnection} (C{TCP_NODELAY} on, as novasvc's) and a
        C{TwistedChannel} in confirm mode.
    """
    parts = urlsplit(url)
    parameters = pika.ConnectionParameters(
        virtual_host=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
        credentials=pika.PlainCredentials(unquote(parts.username or "guest"), unquote(parts.password or "guest")),
        heartbeat=60,
    )
    endpoint = TCP4ClientEndpoint(reactor, parts.hostname or "localhost", parts.port or 5672)
    connection: TwistedProtocolConnection = yield connectProtocol(endpoint, TwistedProtocolConnection(parameters))
    # A late ack or a confirm-paced publish is a small write of its own:
    # without TCP_NODELAY, Nagle holds it for the peer's delayed ACK.
    connection.transport.setTcpNoDelay(True)
    yield connection.ready
    channel = yield connection.channel()
    yield channel.confirm_delivery()
    result: Tuple[Any, Any] = (connection, channel)
    return result


def _consume(channel: Any, queue: str, handle: Callable[[Any], None]) -> defer.Deferred:
    """
    Consume C{queue} with manual acks, calling C{handle(message)} for each
    message (a C{ReceivedMessage}: C{channel}, C{method}, C{properties},
    C{body}) taken from the consumer's C{DeferredQueue}.

    @return: a C{Deferred} firing once the broker started the consumer.
    """
    def started(result: Tuple[Any, str]) -> None:
        messages = result[0]

        def next_message() -> None:
            messages.get().addCallbacks(received, stopped)

        def received(message: Any) -> None:
            try:
                handle(message)
            except Exception:
                traceback.print_exc(file=sys.stderr)
            next_message()

        next_message()

    def stopped(failure: Failure) -> None:
        # The queue is closed with the channel or the consumer: nothing more.
        pass

    return channel.basic_consume(queue=queue, auto_ack=False).addCallback(started)


class Server:
    """
    An RPC server for C{topic} on C{host} serving one endpoint object, whose
    methods are called as C{method(ctxt, **args)} with C{ctxt} the context
    C{dict} (prefixes stripped, C{client_timeout} from C{_timeout}).
    """

    def __init__(self, channel: Any, exchange: str, topic: str, host: str, endpoint: Any) -> None:
        """
        @param channel: a C{TwistedChannel} in confirm mode (L{connect}).
        """
        self._channel = channel
        self._exchange = exchange
        self._topic = topic
        self._host = host
        self._endpoint = endpoint

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Declare the exchanges, queues and bindings, and consume.

        @return: a C{Deferred} firing once the three consumers started.
        """
        channel, topic = self._channel, self._topic
        yield channel.exchange_declare(exchange=self._exchange, exchange_type="topic", durable=False,
                                       auto_delete=False)
        yield channel.exchange_declare(exchange=f"{topic}_fanout", exchange_type="fanout", durable=False,
                                       auto_delete=True)
        fanout = f"{topic}_fanout_{uuid.uuid4().hex}"
        queues = [(topic, self._exchange, topic, {}), (f"{topic}.{self._host}", self._exchange,
                                                      f"{topic}.{self._host}", {}),
                  (fanout, f"{topic}_fanout", topic, {"x-expires": TRANSIENT_TTL * 1000})]
        for queue, exchange, key, arguments in queues:
            yield channel.queue_declare(queue=queue, durable=False, auto_delete=False, arguments=arguments)
            yield channel.queue_bind(queue=queue, exchange=exchange, routing_key=key)
        yield channel.basic_qos(prefetch_count=PREFETCH)
        for queue, _, _, _ in queues:
            yield _consume(channel, queue, self._on_request)

    def _on_request(self, message: Any) -> None:
        channel, tag = self._channel, message.method.delivery_tag
        if message.properties.content_type != CONTENT_TYPE:
            channel.basic_reject(tag, requeue=False)
            return
        try:
            request = decode_body(message.body)
            name, args = request["method"], request.get("args") or {}
            if type(name) is not str or type(args) is not dict:
                raise ValueError("method or args of the wrong type")
        except (ValueError, KeyError):
            channel.basic_reject(tag, requeue=False)
            return
        context = {key[len(CONTEXT_PREFIX):]: value for key, value in request.items()
                   if key.startswith(CONTEXT_PREFIX)}
        context["client_timeout"] = request.get("_timeout")
        result, failure = None, None
        try:
            if name.startswith("_"):
                raise AttributeError(f"no public method {name[:100]!r}")
            result = getattr(self._endpoint, name)(context, **args)
        except Exception as e:
            failure = _failure_text(e)
        msg_id, reply_q = request.get("_msg_id"), request.get("_reply_q")
        if type(msg_id) is not str or type(reply_q) is not str:
            channel.basic_ack(tag)
            return
        reply = {"result": result, "failure": failure, "ending": True, "_msg_id": msg_id,
                 "_unique_id": uuid.uuid4().hex}
        confirmed = channel.basic_publish("", reply_q, encode_body(reply), _PROPERTIES, mandatory=True)
        # Late ack once the reply is confirmed (or returned: then dropped).
        confirmed.addBoth(lambda _: channel.basic_ack(tag))


class Client:
    """
    An RPC client of C{topic}: calls and casts of one context, replies on a
    queue of its own.
    """

    def __init__(self, channel: Any, exchange: str, topic: str, context: Dict[str, Any]) -> None:
        """
        @param channel: a C{TwistedChannel} in confirm mode (L{connect}).
        @param context: the context entries sent with every request.
        """
        self._channel = channel
        self._exchange = exchange
        self._topic = topic
        self._context = context
        self._pending: Dict[str, defer.Deferred] = {}
        self.reply_q = f"reply_{uuid.uuid4().hex}"

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Declare the control exchange (publishers do, as oslo's) and the
        reply queue, and consume it.

        @return: a C{Deferred} firing once the reply consumer started.
        """
        channel = self._channel
        yield channel.exchange_declare(exchange=self._exchange, exchange_type="topic", durable=False,
                                       auto_delete=False)
        yield channel.queue_declare(queue=self.reply_q, durable=False, auto_delete=False,
                                    arguments={"x-expires": TRANSIENT_TTL * 1000})
        yield _consume(channel, self.reply_q, self._on_reply)

    def call(self, method: str, **args: Any) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with the reply's result, or failing
            with L{RemoteFailure}, or with pika's C{UnroutableError} or
            C{NackError} when the request was not taken.
        """
        msg_id = uuid.uuid4().hex
        d = self._pending[msg_id] = defer.Deferred()
        body = encode_body(request_message(method, args, self._context, msg_id, self.reply_q))
        sent = self._channel.basic_publish(self._exchange, self._topic, body, _CALL_PROPERTIES, mandatory=True)
        sent.addErrback(self._not_sent, msg_id)
        return d

    def _not_sent(self, failure: Failure, msg_id: str) -> None:
        d = self._pending.pop(msg_id, None)
        if d is not None:
            d.errback(failure)

    def cast(self, method: str, **args: Any) -> defer.Deferred:
        """
        @return: a C{Deferred} firing once the broker confirmed the cast.
        """
        body = encode_body(request_message(method, args, self._context))
        return self._channel.basic_publish(self._exchange, self._topic, body, _PROPERTIES, mandatory=True)

    def _on_reply(self, message: Any) -> None:
        self._channel.basic_ack(message.method.delivery_tag)
        try:
            reply = decode_body(message.body)
        except ValueError:
            return
        if reply.get("ending") is False:
            return  # a call-monitor heartbeat
        d = self._pending.pop(reply.get("_msg_id"), None)
        if d is None:
            return
        failure = reply.get("failure")
        if failure is not None:
            d.errback(RemoteFailure(json.loads(failure)))
        else:
            d.callback(reply.get("result"))
