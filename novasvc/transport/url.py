# -*- test-case-name: tests.test_transport_url -*-
"""
Parse C{transport_url} values (C{rabbit://user:pass@host:port/vhost},
C{rabbits://...} for TLS, C{amqp://...}, C{memory://name}) as
oslo.messaging's C{TransportURL} does.

Several brokers are given comma-separated, each with its own credentials
or none: C{rabbit://a:b@h1:5672,c:d@h2:5673/vh}. The host list is split at
commas first and each host's credentials end at its last C{@}, so a C{,} in a
user name or password must be percent-encoded (C{%2C}). A host without
credentials uses the first credentials the URL gives (C{guest}/C{guest} when
it gives none): C{rabbit://u:p@h1,h2/} logs in to both as C{u}. (oslo.messaging
warns about such a URL and lets kombu log in to C{h2} as C{guest}.)

The query may carry the TLS options oslo.messaging reads from it (C{ssl},
C{ssl_ca_file}, C{ssl_cert_file}, C{ssl_key_file}); any other option is
refused, so that nothing an operator asks for is silently ignored.

Passwords never appear in C{str()}, C{repr()} or an error message, so a URL
can be logged.
"""

from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from novasvc.exceptions import ConfigError
from novasvc._text import show_value

SCHEMES = ("rabbit", "rabbits", "amqp", "amqps", "memory")
#: The schemes that ask for TLS.
TLS_SCHEMES = ("rabbits", "amqps")
DEFAULT_URL = "rabbit://guest:guest@localhost:5672/"
#: RabbitMQ's ports for plain AMQP and for AMQP over TLS.
AMQP_PORT, AMQPS_PORT = 5672, 5671
#: The query options a C{rabbit://} URL may carry (oslo.messaging's names).
QUERY_OPTIONS = ("ssl", "ssl_ca_file", "ssl_cert_file", "ssl_key_file")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@attrs.frozen
class TLSOptions:
    """
    Whether and how to use TLS to the broker (oslo.messaging's C{ssl},
    C{ssl_ca_file}, C{ssl_cert_file} and C{ssl_key_file}). A field left
    C{None} is not said here, so that L{over} can fill it from elsewhere.

    @ivar enabled: C{True} for TLS, C{False} for plain TCP, C{None} when not
        said (plain TCP).
    @ivar ca_file: PEM file of the certificate authorities to trust; the
        platform's trust store when C{None}. The broker's certificate is
        always verified, its host name included.
    @ivar cert_file: PEM file of the client certificate (it may hold the key
        too), for brokers that ask for one.
    @ivar key_file: PEM file of the client certificate's private key.
    """

    enabled: Optional[bool] = None
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None

    @classmethod
    def from_config(cls, config: Any) -> "TLSOptions":
        """
        @param config: a L{novasvc.config.Config} (its C{ssl},
            C{ssl_ca_file}, C{ssl_cert_file} and C{ssl_key_file}).
        @return: the options the configuration gives.
        """
        return cls(config.ssl, config.ssl_ca_file, config.ssl_cert_file, config.ssl_key_file)

    def over(self, defaults: "TLSOptions") -> "TLSOptions":
        """
        @return: these options, with each field left C{None} taken from
            C{defaults} (the URL's query beats the configuration, as in
            oslo.messaging).
        """
        return TLSOptions(*(mine if mine is not None else theirs
                            for mine, theirs in zip(attrs.astuple(self), attrs.astuple(defaults))))

    def check(self) -> None:
        """
        @raise ConfigError: when certificate files are given while TLS is
            off (an operator who names a CA file wants TLS: say so rather
            than connect in plain text), or a key file without a certificate
            file.
        """
        files = [name for name, value in (("ssl_ca_file", self.ca_file), ("ssl_cert_file", self.cert_file),
                                          ("ssl_key_file", self.key_file)) if value is not None]
        if files and not self.enabled:
            raise ConfigError(f"{', '.join(files)} given but TLS is off: turn it on with a rabbits:// "
                              f"transport_url, ?ssl=1 in it or ssl: true (or remove {files[0]})")
        if self.key_file is not None and self.cert_file is None:
            raise ConfigError("ssl_key_file given without ssl_cert_file (the client certificate it belongs to)")


@attrs.frozen
class TransportURL:
    """
    A parsed transport URL.

    @ivar scheme: C{'rabbit'}, C{'rabbits'}, C{'amqp'}, C{'amqps'} or
        C{'memory'}.
    @ivar username: C{str}, the first host's (C{'guest'} when absent, as
        oslo).
    @ivar password: C{str}, the first host's; hidden from C{repr}.
    @ivar hosts: C{tuple} of (host, port) pairs; several hosts are given
        comma-separated and tried in order. A host without a port gets
        5671 when the URL asks for TLS, else 5672.
    @ivar virtual_host: the vhost, C{'/'} when the path is empty.
    @ivar query: the C{?key=value} options as a sorted tuple of pairs.
    @ivar credentials: one (username, password) pair per host, hidden from
        C{repr}; empty when every host uses L{username} and L{password}.
        Read with L{login}.
    @ivar ports_given: one C{bool} per host, C{False} for a host whose port
        the URL leaves out (see L{with_tls}); empty when every port was
        given.
    """

    scheme: str
    username: str = "guest"
    password: str = attrs.field(default="guest", repr=False)
    hosts: Tuple[Tuple[str, int], ...] = (("localhost", AMQP_PORT),)
    virtual_host: str = "/"
    query: Tuple[Tuple[str, str], ...] = ()
    credentials: Tuple[Tuple[str, str], ...] = attrs.field(default=(), repr=False)
    ports_given: Tuple[bool, ...] = attrs.field(default=(), repr=False)

    @classmethod
    def parse(cls, url: str) -> "TransportURL":
        """
        @param url: the transport URL.
        @raise ConfigError: for an unknown scheme, a bad port, credentials
            holding an unencoded C{#}, C{?}, C{/} or C{,}, an unknown or
            repeated query option, or a bad C{ssl} value; the message shows
            the URL with its passwords hidden.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ConfigError(
                f"transport_url {_shown(url)!r}: unknown scheme {show_value(parts.scheme)}, "
                f"expected one of {', '.join(s + '://' for s in SCHEMES)}"
            )
        if "@" not in parts.netloc and "@" in url.partition("://")[2]:
            # urlsplit ended the host part early: a '#', '?' or '/' in the
            # credentials. Say so without echoing any piece of them.
            raise ConfigError(
                f"transport_url {_shown(url)!r}: '@' after the host part; characters such as '#', '?' "
                f"and '/' in the user name or password, and '@' in the vhost, must be percent-encoded "
                f"(%23, %3F, %2F, %40)"
            )
        query = _query(url, parts.query, scheme)
        if scheme == "memory":
            return cls(scheme, "", "", ((parts.netloc or "default", 0),), "/", query)
        tls = scheme in TLS_SCHEMES or dict(query).get("ssl", "").lower() in _TRUE
        default_port = AMQPS_PORT if tls else AMQP_PORT
        items = [item for item in parts.netloc.split(",") if item] or [""]
        found: List[Tuple[Optional[Tuple[str, str]], str, int, bool]] = []
        for index, item in enumerate(items):
            userinfo, at, hostport = item.rpartition("@")
            login = None
            if at:
                user, _, pw = userinfo.partition(":")
                login = (unquote(user), unquote(pw))
            later_login = any("@" in later for later in items[index + 1:])
            host, port = _split_host_port(hostport, url, hide_port=later_login and not at)
            found.append((login, host or "localhost", port or default_port, port is not None))
        first = next((login for login, _, _, _ in found if login is not None), ("guest", "guest"))
        credentials = tuple(login or first for login, _, _, _ in found)
        hosts = tuple((host, port) for _, host, port, _ in found)
        ports_given = tuple(given for _, _, _, given in found)
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(scheme, credentials[0][0], credentials[0][1], hosts, vhost, query,
                   credentials if len(set(credentials)) > 1 else (),
                   () if all(ports_given) else ports_given)

    @property
    def options(self) -> Dict[str, str]:
        """
        The query options as a C{dict}.
        """
        return dict(self.query)

    @property
    def tls(self) -> TLSOptions:
        """
        What the URL says about TLS: C{enabled} is C{True} for a
        C{rabbits://} or C{amqps://} URL or C{?ssl=1}, C{False} for
        C{?ssl=0}, else C{None}; the file options come from the query.
        """
        options = self.options
        enabled: Optional[bool] = True if self.scheme in TLS_SCHEMES else None
        if "ssl" in options:
            enabled = options["ssl"].lower() in _TRUE
        return TLSOptions(enabled, options.get("ssl_ca_file"), options.get("ssl_cert_file"),
                          options.get("ssl_key_file"))

    def login(self, index: int) -> Tuple[str, str]:
        """
        @param index: the position of a host in L{hosts}.
        @return: the (username, password) to use for that host.
        """
        if self.credentials:
            return self.credentials[index]
        return self.username, self.password

    def with_tls(self) -> "TransportURL":
        """
        @return: this URL as it is used over TLS: the scheme C{rabbits} (or
            C{amqps}), and 5671 for each host whose port the URL leaves out.
        """
        scheme = self.scheme if self.scheme in TLS_SCHEMES else self.scheme + "s"
        hosts = self.hosts
        if self.ports_given:
            hosts = tuple((host, port if given else AMQPS_PORT)
                          for (host, port), given in zip(self.hosts, self.ports_given))
        return attrs.evolve(self, scheme=scheme, hosts=hosts, ports_given=())

    def __str__(self) -> str:
        if self.scheme == "memory":
            return f"memory://{self.hosts[0][0]}"
        vhost = "" if self.virtual_host == "/" else self.virtual_host
        if not self.credentials:
            hosts = ",".join(_show_host(h, p) for h, p in self.hosts)
            return f"{self.scheme}://{self.username}:***@{hosts}/{vhost}"
        hosts = ",".join(f"{user}:***@{_show_host(h, p)}" for (h, p), (user, _) in zip(self.hosts, self.credentials))
        return f"{self.scheme}://{hosts}/{vhost}"


def _show_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _query(url: str, text: str, scheme: str) -> Tuple[Tuple[str, str], ...]:
    """
    @return: the query's pairs, sorted.
    @raise ConfigError: for an option that is unknown or given twice, or an
        C{ssl} that is not a boolean or contradicts a C{rabbits://} scheme.
    """
    pairs = parse_qsl(text, keep_blank_values=True)
    allowed = () if scheme == "memory" else QUERY_OPTIONS
    seen = set()
    for key, value in pairs:
        where = f"transport_url {_shown(url)!r}"
        if key not in allowed:
            expected = f"one of {', '.join(allowed)}" if allowed else "none for memory://"
            raise ConfigError(f"{where}: unknown option {show_value(key)} in the query; expected {expected}")
        if key in seen:
            raise ConfigError(f"{where}: option {key} given twice in the query")
        seen.add(key)
        if key == "ssl":
            if value.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"{where}: ssl={show_value(value)}, expected one of {', '.join(_TRUE + _FALSE)}")
            if scheme in TLS_SCHEMES and value.lower() in _FALSE:
                raise ConfigError(f"{where}: ssl={value} contradicts the {scheme}:// scheme, which asks for TLS")
        elif not value:
            raise ConfigError(f"{where}: {key} is empty; give a file name or leave the option out")
    return tuple(sorted(pairs))


def _split_host_port(item: str, url: str, hide_port: bool = False) -> Tuple[str, Optional[int]]:
    """
    @param hide_port: do not show a bad port in the error: the item has no
        C{@} and a later one has, so the "port" may be a piece of a password
        that holds an unencoded C{,}.
    @return: the host and the port (C{None} when not given).
    """
    host, port = _host_and_port_text(item)
    if not port:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        if hide_port:
            raise ConfigError(f"transport_url {_shown(url)!r}: a host's port is not a number in 1..65535, "
                              f"or a ',' in a user name or password is not percent-encoded (%2C)")
        raise ConfigError(f"transport_url {_shown(url)!r}: port {show_value(port)} is not a number in 1..65535")
    return host, int(port)


def _shown(url: str) -> str:
    """
    @return: C{url} as an error message shows it: passwords hidden, the
        query left out (its options are named one by one), at most 120
        characters.
    """
    text = _redact(url)
    scheme, sep, rest = text.partition("://")
    last_at = rest.rfind("@")
    query = rest.find("?", last_at + 1)
    if query >= 0:
        text = f"{scheme}{sep}{rest[:query]}?..."
    return text if len(text) <= 120 else text[:117] + "..."


def _redact(url: str) -> str:
    """
    @return: C{url} with every password replaced by C{***}. Works on the raw
        text, not on C{urlsplit}, so a password holding an unencoded C{#} or
        C{?} (which C{urlsplit} takes for a fragment or query) is hidden
        too. The host part ends at the first C{/}, C{?} or C{#} after the
        last C{@}; each of its comma-separated items shows its user name and
        host, and an item without C{@} before one with C{@} is shown only
        if it reads as C{host[:port]} (otherwise it may be a piece of a
        password holding an unencoded C{,}).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    last_at = rest.rfind("@")
    if last_at < 0:
        return url
    ends = [i for i in (rest.find(c, last_at) for c in "/?#") if i >= 0]
    end = min(ends) if ends else len(rest)
    items = rest[:end].split(",")
    shown = []
    doubtful = False
    for index, item in enumerate(items):
        userinfo, at, host = item.rpartition("@")
        if at:
            if doubtful and ":" not in userinfo:
                shown.append(f"***@{host}")
            else:
                user = userinfo.split(":", 1)[0]
                shown.append(f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}")
            doubtful = False
        elif any("@" in later for later in items[index + 1:]):
            doubtful = True
            shown.append(item if _reads_as_host(item) else "***")
        else:
            shown.append(item)
    return f"{scheme}{sep}{','.join(shown)}{rest[end:]}"


def _reads_as_host(item: str) -> bool:
    host, port = _host_and_port_text(item)
    return bool(host) and (port == "" or port.isdigit())


def _host_and_port_text(item: str) -> Tuple[str, str]:
    """
    @return: the host (without the brackets of an IPv6 address) and the
        text of the port, C{""} when absent.
    """
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else rest
    host, _, port = item.partition(":")
    return host, port


redact = _redact
