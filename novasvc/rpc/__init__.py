# -*- test-case-name: tests.test_rpc_client -*-
"""
RPC in the oslo.messaging wire format over an
L{novasvc.interfaces.ITransport}: L{RPCClient} (call, cast, fanout),
L{RPCServer} (consume a topic, dispatch to endpoints, reply), the
L{RPCDispatcher} rules, L{Target} and the errors that cross the wire.

The message format itself lives in L{novasvc.rpc.wire}; the request context
in L{novasvc.context}.
"""

from novasvc.rpc.client import RPCClient
from novasvc.rpc.dispatcher import BaseRPCAPI, RPCDispatcher
from novasvc.rpc.errors import (
    InvalidTarget,
    MalformedMessage,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    RPCError,
    RPCVersionCapError,
    UnsupportedVersion,
)
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target, version_is_compatible

__all__ = [
    "RPCClient",
    "RPCServer",
    "RPCDispatcher",
    "BaseRPCAPI",
    "Target",
    "version_is_compatible",
    "RPCError",
    "MessagingTimeout",
    "RemoteError",
    "NoSuchMethod",
    "UnsupportedVersion",
    "InvalidTarget",
    "RPCVersionCapError",
    "MalformedMessage",
]
