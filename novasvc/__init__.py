"""
novasvc: the Nova service framework (Service, Manager, Driver) as a Twisted
daemon, speaking the oslo.messaging RabbitMQ wire format.

The public API is importable from here (C{from novasvc import Manager,
periodic_task, Target}); each name is imported from its module on first use,
so C{import novasvc} stays cheap.
"""

import importlib
from typing import Any, List

__version__ = "0.1.0"

# name -> the module defining it
_EXPORTS = {
    # writing a service
    "Manager": "novasvc.manager",
    "periodic_task": "novasvc.periodic",
    "Opt": "novasvc.options",
    "DriverOpt": "novasvc.options",
    "load_driver": "novasvc.loader",
    "load_object": "novasvc.loader",
    "RequestContext": "novasvc.context",
    "get_admin_context": "novasvc.context",
    # running one
    "Service": "novasvc.service",
    "Config": "novasvc.config",
    "load_config": "novasvc.config",
    "is_up": "novasvc.servicegroup",
    # calling one
    "Target": "novasvc.rpc.target",
    "RPCClient": "novasvc.rpc.client",
    "get_transport": "novasvc.transport",
    # errors
    "RemoteError": "novasvc.rpc.errors",
    "MessagingTimeout": "novasvc.rpc.errors",
    "NoSuchMethod": "novasvc.rpc.errors",
    "UnsupportedVersion": "novasvc.rpc.errors",
    "ConfigError": "novasvc.exceptions",
    "LoadError": "novasvc.exceptions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'novasvc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup skips this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
