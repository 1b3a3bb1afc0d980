# -*- test-case-name: tests.test_api_openapi -*-
"""
The OpenAPI 3.0 document of the API, served at C{GET /v1/openapi.json}.

It is written here as data, next to nothing else, and kept in step with the
routes of L{novasvc.api.app} by a test that walks both.
"""

import copy
from typing import Any, Dict

from novasvc.config.api import HEALTH_TIMEOUT
from novasvc.db.rules import MAX_SERVICE_ID, MAX_STRING_LENGTH

__all__ = ["METHOD_PATTERN", "NAME_PATTERN", "document"]


def _ref(name: str) -> Dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Dict[str, Any], description: str) -> Dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Dict[str, Any]:
    return _json(_ref("Error"), description)


_AUTH_ERRORS = {
    "401": _error("No bearer token, or one that is not valid (with WWW-Authenticate: Bearer)."),
    "403": _error("The token's role does not allow this, or no token is configured and the "
                  "client is not on a loopback address."),
}
_BODY_ERRORS = {
    "400": _error("The body is not valid JSON, or a field is missing or wrong (named in the "
                  "message)."),
    "415": _error("The body is not sent as application/json."),
}
_SERVICE_ID = {
    "name": "service_id",
    "in": "path",
    "required": True,
    "description": "The service's id; any other value (not an integer from 1 to "
                   f"{MAX_SERVICE_ID}) is not found (404).",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SERVICE_ID},
}
_NOT_FOUND = _error("No live service has this id.")
#: L{novasvc.api.gateway.TOPIC_MAX_LENGTH}, without importing the gateway.
_TOPIC_MAX_LENGTH = 215
#: Text a database column can hold: no NUL (and, as JSON and UTF-8 have
#: it, no lone surrogate).
_STORABLE = "^[^\\u0000]*$"
_REASON = {"type": "string", "minLength": 1, "maxLength": MAX_STRING_LENGTH, "nullable": True,
           "pattern": _STORABLE}
_FILTER = {"type": "string", "minLength": 1, "maxLength": MAX_STRING_LENGTH,
           "pattern": _STORABLE}
#: The gateway's C{method}: an ASCII identifier not starting with C{_}.
METHOD_PATTERN = "^[A-Za-z][A-Za-z0-9_]*$"
#: The gateway's C{server} and C{namespace}: printable ASCII, no space.
NAME_PATTERN = "^[!-~]+$"
_UNAVAILABLE = {
    "description": "The database is down, not open yet, or did not answer within 3 s "
                   "(type DatabaseUnavailable), with Retry-After.",
    "headers": {"Retry-After": {"schema": {"type": "integer"},
                                "description": "Seconds to wait before trying again."}},
    "content": {"application/json": {"schema": _ref("Error")}},
}

_SCHEMAS: Dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "title", "message"],
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status."},
                    "title": {"type": "string", "description": "The status's reason phrase."},
                    "message": {"type": "string"},
                    "type": {"type": "string",
                             "description": "The RPC gateway's name for the error, e.g. "
                                            "BadRequest, NoSuchMethod, MessagingTimeout."},
                    "field": {"type": "string",
                              "description": "The field or query parameter at fault."},
                },
            },
        },
    },
    "Check": {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "checks": {
                "type": "object",
                "required": ["broker", "database"],
                "properties": {"broker": _ref("Check"), "database": _ref("Check")},
            },
        },
    },
    "Service": {
        "type": "object",
        "required": ["id", "host", "binary", "topic", "status", "state", "updated_at",
                     "disabled_reason", "forced_down"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "host": {"type": "string"},
            "binary": {"type": "string"},
            "topic": {"type": "string", "nullable": True},
            "status": {"type": "string", "enum": ["enabled", "disabled"]},
            "state": {"type": "string", "enum": ["up", "down"],
                      "description": "Down when forced_down, or when the last report is "
                                     "older than service_down_time."},
            "updated_at": {"type": "string", "format": "date-time", "nullable": True,
                           "description": "ISO 8601, UTC, ending in Z."},
            "disabled_reason": {"type": "string", "nullable": True},
            "forced_down": {"type": "boolean"},
        },
    },
    "ServiceUpdate": {
        "description": "As Nova's PUT /os-services/{id} (microversion 2.53): disable with a "
                       "reason, enable (which clears the reason), set forced_down, or both.",
        "oneOf": [
            {"type": "object", "required": ["status"], "additionalProperties": False,
             "properties": {"status": {"type": "string", "enum": ["disabled"]},
                            "disabled_reason": _REASON,
                            "forced_down": {"type": "boolean"}}},
            {"type": "object", "required": ["status"], "additionalProperties": False,
             "properties": {"status": {"type": "string", "enum": ["enabled"]},
                            "forced_down": {"type": "boolean"}}},
            {"type": "object", "required": ["forced_down"], "additionalProperties": False,
             "properties": {"forced_down": {"type": "boolean"}}},
        ],
    },
    "RPCRequest": {
        "type": "object",
        "required": ["method"],
        "additionalProperties": False,
        "example": {"method": "echo", "args": {"value": "hello"}},
        # fanout: true needs cast: true and no server.
        "anyOf": [
            {"properties": {"fanout": {"enum": [False, None], "nullable": True}}},
            {"required": ["cast"], "properties": {"cast": {"enum": [True]},
                                                  "server": {"enum": [None], "nullable": True}}},
        ],
        "properties": {
            "method": {"type": "string", "minLength": 1, "maxLength": 255,
                       "pattern": METHOD_PATTERN,
                       "description": "A public method of the topic's manager: a Python "
                                      "identifier not starting with _."},
            "args": {"type": "object", "nullable": True,
                     "description": "Its keyword arguments (default {})."},
            "server": {"type": "string", "minLength": 1, "maxLength": 255, "nullable": True,
                       "pattern": NAME_PATTERN,
                       "description": "Send to this host's server only (no spaces). When "
                                      "<topic>.<server> is over 255 bytes no queue can have "
                                      "that name: 503 UnroutableError, not sent."},
            "cast": {"type": "boolean", "default": False, "nullable": True,
                     "description": "Send without waiting for a result (202)."},
            "timeout": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                        "nullable": True,
                        "description": "Seconds to wait for the result, or for the broker to "
                                       "take a cast: at most 600, or rpc_response_timeout if "
                                       "longer (default rpc_response_timeout)."},
            "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+(\.[0-9]+)?$",
                        "nullable": True, "description": "The RPC API version asked for."},
            "namespace": {"type": "string", "minLength": 1, "maxLength": 255, "nullable": True,
                          "pattern": NAME_PATTERN,
                          "description": "The endpoint namespace."},
            "fanout": {"type": "boolean", "default": False, "nullable": True,
                       "description": "Cast to every server of the topic (needs cast; not "
                                      "with server)."},
        },
    },
    "RPCResult": {
        "type": "object",
        "required": ["result"],
        "properties": {"result": {"description": "What the method returned (any JSON)."}},
    },
    "RPCAccepted": {
        "type": "object",
        "description": "A cast a queue took, as the broker confirmed.",
        "required": ["accepted", "request_id"],
        "properties": {"accepted": {"type": "boolean", "enum": [True]},
                       "request_id": {"type": "string"}},
    },
    "RemoteError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "title", "message", "type"],
                "properties": {
                    "code": {"type": "integer"},
                    "title": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string", "enum": ["RemoteError"]},
                    "exc_type": {"type": "string",
                                 "description": "The class of the remote exception."},
                },
            },
        },
    },
}


def _health_description(seconds: float) -> str:
    return ("Public (no token), for load balancers. The database check waits at most "
            f"{seconds:g} s (api.health_timeout).")


_PATHS: Dict[str, Any] = {
    "/": {
        "get": {
            "summary": "The status page: the services, up or down, as HTML.",
            "operationId": "statusPage",
            "responses": {
                "200": {"description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}}},
                **_AUTH_ERRORS,
                "503": {"description": "The database is unavailable: the page, with a "
                                       "'Database unreachable since' banner above the services "
                                       "as last read, and Retry-After.",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {"text/html": {"schema": {"type": "string"}}}},
            },
        },
    },
    "/healthz": {
        "get": {
            "summary": "Whether the process is up and reaches the broker and the database.",
            "description": _health_description(HEALTH_TIMEOUT),
            "operationId": "health",
            "security": [],
            "responses": {
                "200": _json(_ref("Health"), "Everything is reachable."),
                "503": {**_json(_ref("Health"), "The broker or the database is not reachable."),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
            },
        },
    },
    "/metrics": {
        "get": {
            "summary": "Metrics in Prometheus's text format.",
            "operationId": "metrics",
            "responses": {
                "200": {"description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_AUTH_ERRORS,
                "501": _error("prometheus_client is not installed (pip install "
                              "'novasvc[api]')."),
            },
        },
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This document.",
            "operationId": "openapi",
            "responses": {
                "200": _json({"type": "object"}, "The OpenAPI document."),
                **_AUTH_ERRORS,
            },
        },
    },
    "/v1/services": {
        "get": {
            "summary": "The live services (Nova's os-services).",
            "operationId": "listServices",
            "parameters": [
                {"name": "host", "in": "query", "schema": _FILTER,
                 "description": "Only the services on this host."},
                {"name": "binary", "in": "query", "schema": _FILTER,
                 "description": "Only the services with this binary."},
            ],
            "responses": {
                "200": _json({"type": "object", "required": ["services"],
                              "properties": {"services": {"type": "array",
                                                          "items": _ref("Service")}}},
                             "The services, by id."),
                "400": _error("An unknown or repeated query parameter, an empty one, or one "
                              "the database cannot hold (NUL); field names it."),
                **_AUTH_ERRORS,
                "503": _UNAVAILABLE,
            },
        },
    },
    "/v1/services/{service_id}": {
        "parameters": [_SERVICE_ID],
        "get": {
            "summary": "One service.",
            "operationId": "showService",
            "responses": {
                "200": _json({"type": "object", "required": ["service"],
                              "properties": {"service": _ref("Service")}}, "The service."),
                **_AUTH_ERRORS,
                "404": _NOT_FOUND,
                "503": _UNAVAILABLE,
            },
        },
        "put": {
            "summary": "Disable (with a reason) or enable a service, or set forced_down.",
            "operationId": "updateService",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("ServiceUpdate")}}},
            "responses": {
                "200": _json({"type": "object", "required": ["service"],
                              "properties": {"service": _ref("Service")}},
                             "The updated service."),
                **_BODY_ERRORS,
                **_AUTH_ERRORS,
                "404": _NOT_FOUND,
                "503": _UNAVAILABLE,
            },
        },
        "delete": {
            "summary": "Delete a service (a soft delete, as Nova's).",
            "description": "A service that is up is not deleted (409) unless force is true.",
            "operationId": "deleteService",
            "parameters": [{"name": "force", "in": "query", "required": False,
                            "schema": {"type": "boolean", "default": False},
                            "description": "Delete it even though it is up."}],
            "responses": {
                "204": {"description": "Deleted."},
                "400": _error("An unknown or repeated query parameter, or force neither "
                              "true nor false."),
                **_AUTH_ERRORS,
                "404": _NOT_FOUND,
                "409": _error("The service is up (type ServiceIsUp): stop it first, or "
                              "give force=true."),
                "503": _UNAVAILABLE,
            },
        },
    },
    "/v1/rpc/{topic}": {
        "parameters": [{"name": "topic", "in": "path", "required": True,
                        "schema": {"type": "string", "minLength": 1,
                                   "maxLength": _TOPIC_MAX_LENGTH,
                                   "pattern": "^[A-Za-z0-9_.:-]+$"},
                        "example": "echo",
                        "description": "The RPC topic, e.g. echo or volume."}],
        "post": {
            "summary": "Call or cast a method of the topic's service over RPC (admin only).",
            "operationId": "rpc",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("RPCRequest")}}},
            "responses": {
                "200": _json(_ref("RPCResult"), "The call's result."),
                "202": _json(_ref("RPCAccepted"), "The cast was sent."),
                **_BODY_ERRORS,
                **_AUTH_ERRORS,
                "404": _error("The topic's servers have no such method (NoSuchMethod), or "
                              "none at that version or in that namespace "
                              "(UnsupportedVersion)."),
                "500": _error("Anything else (InternalError); the message gives the request "
                              "id, the server's log the details."),
                "502": _json(_ref("RemoteError"), "The method raised an exception."),
                "503": {**_error("No server takes the topic, or that server "
                                 "(UnroutableError; also when <topic>.<server> is over 255 "
                                 "bytes), the broker did not take the request or lost it "
                                 "(TransportError, DisconnectedError), the broker is not "
                                 "connected (BrokerUnavailable: not sent), or the gateway is "
                                 "stopping; with Retry-After."),
                        "headers": _UNAVAILABLE["headers"]},
                "504": _error("No result within the timeout (MessagingTimeout)."),
            },
        },
    },
}

_DOCUMENT: Dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "novasvc API",
        "version": "1.0",
        "description": "The services table, health, metrics and an RPC gateway of a novasvc "
                       "deployment. Every error is {\"error\": {\"code\": <HTTP status>, "
                       "\"title\": <reason>, \"message\": <text>}}. GET and HEAD need a token "
                       "with the role reader or admin; everything else needs admin. With no "
                       "token configured, loopback clients are admin and others refused.",
    },
    "security": [{"bearer": []}],
    "paths": _PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": _SCHEMAS,
    },
}


def document(tokens: bool = True, max_timeout: float = 600,
             health_timeout: float = HEALTH_TIMEOUT) -> Dict[str, Any]:
    """
    @param tokens: whether bearer tokens are configured: only then does
        the document declare bearer security (without, loopback clients are
        served as they are).
    @param max_timeout: the gateway's longest C{timeout}, B{seconds}.
    @param health_timeout: B{seconds} the database check of C{/healthz}
        waits (C{api.health_timeout}).
    @return: the OpenAPI document (a new copy, which the caller may change).
    """
    found = copy.deepcopy(_DOCUMENT)
    found["components"]["schemas"]["RPCRequest"]["properties"]["timeout"]["maximum"] = max_timeout
    found["paths"]["/healthz"]["get"]["description"] = _health_description(health_timeout)
    if not tokens:
        del found["security"]
        del found["components"]["securitySchemes"]
        del found["paths"]["/healthz"]["get"]["security"]
        for path in found["paths"].values():
            for operation in path.values():
                if isinstance(operation, dict):
                    operation.get("responses", {}).pop("401", None)
    return found
