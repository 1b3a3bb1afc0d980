# -*- test-case-name: tests.test_config -*-
"""
L{Config}, the whole configuration as one validated, immutable value, and
its binding of the sections that managers and drivers declare
(L{Config.bind}); L{novasvc.config.load_config} builds it.
"""

import socket
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import attrs

from novasvc.config._checks import suggest as _suggest
from novasvc.config._keys import CHECKS, MAPPINGS
from novasvc.config._sections import DatabaseConfig, NotificationsConfig, TracingConfig, hide_password
from novasvc.config.api import APIConfig
from novasvc.config.loader import driver_aliases, load_object, resolve_driver
from novasvc.config.options import DriverOpt, OptionError, Section, build_section, declared_options
from novasvc.exceptions import ConfigError, LoadError

__all__ = ["Config", "RawSection", "managers_from", "DEFAULT_TRANSPORT_URL", "DEFAULT_DB_DRIVER"]

DEFAULT_TRANSPORT_URL = "rabbit://guest:guest@localhost:5672/"
DEFAULT_DB_DRIVER = "novasvc.db.api.Database"


@attrs.frozen
class Config:
    """
    The whole configuration. Durations are in B{seconds}; C{etc/novasvc.yaml}
    documents each key at length.

    @ivar host: this service's host name (C{str}; default: the machine's).
    @ivar transport_url: the broker URL, parsed by
        L{novasvc.transport.url.TransportURL}; hidden in C{repr}.
    @ivar control_exchange: the AMQP topic exchange for RPC (C{str}).
    @ivar rpc_response_timeout: seconds a call waits for its reply.
    @ivar report_interval: seconds between two report_state runs; C{0}
        turns reporting off (as Nova).
    @ivar service_down_time: seconds without a report after which a service
        is down.
    @ivar periodic_enable: whether periodic tasks run (C{bool}).
    @ivar periodic_fuzzy_delay: the most seconds of random delay before the
        first periodic run.
    @ivar periodic_interval_max: the most seconds the periodic timer idles, or
        C{None} for no cap.
    @ivar graceful_shutdown_timeout: seconds to finish in-flight work on
        stop (C{0}: no limit).
    @ivar database: the L{DatabaseConfig}.
    @ivar tracing: the L{TracingConfig}.
    @ivar durable_queues: whether topic queues and exchanges survive a broker
        restart (C{bool}).
    @ivar rpc_max_inflight: the most requests handled at once (C{int} >= 1).
    @ivar rpc_ack: C{"late"} (acknowledge after handling) or C{"early"}.
    @ivar rpc_duplicate_window: how many recent C{_unique_id}s are remembered
        to drop redelivered duplicates (C{int}, C{0}: off).
    @ivar allowed_remote_exmods: modules whose exceptions a caller rebuilds
        from an error reply (C{tuple} of C{str}).
    @ivar transient_queues_ttl: seconds an unused reply or fanout queue lives.
    @ivar kombu_missing_consumer_retry_timeout: seconds an RPC request that
        no queue takes is sent again before it fails (oslo.messaging's
        name; C{0}: fail at once).
    @ivar heartbeat_timeout_threshold: the AMQP heartbeat in seconds: a
        connection from which nothing arrived for this long plus a margin
        is dropped (C{0}: no heartbeats); 10 (oslo.messaging's is 60).
    @ivar kombu_failover_strategy: the order a transport URL's hosts are
        tried in: C{"round-robin"} or C{"shuffle"} (oslo.messaging's name).
    @ivar log_level: the lowest level logged under twistd: C{"debug"},
        C{"info"}, C{"warning"}, C{"error"} or C{"critical"} (see
        L{novasvc.process.log}).
    @ivar log_format: C{"text"} (twistd's lines) or C{"json"} (one JSON
        object per line).
    @ivar managers: C{<topic>_manager} keys, as a sorted tuple of
        (topic, dotted path) pairs; read with L{manager_for}.
    @ivar db_driver: the dotted path of the database API a manager gets as
        C{self.db} (Nova's C{db_driver}); see L{novasvc.db.api}.
    @ivar sections: the sections declared by managers and drivers, validated
        by L{bind}, as a sorted tuple of (name, L{Section}) pairs; read with
        L{section}.
    @ivar ssl: whether to reach the broker over TLS (C{bool}); a
        C{rabbits://} transport URL or C{?ssl=} in it beats this.
    @ivar ssl_ca_file: PEM file of the CAs that sign the broker's
        certificate, or C{None} for the platform's trust store.
    @ivar ssl_cert_file: PEM file of the client certificate, or C{None}.
    @ivar ssl_key_file: PEM file of the client certificate's key, or
        C{None} when C{ssl_cert_file} holds it.
    @ivar rabbit_quorum_queue: whether the topic queues are quorum queues
        (they are then durable, and so is the control exchange:
        L{load_config} sets C{durable_queues} too).
    @ivar rabbit_quorum_delivery_limit: how many times a quorum queue
        redelivers a message before dead-lettering it (C{int}, C{0}: no
        limit).
    @ivar amqp_client: the AMQP client library of a C{rabbit://}
        transport: C{"pika"} (the default) or C{"txamqp"} (see
        L{novasvc.transport.get_transport}).
    @ivar workers: how many processes run the service (C{int} >= 1); above
        1, C{twistd novasvc} is a supervising parent of that many workers
        (see L{novasvc.process.workers}), as Nova's C{service.serve(server,
        workers=N)}.
    @ivar api: the C{api:} section, an L{APIConfig}.
    @ivar serializer: the dotted path of the RPC serializer the service
        uses (an instance, a class or a zero-argument factory; see
        L{novasvc.rpc.serializer.load_serializer}), beating the manager's
        C{serializer} attribute; C{None}: the manager's.
    @ivar notifications: the C{notifications:} section, a
        L{NotificationsConfig}.
    """

    host: str = attrs.field(factory=socket.gethostname)
    transport_url: str = attrs.field(default=DEFAULT_TRANSPORT_URL, repr=hide_password)
    control_exchange: str = "openstack"
    rpc_response_timeout: float = 60
    report_interval: float = 10
    service_down_time: float = 60
    periodic_enable: bool = True
    periodic_fuzzy_delay: float = 60
    periodic_interval_max: Optional[float] = None
    graceful_shutdown_timeout: float = 60
    database: DatabaseConfig = attrs.field(factory=DatabaseConfig)
    tracing: TracingConfig = attrs.field(factory=TracingConfig)
    # RPC server and client (oslo.messaging's names where they exist).
    durable_queues: bool = False
    rpc_max_inflight: int = 64
    rpc_ack: str = "late"
    rpc_duplicate_window: int = 1024
    allowed_remote_exmods: Tuple[str, ...] = ()
    transient_queues_ttl: float = 1800
    kombu_missing_consumer_retry_timeout: float = 60
    heartbeat_timeout_threshold: float = 10
    kombu_failover_strategy: str = "round-robin"
    log_level: str = "info"
    log_format: str = "text"
    managers: Tuple[Tuple[str, str], ...] = ()
    db_driver: str = DEFAULT_DB_DRIVER
    sections: Tuple[Tuple[str, Section], ...] = ()
    # Sections the file gives that no component has declared yet (bind()).
    _unbound: Tuple["RawSection", ...] = attrs.field(default=(), repr=False, eq=False)
    # TLS to the broker and quorum queues (oslo.messaging's names).
    ssl: bool = False
    ssl_ca_file: Optional[str] = None
    ssl_cert_file: Optional[str] = None
    ssl_key_file: Optional[str] = None
    rabbit_quorum_queue: bool = False
    rabbit_quorum_delivery_limit: int = 20
    amqp_client: str = "pika"
    workers: int = 1
    # The optional HTTP API (novasvc.config.api).
    api: APIConfig = attrs.field(factory=APIConfig)
    # Objects on the wire (novasvc.rpc.serializer).
    serializer: Optional[str] = None
    notifications: NotificationsConfig = attrs.field(factory=NotificationsConfig)

    def section(self, name: str) -> Section:
        """
        @param name: a section declared by a manager or driver, e.g.
            C{"volume"}.
        @return: its validated, read-only values.
        @raise KeyError: if no bound component declares C{name}.
        """
        for key, section in self.sections:
            if key == name:
                return section
        if any(raw.name == name for raw in self._unbound):
            raise KeyError(f"configuration section {name!r} is given but not bound yet: read "
                           "it with config.section_for(component), which validates it")
        raise KeyError(f"no configuration section {name!r} (declared sections: "
                       f"{', '.join(key for key, _ in self.sections) or 'none'})")

    def section_for(self, component: Any) -> Section:
        """
        The section a component declares (C{options} and C{config_section}),
        validated: what a driver reads in its constructor,
        C{config.section_for(self)}, whether the manager built it (the
        section is bound already) or a test did with
        C{Config().with_sections(memory_stock={"slots": 5})}.

        @param component: a manager or driver (class, module or instance).
        @return: its L{Section}, defaults filled in.
        @raise ConfigError: if the values are refused (a wrong type, a
            missing required value...).
        @raise KeyError: if the component declares no options.
        """
        name, _ = declared_options(component)
        if name is None:
            raise KeyError(f"{component!r} declares no options")
        return self.bind([component]).section(name)

    def bind(self, components: Iterable[Any], default_section: Optional[str] = None) -> "Config":
        """
        Validate the sections that C{components} declare (see
        L{novasvc.config.options}), and those of the drivers their L{DriverOpt}s
        choose, against what the file gave; fill in the defaults.

        A section already bound is kept as it is. The section of a driver
        installed in the entry point group of a L{DriverOpt} but not chosen
        is validated too (and bound), so that the file may keep the
        sections of every driver an operator may pick. After binding, any
        section of the file that no component declares is refused, unless it
        is named after a topic of a C{<topic>_manager} key (another manager
        configured in the same file); the message offers close names only.

        @param components: managers and drivers (classes, modules or
            instances) declaring C{options} and C{config_section}.
        @param default_section: the section name of a component that
            declares options but no C{config_section} (the manager's topic).
        @return: a copy with L{sections} complete.
        @raise ConfigError: an unknown key, a wrong type, a missing required
            value, an unknown section, or a driver path that cannot be
            imported; the message names the file, line and key.
        """
        given_sections = {section.name: section for section in self._unbound}
        raw = dict(given_sections)
        bound = dict(self.sections)
        seen: Dict[str, Tuple[Any, ...]] = {}
        groups: List[str] = []
        queue = [(component, default_section) for component in components]
        while queue:
            component, default = queue.pop(0)
            try:
                name, options = declared_options(component, default)
            except TypeError as e:
                raise ConfigError(str(e)) from None
            if name is None:
                continue
            if name in seen:
                if seen[name] != options:
                    raise ConfigError(f"two components declare configuration section {name!r}")
                continue
            seen[name] = options
            if name not in bound:
                given = raw.pop(name, None) or RawSection.empty(name)
                try:
                    bound[name] = build_section(name, options, dict(given.values),
                                                given.where, _suggest)
                except OptionError as e:
                    raise ConfigError(str(e)) from None
            for opt in options:
                if isinstance(opt, DriverOpt) and bound[name][opt.name] is not None:
                    path = bound[name][opt.name]
                    try:
                        queue.append((load_object(resolve_driver(path, opt.group)), None))
                    except LoadError as e:
                        place = given_sections.get(name) or RawSection.empty(name)
                        raise ConfigError(f"{place.where(opt.name)}: {e}") from None
                    if opt.group:
                        groups.append(opt.group)
        topics = dict(self.managers)
        if any(section not in topics for section in raw):
            _bind_installed_drivers(groups, raw, bound)
        for leftover in raw.values():
            if leftover.name in topics:
                continue  # the section of another manager this file configures
            known = [*CHECKS, *MAPPINGS, *bound]
            raise ConfigError(f"{leftover.place}: unknown key{_close_only(leftover.name, known)}")
        kept = tuple(section for section in raw.values() if section.name in topics)
        sections = tuple(sorted(bound.items()))
        if sections == self.sections and kept == self._unbound:
            return self  # already bound: the same read-only object
        return attrs.evolve(self, sections=sections, unbound=kept)

    def with_sections(self, **sections: Mapping[str, Any]) -> "Config":
        """
        Give values to declared sections in code, as if the file gave them
        (for tests, scripts and tools): C{with_sections(file_volume={"volumes_dir": d})}.
        A key given here wins over the file's value for the same key; the
        next L{bind} validates the result as it validates the file.

        @param sections: section name -> mapping of option name -> value
            (as YAML would give it: C{int}, C{str}, C{list}...).
        @return: a copy holding these values, still to be bound.
        @raise ValueError: if a section is bound already (its values can no
            longer change: give them before L{bind}).
        @raise TypeError: if a value of C{sections} is not a mapping.
        """
        raw = {section.name: section for section in self._unbound}
        bound = dict(self.sections)
        for name, values in sections.items():
            if name in bound:
                raise ValueError(f"configuration section {name!r} is bound already; "
                                 "give its values before Config.bind")
            if not isinstance(values, Mapping):
                raise TypeError(f"configuration section {name!r}: expected a mapping of "
                                f"option values, got {type(values).__name__}")
            given = raw.get(name)
            if given is None:
                raw[name] = RawSection(name, tuple(values.items()), "", ())
            else:
                merged = {**dict(given.values), **values}
                lines = tuple((key, line) for key, line in given.lines if key not in values)
                raw[name] = RawSection(name, tuple(merged.items()), given.path, lines)
        return attrs.evolve(self, unbound=tuple(raw.values()))

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


def _bind_installed_drivers(groups: List[str], raw: Dict[str, "RawSection"],
                            bound: Dict[str, Section]) -> None:
    """
    Validate, bind and take out of C{raw} the sections that the installed
    but unchosen drivers of C{groups} declare. A driver whose entry point
    cannot be loaded is skipped: it is not the one chosen.
    """
    for group in dict.fromkeys(groups):
        for alias, path in driver_aliases(group).items():
            try:
                name, options = declared_options(load_object(path))
            except Exception:
                continue
            if name is None or name in bound or name not in raw:
                continue
            given = raw.pop(name)
            try:
                bound[name] = build_section(name, options, dict(given.values), given.where,
                                            _suggest)
            except OptionError as e:
                raise ConfigError(f"{e} (the section of driver {alias!r} of {group}, "
                                  "installed but not chosen)") from None


def _close_only(key: str, known: Iterable[str]) -> str:
    """
    @return: the tail of an "unknown key" message for a top-level key:
        the close names (" (did you mean 'x'?)"), or a short reason without
        a list of every key.
    """
    import difflib

    close = difflib.get_close_matches(key, list(known), n=3)
    if close:
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    return ": no setting of that name, and no manager or installed driver declares such a section"


@attrs.frozen
class RawSection:
    """
    A top-level mapping of the file that no built-in key claims: the
    section of a manager or driver, validated by L{Config.bind}.

    @ivar name: the key.
    @ivar values: its (key, YAML value) pairs.
    @ivar path: the file.
    @ivar lines: (key, line number) pairs; C{""} is the section's own line.
    """

    name: str
    values: Tuple[Tuple[Any, Any], ...]
    path: str
    lines: Tuple[Tuple[str, int], ...]

    @classmethod
    def empty(cls, name: str) -> "RawSection":
        """
        @return: a section the file does not give.
        """
        return cls(name, (), "", ())

    @property
    def place(self) -> str:
        return _place(self.path, dict(self.lines).get(""), self.name)

    def where(self, key: str) -> str:
        return _place(self.path, dict(self.lines).get(key), f"{self.name}.{key}")


def _place(path: str, line: Optional[int], key: str) -> str:
    if not path:
        return f"configuration section {key}"
    return f"{path}, line {line}: {key}" if line else f"{path}: {key}"


def managers_from(mapping: Mapping[str, str]) -> Tuple[Tuple[str, str], ...]:
    """
    @return: C{mapping} (topic -> dotted path) as the sorted tuple kept in
        L{Config.managers}.
    """
    return tuple(sorted(mapping.items()))

