# -*- test-case-name: tests.test_rpc_wire -*-
"""
The oslo.messaging message format (see C{oslo-wire-protocol.md} §5, §6, §9):
request and reply bodies here, and the public names of the modules they are
built on, so that callers import the whole format from one place:

  - the JSON codec (L{dumps}, L{loads}): L{novasvc.rpc._jsoncodec};
  - the 2.0 envelope (L{encode_envelope}, L{decode_body},
    L{ENVELOPE_VERSION}, L{CONTENT_TYPE}): L{novasvc.rpc._envelope};
  - remote failures (L{serialize_failure}, L{deserialize_failure},
    L{remote_origin}): L{novasvc.rpc._failures}.
"""

from collections.abc import Mapping
import os
from os import urandom
from typing import Any, Dict, List, Optional, Tuple, Union

import attrs

from novasvc.rpc._envelope import CONTENT_TYPE, ENVELOPE_VERSION, decode_body, encode_envelope
from novasvc.rpc._failures import deserialize_failure, remote_origin, serialize_failure
from novasvc.rpc._jsoncodec import dumps, loads
from novasvc._text import quote
from novasvc.rpc.errors import MalformedMessage

__all__ = [
    "ENVELOPE_VERSION",
    "CONTENT_TYPE",
    "CONTEXT_PREFIX",
    "Request",
    "Reply",
    "dumps",
    "loads",
    "new_id",
    "encode_envelope",
    "decode_body",
    "encode_request",
    "readdress_request",
    "decode_request",
    "encode_reply",
    "decode_reply",
    "serialize_failure",
    "deserialize_failure",
    "remote_origin",
]

#: What a request's context entries start with (C{_context_user_id}, ...).
CONTEXT_PREFIX = "_context_"
_CONTEXT_PREFIX_LEN = len(CONTEXT_PREFIX)
_CLIENT_TIMEOUT_KEY = CONTEXT_PREFIX + "client_timeout"


def new_id() -> str:
    """
    @return: a fresh message id: C{uuid4} hex, 32 characters (C{_msg_id},
        C{_unique_id}, queue-name suffixes), as oslo.messaging.
    """
    # uuid.uuid4().hex without building a UUID object (hot path), from the
    # operating system's random bytes, drawn for _ID_BATCH ids at once: a
    # call or a reply takes one or two, and a system call each was a tenth
    # of the ids' cost. list.pop is atomic, so threads never share an id;
    # a forked child forgets the parent's ids (_forget_ids).
    try:
        return _ids.pop()
    except IndexError:
        return _more_ids()


#: How many ids one draw of random bytes makes.
_ID_BATCH = 64
_ids: List[str] = []


def _more_ids() -> str:
    """
    @return: a fresh id, after adding C{_ID_BATCH - 1} others to C{_ids}.
    """
    raw = bytearray(urandom(16 * _ID_BATCH))
    # uuid4's version and variant bits, set in every id's bytes at once.
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT_RFC_4122)
    h = raw.hex()
    batch = [h[i:i + 32] for i in _ID_STARTS]
    fresh = batch.pop()
    _ids.extend(batch)
    return fresh


def _forget_ids() -> None:
    """
    Drop the ids drawn but not handed out: a forked process must not hand
    out the ones its parent will.
    """
    del _ids[:]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids)


#: Byte maps setting a uuid's version (4) and variant (RFC 4122) bits.
_VERSION_4 = bytes((byte & 0x0F) | 0x40 for byte in range(256))
_VARIANT_RFC_4122 = bytes((byte & 0x3F) | 0x80 for byte in range(256))
#: Where each id starts in the hex text of a batch.
_ID_STARTS = range(0, 32 * _ID_BATCH, 32)


# -- requests -----------------------------------------------------------------


@attrs.define(slots=True)
class Request:
    """
    A decoded request, server side (oslo-wire-protocol.md §6).

    @ivar method: the endpoint method name.
    @ivar args: the keyword arguments, a C{dict}.
    @ivar message: the decoded message's other entries, a C{dict}: those
        read into the attributes here are taken out, the context entries
        stay (with their L{CONTEXT_PREFIX}; see L{context}).
    @ivar namespace: C{str} or C{None}.
    @ivar version: C{str} or C{None} (a server reads C{None} as C{"1.0"}).
    @ivar msg_id: C{_msg_id}, C{None} for a cast.
    @ivar reply_q: C{_reply_q}, C{None} for a cast.
    @ivar timeout: the raw C{_timeout} (the call-monitor timeout), or C{None}.
    @ivar unique_id: C{_unique_id}, or C{None}.
    """

    method: str
    args: Dict[str, Any]
    message: Dict[str, Any]
    namespace: Optional[str] = None
    version: Optional[str] = None
    msg_id: Optional[str] = None
    reply_q: Optional[str] = None
    timeout: Any = None
    unique_id: Optional[str] = None

    @property
    def context(self) -> Dict[str, Any]:
        """
        The context entries, as oslo.messaging's C{unpack_context} makes
        them: C{_context_} prefixes stripped, and C{client_timeout} set from
        C{_timeout}. (The RPC server reads them from L{message} in one step
        with C{RequestContext.from_dict(message, prefix=CONTEXT_PREFIX)}.)

        @rtype: C{dict}
        """
        context = {key[_CONTEXT_PREFIX_LEN:]: value for key, value in self.message.items()
                   if key.startswith(CONTEXT_PREFIX)}
        context["client_timeout"] = self.timeout
        return context

    @property
    def is_call(self) -> bool:
        """
        C{True} when a reply is expected (both C{_msg_id} and C{_reply_q}).
        """
        return self.msg_id is not None and self.reply_q is not None


def encode_request(method: str, args: Mapping[str, Any], context: Mapping[str, Any], *,
                   namespace: Optional[str] = None, version: Optional[str] = None,
                   msg_id: Optional[str] = None, reply_q: Optional[str] = None,
                   timeout: Optional[float] = None, unique_id: Optional[str] = None,
                   prefixed: bool = False) -> bytes:
    """
    Encode a request (§6) in the 2.0 envelope. It is a call when C{msg_id}
    is given (then C{_reply_q} and C{_timeout} are written too), a cast
    otherwise. The context is flattened into C{_context_<key>} entries; its
    C{client_timeout} key is not sent (the call-monitor timeout travels as
    C{_timeout}).

    @param method: the method name.
    @param args: keyword arguments (JSON values or what the fallback converts).
    @param context: the context C{dict} (e.g.
        L{novasvc.context.RequestContext.to_dict}).
    @param namespace: written only when not C{None}.
    @param version: written only when not C{None}.
    @param msg_id: the call's id.
    @param reply_q: the caller's reply queue (calls).
    @param timeout: the call-monitor timeout in seconds (calls), C{None} for
        none.
    @param unique_id: the duplicate-suppression id; a fresh one when C{None}.
    @param prefixed: C{True} when C{context}'s keys already start with
        L{CONTEXT_PREFIX} (e.g. C{RequestContext.to_dict(CONTEXT_PREFIX)}),
        saving a copy on the hot path.
    @return: the body.
    @rtype: C{bytes}
    @raise TypeError: for values that cannot be encoded.
    """
    message: Dict[str, Any] = {"method": method, "args": args}
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    if msg_id is not None:
        message["_msg_id"] = msg_id
        message["_reply_q"] = reply_q
        message["_timeout"] = timeout
    message["_unique_id"] = unique_id or new_id()
    if prefixed:
        message.update(context)
    else:
        message.update({CONTEXT_PREFIX + key: value for key, value in context.items()})
    message.pop(_CLIENT_TIMEOUT_KEY, None)
    return encode_envelope(message)


def readdress_request(body: bytes, reply_q: str) -> bytes:
    """
    The call request C{body} (as L{encode_request} makes it) with
    C{_reply_q} set to C{reply_q}, everything else as it was: a call made
    while its client changed reply queues goes out with the new one.

    @raise novasvc.rpc.errors.MalformedMessage: when C{body} is not an
        encoded request.
    """
    message = decode_body(body)
    message["_reply_q"] = reply_q
    return encode_envelope(message)


_STR_OR_NONE = (str, type(None))


def _malformed(reason: str, msg_id: Optional[str] = None, reply_q: Optional[str] = None) -> MalformedMessage:
    error = MalformedMessage(reason)
    error.msg_id, error.reply_q = msg_id, reply_q
    return error


def decode_request(body: Union[bytes, str], content_type: Optional[str] = CONTENT_TYPE) -> Request:
    """
    Decode and check a request, as an oslo.messaging RPC server reads it.

    @param body: the message body.
    @param content_type: the delivery's C{content_type}; oslo requires
        C{application/json} (parameters such as C{; charset=utf-8} are
        accepted).
    @rtype: L{Request}
    @raise MalformedMessage: for a wrong content type, a body that cannot
        be decoded (not JSON, nested too deeply...) or is not an object, an
        unsupported envelope, a missing or non-string C{method}, C{args}
        that is not an object, or a C{namespace}/C{version}/C{_unique_id}
        that is not a string. Its C{msg_id} and C{reply_q} are set when
        those could be read (even under a wrong content type), so the caller
        can still be answered. Its reason quotes the client's values cut by
        L{novasvc._text.quote}.
    """
    if content_type is None or (
        content_type != CONTENT_TYPE and content_type.split(";", 1)[0].strip().lower() != CONTENT_TYPE
    ):
        raise _malformed(f"content type {quote(content_type)} is not {CONTENT_TYPE}", *_reply_address(body))
    message = decode_body(body)
    pop = message.pop
    method = pop("method", None)
    args = pop("args", {})
    namespace = pop("namespace", None)
    version = pop("version", None)
    unique_id = pop("_unique_id", None)
    msg_id = pop("_msg_id", None)
    reply_q = pop("_reply_q", None)
    timeout = pop("_timeout", None)
    if type(msg_id) is not str or type(reply_q) is not str:
        msg_id = reply_q = None
    if type(method) is not str or not method:
        raise _malformed(f"method {quote(method)} is not a non-empty string", msg_id, reply_q)
    if args is None:
        args = {}
    elif type(args) is not dict:
        raise _malformed(f"args of {quote(method)} is a JSON {type(args).__name__}, not an object", msg_id,
                         reply_q)
    if type(namespace) not in _STR_OR_NONE or type(version) not in _STR_OR_NONE or \
            type(unique_id) not in _STR_OR_NONE:
        for name, value in (("namespace", namespace), ("version", version), ("_unique_id", unique_id)):
            if value is not None and type(value) is not str:
                raise _malformed(f"{name} {quote(value)} is not a string", msg_id, reply_q)
    return Request(method, args, message, namespace, version, msg_id, reply_q, timeout, unique_id)


def _reply_address(body: Union[bytes, str]) -> Tuple[Optional[str], Optional[str]]:
    """
    @return: the C{_msg_id} and C{_reply_q} of a body, when it decodes to a
        message where both are strings; C{(None, None)} otherwise.
    """
    try:
        message = decode_body(body)
    except MalformedMessage:
        return None, None
    msg_id, reply_q = message.get("_msg_id"), message.get("_reply_q")
    if type(msg_id) is str and type(reply_q) is str:
        return msg_id, reply_q
    return None, None


# -- replies ------------------------------------------------------------------


@attrs.define(slots=True)
class Reply:
    """
    A decoded reply, client side (§9).

    @ivar msg_id: the C{_msg_id} it answers.
    @ivar result: the return value (or C{None}).
    @ivar failure: the failure's JSON text (§9.1), or C{None}.
    @ivar ending: C{True} on a final reply, C{False} on a call-monitor
        heartbeat, C{None} when the key is absent (servers before
        oslo.messaging 4.0 sent a data message without it, then an ending
        one).
    """

    msg_id: str
    result: Any = None
    failure: Optional[str] = None
    ending: Optional[bool] = None

    @property
    def is_heartbeat(self) -> bool:
        """
        C{True} for a call-monitor heartbeat (C{ending} false, no result, no
        failure).
        """
        return self.ending is False and self.result is None and self.failure is None


def encode_reply(msg_id: str, result: Any = None, failure: Optional[str] = None, ending: bool = True) -> bytes:
    """
    Encode a reply (§9) in the 2.0 envelope, with a fresh C{_unique_id}.

    @param msg_id: the request's C{_msg_id}.
    @param result: the return value (JSON values or what the fallback
        converts).
    @param failure: the text made by L{serialize_failure}, or C{None}.
    @param ending: C{False} for a call-monitor heartbeat.
    @rtype: C{bytes}
    @raise TypeError: when C{result} cannot be encoded.
    """
    return encode_envelope(
        {"result": result, "failure": failure, "ending": ending, "_msg_id": msg_id, "_unique_id": new_id()}
    )


def decode_reply(body: Union[bytes, str]) -> Reply:
    """
    @param body: a reply body (enveloped or bare).
    @rtype: L{Reply}
    @raise MalformedMessage: when it is not a JSON object with a string
        C{_msg_id}, or C{failure} is neither C{None} nor a string.
    """
    message = decode_body(body)
    msg_id = message.get("_msg_id")
    if type(msg_id) is not str:
        raise MalformedMessage(f"reply _msg_id {quote(msg_id)} is not a string")
    failure = message.get("failure")
    if failure is not None and not isinstance(failure, str):
        raise MalformedMessage(f"reply failure of {msg_id} is not a string")
    ending = message.get("ending")
    return Reply(msg_id, message.get("result"), failure, None if ending is None else bool(ending))
