"""
Tests for L{novasvc.api.session}: the status page's login form and session
cookie, over HTTP with tokens configured, and the sessions on a clock.
"""

from typing import Any, Dict

from twisted.internet import task
from twisted.trial import unittest

from novasvc.api.session import COOKIE, SESSION_LIFETIME, Sessions
from novasvc.config.api import APIConfig
from tests._api import ADMIN, TOKENS, start_api, token_entries

HTML = {"Accept": "text/html,application/xhtml+xml"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class LoginTests(unittest.TestCase):
    """
    A browser signing in to the status page.
    """

    async def api(self) -> Any:
        live = await start_api(self, api=APIConfig(tokens=token_entries()))
        self.service = await live.store.create("h1", "novasvc-x", "x")
        return live

    async def login(self, live: Any, token: str) -> Any:
        return await live.request("POST", "/v1/session", f"token={token}".encode(), FORM,
                                  allow_redirects=False)

    async def test_login_form(self) -> None:
        """
        When a browser opens the page without a token, then 401 with a login
        form (HTML, no script, the page's CSP); an API client gets the JSON
        401 as before.
        """
        live = await self.api()
        response = await live.request("GET", "/", headers=HTML)
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers["content-type"], "text/html; charset=utf-8")
        self.assertIn(b'<form method="post" action="/v1/session">', response.body)
        self.assertNotIn(b"<script", response.body)
        self.assertIn("default-src 'none'", response.headers["content-security-policy"])
        response = await live.request("GET", "/")
        self.assertEqual((response.code, response.json()["error"]["code"]), (401, 401))

    async def test_cookie(self) -> None:
        """
        When a valid token is posted, then 303 to the page with an HttpOnly,
        SameSite=Strict session cookie that expires (not Secure over plain
        HTTP), holding no token; the cookie opens the page (which reloads
        itself) and its data, and nothing else: writes, the gateway and the
        metrics still need the bearer header.
        """
        live = await self.api()
        response = await self.login(live, TOKENS["ops"][1])
        self.assertEqual((response.code, response.headers["location"]), (303, "/"))
        cookie = response.headers["set-cookie"]
        self.assertTrue(cookie.startswith("novasvc_session="), cookie)
        attributes = [part.strip().lower() for part in cookie.split(";")]
        self.assertIn("httponly", attributes)
        self.assertIn("samesite=strict", attributes)
        self.assertIn("path=/", attributes)
        self.assertIn(f"max-age={SESSION_LIFETIME}", attributes)
        self.assertNotIn("secure", attributes)
        self.assertNotIn(TOKENS["ops"][1], cookie)
        jar = {"Cookie": cookie.split(";", 1)[0]}
        page = await live.request("GET", "/", headers={**jar, **HTML})
        self.assertEqual(page.code, 200)
        self.assertIn(b'<meta http-equiv="refresh" content="10">', page.body)
        self.assertEqual((await live.request("GET", "/v1/services", headers=jar)).code, 200)
        for method, path, body in [("PUT", f"/v1/services/{self.service.id}",
                                    {"status": "disabled"}),
                                   ("DELETE", f"/v1/services/{self.service.id}", None),
                                   ("POST", "/v1/rpc/x", {"method": "echo"}),
                                   ("GET", "/metrics", None),
                                   ("GET", f"/v1/services/{self.service.id}", None)]:
            response = await live.request(method, path, body, jar)
            self.assertEqual(response.code, 401, (method, path))
        self.assertFalse((await live.store.get(self.service.id)).disabled)
        response = await live.request("PUT", f"/v1/services/{self.service.id}",
                                      {"status": "disabled"}, {**jar, **ADMIN})
        self.assertEqual(response.code, 200)

    async def test_bad_token(self) -> None:
        """
        When the posted token is wrong or missing, then 401 with the form
        and a message, and no cookie.
        """
        live = await self.api()
        for body in [b"token=wrong", b"", b"other=1"]:
            response = await live.request("POST", "/v1/session", body, FORM)
            self.assertEqual(response.code, 401)
            self.assertIn(b"That token is not valid.", response.body)
            self.assertNotIn("set-cookie", response.headers)
        response = await live.request("GET", "/", headers={"Cookie": "novasvc_session=made-up"})
        self.assertEqual(response.code, 401)


class _Request:
    def __init__(self, secure: bool, cookie: bytes = b"") -> None:
        self.secure = secure
        self.cookie = cookie
        self.cookies: Dict[bytes, Any] = {}

    def isSecure(self) -> bool:
        return self.secure

    def addCookie(self, name: bytes, value: bytes, **kwargs: Any) -> None:
        self.cookies[name] = (value, kwargs)

    def getCookie(self, name: bytes) -> bytes:
        return self.cookie


class SessionsTests(unittest.SynchronousTestCase):
    """
    L{Sessions} on a L{task.Clock}.
    """

    def test_secure_and_expiry(self) -> None:
        """
        When the request came over TLS, then the cookie is Secure; a
        session is a reader's until its lifetime ends, then unknown.
        """
        clock = task.Clock()
        sessions = Sessions(clock, lifetime=60)
        request = _Request(secure=True)
        sessions.open(request, "ops")
        key, options = request.cookies[COOKIE]
        self.assertEqual((options["secure"], options["httpOnly"], options["sameSite"]),
                         (True, True, "strict"))
        clock.advance(59)
        principal = sessions.principal(_Request(False, key))
        self.assertEqual((principal.name, principal.role), ("ops", "reader"))
        clock.advance(1)
        self.assertIsNone(sessions.principal(_Request(False, key)))

    def test_oldest_dropped(self) -> None:
        """
        When more sessions than the limit are opened, then the oldest goes.
        """
        sessions = Sessions(task.Clock(), limit=2)
        keys = []
        for _ in range(3):
            request = _Request(False)
            sessions.open(request, "ops")
            keys.append(request.cookies[COOKIE][0])
        self.assertIsNone(sessions.principal(_Request(False, keys[0])))
        self.assertIsNotNone(sessions.principal(_Request(False, keys[2])))
