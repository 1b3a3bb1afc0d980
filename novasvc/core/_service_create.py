# -*- test-case-name: tests.test_core_service -*-
"""
What L{novasvc.core.service.Service.create} fills in, as Nova's
C{Service.create()} does (L{service_arguments}): the host, topic, binary
and manager from the arguments and the configuration, and the store,
transport and database API it is not given; and the serializer of the
service's RPC (L{serializer_for}).
"""

from typing import Any, Callable, Dict, Optional, Union

from twisted.internet.interfaces import IReactorThreads

from novasvc.config import Config
from novasvc.exceptions import ConfigError
from novasvc.interfaces import IDatabaseAPI, IServiceStore, ITransport
from novasvc.config.loader import create_object, describe_object, load_object
from novasvc.core.manager import Manager, check_module, load_manager

__all__ = ["BINARY_PREFIX", "serializer_for", "service_arguments"]

BINARY_PREFIX = "novasvc-"


def service_arguments(host: Optional[str], binary: Optional[str], topic: Optional[str],
                      manager: Union[str, Callable[..., Manager], Any],
                      report_interval: Optional[float], periodic_enable: Optional[bool],
                      periodic_fuzzy_delay: Optional[float], periodic_interval_max: Optional[float],
                      *, config: Optional[Config], store: Optional[IServiceStore],
                      transport: Optional[ITransport], db: Optional[IDatabaseAPI],
                      clock: Any) -> Dict[str, Any]:
    """
    Fill every C{None} argument of L{novasvc.core.service.Service.create} (see
    there), and build the manager.

    @return: the keyword arguments of the L{novasvc.core.service.Service}
        constructor, but C{rng}.
    @raise ConfigError: when no manager or topic can be found, or the
        manager's section is invalid.
    @raise novasvc.exceptions.LoadError: when the manager (or the database
        API) cannot be imported, built or served.
    """
    config = config or Config()
    host = host or config.host
    if topic is None and binary is not None and binary.startswith(BINARY_PREFIX):
        topic = binary[len(BINARY_PREFIX):]
    if manager is None and topic is None and binary is None and len(config.managers) == 1:
        topic, manager = config.managers[0]
    if manager is None and topic is not None:
        manager = config.manager_for(topic)
    if manager is None:
        several = ", ".join(f"{t}_manager" for t, _ in config.managers)
        raise ConfigError(
            "no manager to run: pass --manager DOTTED.PATH, or set "
            f"'{topic or '<topic>'}_manager' in the config file"
            + (f" (it names several: {several}; pass --topic to choose)" if several else "")
        )
    found = load_object(manager) if isinstance(manager, str) else manager
    check_module(manager if isinstance(manager, str) else describe_object(manager), found)
    if topic is None:
        topic = getattr(found, "topic", None)
    if not topic or not isinstance(topic, str):
        shown = manager if isinstance(manager, str) else describe_object(manager)
        raise ConfigError(
            f"no topic for manager {shown!r}: pass --topic, a --binary named "
            f"'{BINARY_PREFIX}<topic>', or give the manager a 'topic' attribute"
        )
    binary = binary or BINARY_PREFIX + topic
    config = config.bind([found], default_section=topic)
    # A clock that is only a clock (task.Clock in tests) cannot run
    # threads: the database's thread pool then uses the global reactor.
    threads = clock if IReactorThreads.providedBy(clock) else None
    if store is None:
        from novasvc.db.store import SQLServiceStore

        store = SQLServiceStore(
            config.database.connection, reactor=threads,
            thread_pool_size=config.database.thread_pool_size,
            auto_sync=config.database.auto_sync,
        )
    if transport is None:
        from novasvc.transport import TLSOptions, get_transport

        transport = get_transport(
            config.transport_url, reactor=clock, client=config.amqp_client,
            heartbeat=int(config.heartbeat_timeout_threshold), tls=TLSOptions.from_config(config),
            failover_strategy=config.kombu_failover_strategy,
        )
    if db is None:
        db = create_object(config.db_driver, load_object(config.db_driver), "database API",
                           offer={"config": config, "store": store, "reactor": threads})
    built = load_manager(manager, host=host, service_name=topic,
                         offer={"config": config, "db": db})
    return dict(
        host=host, binary=binary, topic=topic, manager=built,
        config=config, store=store, transport=transport, db=db,
        report_interval=config.report_interval if report_interval is None else report_interval,
        periodic_enable=config.periodic_enable if periodic_enable is None else periodic_enable,
        periodic_fuzzy_delay=(config.periodic_fuzzy_delay if periodic_fuzzy_delay is None
                              else periodic_fuzzy_delay),
        periodic_interval_max=(config.periodic_interval_max if periodic_interval_max is None
                               else periodic_interval_max),
        clock=clock,
    )


def serializer_for(manager: Manager, config: Config) -> Any:
    """
    @return: the serializer the C{serializer} configuration key names, else
        the one the manager's C{serializer} attribute gives (a class or
        factory called once), else C{None}.
    @raise novasvc.exceptions.LoadError: when it cannot be made or is not a
        serializer.
    """
    from novasvc.rpc.serializer import load_serializer

    if config.serializer is not None:
        return load_serializer(config.serializer, "the configuration key serializer")
    declared = getattr(manager, "serializer", None)
    if declared is None:
        return None
    return load_serializer(declared, f"{type(manager).__name__}.serializer")
