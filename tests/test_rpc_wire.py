"""
Tests for L{novasvc.rpc.wire}.
"""

import datetime
import json
import uuid

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc import wire
from novasvc.rpc.errors import MalformedMessage, NoSuchMethod, RemoteError


class ProbeError(Exception):
    """
    An application exception with kwargs, as Nova's exceptions have.
    """

    def __init__(self, message: str = "probe", code: int = 0) -> None:
        super().__init__(message)
        self.kwargs = {"code": code}


class ProbeError_Remote(Exception):
    """
    Looks like a re-raised remote exception (class and module end in
    _Remote once the module is renamed in a test).
    """


class NeedsKeyword(Exception):
    """
    Cannot be rebuilt from its args alone.
    """

    def __init__(self, *, required: str) -> None:
        super().__init__(required)


def _raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as e:
        return e


def _outer(body: bytes) -> dict:
    return json.loads(body)


def _inner(body: bytes) -> dict:
    return json.loads(json.loads(body)["oslo.message"])


class EnvelopeTests(SynchronousTestCase):
    """
    The 2.0 envelope and bare messages.
    """

    def test_envelope_shape(self) -> None:
        """
        When a message is wrapped, then the body is a JSON object with exactly
        oslo.version "2.0" and oslo.message, a string holding the inner JSON.
        """
        body = wire.encode_envelope({"a": 'quote " and \\ and é'})
        outer = _outer(body)
        self.assertEqual(set(outer), {"oslo.version", "oslo.message"})
        self.assertEqual(outer["oslo.version"], "2.0")
        self.assertIsInstance(outer["oslo.message"], str)
        self.assertEqual(json.loads(outer["oslo.message"]), {"a": 'quote " and \\ and é'})
        self.assertIsInstance(body, bytes)

    def test_decode_round_trip(self) -> None:
        """
        When a wrapped message is decoded, then the inner message comes back.
        """
        self.assertEqual(wire.decode_body(wire.encode_envelope({"x": [1, 2]})), {"x": [1, 2]})

    def test_bare_message(self) -> None:
        """
        When the body is a bare JSON object (the 1.0 format), then it is taken
        as is.
        """
        self.assertEqual(wire.decode_body(b'{"method": "m"}'), {"method": "m"})

    def test_incompatible_envelope(self) -> None:
        """
        When the envelope version is not compatible with 2.0, then the body is
        malformed.
        """
        for version in ("2.1", "3.0", "1.0", "x"):
            body = json.dumps({"oslo.version": version, "oslo.message": "{}"}).encode()
            self.assertRaises(MalformedMessage, wire.decode_body, body)

    def test_envelope_message_not_string(self) -> None:
        """
        When oslo.message is not a string or not JSON, then the body is
        malformed.
        """
        for inner in ({}, "not json"):
            body = json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode()
            self.assertRaises(MalformedMessage, wire.decode_body, body)

    def test_usual_and_general_paths_agree(self) -> None:
        """
        When the same message comes as the usual envelope (as bytes or text),
        with other spacing, or with the keys in the other order, then each
        decodes to the same message.
        """
        message = {"a": 'quote " and \\ and \u00e9 \U0001f600', "b": [1, {"c": None}]}
        inner = json.dumps(message)
        bodies = [
            wire.encode_envelope(message),
            wire.encode_envelope(message).decode("ascii"),
            json.dumps({"oslo.version": "2.0", "oslo.message": inner}, ensure_ascii=False).encode("utf-8"),
            json.dumps({"oslo.version": "2.0", "oslo.message": inner}, separators=(",", ":")).encode(),
            json.dumps({"oslo.message": inner, "oslo.version": "2.0"}).encode(),
        ]
        for body in bodies:
            self.assertEqual(wire.decode_body(body), message, body)

    def test_usual_envelope_with_trailing_data(self) -> None:
        """
        When the usual envelope is followed by more than its closing brace,
        then the body is malformed (as the general parser says).
        """
        body = wire.encode_envelope({"a": 1})
        self.assertRaises(MalformedMessage, wire.decode_body, body + b', "x": 1}')
        self.assertEqual(wire.decode_body(body + b"\n"), {"a": 1})

    def test_usual_envelope_inner_not_json(self) -> None:
        """
        When the usual envelope holds a string that is not JSON, then the
        body is malformed.
        """
        body = b'{"oslo.version": "2.0", "oslo.message": "{nope"}'
        self.assertRaises(MalformedMessage, wire.decode_body, body)

    def test_not_json(self) -> None:
        """
        When the body is not JSON (or not UTF-8), then it is malformed.
        """
        self.assertRaises(MalformedMessage, wire.decode_body, b"{nope")
        self.assertRaises(MalformedMessage, wire.decode_body, b"\xff\xfe\x00")

    def test_not_object(self) -> None:
        """
        When the message is JSON but not an object, then it is malformed.
        """
        self.assertRaises(MalformedMessage, wire.decode_body, b"[1, 2]")
        self.assertRaises(MalformedMessage, wire.decode_body, wire.encode_envelope([1]))  # type: ignore

    def test_encoded_once(self) -> None:
        """
        When a request is encoded, then the JSON encoder runs once (the
        envelope only escapes the inner string).
        """
        calls = []
        original = wire._encode

        def counting(value):
            calls.append(value)
            return original(value)

        self.patch(wire, "_encode", counting)
        wire.encode_request("m", {"a": 1}, {"user_id": "u"}, msg_id="1", reply_q="r")
        self.assertEqual(len(calls), 1)


class JSONTests(SynchronousTestCase):
    """
    The JSON fallback for types oslo's to_primitive handles.
    """

    def test_fallbacks(self) -> None:
        """
        When values JSON cannot hold are encoded, then they become their
        primitive forms.
        """
        value = {
            "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
            "date": datetime.date(2024, 1, 2),
            "set": {3},
            "frozen": frozenset(["a"]),
            "uuid": uuid.UUID(int=1),
            "bytes": b"abc",
            "ctxt": RequestContext("u1"),
        }
        decoded = json.loads(wire.dumps(value))
        self.assertEqual(decoded["dt"], "2024-01-02T03:04:05.000006")
        self.assertEqual(decoded["date"], "2024-01-02")
        self.assertEqual(decoded["set"], [3])
        self.assertEqual(decoded["frozen"], ["a"])
        self.assertEqual(decoded["uuid"], "00000000-0000-0000-0000-000000000001")
        self.assertEqual(decoded["bytes"], "abc")
        self.assertEqual(decoded["ctxt"]["user_id"], "u1")

    def test_unencodable(self) -> None:
        """
        When a value has no primitive form, then TypeError is raised.
        """
        self.assertRaises(TypeError, wire.dumps, {"x": object()})


class RequestTests(SynchronousTestCase):
    """
    Request encoding (§6) and server-side decoding.
    """

    def test_call_keys(self) -> None:
        """
        When a call is encoded, then it has method, args, _msg_id, _reply_q,
        _timeout, a 32-hex _unique_id and one _context_ key per context entry.
        """
        body = wire.encode_request("echo", {"value": 41}, {"user_id": "u1", "request_id": "req-abc"},
                                   version="1.0", msg_id="m" * 32, reply_q="reply_x")
        inner = _inner(body)
        self.assertEqual(
            set(inner),
            {"method", "args", "version", "_msg_id", "_reply_q", "_timeout", "_unique_id", "_context_user_id",
             "_context_request_id"},
        )
        self.assertEqual((inner["method"], inner["args"], inner["_timeout"]), ("echo", {"value": 41}, None))
        self.assertRegex(inner["_unique_id"], "^[0-9a-f]{32}$")
        self.assertEqual(inner["_context_user_id"], "u1")

    def test_cast_keys(self) -> None:
        """
        When a cast is encoded, then it has no _msg_id, _reply_q or _timeout,
        and no namespace/version when none is given.
        """
        inner = _inner(wire.encode_request("m", {}, {}))
        self.assertEqual(set(inner), {"method", "args", "_unique_id"})

    def test_namespace(self) -> None:
        """
        When a namespace is given, then it is sent.
        """
        self.assertEqual(_inner(wire.encode_request("m", {}, {}, namespace="baseapi"))["namespace"], "baseapi")

    def test_client_timeout_not_sent(self) -> None:
        """
        When the context has client_timeout, then it is not sent as a context
        key (the call-monitor timeout travels as _timeout).
        """
        inner = _inner(wire.encode_request("m", {}, {"client_timeout": 5, "user_id": "u"}, msg_id="1",
                                           reply_q="r", timeout=10))
        self.assertNotIn("_context_client_timeout", inner)
        self.assertEqual(inner["_timeout"], 10)

    def test_new_id(self) -> None:
        """
        When an id is made, then it is 32 hex characters and fresh.
        """
        self.assertRegex(wire.new_id(), "^[0-9a-f]{32}$")
        self.assertNotEqual(wire.new_id(), wire.new_id())

    def test_decode(self) -> None:
        """
        When a server decodes a call, then _context_ prefixes are stripped,
        _msg_id/_reply_q are not context, and _timeout is client_timeout.
        """
        body = wire.encode_request("echo", {"v": 1}, {"user_id": "u1"}, namespace="ns", version="1.2",
                                   msg_id="abc", reply_q="reply_q", timeout=20, unique_id="uid")
        request = wire.decode_request(body)
        self.assertEqual(
            (request.method, request.args, request.namespace, request.version, request.msg_id, request.reply_q,
             request.timeout, request.unique_id),
            ("echo", {"v": 1}, "ns", "1.2", "abc", "reply_q", 20, "uid"),
        )
        self.assertEqual(request.context, {"user_id": "u1", "client_timeout": 20})
        self.assertTrue(request.is_call)

    def test_decoded_message_keeps_context_entries(self) -> None:
        """
        When a request is decoded, then its message keeps the prefixed
        context entries and no longer holds the entries read into the
        request's attributes.
        """
        body = wire.encode_request("echo", {"v": 1}, {"user_id": "u1"}, msg_id="abc", reply_q="q", timeout=3)
        request = wire.decode_request(body)
        self.assertEqual(request.message, {"_context_user_id": "u1"})

    def test_prefixed_context(self) -> None:
        """
        When the context given already carries the prefix, then it is written
        as is, and client_timeout is still not sent.
        """
        body = wire.encode_request("m", {}, {"_context_user_id": "u1", "_context_client_timeout": 9},
                                   prefixed=True)
        inner = _inner(body)
        self.assertEqual(inner["_context_user_id"], "u1")
        self.assertNotIn("_context_client_timeout", inner)

    def test_decode_cast(self) -> None:
        """
        When a server decodes a cast, then it is not a call and
        client_timeout is None.
        """
        request = wire.decode_request(wire.encode_request("m", {}, {"a": 1}))
        self.assertFalse(request.is_call)
        self.assertEqual(request.context, {"a": 1, "client_timeout": None})

    def test_decode_bare_and_defaults(self) -> None:
        """
        When a bare request has no args, then args is an empty dict.
        """
        request = wire.decode_request(b'{"method": "m"}')
        self.assertEqual((request.args, request.version, request.namespace), ({}, None, None))

    def test_content_type(self) -> None:
        """
        When the content type is missing or not JSON, then the request is
        malformed; JSON with parameters is accepted.
        """
        body = wire.encode_request("m", {}, {})
        self.assertRaises(MalformedMessage, wire.decode_request, body, None)
        self.assertRaises(MalformedMessage, wire.decode_request, body, "text/plain")
        self.assertEqual(wire.decode_request(body, "application/json; charset=utf-8").method, "m")

    def test_malformed_kinds(self) -> None:
        """
        When a request has no method, a non-string method, args that are not
        an object, or a non-string version/namespace/_unique_id, then it is
        malformed with a reason.
        """
        bad = [
            {"args": {}},
            {"method": 5},
            {"method": ""},
            {"method": "m", "args": [1]},
            {"method": "m", "args": "x"},
            {"method": "m", "version": 1.0},
            {"method": "m", "namespace": 3},
            {"method": "m", "_unique_id": 3},
        ]
        for message in bad:
            error = self.assertRaises(MalformedMessage, wire.decode_request, json.dumps(message).encode())
            self.assertTrue(error.reason, message)

    def test_malformed_keeps_reply_address(self) -> None:
        """
        When a malformed call has a readable _msg_id and _reply_q, then the
        error carries them so the caller can be answered.
        """
        body = wire.encode_envelope({"method": "m", "args": [], "_msg_id": "id1", "_reply_q": "rq"})
        error = self.assertRaises(MalformedMessage, wire.decode_request, body)
        self.assertEqual((error.msg_id, error.reply_q), ("id1", "rq"))
        error = self.assertRaises(MalformedMessage, wire.decode_request, b'{"args": {}, "_msg_id": 1}')
        self.assertEqual((error.msg_id, error.reply_q), (None, None))


class ReplyTests(SynchronousTestCase):
    """
    Reply encoding and decoding (§9).
    """

    def test_keys(self) -> None:
        """
        When a reply is encoded, then it has result, failure, ending, _msg_id
        and a fresh _unique_id.
        """
        inner = _inner(wire.encode_reply("abc", {"got": 1}))
        self.assertEqual(set(inner), {"result", "failure", "ending", "_msg_id", "_unique_id"})
        self.assertEqual((inner["result"], inner["failure"], inner["ending"], inner["_msg_id"]),
                         ({"got": 1}, None, True, "abc"))

    def test_heartbeat(self) -> None:
        """
        When a heartbeat is encoded and decoded, then it is ending false with
        no result and reads as a heartbeat.
        """
        reply = wire.decode_reply(wire.encode_reply("abc", ending=False))
        self.assertTrue(reply.is_heartbeat)
        self.assertFalse(wire.decode_reply(wire.encode_reply("abc", 1)).is_heartbeat)

    def test_legacy(self) -> None:
        """
        When a bare reply has no ending key, then ending is None.
        """
        reply = wire.decode_reply(b'{"_msg_id": "a", "result": 3, "failure": null}')
        self.assertEqual((reply.msg_id, reply.result, reply.ending), ("a", 3, None))

    def test_malformed(self) -> None:
        """
        When a reply has no string _msg_id or a non-string failure, then it
        is malformed.
        """
        self.assertRaises(MalformedMessage, wire.decode_reply, b'{"result": 1}')
        self.assertRaises(MalformedMessage, wire.decode_reply, b'{"_msg_id": "a", "failure": {}}')

    def test_unencodable_result(self) -> None:
        """
        When a result cannot be encoded, then TypeError is raised.
        """
        self.assertRaises(TypeError, wire.encode_reply, "a", object())


class FailureSerializationTests(SynchronousTestCase):
    """
    §9.1 failure serialization.
    """

    def test_keys(self) -> None:
        """
        When an exception is serialized, then the JSON has class, module,
        message, tb (traceback lines), args and kwargs.
        """
        data = json.loads(wire.serialize_failure(_raised(ProbeError("it broke", code=7))))
        self.assertEqual(set(data), {"class", "module", "message", "tb", "args", "kwargs"})
        self.assertEqual((data["class"], data["module"], data["message"], data["args"], data["kwargs"]),
                         ("ProbeError", __name__, "it broke", ["it broke"], {"code": 7}))
        self.assertTrue(data["tb"][0].startswith("Traceback"), data["tb"])
        self.assertIn("ProbeError: it broke", data["tb"][-1])

    def test_failure(self) -> None:
        """
        When a Twisted Failure is serialized, then its exception and
        traceback are used.
        """
        failure = defer.fail(ValueError("bad"))
        captured = []
        failure.addErrback(captured.append)
        data = json.loads(wire.serialize_failure(captured[0]))
        self.assertEqual((data["class"], data["module"], data["message"]), ("ValueError", "builtins", "bad"))
        self.assertEqual(data["tb"][-1], "ValueError: bad\n")

    def test_failure_without_traceback(self) -> None:
        """
        When a Failure made from an exception that was never raised is
        serialized, then tb still ends with the exception line.
        """
        data = json.loads(wire.serialize_failure(Failure(ValueError("x"))))
        self.assertEqual(data["tb"][-1], "ValueError: x\n")

    def test_remote_suffix_stripped(self) -> None:
        """
        When a re-raised remote exception is serialized, then the _Remote
        suffix is stripped from class and module.
        """
        error = wire.deserialize_failure(wire.serialize_failure(_raised(ProbeError("x", 1))), [__name__])
        data = json.loads(wire.serialize_failure(error))
        self.assertEqual((data["class"], data["module"]), ("ProbeError", __name__))

    def test_suffix_only_on_class(self) -> None:
        """
        When only the class name ends with _Remote, then nothing is stripped.
        """
        data = json.loads(wire.serialize_failure(ProbeError_Remote("x")))
        self.assertEqual(data["class"], "ProbeError_Remote")

    def test_unencodable_args(self) -> None:
        """
        When an exception's args cannot be JSON, then they are sent as their
        repr.
        """
        data = json.loads(wire.serialize_failure(ValueError(object())))
        self.assertTrue(data["args"][0].startswith("<object object"))

    def test_no_kwargs_dict(self) -> None:
        """
        When an exception's kwargs attribute is not a dict, then kwargs is
        empty.
        """
        error = ValueError("x")
        error.kwargs = "nope"  # type: ignore[attr-defined]
        self.assertEqual(json.loads(wire.serialize_failure(error))["kwargs"], {})


class FailureDeserializationTests(SynchronousTestCase):
    """
    §9.1 re-raise rules.
    """

    def test_builtin(self) -> None:
        """
        When a builtin exception comes back, then it is rebuilt as itself
        with message and remote traceback in its first argument.
        """
        error = wire.deserialize_failure(wire.serialize_failure(_raised(KeyError("k"))))
        self.assertIs(type(error), KeyError)
        self.assertTrue(error.args[0].startswith("'k'\nTraceback"), error.args)

    def test_old_exceptions_module(self) -> None:
        """
        When the module is Python 2's exceptions, then it is read as builtins.
        """
        data = json.dumps({"class": "ValueError", "module": "exceptions", "message": "m", "tb": [], "args": ["m"],
                           "kwargs": {}})
        self.assertIs(type(wire.deserialize_failure(data)), ValueError)

    def test_allowed_module(self) -> None:
        """
        When the module is allowed, then the exception is rebuilt with its
        args and kwargs as a <Class>_Remote subclass in <module>_Remote whose
        text is the message and the remote traceback.
        """
        data = wire.serialize_failure(_raised(ProbeError("it broke", code=7)))
        error = wire.deserialize_failure(data, [__name__])
        self.assertIsInstance(error, ProbeError)
        self.assertEqual(type(error).__name__, "ProbeError_Remote")
        self.assertEqual(type(error).__module__, __name__ + "_Remote")
        self.assertEqual(error.kwargs, {"code": 7})
        self.assertTrue(str(error).startswith("it broke\nTraceback"), str(error))
        again = wire.deserialize_failure(data, [__name__])
        self.assertIs(type(again), type(error))

    def test_not_allowed(self) -> None:
        """
        When the module is not allowed, then a RemoteError names the class
        and message.
        """
        error = wire.deserialize_failure(wire.serialize_failure(_raised(ProbeError("it broke"))))
        self.assertIsInstance(error, RemoteError)
        self.assertEqual((error.exc_type, error.value), ("ProbeError", "it broke"))
        self.assertTrue(str(error).startswith("Remote error: ProbeError it broke"))

    def test_our_errors(self) -> None:
        """
        When novasvc.rpc.errors is allowed, then NoSuchMethod comes back as a
        NoSuchMethod with its fields.
        """
        error = wire.deserialize_failure(wire.serialize_failure(NoSuchMethod("frob")), ["novasvc.rpc.errors"])
        self.assertIsInstance(error, NoSuchMethod)
        self.assertEqual(error.method, "frob")

    def test_rebuild_problems(self) -> None:
        """
        When the allowed module lacks the class, the class is not an
        Exception, or its constructor refuses the args, then RemoteError.
        """
        for cls in ("Missing", "RequestContext", "NeedsKeyword"):
            data = json.dumps({"class": cls, "module": __name__, "message": "m", "tb": [], "args": ["m"],
                               "kwargs": {}})
            self.assertIsInstance(wire.deserialize_failure(data, [__name__]), RemoteError, cls)

    def test_builtin_not_exception(self) -> None:
        """
        When the builtin named is not an Exception class (SystemExit, open),
        then RemoteError.
        """
        for name in ("SystemExit", "open"):
            data = json.dumps({"class": name, "module": "builtins", "message": "m", "tb": [], "args": [],
                               "kwargs": {}})
            self.assertIsInstance(wire.deserialize_failure(data), RemoteError, name)

    def test_garbage(self) -> None:
        """
        When the failure is not JSON or not an object, then RemoteError.
        """
        self.assertIsInstance(wire.deserialize_failure("not json"), RemoteError)
        self.assertIsInstance(wire.deserialize_failure("[1]"), RemoteError)
