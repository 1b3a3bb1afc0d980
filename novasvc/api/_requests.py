# -*- test-case-name: tests.test_api_app -*-
"""
What the routes read from a request, checked as the OpenAPI document
states, with the field named in each 400: a JSON body (L{read_json},
L{read_object}), the caller's role (L{require_admin}), C{GET
/v1/services}'s filters (L{listing_filters}), a service id of the path
(L{path_service_id}), C{DELETE}'s C{force} (L{force_flag}) and a C{PUT} body
(L{service_changes}).
"""

import json
from typing import Any, Dict

from twisted.web.iweb import IRequest

from novasvc.api.context import request_info
from novasvc.api.errors import APIError
from novasvc.db.rules import MAX_SERVICE_ID, MAX_STRING_LENGTH, unstorable
from novasvc._text import clip, quote

__all__ = ["force_flag", "listing_filters", "path_service_id", "read_json", "read_object",
           "require_admin", "service_changes"]

_JSON_TYPES = (b"application/json",)
_SERVICE_FILTERS = ("host", "binary")
_PUT_FIELDS = ("status", "disabled_reason", "forced_down")
_STATUSES = ("enabled", "disabled")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json(request: IRequest) -> Any:
    """
    The request's JSON body.

    @return: the decoded value.
    @raise APIError: 415 when the content type is not C{application/json};
        400 when the body is not JSON (or nests too deeply, or holds
        C{NaN}).
    """
    given = request.getHeader(b"content-type") or b""
    if given.split(b";", 1)[0].strip().lower() not in _JSON_TYPES:
        raise APIError(415, "the body must be JSON, sent with Content-Type: application/json")
    raw = request.content.read() if request.content is not None else b""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise APIError(400, "the body is not valid JSON") from None


def read_object(request: IRequest) -> Dict[str, Any]:
    """
    @return: the request's JSON body, an object.
    @raise APIError: as L{read_json}'s; 400 for a body that is no object.
    """
    body = read_json(request)
    if not isinstance(body, dict):
        raise APIError(400, "the body must be a JSON object")
    return body


def require_admin(request: IRequest) -> None:
    """
    @raise APIError: 403 unless the request's principal has the role
        C{admin}.
    """
    principal = request_info(request).principal
    if principal is None or not principal.is_admin:
        raise APIError(403, "this needs a token with the role 'admin'")


def listing_filters(request: IRequest) -> Dict[str, str]:
    """
    @return: C{GET /v1/services}'s filters, C{host} and C{binary}, each
        given at most once.
    @raise APIError: 400 for another parameter, a repeated one, or a value
        that is no storable text of 1 to L{MAX_STRING_LENGTH} characters.
    """
    filters: Dict[str, str] = {}
    for raw, values in (request.args or {}).items():
        name = raw.decode("utf-8", "replace")
        if name not in _SERVICE_FILTERS:
            raise APIError(400, f"unknown query parameter {quote(name)}; "
                           f"accepted: {', '.join(_SERVICE_FILTERS)}")
        if len(values) != 1:
            raise APIError(400, f"query parameter {name!r} is given {len(values)} times")
        try:
            value = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, f"query parameter {name!r} is not UTF-8") from None
        if not 1 <= len(value) <= MAX_STRING_LENGTH:
            raise APIError(400, f"query parameter {name!r} must be 1 to "
                           f"{MAX_STRING_LENGTH} characters long")
        problem = unstorable(value)
        if problem is not None:
            raise APIError(400, f"query parameter {name!r} {problem}", field=name)
        filters[name] = value
    return filters


def path_service_id(service_id: int) -> int:
    """
    @param service_id: the id in C{/v1/services/{id}}.
    @return: C{service_id}.
    @raise APIError: 404 for an id no row can have (not 1 to
        L{novasvc.db.rules.MAX_SERVICE_ID}).
    """
    if not 1 <= service_id <= MAX_SERVICE_ID:
        raise APIError(404, f"no service with id {clip(str(service_id))}")
    return service_id


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
