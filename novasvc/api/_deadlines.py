# -*- test-case-name: tests.test_api_site -*-
"""
Deadlines for slow clients, mixed into the API's HTTP channel: a request's
headers must all arrive within C{header_timeout} seconds of its first byte,
and its body within C{body_timeout} seconds of its headers, however the
bytes trickle in (twisted.web's own timeout restarts at each byte). Past a
deadline the client gets 408 and the connection closes. A connection over
the site's C{max_connections} gets 503 (with C{Retry-After}) and is closed
at once. The numbers are the C{api:} section's (L{novasvc.config.api}).
"""

from typing import Any, Optional

from novasvc.api.errors import error_payload, json_body

__all__ = ["ReadDeadlines"]


def _raw_answer(code: int, reason: bytes, message: str, extra: bytes = b"") -> bytes:
    body = json_body(error_payload(code, message))
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Cache-Control: no-store\r\n%sConnection: close\r\n\r\n%s"
            % (code, reason, len(body), extra, body))


class ReadDeadlines:
    """
    The mixin (before C{HTTPChannel} in the bases). It needs C{site} with
    C{header_timeout}, C{body_timeout}, C{max_connections},
    C{retry_after} and C{open_connections}, and C{callLater}.
    """

    _deadline: Optional[Any] = None
    _reading_body = False
    _over_capacity = False

    def _start_deadline(self, seconds: float, what: str) -> None:
        self._stop_deadline()
        self._deadline = self.callLater(seconds, self._too_slow, seconds, what)  # type: ignore

    def _stop_deadline(self) -> None:
        call, self._deadline = self._deadline, None
        if call is not None and call.active():
            call.cancel()

    def _too_slow(self, seconds: float, what: str) -> None:
        self._deadline = None
        transport = self.transport  # type: ignore[attr-defined]
        if transport is None:
            return
        transport.write(_raw_answer(408, b"Request Timeout",
                                    f"the request's {what} did not arrive within {seconds:g} s"))
        transport.loseConnection()

    def deadlines_connected(self) -> bool:
        """
        Count the new connection; close it with 503 when there are too
        many.

        @return: C{False} when it was refused.
        """
        site = self.site  # type: ignore[attr-defined]
        site.open_connections += 1
        if site.open_connections > site.max_connections:
            self._over_capacity = True
            self.transport.write(_raw_answer(  # type: ignore[attr-defined]
                503, b"Service Unavailable", f"the API has {site.max_connections} "
                "connections open already; retry later",
                b"Retry-After: %d\r\n" % site.retry_after))
            self.transport.loseConnection()  # type: ignore[attr-defined]
            return False
        return True

    def deadlines_data(self) -> None:
        """
        Bytes arrived: the first of a request starts its header deadline.
        """
        if self._deadline is None and not self._reading_body and not self._over_capacity:
            self._start_deadline(self.site.header_timeout, "headers")  # type: ignore

    def deadlines_headers_done(self) -> None:
        self._reading_body = True
        self._start_deadline(self.site.body_timeout, "body")  # type: ignore[attr-defined]

    def deadlines_body_done(self) -> None:
        self._stop_deadline()

    def deadlines_request_done(self) -> None:
        self._reading_body = False

    def deadlines_lost(self) -> None:
        self._stop_deadline()
        self.site.open_connections -= 1  # type: ignore[attr-defined]
