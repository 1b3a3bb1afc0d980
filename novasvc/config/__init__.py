"""
The configuration layer: one YAML file read with file-and-line errors
(L{load_config}), the validated, immutable L{Config} with its built-in
sections, the options managers and drivers declare for their own sections
(L{novasvc.config.options}), the C{api:} section (L{novasvc.config.api}) and
the loading of drivers and objects by dotted path or entry-point alias
(L{novasvc.config.loader}).

The layer imports only the base modules (L{novasvc.exceptions},
L{novasvc.interfaces}, L{novasvc._text}, ...) and L{novasvc.transport.url}
for the transport URL; nothing from the layers above (RPC, database,
service, API). Each name here is imported from its module on first use, so
that C{import novasvc.config.loader} does not bring the rest.
"""

from novasvc._lazy import lazy_exports

# name -> the module defining it
_EXPORTS = {
    "Config": "novasvc.config._config",
    "managers_from": "novasvc.config._config",
    "DEFAULT_TRANSPORT_URL": "novasvc.config._config",
    "load_config": "novasvc.config._load",
    "DatabaseConfig": "novasvc.config._sections",
    "TracingConfig": "novasvc.config._sections",
    "NotificationsConfig": "novasvc.config._sections",
    "NOTIFICATION_DRIVERS": "novasvc.config._sections",
    "LOG_LEVELS": "novasvc.config._keys",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
