"""
Tests for L{novasvc.rpc._envelope}.
"""

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from novasvc.rpc._envelope import decode_body, encode_envelope
from novasvc.rpc._jsoncodec import encode
from novasvc.rpc.errors import MalformedMessage


def _outer(body: bytes) -> dict:
    return json.loads(body)


class EnvelopeTests(SynchronousTestCase):
    """
    The 2.0 envelope and bare messages.
    """

    def test_envelope_shape(self) -> None:
        """
        When a message is wrapped, then the body is a JSON object with exactly
        oslo.version "2.0" and oslo.message, a string holding the inner JSON.
        """
        body = encode_envelope({"a": 'quote " and \\ and é'})
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
        self.assertEqual(decode_body(encode_envelope({"x": [1, 2]})), {"x": [1, 2]})

    def test_bare_message(self) -> None:
        """
        When the body is a bare JSON object (the 1.0 format), then it is taken
        as is.
        """
        self.assertEqual(decode_body(b'{"method": "m"}'), {"method": "m"})

    def test_incompatible_envelope(self) -> None:
        """
        When the envelope version is not compatible with 2.0, then the body is
        malformed.
        """
        for version in ("2.1", "3.0", "1.0", "x"):
            body = json.dumps({"oslo.version": version, "oslo.message": "{}"}).encode()
            self.assertRaises(MalformedMessage, decode_body, body)

    def test_envelope_message_not_string(self) -> None:
        """
        When oslo.message is not a string or not JSON, then the body is
        malformed.
        """
        for inner in ({}, "not json"):
            body = json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode()
            self.assertRaises(MalformedMessage, decode_body, body)

    def test_usual_and_general_paths_agree(self) -> None:
        """
        When the same message comes as the usual envelope (as bytes or text),
        with other spacing, or with the keys in the other order, then each
        decodes to the same message.
        """
        message = {"a": 'quote " and \\ and \u00e9 \U0001f600', "b": [1, {"c": None}]}
        inner = json.dumps(message)
        bodies = [
            encode_envelope(message),
            encode_envelope(message).decode("ascii"),
            json.dumps({"oslo.version": "2.0", "oslo.message": inner}, ensure_ascii=False).encode("utf-8"),
            json.dumps({"oslo.version": "2.0", "oslo.message": inner}, separators=(",", ":")).encode(),
            json.dumps({"oslo.message": inner, "oslo.version": "2.0"}).encode(),
        ]
        for body in bodies:
            self.assertEqual(decode_body(body), message, body)

    def test_usual_envelope_with_trailing_data(self) -> None:
        """
        When the usual envelope is followed by more than its closing brace,
        then the body is malformed (as the general parser says).
        """
        body = encode_envelope({"a": 1})
        self.assertRaises(MalformedMessage, decode_body, body + b', "x": 1}')
        self.assertEqual(decode_body(body + b"\n"), {"a": 1})

    def test_usual_envelope_inner_not_json(self) -> None:
        """
        When the usual envelope holds a string that is not JSON, then the
        body is malformed.
        """
        body = b'{"oslo.version": "2.0", "oslo.message": "{nope"}'
        self.assertRaises(MalformedMessage, decode_body, body)

    def test_not_json(self) -> None:
        """
        When the body is not JSON (or not UTF-8), then it is malformed.
        """
        self.assertRaises(MalformedMessage, decode_body, b"{nope")
        self.assertRaises(MalformedMessage, decode_body, b"\xff\xfe\x00")

    def test_nested_too_deeply(self) -> None:
        """
        When a body or the envelope's message is nested deeper than the
        parser can go, then it is malformed and says so.
        """
        deep = "[" * 100_000 + "]" * 100_000
        for body in (deep.encode(), json.dumps({"oslo.version": "2.0", "oslo.message": deep}).encode(),
                     json.dumps({"oslo.version": "2.0", "oslo.message": deep}, indent=1).encode()):
            error = self.assertRaises(MalformedMessage, decode_body, body)
            self.assertIn("nested too deeply", str(error))

    def test_reason_short(self) -> None:
        """
        When the envelope version is a megabyte, or an integer has too many
        digits, then the reason stays short.
        """
        error = self.assertRaises(MalformedMessage, decode_body,
                                  json.dumps({"oslo.version": "v" * 1_000_000, "oslo.message": "{}"}).encode())
        self.assertLess(len(error.reason), 300)
        error = self.assertRaises(MalformedMessage, decode_body, b'{"a": ' + b"9" * 100_000 + b"}")
        self.assertLess(len(error.reason), 300)

    def test_not_object(self) -> None:
        """
        When the message is JSON but not an object, then it is malformed.
        """
        self.assertRaises(MalformedMessage, decode_body, b"[1, 2]")
        self.assertRaises(MalformedMessage, decode_body, encode_envelope([1]))  # type: ignore

    @settings(max_examples=300, deadline=None)
    @given(st.text())
    @example('quote " backslash \\ slash / del \x7f nul \x00 tab \t \u00e9 \u2028 \U0001f600')
    @example("\x7f")
    @example("plain ASCII")
    def test_envelope_bytes_as_the_standard_library_writes_them(self, text: str) -> None:
        """
        When a message holding any text is wrapped (its inner text written
        by orjson, or by the standard library for what orjson does not
        write as it), then the body is byte for byte the envelope the
        standard library writes around the inner JSON text, with its
        default separators and ASCII escapes (as oslo.messaging's
        jsonutils, which is C{json.dumps}).
        """
        message = {"method": text, "args": {"v": [text]}}
        inner = encode(message)
        expected = json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode("ascii")
        self.assertEqual(encode_envelope(message), expected)
        self.assertEqual(decode_body(expected), message)

    def test_general_envelopes(self) -> None:
        """
        When a 2.0 envelope has other keys besides its two, a version that
        is not the string "2.0" but reads as 2.0, or values outside its
        message that a strict parser refuses, then its message is still
        decoded, as oslo.messaging reads it.
        """
        inner = json.dumps({"method": "m", "args": {"n": 12345678901234567890123}})
        expected = {"method": "m", "args": {"n": 12345678901234567890123}}
        bodies = [
            json.dumps({"oslo.version": "2.0", "oslo.message": inner, "x": 1}).encode(),
            json.dumps({"oslo.version": 2.0, "oslo.message": inner}).encode(),
            json.dumps({"oslo.version": "2.0", "oslo.message": inner, "x": float("nan")}).encode(),
            b'{"oslo.version": "2.0", "oslo.message": ' + json.dumps(inner).encode() + b', "s": "\\ud800"}',
        ]
        for body in bodies:
            self.assertEqual(decode_body(body), expected, body)
