# -*- test-case-name: tests.test_rpc_client -*-
"""
RPC in the oslo.messaging wire format over an
L{novasvc.interfaces.ITransport}: L{RPCClient} (call, cast, fanout),
L{RPCServer} (consume a topic, dispatch to endpoints, reply), the
L{RPCDispatcher} rules, L{Target} and the errors that cross the wire.

The message format itself lives in L{novasvc.rpc.wire}; the request context
in L{novasvc.context}. Each name here is imported from its module on first
use, so a service that only serves does not load the client.

Layer: above the transport (L{novasvc.transport}) and the configuration
(L{novasvc.config}: the serializer loads by dotted path); beside L{novasvc.db}
and L{novasvc.periodic}, which it never imports; below the notifications,
tracing and the core.
"""

from typing import TYPE_CHECKING

from novasvc._lazy import lazy_exports

if TYPE_CHECKING:
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

# name -> the module defining it (the client also brings novasvc.tracing)
_EXPORTS = {
    "RPCClient": "novasvc.rpc.client",
    "RPCServer": "novasvc.rpc.server",
    "RPCDispatcher": "novasvc.rpc.dispatcher",
    "BaseRPCAPI": "novasvc.rpc.dispatcher",
    "Target": "novasvc.rpc.target",
    "version_is_compatible": "novasvc.rpc.target",
    "RPCError": "novasvc.rpc.errors",
    "MessagingTimeout": "novasvc.rpc.errors",
    "RemoteError": "novasvc.rpc.errors",
    "NoSuchMethod": "novasvc.rpc.errors",
    "UnsupportedVersion": "novasvc.rpc.errors",
    "InvalidTarget": "novasvc.rpc.errors",
    "RPCVersionCapError": "novasvc.rpc.errors",
    "MalformedMessage": "novasvc.rpc.errors",
}

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

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
