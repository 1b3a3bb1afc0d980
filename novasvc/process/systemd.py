# -*- test-case-name: tests.test_process_systemd -*-
"""
systemd's readiness notification (the C{sd_notify} protocol), so that a unit
with C{Type=notify} (see C{etc/novasvc-echo.service}) counts the service as
started only once it is ready, and shows what it is doing.

A notification is one datagram of C{NAME=value} lines (C{READY=1},
C{STOPPING=1}, C{STATUS=...}, C{MAINPID=...}) sent to the C{AF_UNIX}
datagram socket that systemd names in the environment variable
C{NOTIFY_SOCKET}: a filesystem path, or, with a leading C{@}, a name in
Linux's abstract socket namespace. When the variable is unset (the process
was not started by systemd) nothing is sent.
"""

import os
import socket
from typing import List, Mapping, Optional

from twisted.logger import Logger

__all__ = ["Notifier"]

_log = Logger()


def _address(name: str) -> str:
    """
    @param name: the value of C{NOTIFY_SOCKET}.
    @return: the address to give C{sendto}: the path itself, or the abstract
        name with its C{@} turned into the leading NUL byte Linux expects.
    @raise ValueError: for any other form (a relative path, or systemd's
        C{vsock:} addresses, which are not supported).
    """
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    raise ValueError("expected an absolute path or an abstract socket name starting with '@'")


class Notifier:
    """
    Sends systemd notifications for this process.

    Sending never raises and never waits: each message goes out on a fresh
    non-blocking socket, and a failure (no such socket, systemd not
    listening, its queue full) is logged as one warning and reported by the
    C{False} return value, so a service may call these methods from the
    reactor thread at any point of its life.

    @ivar socket_name: the value of C{NOTIFY_SOCKET} when this notifier was
        made, or C{None} when it was unset or empty (then every method does
        nothing and returns C{False}).
    @type socket_name: C{str} or C{None}
    """

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        """
        @param environ: the process environment, read once here; default:
            C{os.environ}.
        @type environ: mapping of C{str} to C{str}
        """
        if environ is None:
            environ = os.environ
        self.socket_name: Optional[str] = environ.get("NOTIFY_SOCKET") or None

    def ready(self, status: Optional[str] = None, mainpid: Optional[int] = None) -> bool:
        """
        Tell systemd that start-up is complete (C{READY=1}).

        @param status: a one-line status text to show with it (see
            L{status}).
        @type status: C{str} or C{None}
        @param mainpid: the process id systemd should watch as the main one,
            when it is not the process systemd started (C{MAINPID=}).
        @type mainpid: C{int} or C{None}
        @return: whether the message was sent.
        @rtype: C{bool}
        @raise ValueError: if C{mainpid} is not a positive C{int}.
        """
        lines = ["READY=1"]
        if mainpid is not None:
            if isinstance(mainpid, bool) or not isinstance(mainpid, int) or mainpid < 1:
                raise ValueError(f"mainpid must be a positive process id, got {mainpid!r}")
            lines.append(f"MAINPID={mainpid}")
        return self._send(lines, status)

    def stopping(self, status: Optional[str] = None) -> bool:
        """
        Tell systemd that the service is shutting down (C{STOPPING=1}), so
        that it knows the stop was asked for while the service drains.

        @param status: a one-line status text to show with it.
        @type status: C{str} or C{None}
        @return: whether the message was sent.
        @rtype: C{bool}
        """
        return self._send(["STOPPING=1"], status)

    def status(self, text: str) -> bool:
        """
        Set the free-form status line that C{systemctl status} shows
        (C{STATUS=}).

        @param text: the status; line breaks are sent as spaces, since each
            line of a notification is an assignment of its own.
        @type text: C{str}
        @return: whether the message was sent.
        @rtype: C{bool}
        """
        return self._send([], text)

    def _send(self, lines: List[str], status: Optional[str]) -> bool:
        """
        Send C{lines}, plus C{STATUS=status} when given, as one datagram.

        @return: whether it was sent; C{False} without a socket name, or
            after logging why the send failed.
        """
        if self.socket_name is None:
            return False
        if status is not None:
            lines = lines + ["STATUS=" + " ".join(status.splitlines())]
        message = "\n".join(lines)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(message.encode("utf-8"), _address(self.socket_name))
        except Exception as e:  # OSError above all; nothing may reach the caller.
            _log.warn(
                "Could not notify systemd of {notification!r} "
                "through NOTIFY_SOCKET={socket_name}: {error}",
                notification=message,
                socket_name=self.socket_name,
                error=e,
            )
            return False
        return True
