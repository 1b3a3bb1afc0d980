# -*- test-case-name: tests.test_cli_rpc -*-
"""
How C{novasvc-rpc} ends: its exit statuses and the one line on stderr that
says why a command failed.

Public through L{novasvc.cli.rpc}.
"""

from novasvc.exceptions import TransportError
from novasvc.rpc.errors import RemoteError, RPCError

__all__ = ["EXIT_OK", "EXIT_REMOTE_ERROR", "EXIT_TIMEOUT", "EXIT_USAGE", "describe_error"]

#: The request succeeded.
EXIT_OK = 0
#: The remote method raised, or the request could not be sent.
EXIT_REMOTE_ERROR = 1
#: No reply (call) or no broker confirmation (cast) within C{--timeout}.
EXIT_TIMEOUT = 2
#: Bad command-line arguments, configuration file or argument file
#: (sysexits' C{EX_USAGE}).
EXIT_USAGE = 64


def describe_error(error: BaseException) -> str:
    """
    @param error: why a call, cast or notification failed.
    @return: the line C{novasvc-rpc} prints for it: C{Remote error: <class>
        <message>} for what the remote method raised (the class the server
        raised, also when it was rebuilt from C{allowed_remote_exmods}),
        C{error: <message>} for what kept the request from being sent.
    """
    if isinstance(error, RemoteError):
        return str(error)
    if isinstance(error, (RPCError, TransportError)) or not str(error):
        return f"error: {error or type(error).__name__}"
    name = type(error).__name__
    if type(error).__module__.endswith("_Remote"):
        # Rebuilt from allowed_remote_exmods: show the class the server raised.
        name = name.removesuffix("_Remote")
    return f"Remote error: {name} {error}"
