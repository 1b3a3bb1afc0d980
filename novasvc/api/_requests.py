# -*- test-case-name: tests.test_api_app -*-
"""
What the services routes read from a request: C{DELETE}'s C{force}
(L{force_flag}) and a C{PUT} body (L{service_changes}), checked as the
OpenAPI document states, with the field named in each 400.
"""

from typing import Any, Dict

from twisted.web.iweb import IRequest

from novasvc.api.errors import APIError
from novasvc.db.rules import MAX_STRING_LENGTH, unstorable
from novasvc._text import quote

__all__ = ["force_flag", "service_changes"]

_PUT_FIELDS = ("status", "disabled_reason", "forced_down")
_STATUSES = ("enabled", "disabled")


def force_flag(request: IRequest) -> bool:
    """
    @return: the C{force} query parameter of a C{DELETE} (C{true} or
        C{false}; default C{false}).
    @raise APIError: 400 for another parameter, a repeated one or another
        value.
    """
    force = False
    for raw, values in (request.args or {}).items():
        name = raw.decode("utf-8", "replace")
        if name != "force":
            raise APIError(400, f"unknown query parameter {quote(name)}; accepted: force")
        if len(values) != 1:
            raise APIError(400, f"query parameter 'force' is given {len(values)} times")
        if values[0] not in (b"true", b"false"):
            raise APIError(400, "query parameter 'force': expected true or false, got "
                           f"{quote(values[0].decode('utf-8', 'replace'))}")
        force = values[0] == b"true"
    return force


def service_changes(body: Dict[str, Any]) -> Dict[str, Any]:
    """
    The store update a C{PUT /v1/services/{id}} body asks for (Nova's 2.53
    C{PUT /os-services/{id}}).

    @raise APIError: 400 naming the field for an unknown field, a wrong type,
        a reason without C{"status": "disabled"}, or neither C{status} nor
        C{forced_down}.
    """
    unknown = sorted(str(key) for key in body if key not in _PUT_FIELDS)
    if unknown:
        raise APIError(400, f"unknown field {quote(unknown[0])}; accepted: "
                       f"{', '.join(_PUT_FIELDS)}")
    if "status" not in body and "forced_down" not in body:
        raise APIError(400, "give 'status' (enabled or disabled), 'forced_down', or both")
    changes: Dict[str, Any] = {}
    status = body.get("status")
    if "status" in body and status not in _STATUSES:
        raise APIError(400, f"status: expected 'enabled' or 'disabled', got {quote(status)}")
    reason = body.get("disabled_reason")
    if "disabled_reason" in body:
        if status != "disabled":
            raise APIError(400, "disabled_reason: only given with \"status\": \"disabled\"")
        if reason is not None and (not isinstance(reason, str)
                                   or not 1 <= len(reason) <= MAX_STRING_LENGTH):
            raise APIError(400, f"disabled_reason: expected a string of 1 to "
                           f"{MAX_STRING_LENGTH} characters or null, got {quote(reason)}")
        problem = unstorable(reason) if reason is not None else None
        if problem is not None:
            raise APIError(400, f"disabled_reason {problem}", field="disabled_reason")
    if status == "disabled":
        changes.update(disabled=True, disabled_reason=reason)
    elif status == "enabled":
        changes.update(disabled=False, disabled_reason=None)
    if "forced_down" in body:
        if not isinstance(body["forced_down"], bool):
            raise APIError(400, f"forced_down: expected true or false, "
                           f"got {quote(body['forced_down'])}")
        changes["forced_down"] = body["forced_down"]
    return changes
