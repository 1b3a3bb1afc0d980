"""
Tests for L{novasvc.rpc.wire}: requests, replies, and the names it exports.
"""

import json
import os
import uuid
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from novasvc.rpc import _envelope, _failures, _jsoncodec, wire
from novasvc.rpc.errors import MalformedMessage


def _inner(body: bytes) -> dict:
    return json.loads(json.loads(body)["oslo.message"])


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

    def test_new_ids_are_uuid4(self) -> None:
        """
        When many ids are made (several draws of random bytes), then each is
        a version 4 UUID's hex and none repeats.
        """
        ids = [wire.new_id() for _ in range(wire._ID_BATCH * 3 + 5)]
        self.assertEqual(len(set(ids)), len(ids))
        for made in ids:
            parsed = uuid.UUID(hex=made)
            self.assertEqual((parsed.version, parsed.variant, parsed.hex), (4, uuid.RFC_4122, made))

    def test_forked_process_makes_other_ids(self) -> None:
        """
        When the process forks, then the child's next id is not the one the
        parent hands out next (ids drawn in advance stay the parent's).
        """
        if not hasattr(os, "fork"):
            raise SkipTest("no fork on this platform")
        wire.new_id()  # ids are drawn in advance now
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            try:
                os.write(write, wire.new_id().encode("ascii"))
            finally:
                os._exit(0)
        os.close(write)
        try:
            child = os.read(read, 64).decode("ascii")
        finally:
            os.close(read)
            os.waitpid(pid, 0)
        self.assertRegex(child, "^[0-9a-f]{32}$")
        self.assertNotEqual(child, wire.new_id())

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

    def test_malformed_reason_short(self) -> None:
        """
        When a malformed request carries a client value of a megabyte (method,
        version, namespace, content type), then its reason quotes 200
        characters of it and says how long it was.
        """
        huge = "x" * 1_000_000
        cases = [
            (json.dumps({"method": "m", "args": [], "version": huge}), "application/json"),
            (json.dumps({"method": huge, "args": []}), "application/json"),
            (json.dumps({"method": [huge, huge]}), "application/json"),
            (json.dumps({"method": "m", "namespace": {huge: huge}}), "application/json"),
            (wire.encode_request("m", {}, {}), huge),
        ]
        for body, content_type in cases:
            error = self.assertRaises(MalformedMessage, wire.decode_request, body.encode() if isinstance(
                body, str) else body, content_type)
            self.assertLess(len(error.reason), 600)
            self.assertLess(len(wire.serialize_failure(error)), 4096)
        self.assertIn("x" * 200 + "'... (1000000 characters)", error.reason)

    def test_malformed_nested_too_deeply(self) -> None:
        """
        When a request's JSON is nested deeper than the parser can go, in the
        envelope or bare, then it is malformed (not a RecursionError).
        """
        deep = "[" * 100_000 + "]" * 100_000
        inner = '{"method": "m", "args": {"v": ' + deep + "}}"
        for body in (json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode(), inner.encode()):
            error = self.assertRaises(MalformedMessage, wire.decode_request, body)
            self.assertIn("nested too deeply", error.reason)

    def test_wrong_content_type_keeps_reply_address(self) -> None:
        """
        When a call's content type is not JSON but its body is, then the
        error still carries its _msg_id and _reply_q.
        """
        body = wire.encode_request("m", {}, {}, msg_id="id1", reply_q="rq")
        error = self.assertRaises(MalformedMessage, wire.decode_request, body, "text/plain")
        self.assertEqual((error.msg_id, error.reply_q), ("id1", "rq"))
        error = self.assertRaises(MalformedMessage, wire.decode_request, b"\x00", "text/plain")
        self.assertEqual((error.msg_id, error.reply_q), (None, None))

    def test_encoded_once(self) -> None:
        """
        When a request is encoded, then the JSON encoder runs once (the
        envelope only escapes the inner string).
        """
        calls = []
        original = _envelope.encode

        def counting(value):
            calls.append(value)
            return original(value)

        self.patch(_envelope, "encode", counting)
        wire.encode_request("m", {"a": 1}, {"user_id": "u"}, msg_id="1", reply_q="r")
        self.assertEqual(len(calls), 1)


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


class ExportsTests(SynchronousTestCase):
    """
    Tests for the names L{novasvc.rpc.wire} exports.
    """

    def test_exports(self) -> None:
        """
        When the module is imported, then C{__all__} still names the whole
        message format, and the codec, envelope and failure names are the
        objects of the modules that do those jobs.
        """
        self.assertEqual(
            sorted(wire.__all__),
            sorted(["ENVELOPE_VERSION", "CONTENT_TYPE", "CONTEXT_PREFIX", "Request", "Reply", "dumps", "loads",
                    "new_id", "encode_envelope", "decode_body", "encode_request", "readdress_request",
                    "decode_request",
                    "encode_reply", "decode_reply", "serialize_failure", "deserialize_failure",
                    "remote_origin"]),
        )
        homes = {
            "dumps": _jsoncodec,
            "loads": _jsoncodec,
            "ENVELOPE_VERSION": _envelope,
            "CONTENT_TYPE": _envelope,
            "encode_envelope": _envelope,
            "decode_body": _envelope,
            "serialize_failure": _failures,
            "deserialize_failure": _failures,
            "remote_origin": _failures,
        }
        for name, module in homes.items():
            self.assertIs(getattr(wire, name), getattr(module, name), name)
