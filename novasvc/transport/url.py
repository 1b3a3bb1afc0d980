# -*- test-case-name: tests.test_transport_url -*-
"""
Parse C{transport_url} values (C{rabbit://user:pass@host:port/vhost},
C{amqp://...}, C{memory://name}) as oslo.messaging's C{TransportURL} does.
The password never appears in C{str()} or C{repr()}, so a URL can be logged.
"""

from typing import Dict, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from novasvc.exceptions import ConfigError

SCHEMES = ("rabbit", "amqp", "memory")
DEFAULT_URL = "rabbit://guest:guest@localhost:5672/"


@attrs.frozen
class TransportURL:
    """
    A parsed transport URL.

    @ivar scheme: C{'rabbit'}, C{'amqp'} or C{'memory'}.
    @ivar username: C{str} (C{'guest'} when absent, as oslo).
    @ivar password: C{str}; hidden from C{repr}.
    @ivar hosts: C{tuple} of (host, port) pairs; several hosts are given
        comma-separated and tried in order.
    @ivar virtual_host: the vhost, C{'/'} when the path is empty.
    @ivar query: extra C{?key=value} options as a sorted tuple of pairs.
    """

    scheme: str
    username: str = "guest"
    password: str = attrs.field(default="guest", repr=False)
    hosts: Tuple[Tuple[str, int], ...] = (("localhost", 5672),)
    virtual_host: str = "/"
    query: Tuple[Tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, url: str) -> "TransportURL":
        """
        @param url: the transport URL.
        @raise ConfigError: for an unknown scheme, a bad port, or credentials
            holding an unencoded C{#}, C{?} or C{/}; the message shows the
            URL with its password hidden.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ConfigError(
                f"transport_url {_redact(url)!r}: unknown scheme {parts.scheme!r}, "
                f"expected one of {', '.join(s + '://' for s in SCHEMES)}"
            )
        if "@" not in parts.netloc and "@" in url.partition("://")[2]:
            # urlsplit ended the host part early: a '#', '?' or '/' in the
            # credentials. Say so without echoing any piece of them.
            raise ConfigError(
                f"transport_url {_redact(url)!r}: '@' after the host part; characters such as '#', '?' "
                f"and '/' in the user name or password, and '@' in the vhost, must be percent-encoded "
                f"(%23, %3F, %2F, %40)"
            )
        query = tuple(sorted(parse_qsl(parts.query)))
        if scheme == "memory":
            return cls(scheme, "", "", ((parts.netloc or "default", 0),), "/", query)
        userinfo, _, hostlist = parts.netloc.rpartition("@")
        username, password = "guest", "guest"
        if userinfo:
            user, _, pw = userinfo.partition(":")
            username, password = unquote(user), unquote(pw)
        hosts = []
        for item in (hostlist or "localhost").split(","):
            host, port = _split_host_port(item, url)
            hosts.append((host or "localhost", port))
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(scheme, username, password, tuple(hosts), vhost, query)

    @property
    def options(self) -> Dict[str, str]:
        """
        The query options as a C{dict}.
        """
        return dict(self.query)

    def __str__(self) -> str:
        if self.scheme == "memory":
            return f"memory://{self.hosts[0][0]}"
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        vhost = "" if self.virtual_host == "/" else self.virtual_host
        return f"{self.scheme}://{self.username}:***@{hosts}/{vhost}"


def _split_host_port(item: str, url: str) -> Tuple[str, int]:
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = item.partition(":")
    if not port:
        return host, 5672
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"transport_url {_redact(url)!r}: port {port!r} is not a number in 1..65535")
    return host, int(port)


def _redact(url: str) -> str:
    """
    @return: C{url} with any password replaced by C{***}. Works on the raw
        text, not on C{urlsplit}, so a password holding an unencoded C{#} or
        C{?} (which C{urlsplit} takes for a fragment or query) is hidden too;
        everything between C{user:} and the last C{@} is hidden.
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostlist = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}:***@{hostlist}"
    return url


redact = _redact
