"""
novasvc: the Nova service framework (Service, Manager, Driver) as a Twisted
daemon, speaking the oslo.messaging RabbitMQ wire format.

The public API is importable from here (C{from novasvc import Manager,
periodic_task, Target}); each name is imported from its module on first use,
so C{import novasvc} stays cheap.
"""

from novasvc._lazy import lazy_exports
from novasvc._version import __version__  # noqa: F401 (re-exported)

# name -> the module defining it
_EXPORTS = {
    # writing a service
    "Manager": "novasvc.core.manager",
    "periodic_task": "novasvc.periodic",
    "Opt": "novasvc.config.options",
    "DriverOpt": "novasvc.config.options",
    "load_driver": "novasvc.config.loader",
    "load_object": "novasvc.config.loader",
    "RequestContext": "novasvc.context",
    "get_admin_context": "novasvc.context",
    # running one
    "Service": "novasvc.core.service",
    "Config": "novasvc.config",
    "load_config": "novasvc.config",
    "is_up": "novasvc.core.servicegroup",
    # calling one
    "Target": "novasvc.rpc.target",
    "RPCClient": "novasvc.rpc.client",
    "get_transport": "novasvc.transport",
    # objects on the wire
    "ISerializer": "novasvc.rpc.serializer",
    "NoOpSerializer": "novasvc.rpc.serializer",
    "RequestContextSerializer": "novasvc.rpc.serializer",
    # errors
    "RemoteError": "novasvc.rpc.errors",
    "MessagingTimeout": "novasvc.rpc.errors",
    "NoSuchMethod": "novasvc.rpc.errors",
    "UnsupportedVersion": "novasvc.rpc.errors",
    "ConfigError": "novasvc.exceptions",
    "LoadError": "novasvc.exceptions",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
