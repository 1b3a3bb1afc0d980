# -*- test-case-name: tests.test_api_errors -*-
"""
The API's error responses: every error is
C{{"error": {"code": <HTTP status>, "title": <reason phrase>, "message": <text>}}},
with C{Content-Type: application/json} (Nova's error shape, where C{code} is
the HTTP status). Client values in a message are clipped with
L{novasvc._text.clip}.
"""

import json
from http import HTTPStatus
from typing import Any, Dict, Mapping, Optional

from twisted.web.iweb import IRequest

from novasvc._text import clip

__all__ = ["APIError", "JSON_TYPE", "error_payload", "json_body", "render_encoded", "render_error",
           "render_json", "status_title"]

#: The content type of every JSON response.
JSON_TYPE = b"application/json"


def status_title(code: int) -> str:
    """
    @param code: an HTTP status.
    @return: its reason phrase (C{"Not Found"}), or C{"Error"} for a status
        HTTP does not name.
    """
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


class APIError(Exception):
    """
    An error a handler raises to answer with an error response.

    @ivar code: the HTTP status (C{int}).
    @ivar message: what went wrong, client values already clipped (C{str}).
    @ivar headers: extra response headers (C{bytes} -> C{bytes}).
    @ivar extra: extra members of the C{error} object.
    """

    def __init__(self, code: int, message: str, headers: Optional[Mapping[bytes, bytes]] = None,
                 **extra: Any) -> None:
        Exception.__init__(self, code, message)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


def error_payload(code: int, message: str, **extra: Any) -> Dict[str, Any]:
    """
    @param code: the HTTP status.
    @param message: the text; it is clipped (L{clip}) here too.
    @param extra: more members of the C{error} object.
    @return: C{{"error": {"code", "title", "message", ...}}}.
    """
    return {"error": {"code": code, "title": status_title(code), "message": clip(message), **extra}}


def json_body(payload: Any) -> bytes:
    """
    @return: C{payload} as compact UTF-8 JSON (no NaN or infinity); a
        lone surrogate is written as its C{\\uXXXX} escape.
    @raise ValueError: for a value JSON cannot show.
    """
    # A lone surrogate (a client may send one, escaped, in JSON) is
    # written as its JSON escape, which is what backslashreplace gives.
    return json.dumps(payload, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=False).encode("utf-8", "backslashreplace")


def render_json(request: IRequest, code: int, payload: Any) -> bytes:
    """
    Set the status and the JSON content type of C{request}, and
    C{Cache-Control: no-store} (answers are about now).

    @return: the body to return from C{render} (or a klein route).
    """
    return render_encoded(request, code, json_body(payload))


def render_encoded(request: IRequest, code: int, body: bytes) -> bytes:
    """
    As L{render_json}, for a body already encoded (L{json_body}).
    """
    # The reason phrase given, as twisted.web knows no name for some (431).
    request.setResponseCode(code, status_title(code).encode("ascii"))
    request.setHeader(b"Content-Type", JSON_TYPE)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.setHeader(b"Cache-Control", b"no-store")
    return body


def render_error(request: IRequest, code: int, message: str,
                 headers: Optional[Mapping[bytes, bytes]] = None, **extra: Any) -> bytes:
    """
    Answer C{request} with an error.

    @param code: the HTTP status.
    @param message: the text (clipped).
    @param headers: extra response headers.
    @param extra: more members of the C{error} object.
    @return: the body.
    """
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    return render_json(request, code, error_payload(code, message, **extra))
