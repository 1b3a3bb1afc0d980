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

Neither the C{Authorization} header nor a token is ever logged; the access
log names the token's C{name}.
"""

import hashlib
import hmac
import ipaddress
from typing import Optional, Sequence, Tuple, Union

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from novasvc.api.context import APIContext, Principal, request_info
from novasvc.api.errors import render_error
from novasvc.api.filter import FilterResource
from novasvc.api_config import APIToken

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
    def __init__(self, wrapped: IResource, tokens: Tuple[APIToken, ...]) -> None:
        FilterResource.__init__(self, wrapped)
        self._tokens = tokens

    def filter(self, request: IRequest) -> Union[bytes, int]:
        if request.path in PUBLIC_PATHS:
            return self.pass_on(request)
        if len(request.requestHeaders.getRawHeaders(b"authorization", ())) > 1:
            return render_error(request, 400, "the Authorization header is given more than once")
        if self._tokens:
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

    def _authenticate(self, request: IRequest) -> Union[Principal, bytes]:
        header = request.getHeader(b"authorization")
        if header is None:
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
    return _Auth(resource, context.config.api.tokens)
