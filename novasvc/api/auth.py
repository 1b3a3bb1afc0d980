# -*- test-case-name: tests.test_api_auth -*-
"""
The auth filter: bearer tokens known by their SHA-256, with two roles.

  - C{Authorization: Bearer <token>}: the token's SHA-256 is compared with
    each configured C{api.tokens[].sha256} (L{hmac.compare_digest}, every
    hash compared, so the time taken does not tell which one came close).
    A missing, malformed or unknown token gets 401 with
    C{WWW-Authenticate: Bearer}.
  - C{reader} may GET and HEAD; C{admin} may do everything (PUT, DELETE,
    POST and the RPC gateway). A reader asking for anything else gets 403.
  - With no token configured, loopback clients (127.0.0.0/8, ::1, and unix
    socket clients) are admin, and any other client gets 403: the API is
    never open to the network by mistake.
  - L{PUBLIC_PATHS} (C{/healthz}, for load balancers) need nothing.
  - A request with more than one C{Authorization} header gets 400: which
    one counts would be a guess.
  - With tokens, a browser signs in to the status page through a login
    form and a session cookie (L{novasvc.api.session}): the cookie counts
    only for GET and HEAD of C{/} and C{/v1/services}, as a reader.

Neither the C{Authorization} header nor a token is ever logged; the access
log names the token's C{name}.
"""

import hashlib
import hmac
import ipaddress
from typing import Any, Optional, Sequence, Tuple, Union

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from novasvc.api.context import APIContext, Principal, request_info
from novasvc.api.errors import render_error
from novasvc.api.filter import FilterResource
from novasvc.api.session import (COOKIE_PATHS, LOGIN_PATH, Sessions, form_token, login_page,
                                 wants_html)
from novasvc.config.api import APIToken

__all__ = ["LOOPBACK", "PUBLIC_PATHS", "READ_METHODS", "auth_filter", "is_loopback"]

#: Paths served to anyone.
PUBLIC_PATHS = frozenset({b"/healthz"})
#: The methods a C{reader} may use.
READ_METHODS = frozenset({b"GET", b"HEAD"})
#: The principal of a loopback client when no token is configured.
LOOPBACK = Principal(name="loopback", role="admin")

_CHALLENGE = b'Bearer realm="novasvc"'


def is_loopback(address: object) -> bool:
    """
    @param address: a client address (C{request.getClientAddress()}).
    @return: C{True} for 127.0.0.0/8, ::1, an IPv4-mapped loopback
        address, and a unix socket client.
    """
    if isinstance(address, UNIXAddress):
        return True
    if not isinstance(address, (IPv4Address, IPv6Address)):
        return False
    try:
        ip = ipaddress.ip_address(address.host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def _bearer(header: Optional[bytes]) -> Optional[bytes]:
    """
    @return: the token of an C{Authorization: Bearer <token>} value, or
        C{None} if the value is not of that form.
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token or b" " in token:
        return None
    return token


def check_token(tokens: Sequence[APIToken], token: bytes) -> Optional[APIToken]:
    """
    @param tokens: the configured tokens.
    @param token: what the client presented.
    @return: the configured token whose hash is C{token}'s SHA-256, or
        C{None}. Every configured hash is compared.
    """
    digest = hashlib.sha256(token).hexdigest().encode("ascii")
    found = None
    for candidate in tokens:
        if hmac.compare_digest(digest, candidate.sha256.encode("ascii")):
            found = candidate
    return found


class _Auth(FilterResource):
    def __init__(self, wrapped: IResource, tokens: Tuple[APIToken, ...], clock: Any) -> None:
        FilterResource.__init__(self, wrapped)
        self._tokens = tokens
        self._sessions = Sessions(clock)

    def filter(self, request: IRequest) -> Union[bytes, int]:
        if request.path in PUBLIC_PATHS:
            return self.pass_on(request)
        if len(request.requestHeaders.getRawHeaders(b"authorization", ())) > 1:
            return render_error(request, 400, "the Authorization header is given more than once")
        if self._tokens and request.path == LOGIN_PATH:
            return self._login(request)
        if self._tokens:
            principal = self._from_cookie(request)
            if principal is None:
                principal = self._authenticate(request)
            if isinstance(principal, bytes):
                return principal
        elif is_loopback(request.getClientAddress()):
            principal = LOOPBACK
        else:
            return render_error(request, 403, "no API tokens are configured: only loopback "
                                "clients are served (see api.tokens)")
        request_info(request).principal = principal
        if request.method not in READ_METHODS and not principal.is_admin:
            return render_error(request, 403, f"token {principal.name!r} has the role "
                                f"{principal.role!r}; {request.method.decode('ascii', 'replace')} "
                                "needs 'admin'")
        return self.pass_on(request)

    def _from_cookie(self, request: IRequest) -> Optional[Principal]:
        """
        @return: the reader principal of a session cookie, for a GET or
            HEAD of the page or its data without an Authorization header.
        """
        if (request.getHeader(b"authorization") is not None
                or request.method not in READ_METHODS or request.path not in COOKIE_PATHS):
            return None
        return self._sessions.principal(request)

    def _login(self, request: IRequest) -> bytes:
        """
        C{POST /v1/session}: a valid token posted by the login form opens a
        session (its cookie) and goes back to the page; otherwise the form
        again, 401.
        """
        if request.method != b"POST":
            return render_error(request, 405, "POST the login form here",
                                {b"Allow": b"POST"})
        token = form_token(request)
        found = check_token(self._tokens, token) if token else None
        if found is None:
            return self._html(request, 401, login_page("That token is not valid."))
        self._sessions.open(request, found.name)
        request.setResponseCode(303)
        request.setHeader(b"Location", b"/")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", b"0")
        return b""

    @staticmethod
    def _html(request: IRequest, code: int, page: bytes) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy",
                          b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", b"%d" % len(page))
        return page

    def _authenticate(self, request: IRequest) -> Union[Principal, bytes]:
        header = request.getHeader(b"authorization")
        if header is None:
            if request.path == b"/" and request.method in READ_METHODS and wants_html(request):
                request.setHeader(b"WWW-Authenticate", _CHALLENGE)
                return self._html(request, 401, login_page())
            return render_error(request, 401, "a bearer token is needed "
                                "(Authorization: Bearer <token>)",
                                {b"WWW-Authenticate": _CHALLENGE})
        token = _bearer(header)
        if token is None:
            return render_error(request, 401, "the Authorization header is not "
                                "'Bearer <token>'",
                                {b"WWW-Authenticate": _CHALLENGE + b', error="invalid_request"'})
        found = check_token(self._tokens, token)
        if found is None:
            return render_error(request, 401, "the bearer token is not valid",
                                {b"WWW-Authenticate": _CHALLENGE + b', error="invalid_token"'})
        return Principal(name=found.name, role=found.role)


def auth_filter(resource: IResource, context: APIContext) -> IResource:
    """
    The filter (see L{novasvc.api.filter}), with C{context.config.api.tokens}.

    @return: C{resource} behind the token check.
    """
    return _Auth(resource, context.config.api.tokens, context.clock)
