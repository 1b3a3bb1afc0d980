# -*- test-case-name: tests.test_context -*-
"""
The request context: who asks (user, project, roles...) and which request
this is, carried with every RPC message as C{_context_<key>} entries.

L{RequestContext} has the fields of oslo.context's C{RequestContext} plus the
ones Nova's context adds, and keeps every other key it is given in
L{RequestContext.extra}, so a context goes through a novasvc service without
losing what another OpenStack peer put in it. L{RequestContext.to_dict} writes
the keys oslo.context and Nova write (including the legacy aliases C{user},
C{project}, C{domain}, C{user_domain}, C{project_domain} and the derived
C{user_identity}); L{RequestContext.from_dict} reads them back and also
accepts C{tenant} for the project, as Nova does.

The C{auth_token} never appears in C{repr()} (hence not in logs); use
L{RequestContext.redacted_copy} before logging a context's dict.

The RPC server makes each request's context with L{context_from_message}:
the same context as C{from_dict}'s, read from the message only when the
method first uses it (C{bench/context.py}: reading a context costs about as
much as the rest of the server's work for a small call).

Reading never fails: a field whose value has the wrong type (C{roles: 5},
C{is_admin: "yes"}) gets its default instead, a timestamp that is no
readable instant (C{"0001-01-01T00:00:00+01:00"} is before year 1 in UTC)
is kept as the text it came as, and each context read so logs one WARNING
naming at most five of the keys; the other keys go to
L{RequestContext.extra} whatever their values. So C{to_dict()} of any
context read writes JSON values that read back to the same C{dict}.

Which keys are written and read, and how their values are checked, is
L{novasvc._context_wire}'s; this module holds the context itself and its
lazy reading.
"""

import datetime
import math
import uuid
from typing import Any, Dict, List, Mapping, Optional

import attrs
from twisted.logger import Logger

from novasvc._context_wire import KEYS as _KEYS, ContextKeys, context_keys, read_fields

_log = Logger()

__all__ = ["RequestContext", "get_admin_context", "generate_request_id"]


def generate_request_id() -> str:
    """
    @return: a new request id, C{req-<uuid4>}, as oslo.context's.
    @rtype: C{str}
    """
    return f"req-{uuid.uuid4()}"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _kw(**kwargs: Any) -> Any:
    return attrs.field(kw_only=True, **kwargs)


class _Unread:
    """
    The base of L{RequestContext}: the slot where a context made by
    L{context_from_message} keeps its message until a field is first looked
    up. Its fields are empty slots until then; looking up an empty slot
    falls through to C{__getattr__} (Python calls it only when the plain
    lookup fails, so a read context, or one made by C{__init__}, pays
    nothing for it), which fills every field from the message once
    (L{_read_message}). Setting a field first reads the others (attrs'
    C{on_setattr} hook L{_read_first}; C{__init__} does not call it), so
    the value set is kept. Two threads reading at once both read the same
    message (the GIL keeps each slot whole); only a default made then (a
    missing request id) may differ between what they saw.
    """

    __slots__ = ("_message",)

    def __getattr__(self, name: str) -> Any:
        return _read_message(self, name)  # type: ignore[arg-type]


def _read_first(ctxt: Any, attribute: Any, value: Any) -> Any:
    """
    attrs' C{on_setattr} hook of L{RequestContext}: read an unread context
    before one of its fields is set.
    """
    try:
        unread = _MESSAGE.__get__(ctxt) is not None
    except AttributeError:
        unread = False
    if unread:
        _read_message(ctxt, attribute.name)
    return value


_MESSAGE = _Unread.__dict__["_message"]


@attrs.define(on_setattr=_read_first)
class RequestContext(_Unread):
    """
    A request context, as oslo.context's and Nova's C{RequestContext}.

    Only C{user_id} and C{project_id} may be given by position (as Nova's);
    every other field is keyword-only.

    @ivar user_id: C{str} or C{None}.
    @ivar project_id: C{str} or C{None}.
    @ivar domain_id: C{str} or C{None} (C{domain} on the wire).
    @ivar user_domain_id: C{str} or C{None} (C{user_domain} on the wire).
    @ivar project_domain_id: C{str} or C{None} (C{project_domain} on the wire).
    @ivar system_scope: C{str} or C{None}.
    @ivar is_admin: C{bool}.
    @ivar read_only: C{bool}.
    @ivar show_deleted: C{bool}.
    @ivar auth_token: C{str} or C{None}; never shown by C{repr()}.
    @ivar request_id: C{req-<uuid4>} unless given.
    @ivar global_request_id: C{str} or C{None}.
    @ivar resource_uuid: C{str} or C{None}.
    @ivar roles: C{list} of C{str}.
    @ivar is_admin_project: C{bool}, C{True} by default (as oslo.context).
    @ivar read_deleted: Nova's C{"no"}, C{"yes"} or C{"only"}.
    @ivar remote_address: C{str} or C{None}.
    @ivar timestamp: a naive UTC C{datetime}, now unless given.
    @ivar quota_class: C{str} or C{None}.
    @ivar user_name: C{str} or C{None}.
    @ivar project_name: C{str} or C{None}.
    @ivar service_catalog: C{list} (Nova's filtered catalog).
    @ivar client_timeout: the call-monitor timeout the caller sent as
        C{_timeout} (seconds), C{None} for casts and unmonitored calls; set by
        the RPC server, never sent by the client as a context key.
    @ivar extra: every other key, kept and written back by L{to_dict}.
    """

    user_id: Optional[str] = None
    project_id: Optional[str] = None
    domain_id: Optional[str] = _kw(default=None)
    user_domain_id: Optional[str] = _kw(default=None)
    project_domain_id: Optional[str] = _kw(default=None)
    system_scope: Optional[str] = _kw(default=None)
    is_admin: bool = _kw(default=False)
    read_only: bool = _kw(default=False)
    show_deleted: bool = _kw(default=False)
    auth_token: Optional[str] = _kw(default=None, repr=False)
    request_id: str = _kw(factory=generate_request_id)
    global_request_id: Optional[str] = _kw(default=None)
    resource_uuid: Optional[str] = _kw(default=None)
    roles: List[str] = _kw(factory=list)
    is_admin_project: bool = _kw(default=True)
    read_deleted: str = _kw(default="no")
    remote_address: Optional[str] = _kw(default=None)
    timestamp: datetime.datetime = _kw(factory=_utcnow)
    quota_class: Optional[str] = _kw(default=None)
    user_name: Optional[str] = _kw(default=None)
    project_name: Optional[str] = _kw(default=None)
    service_catalog: List[Any] = _kw(factory=list)
    client_timeout: Optional[float] = _kw(default=None)
    extra: Dict[str, Any] = _kw(factory=dict)

    @property
    def user_identity(self) -> str:
        """
        C{"<user> <project> <domain> <user_domain> <project_domain>"} with
        C{-} for unknown parts, as oslo.context's logging identity.
        """
        user_id, project_id = self.user_id, self.project_id
        domain_id, user_domain_id, project_domain_id = self.domain_id, self.user_domain_id, self.project_domain_id
        return (f"{'-' if user_id is None else user_id} {'-' if project_id is None else project_id} "
                f"{'-' if domain_id is None else domain_id} {'-' if user_domain_id is None else user_domain_id} "
                f"{'-' if project_domain_id is None else project_domain_id}")

    def to_dict(self, prefix: str = "") -> Dict[str, Any]:
        """
        @param prefix: put in front of every key; the RPC client passes
            C{"_context_"} to get the message's entries in one step.
        @return: a new C{dict} of JSON values with the keys oslo.context's and
            Nova's C{to_dict()} write, plus every key of L{extra} (fields win
            over an C{extra} key of the same name). The timestamp is written
            in Nova's C{"%Y-%m-%dT%H:%M:%S.%f"} format.
        @rtype: C{dict}
        """
        written = (_KEYS.get(prefix) or _keys(prefix)).write(self)
        if not self.extra:
            return written
        if prefix:
            values = {prefix + key: value for key, value in self.extra.items()}
        else:
            values = dict(self.extra)
        values.update(written)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], prefix: str = "") -> "RequestContext":
        """
        Build a context from a C{dict} such as L{to_dict} or an oslo/Nova
        peer writes. Aliases are read as oslo.context and Nova read them
        (C{user_id} or C{user}; C{project_id}, C{project} or C{tenant};
        C{domain_id} or C{domain}; ...). The derived C{user_identity} is
        dropped; every other unknown key goes to L{extra}. A value of the
        wrong type is dropped (the field keeps its default), with one
        WARNING for the context (see the module docstring): a context never
        makes a request fail.

        @param values: the context entries.
        @type values: C{Mapping[str, Any]}
        @param prefix: read only the keys that start with it, without it; the
            RPC server passes C{"_context_"} and the whole decoded message
            (oslo.messaging's C{unpack_context}, in one step).
        @rtype: L{RequestContext}
        """
        return cls(**read_fields(values, prefix, _KEYS.get(prefix) or _keys(prefix)))

    def redacted_copy(self) -> "RequestContext":
        """
        @return: a copy without secrets (C{auth_token} removed), safe to log,
            as oslo.context's C{redacted_copy}.
        """
        return attrs.evolve(self, auth_token=None, extra=dict(self.extra))

    def elevated(self, read_deleted: Optional[str] = None) -> "RequestContext":
        """
        @param read_deleted: a new C{read_deleted} value, or C{None} to keep it.
        @return: an admin copy of this context (C{is_admin} set, C{"admin"}
            added to the roles), as Nova's C{RequestContext.elevated}.
        """
        roles = list(self.roles)
        if "admin" not in roles:
            roles.append("admin")
        return attrs.evolve(
            self,
            is_admin=True,
            roles=roles,
            read_deleted=self.read_deleted if read_deleted is None else read_deleted,
            extra=dict(self.extra),
        )


def _seconds(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and math.isfinite(value))


def _read_message(ctxt: "RequestContext", name: str) -> Any:
    """
    Fill the empty fields of a context made by L{context_from_message} from
    its message (once), then look C{name} up.

    @raise AttributeError: when C{name} is no field, or the context has no
        message to read (it was made by C{__init__}, a copy, or read).
    """
    if name not in _FIELD_NAMES:
        raise AttributeError(f"'RequestContext' object has no attribute {name!r}")
    try:
        message = _MESSAGE.__get__(ctxt)
    except AttributeError:
        message = None
    if message is None:
        raise AttributeError(f"'RequestContext' object has no attribute {name!r}")
    values, prefix, client_timeout = message
    try:
        fields = read_fields(values, prefix, _KEYS.get(prefix) or _keys(prefix))
    except Exception:
        _log.failure("Request context could not be read; its defaults are used")
        fields = {"extra": {}}
    fields["client_timeout"] = client_timeout if _seconds(client_timeout) else None
    _MESSAGE.__set__(ctxt, None)
    _init(ctxt, **fields)
    return object.__getattribute__(ctxt, name)


_FIELD_NAMES_IN_ORDER = tuple(field.name for field in attrs.fields(RequestContext))
_FIELD_NAMES = frozenset(_FIELD_NAMES_IN_ORDER)
_init = RequestContext.__init__
_new = object.__new__
#: The types whose C{to_dict} is L{RequestContext.to_dict}'s (the RPC
#: client writes them with the message's prefix in one step).
CONTEXT_TYPES = frozenset((RequestContext,))


def context_from_message(values: Mapping[str, Any], prefix: str, client_timeout: Any) -> RequestContext:
    """
    The L{RequestContext} that C{RequestContext.from_dict(values, prefix)}
    makes, with C{client_timeout} set (C{None} unless it is a finite
    number), read from C{values} only when a field is first looked up: a
    method that never looks at its context does not pay for it. For the
    RPC server, whose decoded message nothing changes afterwards: C{values}
    must not change until the context is read.

    @param values: the entries, e.g. a decoded request message.
    @param prefix: as L{RequestContext.from_dict}'s.
    @param client_timeout: the context's C{client_timeout}.
    @return: a L{RequestContext} whose fields are still empty slots.
    """
    ctxt = _new(RequestContext)
    _MESSAGE.__set__(ctxt, (values, prefix, client_timeout))
    return ctxt


def _keys(prefix: str) -> ContextKeys:
    """
    The key tables for C{prefix}, made on its first use.
    """
    return context_keys(prefix, (name for name in _FIELD_NAMES_IN_ORDER if name != "extra"))


def get_admin_context(read_deleted: str = "no") -> RequestContext:
    """
    @param read_deleted: C{"no"}, C{"yes"} or C{"only"}.
    @return: a context with no user or project and C{is_admin} set, as
        Nova's C{get_admin_context} (used by periodic tasks and tools).
    @rtype: L{RequestContext}
    """
    return RequestContext(user_id=None, project_id=None, is_admin=True, read_deleted=read_deleted)
