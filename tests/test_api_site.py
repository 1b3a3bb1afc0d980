"""
Tests for L{novasvc.api.site}: request limits (413, 414), the access log,
and failures outside the routes, over real connections on loopback.
"""

import json
import re
from typing import Any, List, Optional

import treq
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.trial import unittest
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from novasvc.api.filter import FilterResource
from novasvc.api.site import _printable
from novasvc.config.api import LINGER, APIConfig
from tests._api import JSON, capture_log, raw_exchange, start_api

LIMITS = APIConfig(max_url_len=100, max_body_size=1000)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _body(answer: bytes) -> Any:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


@implementer(IBodyProducer)
class Chunks:
    """
    A body of unknown length (so sent chunked), C{count} pieces of C{size}
    bytes, one per reactor turn.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, count: int, size: int) -> None:
        self._count, self._size = count, size
        self._stopped = False

    def startProducing(self, consumer: Any) -> defer.Deferred:
        async def produce() -> None:
            for _ in range(self._count):
                if self._stopped:
                    return
                consumer.write(b"x" * self._size)
                await task.deferLater(reactor, 0, lambda: None)

        return defer.ensureDeferred(produce())

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self._stopped = True


class URLLimitTests(unittest.TestCase):
    """
    A request target over C{api.max_url_len} bytes gets 414.
    """

    async def test_too_long(self) -> None:
        """
        When the target is one byte over the limit, then 414 in the JSON
        error shape, with a request id, and the connection closes; at the
        limit, the request is served.
        """
        live = await start_api(self, api=LIMITS)
        at_limit = "/v1/services?host=" + "h" * (100 - len("/v1/services?host="))
        response = await live.request("GET", at_limit)
        self.assertEqual(response.code, 200)
        response = await live.request("GET", at_limit + "h")
        self.assertEqual(response.code, 414)
        self.assertEqual(response.json(), {"error": {
            "code": 414, "title": "Request-URI Too Long",
            "message": "the request target is over 100 bytes"}})
        self.assertTrue(response.headers["x-request-id"].startswith("req-"))

    async def test_line_without_end(self) -> None:
        """
        When a request line goes on past what is ever buffered without
        ending, then 414 comes without waiting for its end.
        """
        live = await start_api(self, api=LIMITS)
        answer = await raw_exchange(live.service.port, b"GET /" + b"a" * 70000)
        self.assertEqual(_status(answer), 414)
        self.assertEqual(_body(answer)["error"]["code"], 414)

    async def test_default_limit(self) -> None:
        """
        When the default limit (8192) is passed, then 414; a target of 8000
        bytes is served.
        """
        live = await start_api(self)
        response = await live.request("GET", "/v1/services?host=" + "h" * 8200)
        self.assertEqual(response.code, 414)
        response = await live.request("GET", "/" + "a" * 8000)
        self.assertEqual(response.code, 404)

    async def test_header_line_too_long(self) -> None:
        """
        When one header line is longer than a line may be, then 431.
        """
        live = await start_api(self, api=LIMITS)
        answer = await raw_exchange(live.service.port,
                                    b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n")
        self.assertEqual(_status(answer), 431)
        self.assertTrue(answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
                        answer[:80])


class BodyLimitTests(unittest.TestCase):
    """
    A body over C{api.max_body_size} bytes gets 413, without being read.
    """

    async def test_content_length(self) -> None:
        """
        When the Content-Length is over the limit, then 413 comes as soon as
        the headers are in, before any of the body was sent.
        """
        live = await start_api(self, api=LIMITS)
        answer = await raw_exchange(live.service.port, b"PUT /v1/services/1 HTTP/1.1\r\n"
                                    b"Host: api\r\nContent-Type: application/json\r\n"
                                    b"Content-Length: 10000000\r\n\r\n")
        self.assertEqual(_status(answer), 413)
        self.assertEqual(_body(answer), {"error": {
            "code": 413, "title": "Request Entity Too Large",
            "message": "the request body is 10000000 bytes; the most is 1000"}})
        self.assertIn(b"\r\nConnection: close\r\n", answer)

    async def test_request_id_kept(self) -> None:
        """
        When a refused request gave a safe request id, then the answer
        echoes it.
        """
        live = await start_api(self, api=LIMITS)
        answer = await raw_exchange(live.service.port, b"PUT /v1/services/1 HTTP/1.1\r\n"
                                    b"Host: api\r\nX-Request-Id: req-big-1\r\n"
                                    b"Content-Length: 1001\r\n\r\n")
        self.assertEqual(_status(answer), 413)
        self.assertIn(b"\r\nX-Request-Id: req-big-1\r\n", answer)

    async def test_expect_continue(self) -> None:
        """
        When the client asks whether to send a body over the limit
        (C{Expect: 100-continue}), then the answer is 413, not C{100
        Continue}.
        """
        live = await start_api(self, api=LIMITS)
        answer = await raw_exchange(live.service.port, b"PUT /v1/services/1 HTTP/1.1\r\n"
                                    b"Host: api\r\nExpect: 100-continue\r\n"
                                    b"Content-Length: 1001\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
        self.assertNotIn(b"100 Continue", answer)

    async def test_big_body_sent(self) -> None:
        """
        When a client sends a body of several megabytes anyway, then it reads
        the 413 answer (the server reads and drops what still comes rather
        than resetting the connection).
        """
        live = await start_api(self, api=LIMITS)
        for _ in range(3):
            response = await live.request("PUT", "/v1/services/1", b"x" * (5 << 20), JSON)
            self.assertEqual(response.code, 413)

    async def test_chunked_over(self) -> None:
        """
        When a chunked body passes the limit, then 413 as it passes, and the
        request is not handled.
        """
        live = await start_api(self, api=LIMITS)
        service = await live.store.create("h1", "novasvc-x", "x")
        chunk = b'{"status": "disabled", "disabled_reason": "' + b"r" * 500
        answer = await raw_exchange(
            live.service.port, b"PUT /v1/services/1 HTTP/1.1\r\nHost: api\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 2 + b"0\r\n\r\n")
        self.assertEqual(_status(answer), 413)
        self.assertEqual(_body(answer)["error"]["message"], "the request body is over 1000 bytes")
        self.assertEqual(await live.store.get(service.id), service)

    async def test_chunked_streamed(self) -> None:
        """
        When a client streams a chunked body of megabytes, then it gets 413.
        """
        live = await start_api(self, api=LIMITS)
        response = await treq.put(live.url + "/v1/services/1", data=Chunks(300, 10000),
                                  headers=JSON, pool=live.pool)
        self.assertEqual(response.code, 413)
        await response.content()

    async def test_chunked_within(self) -> None:
        """
        When a chunked body stays within the limit, then it is handled.
        """
        live = await start_api(self, api=LIMITS)
        await live.store.create("h1", "novasvc-x", "x")
        body = b'{"status": "disabled"}'
        answer = await raw_exchange(
            live.service.port, b"PUT /v1/services/1 HTTP/1.1\r\nHost: api\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:]))
        self.assertEqual(_status(answer), 200, answer)

    async def test_next_request_dropped(self) -> None:
        """
        When a refused request is followed by another on the same
        connection, then only the refusal is answered.
        """
        live = await start_api(self, api=LIMITS)
        answer = await raw_exchange(live.service.port, b"PUT /v1/services/1 HTTP/1.1\r\n"
                                    b"Host: api\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000
                                    + b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
        self.assertEqual(answer.count(b"HTTP/1.1 "), 1)
        self.assertEqual(_status(answer), 413)


@implementer(IHalfCloseableProtocol)
class _KeepSending(protocol.Protocol):
    """
    Sends a request with too large a body, then keeps sending body bytes
    every 20 ms, even after the server stopped writing, until the server
    closes the connection.
    """

    def __init__(self) -> None:
        self.received: List[bytes] = []
        self.sent = 0
        self.closed: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"PUT /v1/services/1 HTTP/1.1\r\nHost: api\r\n"
                             b"Content-Length: 100000000\r\n\r\n")
        self.sender = task.LoopingCall(self.send)
        self.sender.start(0.02)

    def send(self) -> None:
        self.transport.write(b"x" * 1000)
        self.sent += 1000

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def readConnectionLost(self) -> None:
        pass  # the server stopped writing: keep sending

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        if self.sender.running:
            self.sender.stop()
        self.closed.callback(b"".join(self.received))


class LingerTests(unittest.TestCase):
    """
    After a refusal, the connection is not kept open for long.
    """

    async def test_closed_while_client_sends(self) -> None:
        """
        When a refused client keeps sending its body, then it has the 413
        answer, and the server closes the connection anyway (after at most
        L{LINGER} seconds of dropping what comes).
        """
        live = await start_api(self, api=LIMITS)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", live.service.port)
        client = await endpoint.connect(protocol.Factory.forProtocol(_KeepSending))
        answer = await client.closed
        self.assertEqual(_status(answer), 413)
        self.assertGreater(client.sent, 0)
        self.assertEqual(LINGER, 2.0)


class AccessLogTests(unittest.TestCase):
    """
    One access log line per request.
    """

    async def test_line(self) -> None:
        """
        When a request is answered, then one line gives the client, the
        method and target, the status, the bytes sent, the duration, the
        request id and the user.
        """
        log = capture_log(self)
        live = await start_api(self, api=LIMITS)
        response = await live.request("GET", "/v1/services?host=h", headers={"X-Request-Id": "r-1"})
        lines = [line for line in log if line.startswith("API 127.0.0.1 ")]
        self.assertEqual(len(lines), 1, log)
        self.assertRegex(lines[0], r'^API 127\.0\.0\.1 "GET /v1/services\?host=h" 200 '
                                   rf'{len(response.body)} \d+\.\d{{3}}s request_id=r-1 '
                                   r'user=loopback$')

    async def test_refusals_logged(self) -> None:
        """
        When requests are refused with 413 and 414, then each has its line.
        """
        log = capture_log(self)
        live = await start_api(self, api=LIMITS)
        await live.request("PUT", "/v1/services/1", b"x" * 2000, JSON)
        await live.request("GET", "/" + "u" * 200)
        lines = [line for line in log if line.startswith("API 127.0.0.1 ")]
        self.assertEqual([re.search(r'" (\d+) ', line).group(1) for line in lines], ["413", "414"])

    async def test_clipped(self) -> None:
        """
        When the target is long, then the line is clipped, saying how long
        it was.
        """
        log = capture_log(self)
        live = await start_api(self)
        await live.request("GET", "/" + "p" * 5000)
        lines = [line for line in log if line.startswith("API 127.0.0.1 ")]
        self.assertEqual(len(lines), 1, log)
        self.assertLess(len(lines[0]), 500)
        self.assertIn("(5001 characters)", lines[0])

    def test_escaped(self) -> None:
        """
        When what the line shows holds control characters, then they are
        escaped.
        """
        self.assertEqual(_printable(b"/a\x1bb\nc\xff"), "/a\\x1bb\\x0ac\xff")


class BadRequestTests(unittest.TestCase):
    """
    What Twisted cannot parse gets the JSON error shape too.
    """

    async def test_bad_request_line(self) -> None:
        """
        When the request line holds a control character, then 400 in the
        JSON error shape, and the connection closes.
        """
        live = await start_api(self)
        answer = await raw_exchange(live.service.port, b"GET /a\x1bb HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(_status(answer), 400)
        self.assertEqual(_body(answer)["error"], {
            "code": 400, "title": "Bad Request", "message": "the request is not valid HTTP/1.1"})


class _Broken(FilterResource):
    def filter(self, request: Any) -> Any:
        raise KeyError("no such " + "thing " * 1000)


def broken_filter(resource: Any, context: Any) -> Any:
    return _Broken(resource)


class FailureTests(unittest.TestCase):
    """
    A failure outside the routes (in a filter) is a JSON 500 too.
    """

    async def test_filter_fails(self) -> None:
        """
        When a filter raises, then 500 in the JSON error shape with the
        request id, and the traceback is logged once.
        """
        log = capture_log(self)
        live = await start_api(self, api=APIConfig(filters=(
            "novasvc.api.request_id.request_id_filter", f"{__name__}.broken_filter")))
        response = await live.request("GET", "/healthz", headers={"X-Request-Id": "req-f"})
        self.assertEqual(response.code, 500)
        self.assertEqual(response.json()["error"]["message"],
                         "internal error (request req-f); the server's log has the details")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        errors: List[str] = [line for line in log if line.startswith("Error handling")]
        self.assertEqual(errors, ["Error handling GET /healthz (request req-f)"])


class _Trickle(protocol.Protocol):
    """
    A client that sends its parts one by one, C{every} seconds apart, and
    collects the answer until the server closes.
    """

    def __init__(self, parts: List[bytes], every: float) -> None:
        self.parts = list(parts)
        self.every = every
        self.received = b""
        self.closed_at: Optional[float] = None
        self.done: defer.Deferred = defer.Deferred()
        self._call: Any = None

    def connectionMade(self) -> None:
        self.started = reactor.seconds()
        self._send()

    def _send(self) -> None:
        if self.parts and self.transport is not None:
            self.transport.write(self.parts.pop(0))
            self._call = reactor.callLater(self.every, self._send)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self.closed_at = reactor.seconds() - self.started
        self.done.callback(self)


async def _trickle(port: int, parts: List[bytes], every: float) -> _Trickle:
    from twisted.internet.endpoints import TCP4ClientEndpoint

    client = _Trickle(parts, every)
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
        protocol.Factory.forProtocol(lambda: client))
    return await client.done


class SlowClientTests(unittest.TestCase):
    """
    Header and body deadlines however slowly the bytes trickle, and the
    cap on open connections.
    """

    async def test_trickling_headers(self) -> None:
        """
        When a client sends one header line every 0.1 s, then it gets 408
        and the connection closes at the header deadline
        (C{api.header_timeout}, 0.5 s here), not when it stops sending.
        """
        live = await start_api(self, api=APIConfig(header_timeout=0.5))
        parts = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Slow-%d: 1\r\n" % n for n in range(40)]
        client = await _trickle(live.service.port, parts, 0.1)
        self.assertEqual(_status(client.received), 408)
        self.assertIn(b"HTTP/1.1 408 Request Timeout", client.received)
        self.assertIn(b"headers did not arrive within 0.5 s", client.received)
        self.assertLess(client.closed_at, 2.0)

    async def test_trickling_body(self) -> None:
        """
        When a client sends its body one byte every 0.1 s, then 408 at the
        body deadline (C{api.body_timeout}, 0.5 s here).
        """
        live = await start_api(self, api=APIConfig(body_timeout=0.5))
        head = (b"PUT /v1/services/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 40\r\n\r\n")
        client = await _trickle(live.service.port, [head] + [b" "] * 40, 0.1)
        self.assertEqual(_status(client.received), 408)
        self.assertIn(b"body did not arrive within 0.5 s", client.received)
        self.assertLess(client.closed_at, 2.0)

    async def test_idle_keep_alive_is_not_timed(self) -> None:
        """
        When a keep-alive connection is idle between requests, then the
        header deadline does not run: the next request is served.
        """
        live = await start_api(self, api=APIConfig(header_timeout=0.3))
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        client = await _trickle(live.service.port, [request, last], 0.6)
        self.assertEqual(client.received.count(b"HTTP/1.1 200 OK"), 2)

    async def test_connection_cap(self) -> None:
        """
        When the connections open reach the cap (C{api.max_connections}),
        then the next one gets 503 with C{api.retry_after} and is closed;
        once one closes, a new one is served.
        """
        live = await start_api(self, api=APIConfig(max_connections=2, retry_after=7))
        site = live.service.site
        idle = [await _connect(live.service.port) for _ in range(2)]
        answer = await raw_exchange(live.service.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        self.assertEqual(_status(answer), 503)
        self.assertIn(b"Retry-After: 7", answer)
        idle[0].transport.loseConnection()
        while site.open_connections > 1:
            await task.deferLater(reactor, 0.01, lambda: None)
        answer = await raw_exchange(live.service.port,
                                    b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        self.assertEqual(_status(answer), 200)
        idle[1].transport.loseConnection()


async def _connect(port: int) -> protocol.Protocol:
    from twisted.internet.endpoints import TCP4ClientEndpoint

    return await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
        protocol.Factory.forProtocol(protocol.Protocol))


class ConfiguredLimitsTests(unittest.SynchronousTestCase):
    """
    The C{api:} section's deadlines, cap on connections and linger reach
    the site L{build_site} makes, on a L{MemoryReactorClock}.
    """

    def _site(self, api: APIConfig) -> Any:
        from twisted.internet.testing import MemoryReactorClock

        from novasvc.api.context import APIContext
        from novasvc.api.site import build_site
        from novasvc.config import Config
        from novasvc.db.memory import MemoryServiceStore
        from novasvc.transport.memory import MemoryTransport

        self.clock = MemoryReactorClock()
        context = APIContext.create(Config(host="h1", api=api), MemoryServiceStore(),
                                    MemoryTransport(clock=self.clock), self.clock)
        return build_site(context)

    def _connect(self, site: Any) -> Any:
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1",
                                                                       40000)))
        return channel

    def _answer_at(self, api: APIConfig, data: bytes, seconds: float) -> Any:
        """
        Send C{data} on a new connection to the site of C{api}, check that
        nothing is answered until C{seconds} have passed.

        @return: the channel, once C{seconds} have passed.
        """
        channel = self._connect(self._site(api))
        channel.dataReceived(data)
        self.clock.advance(seconds - 0.01)
        self.assertEqual(channel.transport.value(), b"")
        self.clock.advance(0.01)
        return channel

    def test_header_timeout(self) -> None:
        """
        When C{api.header_timeout} is 2 s and a request's headers are not
        all in 2 s after its first byte, then 408 and the connection closes
        at 2 s, not at the default 10 s.
        """
        channel = self._answer_at(APIConfig(header_timeout=2.0), b"GET /healthz HTTP/1.1\r\n",
                                  2.0)
        answer = channel.transport.value()
        self.assertEqual(_status(answer), 408)
        self.assertIn(b"headers did not arrive within 2 s", answer)
        self.assertTrue(channel.transport.disconnecting)

    def test_body_timeout(self) -> None:
        """
        When C{api.body_timeout} is 4 s and a body is not in 4 s after its
        headers, then 408.
        """
        channel = self._answer_at(
            APIConfig(body_timeout=4.0),
            b"PUT /v1/services/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n", 4.0)
        self.assertIn(b"body did not arrive within 4 s", channel.transport.value())

    def test_max_connections(self) -> None:
        """
        When C{api.max_connections} is 3 and C{api.retry_after} 11, then a
        fourth connection gets 503 with C{Retry-After: 11} and is closed at
        once, and the three others are untouched.
        """
        site = self._site(APIConfig(max_connections=3, retry_after=11))
        kept = [self._connect(site) for _ in range(3)]
        refused = self._connect(site)
        answer = refused.transport.value()
        self.assertEqual(_status(answer), 503)
        self.assertIn(b"Retry-After: 11\r\n", answer)
        self.assertIn(b"the API has 3 connections open already", answer)
        self.assertTrue(refused.transport.disconnecting)
        self.assertEqual([c.transport.value() for c in kept], [b""] * 3)

    def _refused_linger(self, api: APIConfig) -> Any:
        """
        Send a body over C{api.max_body_size} on a TCP-like connection that
        can half-close.

        @return: its transport, once the 413 is answered.
        """
        from twisted.internet.address import IPv4Address
        from twisted.internet.interfaces import ITCPTransport
        from twisted.internet.testing import StringTransport

        @implementer(ITCPTransport)
        class HalfClosing(StringTransport):
            write_closed = False

            def loseWriteConnection(self) -> None:
                self.write_closed = True

            def setTcpNoDelay(self, enabled: bool) -> None:
                pass

        channel = self._site(api).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        channel.makeConnection(HalfClosing(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000)))
        channel.dataReceived(b"PUT /v1/services/1 HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 5000\r\n\r\n" + b"x" * 100)
        self.assertEqual(_status(channel.transport.value()), 413)
        self.assertTrue(channel.transport.write_closed)
        return channel.transport

    def test_linger(self) -> None:
        """
        When C{api.linger} is 0.5 s, then a connection refused with 413
        stops writing at once, reads and drops what still comes, and closes
        0.5 s later, not after the default L{LINGER} (2 s).
        """
        transport = self._refused_linger(APIConfig(max_body_size=1000, linger=0.5))
        self.clock.advance(0.49)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.01)
        self.assertTrue(transport.disconnecting)
        transport = self._refused_linger(APIConfig(max_body_size=1000))
        self.clock.advance(LINGER - 0.01)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.01)
        self.assertTrue(transport.disconnecting)
