"""
Helpers for the API tests: a live API on a loopback port of the real
reactor (C{tcp:0}), requests with treq on a pool of the test's own, tokens,
and raw HTTP exchanges.
"""

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

import attrs
import treq
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from novasvc.api.context import APIContext
from novasvc.api.service import APIService
from novasvc.config import Config
from novasvc.config.api import APIConfig, APIToken
from novasvc.db.memory import MemoryServiceStore
from novasvc.transport.memory import MemoryTransport

#: Tokens the tests configure: name -> (role, token).
TOKENS = {"ops": ("admin", "admin-token-0123456789"), "dash": ("reader", "reader-token-0123456789")}
ADMIN = {"Authorization": f"Bearer {TOKENS['ops'][1]}"}
READER = {"Authorization": f"Bearer {TOKENS['dash'][1]}"}
JSON = {"Content-Type": "application/json"}


def token_entries(tokens: Mapping[str, Tuple[str, str]] = TOKENS) -> Tuple[APIToken, ...]:
    """
    @return: the L{APIToken}s of C{tokens} (name -> (role, token)).
    """
    return tuple(APIToken(name=name, role=role, sha256=hashlib.sha256(token.encode()).hexdigest())
                 for name, (role, token) in tokens.items())


def capture_log(case: unittest.TestCase) -> List[str]:
    """
    @return: the list every log event's text lands in until C{case} ends.
    """
    texts: List[str] = []

    def observe(event: dict) -> None:
        texts.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return texts


@attrs.define
class Response:
    """
    One answer: its status, headers (lower-case C{str} names, first value)
    and body.
    """

    code: int
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define
class LiveAPI:
    """
    A running API and a client for it.

    @ivar service: the L{APIService}.
    @ivar url: its base URL (C{http://127.0.0.1:PORT}).
    @ivar store: the store it serves.
    @ivar transport: its transport.
    """

    service: APIService
    url: str
    store: Any
    transport: Any
    pool: HTTPConnectionPool

    async def request(self, method: str, path: str, body: Any = None,
                      headers: Optional[Mapping[str, str]] = None, **kwargs: Any) -> Response:
        """
        @param body: C{bytes} as they are, anything else as JSON (with
            C{Content-Type: application/json} unless C{headers} says).
        """
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        response = await treq.request(method, self.url + path, data=body, headers=headers,
                                      pool=self.pool, **kwargs)
        content = await response.content()
        found = {name.decode().lower(): values[0].decode("latin-1")
                 for name, values in response.headers.getAllRawHeaders()}
        return Response(response.code, found, content)


async def start_api(case: unittest.TestCase, *, api: Optional[APIConfig] = None,
                    config: Optional[Config] = None, store: Any = None, transport: Any = None,
                    clock: Any = None, listen: str = "tcp:0:interface=127.0.0.1",
                    **context: Any) -> LiveAPI:
    """
    Start an API on the real reactor, stopped at the end of C{case}.

    @param api: its section (default: tokens off, defaults otherwise).
    @param store: default a started L{MemoryServiceStore}.
    @param transport: default a L{MemoryTransport}.
    @param clock: the context's clock (default: the reactor).
    @param context: more L{APIContext} fields.
    """
    config = config or Config(host="h1")
    if api is not None:
        config = config.replace(api=api)
    if store is None:
        store = MemoryServiceStore()
        await store.start()
    transport = transport if transport is not None else MemoryTransport(clock=reactor)
    ctx = APIContext.create(config, store, transport, clock if clock is not None else reactor,
                            **context)
    service = APIService(ctx, listen=listen, reactor=reactor)
    await service.startService()
    case.addCleanup(service.stopService)
    pool = HTTPConnectionPool(reactor, persistent=False)
    return LiveAPI(service, service.url, store, transport, pool)


def raw_exchange(port: int, data: bytes, host: str = "127.0.0.1") -> defer.Deferred:
    """
    Send C{data} on a new TCP connection and collect what comes back until
    the server closes the connection.

    @return: a C{Deferred} firing with the bytes received.
    """

    class Exchange(protocol.Protocol):
        def __init__(self) -> None:
            self.received: List[bytes] = []
            self.done: defer.Deferred = defer.Deferred()

        def connectionMade(self) -> None:
            self.transport.write(data)

        def dataReceived(self, chunk: bytes) -> None:
            self.received.append(chunk)

        def connectionLost(self, reason: Any) -> None:
            self.done.callback(b"".join(self.received))

    endpoint = TCP4ClientEndpoint(reactor, host, port)
    d = endpoint.connect(protocol.Factory.forProtocol(Exchange))
    return d.addCallback(lambda p: p.done)


def fake_client_exchange(site: Any, data: bytes, peer: Any) -> bytes:
    """
    Run one HTTP exchange through C{site} (its real channel, request,
    filters and routes) on an in-memory transport whose client address is
    C{peer}: how a test sees the API from a non-loopback client without
    sending traffic to a non-loopback address.

    @return: the bytes the site wrote.
    """
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    channel = site.buildProtocol(peer)
    transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8774),
                                peerAddress=peer)
    channel.makeConnection(transport)
    channel.dataReceived(data)
    written = transport.value()
    channel.connectionLost(None)
    return written
