"""
Tests for L{novasvc.api.errors}.
"""

import json

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from novasvc.api.errors import APIError, error_payload, json_body, render_error, render_json
from novasvc._text import QUOTE_LIMIT


class ErrorShapeTests(SynchronousTestCase):
    """
    Every error is C{{"error": {"code", "title", "message"}}}.
    """

    def test_payload(self) -> None:
        """
        When an error payload is made, then C{code} is the HTTP status,
        C{title} its reason phrase, and extra members are kept.
        """
        self.assertEqual(error_payload(404, "gone", type="X"),
                         {"error": {"code": 404, "title": "Not Found", "message": "gone", "type": "X"}})
        self.assertEqual(error_payload(599, "odd")["error"]["title"], "Error")

    def test_clipped(self) -> None:
        """
        When a message is huge, then it is cut, saying how long it was.
        """
        message = error_payload(400, "m" * 100000)["error"]["message"]
        self.assertLess(len(message), QUOTE_LIMIT + 40)
        self.assertTrue(message.endswith("(100000 characters)"))

    def test_render(self) -> None:
        """
        When an error is rendered, then the status, the JSON content type,
        the length and extra headers are set and the body is the payload.
        """
        request = DummyRequest([b""])
        body = render_error(request, 401, "no", {b"WWW-Authenticate": b"Bearer"})
        self.assertEqual(request.responseCode, 401)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(request.responseHeaders.getRawHeaders(b"www-authenticate"), [b"Bearer"])
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-length"),
                         [str(len(body)).encode()])
        self.assertEqual(json.loads(body), error_payload(401, "no"))

    def test_json(self) -> None:
        """
        When a payload is encoded, then it is compact UTF-8, and NaN is
        refused.
        """
        self.assertEqual(json_body({"a": "é"}), '{"a":"é"}'.encode())
        self.assertRaises(ValueError, json_body, float("nan"))
        request = DummyRequest([b""])
        self.assertEqual(render_json(request, 200, [1]), b"[1]")
        self.assertEqual(request.responseHeaders.getRawHeaders(b"cache-control"), [b"no-store"])

    def test_api_error(self) -> None:
        """
        When an L{APIError} is made, then it keeps its status, message,
        headers and extra members.
        """
        error = APIError(403, "no", {b"X": b"1"}, reason="r")
        self.assertEqual((error.code, error.message, error.headers, error.extra),
                         (403, "no", {b"X": b"1"}, {"reason": "r"}))
        self.assertEqual(str(error), "403 no")
