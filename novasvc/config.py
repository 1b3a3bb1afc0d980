# -*- test-case-name: tests.test_config -*-
"""
One validated, immutable configuration: defaults, overridden by one YAML file,
overridden by the command line.

Keys and defaults follow Nova and oslo.messaging (see C{etc/novasvc.yaml}, where
every key is documented). A bad file, an unknown key or a value of the wrong
type is refused with L{novasvc.exceptions.ConfigError} naming the key (or
file) and what was expected.
"""

import socket
from typing import Mapping, Optional, Tuple

import attrs

DEFAULT_TRANSPORT_URL = "rabbit://guest:guest@localhost:5672/"
DEFAULT_DATABASE_CONNECTION = "sqlite:///novasvc.sqlite"


@attrs.frozen
class DatabaseConfig:
    """
    The C{database:} section.

    @ivar connection: an SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB).
    @ivar thread_pool_size: the most threads doing database work at once.
    """

    connection: str = DEFAULT_DATABASE_CONNECTION
    thread_pool_size: int = 10


@attrs.frozen
class Config:
    """
    The whole configuration. Durations are in B{seconds}.

    @ivar managers: C{<topic>_manager} keys, as a sorted tuple of
        (topic, dotted path) pairs; read with L{manager_for}.
    """

    host: str = attrs.field(factory=socket.gethostname)
    transport_url: str = DEFAULT_TRANSPORT_URL
    control_exchange: str = "openstack"
    rpc_response_timeout: float = 60
    report_interval: float = 10
    service_down_time: float = 60
    periodic_enable: bool = True
    periodic_fuzzy_delay: float = 60
    periodic_interval_max: Optional[float] = None
    graceful_shutdown_timeout: float = 60
    database: DatabaseConfig = attrs.field(factory=DatabaseConfig)
    # RPC server and client (oslo.messaging's names where they exist).
    durable_queues: bool = False
    rpc_max_inflight: int = 64
    rpc_ack: str = "late"
    rpc_duplicate_window: int = 1024
    allowed_remote_exmods: Tuple[str, ...] = ()
    transient_queues_ttl: float = 1800
    heartbeat_timeout_threshold: float = 60
    managers: Tuple[Tuple[str, str], ...] = ()

    def manager_for(self, topic: str) -> Optional[str]:
        """
        @return: the dotted path configured as C{<topic>_manager}, or C{None}.
        """
        return dict(self.managers).get(topic)

    def replace(self, **changes) -> "Config":
        """
        @return: a copy with C{changes} applied (not validated again).
        """
        return attrs.evolve(self, **changes)


def managers_from(mapping: Mapping[str, str]) -> Tuple[Tuple[str, str], ...]:
    """
    @return: C{mapping} (topic -> dotted path) as the sorted tuple kept in
        L{Config.managers}.
    """
    return tuple(sorted(mapping.items()))
