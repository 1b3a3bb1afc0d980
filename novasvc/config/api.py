# -*- test-case-name: tests.test_config_api -*-
"""
The C{api:} section of the configuration: L{APIConfig}, an immutable value
on L{novasvc.config.Config.api}, and L{parse_api_section}, which validates
the YAML mapping the way the rest of the file is validated (unknown keys
refused with a "did you mean", each refusal naming the file, the line and
the key).

This module belongs to the configuration, not to the C{novasvc.api} package,
on purpose: reading the configuration never imports the API itself
(twisted.web, klein), which a service loads only when C{api.enabled} is
true.
"""

import math
import re
from typing import Any, Callable, Dict, Optional, Tuple

import attrs

from novasvc._text import show_value
from novasvc.config._checks import Bad as _Bad
from novasvc.config._checks import boolean as _boolean
from novasvc.config._checks import integer as _integer
from novasvc.config._checks import number as _number
from novasvc.config._checks import suggest as _suggest
from novasvc.config.loader import is_dotted_path
from novasvc.exceptions import ConfigError

__all__ = [
    "APIConfig",
    "APIToken",
    "BODY_TIMEOUT",
    "DATABASE_DEADLINE",
    "DEFAULT_APP",
    "DEFAULT_FILTERS",
    "DEFAULT_LISTEN",
    "EMBEDDED_IN_FLIGHT",
    "EMBEDDED_SHARE",
    "EMBEDDED_WAITING",
    "HEADER_TIMEOUT",
    "HEALTH_TIMEOUT",
    "LINGER",
    "MAX_CONNECTIONS",
    "MAX_IN_FLIGHT",
    "RETRY_AFTER",
    "ROLES",
    "SHARED_SCHEMES",
    "check_listen",
    "check_workers",
    "embedded_refusal",
    "parse_api_section",
]

#: Where the API listens unless told: Nova's osapi_compute port, loopback only.
DEFAULT_LISTEN = "tcp:8774:interface=127.0.0.1"
#: The application factory, C{app(context) -> IResource}.
DEFAULT_APP = "novasvc.api.app.make_app"
#: The filters wrapped around the application, the first outermost.
DEFAULT_FILTERS = ("novasvc.api.request_id.request_id_filter", "novasvc.api.auth.auth_filter")
#: The roles a token may have: C{reader} may read (GET, HEAD), C{admin}
#: may do everything.
ROLES = ("reader", "admin")
#: The endpoint types whose socket worker processes can share
#: (C{api.workers} > 1).
SHARED_SCHEMES = ("tcp", "tcp6", "ssl")
#: The smallest C{max_url_len}: shorter would refuse the API's own routes.
MIN_URL_LEN = 64

# The defaults of the API's protections, here so that the configuration
# holds them without importing the API; the API's modules take them as the
# defaults of their own parameters.
#: B{Seconds} from a request's first byte to the end of its headers.
HEADER_TIMEOUT = 10.0
#: B{Seconds} from the end of a request's headers to the end of its body.
BODY_TIMEOUT = 30.0
#: Open connections one process's API accepts; more are answered 503.
MAX_CONNECTIONS = 1024
#: The requests one process of the API on its own handles at once.
MAX_IN_FLIGHT = 64
#: The requests the API of a service (in the service's own process)
#: handles at once, and how many more may wait: few at once, so that the
#: service's RPC keeps the reactor.
EMBEDDED_IN_FLIGHT = 2
EMBEDDED_WAITING = 256
#: The fraction of the reactor thread's time the API of a service may take
#: under load (L{novasvc.api._share}): the rest is left to its RPC.
EMBEDDED_SHARE = 0.25
#: B{Seconds} one database call of a request may take: well under the
#: 10 to 30 s that HTTP clients and load balancers commonly wait.
DATABASE_DEADLINE = 3.0
#: B{Seconds} a 503 tells the client to wait (C{Retry-After}).
RETRY_AFTER = 5
#: B{Seconds} the database check of C{GET /healthz} may take: no more than
#: a database call of the other routes, so that a hung database costs a
#: load balancer's probe no more than any other request.
HEALTH_TIMEOUT = 3.0
#: B{Seconds} a connection refused with 413, 414 or 431 goes on reading
#: (and dropping) what the client still sends before it closes, so that the
#: client reads the answer rather than a reset.
LINGER = 2.0

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_TOKEN_NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")


@attrs.frozen
class APIToken:
    """
    One bearer token the API accepts, known only by its hash.

    @ivar name: who holds it (C{str}, 1 to 64 of C{A-Z a-z 0-9 _ . @ : -});
        it is the request context's C{user_id} and goes into the access log.
    @ivar role: C{"reader"} or C{"admin"}.
    @ivar sha256: the SHA-256 of the token, 64 lower-case hex digits (what
        C{novasvc-manage token new} prints); kept out of C{repr}.
    """

    name: str
    role: str
    sha256: str = attrs.field(repr=False)


@attrs.frozen
class APIConfig:
    """
    The C{api:} section. C{etc/novasvc.yaml} documents each key.

    @ivar enabled: whether C{twistd novasvc} also serves the API (C{bool},
        default C{False}); C{twistd novasvc-api} serves it regardless.
    @ivar listen: a Twisted server endpoint string, such as
        C{tcp:8774:interface=127.0.0.1}, C{tcp:0} (a free port),
        C{ssl:8443:privateKey=key.pem:certKey=cert.pem} or
        C{unix:/run/novasvc/api.sock}.
    @ivar workers: how many processes serve the standalone API (C{int} >=
        1; above 1 see L{novasvc.process.api_workers}, and L{check_workers} for the
        endpoints they can share); with C{enabled} it must be 1
        (L{embedded_refusal}).
    @ivar max_url_len: the longest request target, in bytes; a longer one
        gets 414 (C{int} >= L{MIN_URL_LEN}).
    @ivar max_body_size: the largest request body, in bytes; a larger one
        gets 413 (C{int} >= 0).
    @ivar header_timeout: B{seconds} from a request's first byte to the end
        of its headers; past it 408 (a number > 0).
    @ivar body_timeout: B{seconds} from the end of a request's headers to
        the end of its body; past it 408 (a number > 0).
    @ivar max_connections: open connections one process accepts; one more
        gets 503 and is closed (C{int} >= 1).
    @ivar max_in_flight: the requests one process of the API on its own
        (C{twistd novasvc-api}) handles at once (C{int} >= 1).
    @ivar max_waiting: how many more wait there for a slot; past that 503
        (C{int} >= 0).
    @ivar service_max_in_flight: the requests the API inside a service
        (C{enabled}) handles at once, few so that the service's RPC comes
        first (C{int} >= 1).
    @ivar service_max_waiting: how many more wait there (C{int} >= 0).
    @ivar service_reactor_share: the fraction of the reactor thread's time
        the API inside a service may take under load, the rest being left
        to its RPC (a number above 0 and at most 1; 1: no bound).
    @ivar database_deadline: B{seconds} one database call of a request may
        take; past it 503 (a number > 0).
    @ivar retry_after: B{seconds} a 503 tells the client to wait
        (C{Retry-After}, C{int} >= 0).
    @ivar health_timeout: B{seconds} the database check of C{GET /healthz}
        may take; past it the database is reported down (a number > 0).
    @ivar linger: B{seconds} a connection refused with 413, 414 or 431
        reads and drops what the client still sends before it closes (a
        number >= 0; 0 closes at the next reactor turn).
    @ivar app: the dotted path of the application factory,
        C{app(context) -> IResource}.
    @ivar filters: dotted paths of the filters,
        C{filter(resource, context) -> IResource}, the first outermost
        (C{tuple} of C{str}).
    @ivar tokens: the accepted bearer tokens (C{tuple} of L{APIToken});
        none means only loopback clients are served.
    """

    enabled: bool = False
    listen: str = DEFAULT_LISTEN
    workers: int = 1
    max_url_len: int = 8192
    max_body_size: int = 1024 * 1024
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_in_flight: int = MAX_IN_FLIGHT
    max_waiting: int = 0
    service_max_in_flight: int = EMBEDDED_IN_FLIGHT
    service_max_waiting: int = EMBEDDED_WAITING
    service_reactor_share: float = EMBEDDED_SHARE
    database_deadline: float = DATABASE_DEADLINE
    retry_after: int = RETRY_AFTER
    health_timeout: float = HEALTH_TIMEOUT
    linger: float = LINGER
    app: str = DEFAULT_APP
    filters: Tuple[str, ...] = DEFAULT_FILTERS
    tokens: Tuple[APIToken, ...] = ()


def _dotted_path(value: Any) -> str:
    if not is_dotted_path(value):
        raise _Bad("a dotted path such as mypackage.api.make_app")
    return value


def _dotted_paths(value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(is_dotted_path(item) for item in value):
        raise _Bad("a list of dotted paths such as [novasvc.api.auth.auth_filter]")
    return tuple(value)


def _fraction(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 0 < value <= 1):
        raise _Bad("a fraction above 0 and at most 1")
    return float(value)


def check_listen(value: Any) -> str:
    """
    Check a server endpoint string by building the endpoint (without a
    reactor: nothing listens yet). An C{ssl:} endpoint reads its key and
    certificate files here, so a missing file is refused at start-up.

    @param value: the C{listen} value.
    @return: C{value}.
    @raise ConfigError: (its message is what was expected, without the
        key) if Twisted's endpoint parser refuses it.
    """
    try:
        return _listen(value)
    except _Bad as e:
        raise ConfigError(f"expected {e.args[0]}, got {show_value(value)}") from None


def _listen(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("a Twisted server endpoint string such as tcp:8774:interface=127.0.0.1")
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(None, value)
    except Exception as e:
        reason = " ".join(str(e).split())[:200]
        raise _Bad("a Twisted server endpoint string such as tcp:8774:interface=127.0.0.1 "
                   f"({type(e).__name__}: {reason})") from None
    return value


def check_workers(api: APIConfig) -> None:
    """
    Check that C{api.workers} processes can share C{api.listen}.

    @raise ConfigError: (without the key) when C{workers} > 1 and C{listen}
        is not a C{tcp:}, C{tcp6:} or C{ssl:} endpoint (a unix socket, say).
    """
    scheme = api.listen.split(":", 1)[0].strip().lower()
    if api.workers > 1 and scheme not in SHARED_SCHEMES:
        raise ConfigError(f"{api.workers} workers need a tcp:, tcp6: or ssl: listen endpoint to "
                          f"share, got {show_value(api.listen)}")


def embedded_refusal(api: APIConfig, workers: int = 1) -> Optional[str]:
    """
    Why C{twistd novasvc} cannot serve this API inside its service (the API
    as the service's last child), if it cannot.

    @param api: the C{api:} section.
    @param workers: the service's C{workers}.
    @return: the message, or C{None} when C{api.enabled} is false or the
        API can be served there.
    """
    if not api.enabled:
        return None
    if api.workers > 1:
        return (f"api.workers is {api.workers}, but with api.enabled the API runs in the service's "
                f"own process: set api.workers: 1, or serve the API on its own with "
                f"'twistd novasvc-api' (or 'twistd novasvc --api-only'), which runs api.workers "
                f"processes")
    if workers > 1:
        return (f"api.enabled with workers: {workers}: every worker would listen on api.listen; "
                f"serve the API on its own with 'twistd novasvc-api' (its api.workers runs "
                f"several processes)")
    return None


_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "enabled": _boolean,
    "listen": _listen,
    "workers": _integer(1),
    "max_url_len": _integer(MIN_URL_LEN),
    "max_body_size": _integer(0),
    "header_timeout": _number(0, positive=True),
    "body_timeout": _number(0, positive=True),
    "max_connections": _integer(1),
    "max_in_flight": _integer(1),
    "max_waiting": _integer(0),
    "service_max_in_flight": _integer(1),
    "service_max_waiting": _integer(0),
    "service_reactor_share": _fraction,
    "database_deadline": _number(0, positive=True),
    "retry_after": _integer(0),
    "health_timeout": _number(0, positive=True),
    "linger": _number(0),
    "app": _dotted_path,
    "filters": _dotted_paths,
    "tokens": lambda value: value,  # checked item by item in _tokens()
}
_TOKEN_KEYS = ("name", "role", "sha256")


def _tokens(value: Any, where: Callable[[str], str]) -> Tuple[APIToken, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where('api.tokens')}: expected a list of mappings with keys "
                          f"name, role and sha256, got {show_value(value)}")
    tokens = []
    names = set()
    for index, item in enumerate(value):
        key = f"api.tokens[{index}]"
        at = where(key)
        if not isinstance(item, dict):
            raise ConfigError(f"{at}: expected a mapping with keys name, role and sha256, "
                              f"got {show_value(item)}")
        for sub in item:
            if sub not in _TOKEN_KEYS:
                raise ConfigError(f"{where(f'{key}.{sub}')}: unknown key{_suggest(str(sub), _TOKEN_KEYS)}")
        for sub in _TOKEN_KEYS:
            if sub not in item:
                raise ConfigError(f"{at}: {sub} is missing")
        name, role, digest = item["name"], item["role"], item["sha256"]
        if not isinstance(name, str) or not _TOKEN_NAME.fullmatch(name):
            raise ConfigError(f"{where(key + '.name')}: expected 1 to 64 letters, digits or _ . @ : -, "
                              f"got {show_value(name)}")
        if name in names:
            raise ConfigError(f"{where(key + '.name')}: {name!r} names another token already")
        names.add(name)
        if role not in ROLES:
            raise ConfigError(f"{where(key + '.role')}: expected one of {', '.join(ROLES)}, "
                              f"got {show_value(role)}")
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            # Never shown: it might be the token itself, pasted by mistake.
            raise ConfigError(f"{where(key + '.sha256')}: expected the SHA-256 of the token as 64 hex digits "
                              "(what 'novasvc-manage token new' prints), got something else")
        twin = next((t for t in tokens if t.sha256 == digest.lower()), None)
        if twin is not None:
            # One token, two entries: which name and role would it get?
            raise ConfigError(f"{where(key + '.sha256')}: the same token as {twin.name!r} "
                              f"(role {twin.role}); give each token one entry")
        tokens.append(APIToken(name=name, role=role, sha256=digest.lower()))
    return tuple(tokens)


def parse_api_section(value: Any, where: Callable[[str], str]) -> APIConfig:
    """
    Validate the C{api:} mapping of the configuration file.

    @param value: the YAML value (C{None} for an empty section).
    @param where: gives the place of a key for a message, e.g.
        C{where("api.listen")} -> C{"etc/novasvc.yaml, line 12: api.listen"}.
    @return: the L{APIConfig}, defaults filled in.
    @raise ConfigError: for a value that is not a mapping, an unknown key
        (with a "did you mean"), a value of the wrong type or out of range,
        a listen string Twisted cannot parse, or a bad token entry; the
        message names the place and what was expected. A token's C{sha256}
        is never shown.
    """
    if value is None:
        return APIConfig()
    if not isinstance(value, dict):
        raise ConfigError(f"{where('api')}: expected a mapping with keys "
                          f"{', '.join(_CHECKS)}, got {show_value(value)}")
    values: Dict[str, Any] = {}
    for key, item in value.items():
        name = f"api.{key}"
        if key not in _CHECKS:
            raise ConfigError(f"{where(name)}: unknown key{_suggest(str(key), _CHECKS)}")
        if key == "tokens":
            values[key] = _tokens(item, where)
            continue
        try:
            values[key] = _CHECKS[key](item)
        except _Bad as e:
            raise ConfigError(f"{where(name)}: expected {e.args[0]}, got {show_value(item)}") from None
    api = APIConfig(**values)
    try:
        check_workers(api)
    except ConfigError as e:
        raise ConfigError(f"{where('api.workers')}: {e}") from None
    return api

