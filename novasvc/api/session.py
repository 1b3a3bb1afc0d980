# -*- test-case-name: tests.test_api_session -*-
"""
Browser sessions for the status page, when bearer tokens are configured: a
browser sends no C{Authorization} header, so C{GET /} without one answers
401 with a login form (for a client that accepts HTML), whose token is
posted to C{POST /v1/session} and exchanged for a session cookie.

  - The cookie (C{novasvc_session}) is a random id (the token is never in
    it), C{HttpOnly}, C{SameSite=Strict}, C{Path=/}, C{Secure} when the
    request came over TLS, and expires after L{SESSION_LIFETIME} seconds.
  - It is accepted only for C{GET}/C{HEAD} of the page and its read-only
    data (L{COOKIE_PATHS}), as the token's name with the role C{reader},
    whatever the token's role: everything that changes state still needs
    the bearer header, so a cookie gives no cross-site request a way in.
  - Sessions live in the API process's memory (at most L{MAX_SESSIONS};
    the oldest goes first), so a restart logs everyone out.
"""

import secrets
from collections import OrderedDict
from typing import Any, Optional, Tuple
from urllib.parse import parse_qs

from twisted.web.iweb import IRequest

from novasvc.api.context import Principal

__all__ = ["COOKIE", "COOKIE_PATHS", "LOGIN_PATH", "MAX_SESSIONS", "SESSION_LIFETIME",
           "Sessions", "login_page"]

#: The cookie's name.
COOKIE = b"novasvc_session"
#: Where the login form posts.
LOGIN_PATH = b"/v1/session"
#: The paths a session cookie is accepted for (GET and HEAD only).
COOKIE_PATHS = frozenset({b"/", b"/v1/services"})
#: B{Seconds} a session lasts.
SESSION_LIFETIME = 8 * 3600
#: Sessions kept at once.
MAX_SESSIONS = 1024
_MAX_FORM = 4096

_LOGIN = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>novasvc: sign in</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:30em}
input{font:inherit;width:100%;box-sizing:border-box;margin:.3em 0 .8em;padding:.3em}
.error{color:#b00020;font-weight:600}
</style>
</head>
<body>
<h1>novasvc services</h1>
<p>This API needs a token. Paste a reader's (or an admin's) token: the browser then keeps a
session cookie for the status page only.</p>
{error}<form method="post" action="/v1/session">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</body>
</html>
"""


def login_page(error: Optional[str] = None) -> bytes:
    """
    @param error: a fixed message to show (never client text).
    @return: the login form, UTF-8 HTML (no script).
    """
    shown = f'<p class="error">{error}</p>\n' if error else ""
    return _LOGIN.replace("{error}", shown).encode("utf-8")


def wants_html(request: IRequest) -> bool:
    """
    @return: whether the client accepts HTML (a browser).
    """
    accept = request.getHeader(b"accept") or b""
    return b"text/html" in accept


def form_token(request: IRequest) -> Optional[bytes]:
    """
    @return: the C{token} field of an C{application/x-www-form-urlencoded}
        body, or C{None}.
    """
    kind = (request.getHeader(b"content-type") or b"").split(b";", 1)[0].strip().lower()
    if kind != b"application/x-www-form-urlencoded" or request.content is None:
        return None
    raw = request.content.read(_MAX_FORM + 1)
    if len(raw) > _MAX_FORM:
        return None
    values = parse_qs(raw.decode("latin-1"), keep_blank_values=False).get("token", [])
    if len(values) != 1:
        return None
    return values[0].strip().encode("latin-1")


class Sessions:
    """
    The sessions of one API process.
    """

    def __init__(self, clock: Any, lifetime: float = SESSION_LIFETIME,
                 limit: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._limit = limit
        self._sessions: "OrderedDict[bytes, Tuple[str, float]]" = OrderedDict()

    def open(self, request: IRequest, name: str) -> None:
        """
        Open a session for the token named C{name} and set its cookie on
        C{request}'s answer.
        """
        key = secrets.token_urlsafe(32).encode("ascii")
        self._sessions[key] = (name, self._clock.seconds() + self._lifetime)
        while len(self._sessions) > self._limit:
            self._sessions.popitem(last=False)
        request.addCookie(COOKIE, key, path=b"/", max_age=str(int(self._lifetime)).encode(),
                          httpOnly=True, secure=bool(request.isSecure()),
                          sameSite="strict")

    def principal(self, request: IRequest) -> Optional[Principal]:
        """
        @return: the reader principal of C{request}'s session cookie, or
            C{None} (no cookie, unknown, expired).
        """
        key = request.getCookie(COOKIE)
        if not key:
            return None
        found = self._sessions.get(key)
        if found is None:
            return None
        name, expires = found
        if self._clock.seconds() >= expires:
            del self._sessions[key]
            return None
        return Principal(name=name, role="reader")
