"""
Tests for L{novasvc.api.request_id}, over real HTTP on loopback.
"""

import re

from twisted.trial import unittest

from novasvc.api.request_id import SAFE_REQUEST_ID
from tests._api import capture_log, start_api

_GENERATED = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class RequestIdTests(unittest.TestCase):
    """
    C{X-Request-Id} in, out, and in the access log.
    """

    async def test_generated(self) -> None:
        """
        When the client sends no request id, then a new C{req-<uuid4>} is
        echoed, a different one per request.
        """
        live = await start_api(self)
        ids = [(await live.request("GET", "/v1/services")).headers["x-request-id"]
               for _ in range(2)]
        for request_id in ids:
            self.assertTrue(_GENERATED.fullmatch(request_id), request_id)
        self.assertNotEqual(ids[0], ids[1])

    async def test_kept(self) -> None:
        """
        When the client's request id looks safe, then it is kept, echoed
        and written in the access log line.
        """
        log = capture_log(self)
        live = await start_api(self)
        for given in ["req-0b8e8c43-2b5e-4e43-9a7e-5b1c1d9a8f00", "trace.ID:1_2-3", "x" * 128]:
            response = await live.request("GET", "/nope", headers={"X-Request-Id": given})
            self.assertEqual(response.headers["x-request-id"], given)
        self.assertTrue([line for line in log if '"GET /nope" 404' in line
                         and "request_id=trace.ID:1_2-3" in line], log)

    async def test_replaced(self) -> None:
        """
        When the client's request id is too long, empty or holds other
        characters, then a new one is used instead.
        """
        live = await start_api(self)
        for given in ["x" * 129, "", "a b", "semi;colon", "<script>", "é"]:
            response = await live.request("GET", "/v1/services",
                                          headers={"X-Request-Id": given.encode("utf-8")})
            self.assertTrue(_GENERATED.fullmatch(response.headers["x-request-id"]), given)

    def test_pattern(self) -> None:
        """
        When the safe pattern is read, then it takes 1 to 128 letters,
        digits and C{. _ : -}.
        """
        self.assertTrue(SAFE_REQUEST_ID.fullmatch(b"A-z_0.9:"))
        self.assertIsNone(SAFE_REQUEST_ID.fullmatch(b"a/b"))
