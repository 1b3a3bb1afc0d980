"""
Helpers for integration tests that need a real local service.

Outside CI a missing service skips the test; in CI (C{CI=true}) it fails it,
so a broken machine can never pass as green.
"""

import os
import socket
from unittest import SkipTest


def in_ci() -> bool:
    """
    @return: C{True} when the environment variable C{CI} is C{true}.
    """
    return os.environ.get("CI", "").lower() == "true"


def require_service(name: str, host: str, port: int) -> None:
    """
    Check that C{host}:C{port} accepts TCP connections.

    @param name: what the service is, for the message (e.g. C{"RabbitMQ"}).
    @raise SkipTest: when unreachable outside CI.
    @raise AssertionError: when unreachable in CI.
    """
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as e:
        message = f"{name} is not reachable on {host}:{port}: {e}"
        if in_ci():
            raise AssertionError(message)
        raise SkipTest(message)
