"""
Tests for L{novasvc.api.auth}: the auth matrix over real HTTP on loopback
(TCP on 127.0.0.1 and ::1, and a unix socket), and non-loopback clients
through the real site with a fake client address.
"""

import hashlib
import os
from typing import Any, List

import treq
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import TCP6ClientEndpoint, UNIXClientEndpoint
from twisted.trial import unittest
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from novasvc.api.auth import check_token, is_loopback
from novasvc.config.api import APIConfig, APIToken
from tests._api import (
    ADMIN,
    READER,
    TOKENS,
    capture_log,
    fake_client_exchange,
    start_api,
    token_entries,
)

WITH_TOKENS = APIConfig(tokens=token_entries())


def _client(endpoint: Any, pool: Any) -> treq.client.HTTPClient:
    """
    @return: a treq client whose every request goes to C{endpoint}.
    """

    @implementer(IAgentEndpointFactory)
    class To:
        def endpointForURI(self, uri: Any) -> Any:
            return endpoint

    return treq.client.HTTPClient(Agent.usingEndpointFactory(reactor, To(), pool=pool))


class LoopbackTests(unittest.SynchronousTestCase):
    """
    L{is_loopback}.
    """

    def test_addresses(self) -> None:
        """
        When an address is checked, then 127.0.0.0/8, ::1, an IPv4-mapped
        loopback address and a unix socket are loopback; anything else is
        not.
        """
        loopback = [IPv4Address("TCP", "127.0.0.1", 1), IPv4Address("TCP", "127.9.8.7", 1),
                    IPv6Address("TCP", "::1", 1), IPv6Address("TCP", "::ffff:127.0.0.1", 1),
                    UNIXAddress(b"/run/api.sock"), UNIXAddress(None)]
        others = [IPv4Address("TCP", "10.0.0.1", 1), IPv4Address("TCP", "0.0.0.0", 1),
                  IPv6Address("TCP", "fd00::2", 1), IPv6Address("TCP", "::ffff:10.0.0.1", 1),
                  IPv4Address("TCP", "not an address", 1), object()]
        self.assertEqual([is_loopback(a) for a in loopback], [True] * len(loopback))
        self.assertEqual([is_loopback(a) for a in others], [False] * len(others))

    def test_check_token(self) -> None:
        """
        When a presented token is checked, then the configured token with
        its hash is found, and an unknown one is not.
        """
        tokens = token_entries()
        self.assertEqual(check_token(tokens, TOKENS["dash"][1].encode()).name, "dash")
        self.assertEqual(check_token(tokens, TOKENS["ops"][1].encode()).name, "ops")
        self.assertIsNone(check_token(tokens, b"nope"))
        self.assertIsNone(check_token((), b"nope"))


class NoTokenTests(unittest.TestCase):
    """
    No token configured: loopback clients are admin, others refused.
    """

    async def test_loopback_is_admin(self) -> None:
        """
        When a loopback client sends no token, then it may read and write,
        and the access log names it C{loopback}.
        """
        log = capture_log(self)
        live = await start_api(self)
        service = await live.store.create("h1", "novasvc-x", "x")
        self.assertEqual((await live.request("GET", "/v1/services")).code, 200)
        response = await live.request("PUT", f"/v1/services/{service.id}", {"status": "disabled"})
        self.assertEqual(response.code, 200)
        self.assertEqual((await live.request("DELETE", f"/v1/services/{service.id}?force=true")).code,
                         204)
        self.assertTrue([line for line in log if "DELETE /v1/services/1" in line
                         and "user=loopback" in line], log)

    async def test_ipv6_loopback(self) -> None:
        """
        When the client comes from ::1, then it is admin too.
        """
        live = await start_api(self, listen=r"tcp6:0:interface=\:\:1")
        self.assertEqual(live.url, f"http://[::1]:{live.service.port}")
        client = _client(TCP6ClientEndpoint(reactor, "::1", live.service.port), live.pool)
        response = await client.put("http://api/v1/services/1", b'{"status": "enabled"}',
                                    headers={"Content-Type": "application/json"})
        self.assertEqual(response.code, 404)
        response = await client.get("http://api/v1/services")
        self.assertEqual(response.code, 200)

    async def test_unix_socket(self) -> None:
        """
        When the client comes over a unix socket, then it is admin.
        """
        path = os.path.abspath(self.mktemp())
        live = await start_api(self, listen=f"unix:{path}")
        self.assertEqual(live.url, f"unix:{path}")
        self.assertIsNone(live.service.port)

        client = _client(UNIXClientEndpoint(reactor, path), live.pool)
        response = await client.get("http://api/v1/services")
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.json(), {"services": []})

    def test_not_loopback_refused(self) -> None:
        """
        When a client that is not on a loopback address asks, without any
        token configured, then 403 says that only loopback clients are
        served, whatever X-Forwarded-For claims; /healthz is still served.
        """
        from novasvc.api.context import APIContext
        from novasvc.api.site import build_site
        from novasvc.config import Config
        from novasvc.db.memory import MemoryServiceStore
        from novasvc.transport.memory import MemoryTransport
        from twisted.internet import task

        clock = task.Clock()
        store = MemoryServiceStore()
        store.start()
        site = build_site(APIContext.create(Config(), store, MemoryTransport(clock=clock), clock))
        peer = IPv4Address("TCP", "203.0.113.9", 40000)
        answer = fake_client_exchange(
            site, b"GET /v1/services HTTP/1.1\r\nHost: api\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n",
            peer)
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 "), answer)
        self.assertIn(b'"message":"no API tokens are configured: only loopback clients are '
                      b'served (see api.tokens)"', answer)
        answer = fake_client_exchange(site, b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n", peer)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
        loopback = IPv4Address("TCP", "127.0.0.1", 40000)
        answer = fake_client_exchange(site, b"GET /v1/services HTTP/1.1\r\nHost: api\r\n\r\n",
                                      loopback)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)


class TokenTests(unittest.TestCase):
    """
    Tokens configured: reader and admin roles.
    """

    async def api(self):
        self.log = capture_log(self)
        self.live = await start_api(self, api=WITH_TOKENS)
        self.service = await self.live.store.create("h1", "novasvc-x", "x")
        return self.live

    async def test_no_token(self) -> None:
        """
        When no token is sent (even from loopback), then 401 with
        C{WWW-Authenticate: Bearer}, and the request id is still echoed.
        """
        live = await self.api()
        response = await live.request("GET", "/v1/services")
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers["www-authenticate"], 'Bearer realm="novasvc"')
        self.assertEqual(response.json()["error"]["message"],
                         "a bearer token is needed (Authorization: Bearer <token>)")
        self.assertTrue(response.headers["x-request-id"].startswith("req-"))

    async def test_wrong_token(self) -> None:
        """
        When an unknown token is sent, then 401 with C{error="invalid_token"};
        a header that is not C{Bearer <token>} gets C{invalid_request}.
        """
        live = await self.api()
        response = await live.request("GET", "/v1/services",
                                      headers={"Authorization": "Bearer not-a-token"})
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers["www-authenticate"],
                         'Bearer realm="novasvc", error="invalid_token"')
        self.assertEqual(response.json()["error"]["message"], "the bearer token is not valid")
        for header in ["Basic b3BzOnB3", "Bearer", "Bearer a b", TOKENS["ops"][1]]:
            response = await live.request("GET", "/v1/services", headers={"Authorization": header})
            self.assertEqual(response.code, 401, header)
            self.assertIn('error="invalid_request"', response.headers["www-authenticate"])

    async def test_reader(self) -> None:
        """
        When a reader's token is sent, then GET and HEAD are served, and
        PUT, DELETE and the RPC gateway are 403 naming the role needed.
        """
        live = await self.api()
        self.assertEqual((await live.request("GET", "/v1/services", headers=READER)).code, 200)
        self.assertEqual((await live.request("HEAD", "/v1/services", headers=READER)).code, 200)
        for method, path, body in [("PUT", f"/v1/services/{self.service.id}", {"status": "disabled"}),
                                   ("DELETE", f"/v1/services/{self.service.id}", None),
                                   ("POST", "/v1/rpc/echo", {"method": "echo"})]:
            response = await live.request(method, path, body, READER)
            self.assertEqual(response.code, 403, path)
            self.assertEqual(response.json()["error"]["message"],
                             f"token 'dash' has the role 'reader'; {method} needs 'admin'")
        self.assertEqual(await live.store.get(self.service.id), self.service)

    async def test_admin(self) -> None:
        """
        When an admin's token is sent (the scheme in any case), then writes
        are served.
        """
        live = await self.api()
        headers = {"Authorization": f"bearer {TOKENS['ops'][1]}"}
        response = await live.request("PUT", f"/v1/services/{self.service.id}",
                                      {"status": "disabled"}, headers)
        self.assertEqual(response.code, 200)
        response = await live.request("DELETE", f"/v1/services/{self.service.id}?force=true",
                                      headers=ADMIN)
        self.assertEqual(response.code, 204)

    async def test_healthz_public(self) -> None:
        """
        When /healthz is asked for without a token or with a wrong one, then
        it is served: it is public, for load balancers.
        """
        live = await self.api()
        self.assertEqual((await live.request("GET", "/healthz")).code, 200)
        response = await live.request("GET", "/healthz", headers={"Authorization": "Bearer x"})
        self.assertEqual(response.code, 200)
        self.assertEqual((await live.request("GET", "/healthz/x")).code, 401)

    async def test_secrets_not_logged(self) -> None:
        """
        When requests come with good, wrong and malformed tokens, then no
        log line holds a token or the Authorization header, and the access
        log names the token's name.
        """
        live = await self.api()
        await live.request("GET", "/v1/services", headers=READER)
        await live.request("PUT", f"/v1/services/{self.service.id}", {"status": "disabled"}, ADMIN)
        await live.request("GET", "/v1/services", headers={"Authorization": "Bearer wrong-secret"})
        await live.request("GET", "/v1/services", headers={"Authorization": "Basic c2VjcmV0"})
        text = "\n".join(self.log)
        for secret in [TOKENS["ops"][1], TOKENS["dash"][1], "wrong-secret", "c2VjcmV0",
                       "Authorization", "authorization",
                       hashlib.sha256(TOKENS["ops"][1].encode()).hexdigest()]:
            self.assertNotIn(secret, text)
        access: List[str] = [line for line in self.log if line.startswith("API 127.0.0.1")]
        self.assertEqual(len(access), 4, self.log)
        self.assertIn("user=dash", access[0])
        self.assertIn("user=ops", access[1])
        self.assertIn(" 401 ", access[2])
        self.assertIn("user=-", access[3])

    async def test_query_token_not_logged(self) -> None:
        """
        When a token is put in the query string by mistake, then the access
        log shows the parameter's name with its value redacted.
        """
        live = await self.api()
        for name in ["token", "access_token", "api_key", "Auth"]:
            await live.request("GET", f"/v1/services?{name}={TOKENS['ops'][1]}&x=1", headers=READER)
        text = "\n".join(self.log)
        self.assertNotIn(TOKENS["ops"][1], text)
        self.assertIn('"GET /v1/services?access_token=<redacted>&x=1"', text)

    async def test_repeated_authorization(self) -> None:
        """
        When the Authorization header is given twice, then 400, whichever
        tokens they hold.
        """
        import treq

        live = await self.api()
        from twisted.web.http_headers import Headers

        headers = Headers({b"Authorization": [ADMIN["Authorization"].encode(),
                                              READER["Authorization"].encode()]})
        response = await treq.get(live.url + "/v1/services", headers=headers, pool=live.pool)
        self.assertEqual(response.code, 400)
        self.assertIn(b"more than once", await response.content())

    async def test_manage_token_new(self) -> None:
        """
        When C{novasvc-manage token new} makes a reader token and the
        configuration it prints is loaded, then the API serves that token's
        GET and refuses its PUT with 403, naming the token in the access
        log.
        """
        import io

        from novasvc.cli.manage import main
        from novasvc.config import load_config
        from tests._services import poll

        out = io.StringIO()
        self.assertEqual(main(["token", "new", "--role", "reader", "--name", "grafana"], stdout=out), 0)
        text = out.getvalue()
        token = text.splitlines()[1]
        path = os.path.abspath(self.mktemp()) + ".yaml"
        with open(path, "w") as f:
            f.write(text[text.index("api:"):])
        logged = capture_log(self)
        live = await start_api(self, config=load_config(path))
        headers = {"Authorization": f"Bearer {token}"}
        self.assertEqual((await live.request("GET", "/v1/services", headers=headers)).code, 200)
        response = await live.request("PUT", "/v1/services/1", {"status": "enabled"}, headers)
        self.assertEqual(response.code, 403)
        await poll(lambda: any(line.startswith('API 127.0.0.1 "GET /v1/services" 200')
                               and line.endswith("user=grafana") for line in logged),
                   "the access line names the token")
        self.assertFalse(any(token in line for line in logged))

    def test_token_repr(self) -> None:
        """
        When a token's configuration is shown, then its hash is not.
        """
        token = APIToken("ops", "admin", "ab" * 32)
        self.assertNotIn("ab" * 32, repr(token))
