# -*- test-case-name: tests.test_config -*-
"""
The keys of the configuration file that L{novasvc.config.Config} knows, and
the checker of each: a checker takes the YAML value and returns the value to
keep, or raises L{Bad} with a phrase saying what was expected. The general
checkers are in L{novasvc.config._checks}, shared with
L{novasvc.config.api}.
"""

from typing import Any, Callable, Dict, Optional, Tuple

from novasvc.config._checks import Bad
from novasvc.config._checks import boolean as _boolean
from novasvc.config._checks import integer as _integer
from novasvc.config._checks import number as _number
from novasvc.config._sections import NOTIFICATION_DRIVERS, NOTIFICATION_FORMATS, TRACING_EXPORTERS
from novasvc.config.loader import is_dotted_path
from novasvc.exceptions import ConfigError
from novasvc.transport.url import TransportURL

__all__ = ["CHECKS", "DATABASE_CHECKS", "TRACING_CHECKS", "NOTIFICATIONS_CHECKS", "MAPPINGS",
           "SECRET", "MANAGER_SUFFIX", "LOG_LEVELS"]

#: The values of C{log_level}, from the most verbose.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _seconds(positive: bool = False, nullable: bool = False) -> Callable[[Any], Any]:
    return _number(0, positive, nullable)


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Bad("a non-empty string")
    return value


def _name_or_null(value: Any) -> Optional[str]:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise Bad("a non-empty string or null")
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise Bad("one of " + ", ".join(repr(c) for c in choices))
        return value
    return check


def _module_names(value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(
            is_dotted_path(item) and ":" not in item for item in value):
        raise Bad("a list of module names such as [myproject.exceptions]")
    return tuple(value)


def _dotted_path(value: Any) -> str:
    if not is_dotted_path(value):
        raise Bad("a dotted path such as mypackage.db.api.Database")
    return value


def _dotted_path_or_null(value: Any) -> Optional[str]:
    if value is not None and not is_dotted_path(value):
        raise Bad("a dotted path such as mypackage.rpc.Serializer, or null")
    return value


def _transport_url(value: Any) -> str:
    _string(value)
    try:
        TransportURL.parse(value)
    except ConfigError as e:
        # TransportURL's message starts with the key and hides the password.
        raise Bad(str(e).removeprefix("transport_url ")) from None
    except ValueError:
        raise Bad("a URL such as rabbit://user:password@host:5672/vhost") from None
    return value


def _file_name(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Bad("a file name or null")
    return value


def _database_url(value: Any) -> str:
    from sqlalchemy.engine import make_url

    _string(value)
    try:
        make_url(value)
    except Exception:
        # The reason may quote part of the URL: do not show it.
        raise Bad("an SQLAlchemy URL such as postgresql://user:password@host/dbname") from None
    return value


def _notification_drivers(value: Any) -> Tuple[str, ...]:
    names = [value] if isinstance(value, str) else ([] if value is None else value)
    if (not isinstance(names, list) or not all(isinstance(n, str) and n in NOTIFICATION_DRIVERS for n in names)
            or len(set(names)) != len(names)):
        raise Bad("a driver name or a list of distinct driver names from "
                  + ", ".join(NOTIFICATION_DRIVERS) + " ([] for none)")
    return tuple(names)


def _topics(value: Any) -> Tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(t, str) and t.strip() and " " not in t for t in value)):
        raise Bad("a non-empty list of topic names such as [notifications]")
    return tuple(value)


#: Each top-level key -> its checker.
CHECKS: Dict[str, Callable[[Any], Any]] = {
    "host": _string,
    "transport_url": _transport_url,
    "control_exchange": _string,
    "rpc_response_timeout": _seconds(positive=True),
    "report_interval": _seconds(),
    "service_down_time": _seconds(positive=True),
    "periodic_enable": _boolean,
    "periodic_fuzzy_delay": _seconds(),
    "periodic_interval_max": _seconds(positive=True, nullable=True),
    "graceful_shutdown_timeout": _seconds(),
    "durable_queues": _boolean,
    "rpc_max_inflight": _integer(1),
    "rpc_ack": _choice("late", "early"),
    "rpc_duplicate_window": _integer(0),
    "allowed_remote_exmods": _module_names,
    "transient_queues_ttl": _seconds(positive=True),
    "kombu_missing_consumer_retry_timeout": _seconds(),
    "heartbeat_timeout_threshold": _seconds(),
    "kombu_failover_strategy": _choice("round-robin", "shuffle"),
    "db_driver": _dotted_path,
    "log_level": _choice(*LOG_LEVELS),
    "log_format": _choice("text", "json"),
    "ssl": _boolean,
    "ssl_ca_file": _file_name,
    "ssl_cert_file": _file_name,
    "ssl_key_file": _file_name,
    "rabbit_quorum_queue": _boolean,
    "rabbit_quorum_delivery_limit": _integer(0),
    "amqp_client": _choice("pika", "txamqp"),
    "workers": _integer(1),
    "serializer": _dotted_path_or_null,
}
#: The keys of C{database:} -> their checkers.
DATABASE_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "connection": _database_url,
    "thread_pool_size": _integer(1),
    "auto_sync": _boolean,
}
#: The keys of C{tracing:} -> their checkers.
TRACING_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "enabled": _boolean,
    "service_name": _name_or_null,
    "exporter": _choice(*TRACING_EXPORTERS),
}
#: The keys of C{notifications:} -> their checkers.
NOTIFICATIONS_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "driver": _notification_drivers,
    "topics": _topics,
    "notification_format": _choice(*NOTIFICATION_FORMATS),
    "versioned_notifications_topics": _topics,
    "retry": _integer(-1),
}
#: The file's other top-level keys, as "did you mean" offers them.
MAPPINGS = ("database", "<topic>_manager", "tracing", "api", "notifications")
#: The keys whose refused values are described by type only.
SECRET = {"transport_url", "database.connection"}
#: The suffix of the C{<topic>_manager} keys.
MANAGER_SUFFIX = "_manager"
