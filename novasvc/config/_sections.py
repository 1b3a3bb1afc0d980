# -*- test-case-name: tests.test_config -*-
"""
The built-in sections of the configuration file other than C{api:}
(L{novasvc.config.api}): C{database:}, C{tracing:} and C{notifications:},
each an immutable value on L{novasvc.config.Config}, with the names their
keys may take.
"""

from typing import Optional, Tuple

import attrs

from novasvc.transport.url import redact

__all__ = ["DatabaseConfig", "TracingConfig", "NotificationsConfig", "hide_password",
           "DEFAULT_DATABASE_CONNECTION", "TRACING_EXPORTERS", "NOTIFICATION_DRIVERS",
           "NOTIFICATION_FORMATS"]

DEFAULT_DATABASE_CONNECTION = "sqlite:///novasvc.sqlite"


def hide_password(url: str) -> str:
    """
    The C{repr} of URL fields: the URL with its password replaced by
    C{***}, so that a logged L{novasvc.config.Config} shows no secret.
    """
    try:
        return repr(redact(url))
    except ValueError:
        return "'<unparsable URL>'"


@attrs.frozen
class DatabaseConfig:
    """
    The C{database:} section.

    @ivar connection: an SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB).
    @ivar thread_pool_size: the most threads doing database work at once.
    @ivar auto_sync: whether a service upgrades an out-of-date schema at
        start-up instead of refusing to start (C{bool}; see
        L{novasvc.db.migration.prepare}).
    """

    connection: str = attrs.field(default=DEFAULT_DATABASE_CONNECTION, repr=hide_password)
    thread_pool_size: int = 10
    auto_sync: bool = False


#: The values of C{tracing.exporter}.
TRACING_EXPORTERS = ("none", "console", "otlp")


@attrs.frozen
class TracingConfig:
    """
    The C{tracing:} section (see L{novasvc.tracing}).

    @ivar enabled: whether RPC calls and casts are traced (C{bool}).
    @ivar service_name: the C{service.name} of the tracer provider novasvc
        sets up, or C{None} for the service's binary.
    @ivar exporter: C{"none"} (use the process's global tracer provider),
        C{"console"} or C{"otlp"} (set up an SDK provider exporting there).
    """

    enabled: bool = False
    service_name: Optional[str] = None
    exporter: str = "none"


#: The notification drivers (oslo.messaging's names, without C{routing}).
NOTIFICATION_DRIVERS = ("messagingv2", "messaging", "log", "noop", "test")
#: The values of C{notifications.notification_format} (Nova's).
NOTIFICATION_FORMATS = ("unversioned", "versioned", "both")


@attrs.frozen
class NotificationsConfig:
    """
    The C{notifications:} section (see L{novasvc.notify.Notifier.from_config}):
    oslo.messaging's C{[oslo_messaging_notifications]} and Nova's
    C{[notifications]} options.

    @ivar driver: the drivers, a C{tuple} of names from
        L{NOTIFICATION_DRIVERS}; empty (the default, as oslo's) sends
        nothing.
    @ivar topics: the topics of unversioned notifications (C{tuple}).
    @ivar notification_format: C{"both"} (the default: a service's own
        versioned C{service.*} notifications go out as soon as a driver is
        set; Nova's default since Train is C{"unversioned"}),
        C{"versioned"} or C{"unversioned"}: which notifiers send.
    @ivar versioned_notifications_topics: the topics of versioned
        notifications (C{tuple}).
    @ivar retry: how many times a notification lost with the connection is
        tried again: C{-1} (the default, as oslo's) without limit, C{0}
        never.
    """

    driver: Tuple[str, ...] = ()
    topics: Tuple[str, ...] = ("notifications",)
    notification_format: str = "both"
    versioned_notifications_topics: Tuple[str, ...] = ("versioned_notifications",)
    retry: int = -1

