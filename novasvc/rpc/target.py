# -*- test-case-name: tests.test_rpc_target -*-
"""
Where a message goes and what it asks for: L{Target} (as oslo.messaging's
C{Target}) and the RPC version rules shared by the client (C{version_cap}) and
the dispatcher (endpoint versions).

A version is a string C{"X.Y"} or C{"X.Y.Z"} of decimal integers (major,
minor, revision). Compatibility follows oslo.messaging's
C{utils.version_is_compatible}: the same major, a requested minor no higher
than the implemented one and, when the minors are equal, a requested revision
no higher than the implemented one.
"""

from typing import Optional, Tuple

import attrs

__all__ = ["Target", "parse_version", "version_is_compatible"]


def parse_version(version: str) -> Tuple[int, int, int]:
    """
    Parse an RPC version string.

    @param version: C{"X.Y"} or C{"X.Y.Z"}, each part a non-negative decimal
        integer.
    @type version: C{str}
    @return: (major, minor, revision); the revision is C{0} when absent.
    @rtype: C{tuple} of three C{int}
    @raise ValueError: when C{version} is not such a string.
    """
    if not isinstance(version, str):
        raise ValueError(f"RPC version must be a string like '1.0', not {version!r}")
    parts = version.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"RPC version must be 'major.minor' or 'major.minor.revision' integers, not {version!r}")
    major, minor = int(parts[0]), int(parts[1])
    revision = int(parts[2]) if len(parts) == 3 else 0
    return major, minor, revision


def version_is_compatible(implemented: str, requested: str) -> bool:
    """
    Can something that implements version C{implemented} serve a request for
    version C{requested}? As oslo.messaging's C{version_is_compatible}.

    @param implemented: the endpoint's version (or a client's C{version_cap}).
    @type implemented: C{str}
    @param requested: the version a message asks for.
    @type requested: C{str}
    @rtype: C{bool}
    @raise ValueError: when either is not a valid version string.
    """
    imp = parse_version(implemented)
    req = parse_version(requested)
    if req[0] != imp[0]:
        return False
    if req[1] != imp[1]:
        return req[1] < imp[1]
    return req[2] <= imp[2]


def _optional_str(name: str):
    def check(instance, attribute, value) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"Target.{name} must be a str or None, not {value!r}")

    return check


@attrs.frozen
class Target:
    """
    The destination of a message and the API it speaks, as oslo.messaging's
    C{Target}.

    A client uses C{exchange}, C{topic}, C{server}, C{fanout}, C{namespace}
    and C{version}; a server needs C{topic} and C{server}; an endpoint's
    C{target} attribute gives its C{namespace} and C{version} (and
    C{legacy_namespaces}).

    @ivar exchange: the exchange to publish to; C{None} means the configured
        C{control_exchange}.
    @ivar topic: the topic (e.g. C{"compute"}).
    @ivar namespace: the API namespace; C{None} is the default namespace.
    @ivar version: C{"X.Y"} or C{"X.Y.Z"}; C{None} means C{"1.0"} to a
        server.
    @ivar server: a host name: address one server (C{<topic>.<server>}).
    @ivar fanout: C{True} to address every server of the topic (casts only).
    @ivar legacy_namespaces: more namespaces an endpoint answers to, as
        oslo.messaging's C{Target.legacy_namespaces}.
    """

    exchange: Optional[str] = attrs.field(default=None, validator=_optional_str("exchange"))
    topic: Optional[str] = attrs.field(default=None, validator=_optional_str("topic"))
    namespace: Optional[str] = attrs.field(default=None, validator=_optional_str("namespace"))
    version: Optional[str] = attrs.field(default=None, validator=_optional_str("version"))
    server: Optional[str] = attrs.field(default=None, validator=_optional_str("server"))
    fanout: bool = attrs.field(default=False, converter=bool)
    legacy_namespaces: Tuple[Optional[str], ...] = attrs.field(default=(), converter=tuple)

    def replace(self, **changes) -> "Target":
        """
        @param changes: new values for any of the attributes.
        @return: a copy of this target with C{changes} applied.
        @rtype: L{Target}
        """
        return attrs.evolve(self, **changes)

    @property
    def namespaces(self) -> Tuple[Optional[str], ...]:
        """
        The namespaces an endpoint with this target answers to:
        C{namespace} followed by C{legacy_namespaces}.
        """
        return (self.namespace,) + self.legacy_namespaces
