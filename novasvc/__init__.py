"""
novasvc: the Nova service framework (Service, Manager, Driver) as a Twisted
daemon, speaking the oslo.messaging RabbitMQ wire format.

The public API is importable from here (C{from novasvc import Manager,
periodic_task, Target}); each name is imported from its module on first use,
so C{import novasvc} stays cheap.
"""

import importlib
from typing import Any, Dict, List, Mapping

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
    # objects on the wire
    "ISerializer": "novasvc.serializer",
    "NoOpSerializer": "novasvc.serializer",
    "RequestContextSerializer": "novasvc.serializer",
    # errors
    "RemoteError": "novasvc.rpc.errors",
    "MessagingTimeout": "novasvc.rpc.errors",
    "NoSuchMethod": "novasvc.rpc.errors",
    "UnsupportedVersion": "novasvc.rpc.errors",
    "ConfigError": "novasvc.exceptions",
    "LoadError": "novasvc.exceptions",
}

__all__ = sorted(_EXPORTS)


def _lazy_attribute(package: str, namespace: Dict[str, Any], exports: Mapping[str, str],
                    name: str) -> Any:
    """
    The body of a package's C{__getattr__} (PEP 562) for the names it
    exports from its modules, each imported on first use (this package's,
    L{novasvc.rpc}'s and L{novasvc.tracing}'s).

    @param package: the package's dotted name, for the error.
    @param namespace: the package's C{globals()}: the value is kept there,
        so the next lookup skips C{__getattr__}.
    @param exports: each exported name -> the dotted name of its module.
    @param name: the name looked up.
    @return: the object C{name} is in its module.
    @raise AttributeError: if the package does not export C{name}.
    """
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value


def __getattr__(name: str) -> Any:
    return _lazy_attribute(__name__, globals(), _EXPORTS, name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
