# -*- test-case-name: tests.test_config -*-
"""
One validated, immutable configuration: defaults, overridden by one YAML file,
overridden by the command line (L{load_config}).

Keys and defaults follow Nova and oslo.messaging (see C{etc/novasvc.yaml}, where
every key is documented). A bad file, an unknown key or a value of the wrong
type is refused with L{novasvc.exceptions.ConfigError} naming the file, the
line and the key, and what was expected.

String scalars may refer to environment variables, as nameko's YAML config
does: C{${NAME}} is replaced by the variable's value and C{${NAME:default}} by
the value, or C{default} when the variable is unset (the default ends at the
first C{\}}); C{$${} writes a literal C{${}. Substitution happens before the
YAML type is decided, so an unquoted C{${INTERVAL:10}} is the number 10 and
C{${FLAG:true}} the boolean C{true}, while a quoted C{"${PORT}"} stays a
string. A variable that is unset and has no default is an error.
"""

import os
import socket
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import attrs

from novasvc._checks import Bad as _Bad
from novasvc._checks import boolean as _boolean
from novasvc._checks import integer as _integer
from novasvc._checks import number as _number
from novasvc._checks import suggest as _suggest
from novasvc.api_config import APIConfig, parse_api_section
from novasvc.exceptions import ConfigError, LoadError
from novasvc.loader import driver_aliases, is_dotted_path, load_object, resolve_driver
from novasvc._text import show_value
from novasvc.options import DriverOpt, OptionError, Section, build_section, declared_options
from novasvc.transport.url import TransportURL, redact

__all__ = ["Config", "DatabaseConfig", "TracingConfig", "NotificationsConfig", "load_config", "managers_from"]

DEFAULT_TRANSPORT_URL = "rabbit://guest:guest@localhost:5672/"
DEFAULT_DATABASE_CONNECTION = "sqlite:///novasvc.sqlite"
DEFAULT_DB_DRIVER = "novasvc.db.api.Database"
#: The values of C{log_level}, from the most verbose.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _hide_password(url: str) -> str:
    """
    The C{repr} of URL fields: the URL with its password replaced by
    C{***}, so that a logged L{Config} shows no secret.
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

    connection: str = attrs.field(default=DEFAULT_DATABASE_CONNECTION, repr=_hide_password)
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
        L{novasvc.log}).
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
        (see L{novasvc.workers}), as Nova's C{service.serve(server,
        workers=N)}.
    @ivar api: the C{api:} section, an L{APIConfig}.
    @ivar serializer: the dotted path of the RPC serializer the service
        uses (an instance, a class or a zero-argument factory; see
        L{novasvc.serializer.load_serializer}), beating the manager's
        C{serializer} attribute; C{None}: the manager's.
    @ivar notifications: the C{notifications:} section, a
        L{NotificationsConfig}.
    """

    host: str = attrs.field(factory=socket.gethostname)
    transport_url: str = attrs.field(default=DEFAULT_TRANSPORT_URL, repr=_hide_password)
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
    _unbound: Tuple["_RawSection", ...] = attrs.field(default=(), repr=False, eq=False)
    # TLS to the broker and quorum queues (oslo.messaging's names).
    ssl: bool = False
    ssl_ca_file: Optional[str] = None
    ssl_cert_file: Optional[str] = None
    ssl_key_file: Optional[str] = None
    rabbit_quorum_queue: bool = False
    rabbit_quorum_delivery_limit: int = 20
    amqp_client: str = "pika"
    workers: int = 1
    # The optional HTTP API (novasvc.api_config).
    api: APIConfig = attrs.field(factory=APIConfig)
    # Objects on the wire (novasvc.serializer).
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
        L{novasvc.options}), and those of the drivers their L{DriverOpt}s
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
                given = raw.pop(name, None) or _RawSection.empty(name)
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
                        place = given_sections.get(name) or _RawSection.empty(name)
                        raise ConfigError(f"{place.where(opt.name)}: {e}") from None
                    if opt.group:
                        groups.append(opt.group)
        topics = dict(self.managers)
        if any(section not in topics for section in raw):
            _bind_installed_drivers(groups, raw, bound)
        for leftover in raw.values():
            if leftover.name in topics:
                continue  # the section of another manager this file configures
            known = [*_CHECKS, *_MAPPINGS, *bound]
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
                raw[name] = _RawSection(name, tuple(values.items()), "", ())
            else:
                merged = {**dict(given.values), **values}
                lines = tuple((key, line) for key, line in given.lines if key not in values)
                raw[name] = _RawSection(name, tuple(merged.items()), given.path, lines)
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


def _bind_installed_drivers(groups: List[str], raw: Dict[str, "_RawSection"],
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
class _RawSection:
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
    def empty(cls, name: str) -> "_RawSection":
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


def load_config(path: Optional[str], overrides: Mapping[str, Any] = {}, *,
                environ: Optional[Mapping[str, str]] = None,
                defaults: Mapping[str, Tuple[Any, str]] = {}) -> Config:
    """
    Build the configuration: L{Config}'s defaults (or the caller's
    C{defaults}), overridden by the YAML file at C{path}, overridden by
    C{overrides}.

    The file is a mapping whose keys are L{Config}'s field names (except
    C{managers}), plus a C{database:} mapping with C{connection},
    C{thread_pool_size} and C{auto_sync}, plus any number of
    C{<topic>_manager: dotted.path} keys (collected into
    L{Config.managers}). Any other top-level mapping is
    the section of a manager or driver: it is kept aside for
    L{Config.bind}, which validates it once the components are known. An
    empty file is an empty mapping.

    @param path: the YAML file, or C{None} for defaults and overrides only.
    @param overrides: command-line values keyed by L{Config} field name, with
        C{database_connection} and C{database_thread_pool_size} for the
        C{database:} section; a value of C{None} means "not given".
    @param environ: the environment for C{${NAME}} substitution (default:
        C{os.environ}).
    @param defaults: values that take the place of built-in defaults, so
        that the file and C{overrides} beat them, keyed as C{overrides}; each
        is a C{(value, source)} pair where C{source} names the value in a
        refusal (e.g. C{"environment variable NOVASVC_TRANSPORT_URL"}); a
        value of C{None} means "not given", and a value the file or
        C{overrides} beat is not checked.
    @return: the validated L{Config}; durations are C{float} seconds and
        C{allowed_remote_exmods} is a C{tuple}.
    @raise ConfigError: the file is missing or unreadable, is not valid YAML,
        is not a mapping, has an unknown key, or has a value of the wrong type
        or out of range; likewise for an override. The message names the file
        (and line) or the command-line option, the key and what was expected,
        and never shows a password.
    """
    values: Dict[str, Any] = {}
    database: Dict[str, Any] = {}
    tracing: Dict[str, Any] = {}
    notifications: Dict[str, Any] = {}
    managers: Dict[str, str] = {}
    unbound: List[_RawSection] = []
    if path is not None:
        from novasvc._yaml import read_yaml  # PyYAML: only for a --config file

        data, lines = read_yaml(path, os.environ if environ is None else environ)
        _apply_file(path, data, lines, values, database, managers, unbound, tracing, notifications)
    # A default the file or an override beats is not even checked.
    given = {*values, *("database_" + key for key in database),
             *(key for key, value in overrides.items() if value is not None)}
    _apply_overrides({key: value for key, (value, _) in defaults.items() if key not in given},
                     values, database, lambda key: defaults[key][1])
    _apply_overrides(overrides, values, database)
    if values.get("rabbit_quorum_queue"):
        values["durable_queues"] = True  # quorum queues are durable (oslo forces it too)
    return Config(database=DatabaseConfig(**database), tracing=TracingConfig(**tracing),
                  notifications=NotificationsConfig(**notifications),
                  managers=managers_from(managers), unbound=tuple(unbound), **values)


# -- checkers: each takes the YAML value and returns the value to keep, or
# raises _Bad with a phrase saying what was expected ------------------------
# (the general checkers are in novasvc._checks, shared with novasvc.api_config)


def _seconds(positive: bool = False, nullable: bool = False) -> Callable[[Any], Any]:
    return _number(0, positive, nullable)


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("a non-empty string")
    return value


def _name_or_null(value: Any) -> Optional[str]:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _Bad("a non-empty string or null")
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Bad("one of " + ", ".join(repr(c) for c in choices))
        return value
    return check


def _module_names(value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(
            is_dotted_path(item) and ":" not in item for item in value):
        raise _Bad("a list of module names such as [myproject.exceptions]")
    return tuple(value)


def _dotted_path(value: Any) -> str:
    if not is_dotted_path(value):
        raise _Bad("a dotted path such as mypackage.db.api.Database")
    return value


def _dotted_path_or_null(value: Any) -> Optional[str]:
    if value is not None and not is_dotted_path(value):
        raise _Bad("a dotted path such as mypackage.rpc.Serializer, or null")
    return value


def _transport_url(value: Any) -> str:
    _string(value)
    try:
        TransportURL.parse(value)
    except ConfigError as e:
        # TransportURL's message starts with the key and hides the password.
        raise _Bad(str(e).removeprefix("transport_url ")) from None
    except ValueError:
        raise _Bad("a URL such as rabbit://user:password@host:5672/vhost") from None
    return value


def _file_name(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Bad("a file name or null")
    return value


def _database_url(value: Any) -> str:
    from sqlalchemy.engine import make_url

    _string(value)
    try:
        make_url(value)
    except Exception:
        # The reason may quote part of the URL: do not show it.
        raise _Bad("an SQLAlchemy URL such as postgresql://user:password@host/dbname") from None
    return value


_CHECKS: Dict[str, Callable[[Any], Any]] = {
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
_DATABASE_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "connection": _database_url,
    "thread_pool_size": _integer(1),
    "auto_sync": _boolean,
}
_TRACING_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "enabled": _boolean,
    "service_name": _name_or_null,
    "exporter": _choice(*TRACING_EXPORTERS),
}
def _notification_drivers(value: Any) -> Tuple[str, ...]:
    names = [value] if isinstance(value, str) else ([] if value is None else value)
    if (not isinstance(names, list) or not all(isinstance(n, str) and n in NOTIFICATION_DRIVERS for n in names)
            or len(set(names)) != len(names)):
        raise _Bad("a driver name or a list of distinct driver names from "
                   + ", ".join(NOTIFICATION_DRIVERS) + " ([] for none)")
    return tuple(names)


def _topics(value: Any) -> Tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(t, str) and t.strip() and " " not in t for t in value)):
        raise _Bad("a non-empty list of topic names such as [notifications]")
    return tuple(value)


_NOTIFICATIONS_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "driver": _notification_drivers,
    "topics": _topics,
    "notification_format": _choice(*NOTIFICATION_FORMATS),
    "versioned_notifications_topics": _topics,
    "retry": _integer(-1),
}
#: The file's other top-level keys, as "did you mean" offers them.
_MAPPINGS = ("database", "<topic>_manager", "tracing", "api", "notifications")
_SECRET = {"transport_url", "database.connection"}
_MANAGER_SUFFIX = "_manager"


# -- applying the file and the overrides ------------------------------------


def _apply_file(path: str, data: Any, lines: Dict[str, int], values: Dict[str, Any],
                database: Dict[str, Any], managers: Dict[str, str],
                unbound: List[_RawSection], tracing: Dict[str, Any], notifications: Dict[str, Any]) -> None:
    def where(key: str) -> str:
        line = lines.get(key)
        return f"{path}, line {line}: {key}" if line else f"{path}: {key}"

    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (key: value) at the "
                          f"top level, got {_show('', data)}")
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where(str(key))}: keys must be strings, got {_show('', key)}")
        if key in _CHECKS:
            values[key] = _check(where(key), key, _CHECKS[key], value)
        elif key == "database":
            _apply_mapping(key, value, _DATABASE_CHECKS, database, where)
        elif key == "tracing":
            _apply_mapping(key, value, _TRACING_CHECKS, tracing, where)
        elif key == "notifications":
            _apply_mapping(key, value, _NOTIFICATIONS_CHECKS, notifications, where)
        elif key == "api":
            values[key] = parse_api_section(value, where)
        elif key.endswith(_MANAGER_SUFFIX) and len(key) > len(_MANAGER_SUFFIX):
            if not is_dotted_path(value):
                raise ConfigError(f"{where(key)}: expected the dotted path of a manager class "
                                  f"such as mypackage.volume.VolumeManager, got {_show(key, value)}")
            managers[key[:-len(_MANAGER_SUFFIX)]] = value
        elif key == "managers":
            raise ConfigError(f"{where(key)}: not a file key; write one "
                              "'<topic>_manager: dotted.path' key per topic instead")
        elif isinstance(value, dict) or (value is None and key.isidentifier()):
            # A manager's or driver's section, validated by Config.bind().
            prefix = key + "."
            section_lines = [("", lines.get(key, 0))] + [
                (name[len(prefix):], line) for name, line in lines.items()
                if name.startswith(prefix)]
            unbound.append(_RawSection(key, tuple((value or {}).items()), path,
                                       tuple(section_lines)))
        else:
            raise ConfigError(f"{where(key)}: unknown key"
                              f"{_suggest(key, [*_CHECKS, *_MAPPINGS])}")


def _apply_mapping(key: str, value: Any, checks: Mapping[str, Callable[[Any], Any]], into: Dict[str, Any],
                   where: Callable[[str], str]) -> None:
    """
    Check a built-in mapping of the file (such as C{tracing:}) key by key
    into C{into}; a C{null} mapping (every key commented out) is empty.
    """
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ConfigError(f"{where(key)}: expected a mapping with keys {', '.join(checks)}, "
                          f"got {_show(key, value)}")
    for sub, subvalue in value.items():
        name = f"{key}.{sub}"
        if sub not in checks:
            raise ConfigError(f"{where(name)}: unknown key{_suggest(str(sub), checks)}")
        into[sub] = _check(where(name), name, checks[sub], subvalue)


def _option_name(key: str) -> str:
    return "command line option --" + key.replace("_", "-")


def _apply_overrides(overrides: Mapping[str, Any], values: Dict[str, Any],
                     database: Dict[str, Any], source: Callable[[str], str] = _option_name) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        where = source(key)
        if key in _CHECKS:
            values[key] = _check(where, key, _CHECKS[key], value)
        elif key.startswith("database_") and key[len("database_"):] in _DATABASE_CHECKS:
            sub = key[len("database_"):]
            database[sub] = _check(where, "database." + sub, _DATABASE_CHECKS[sub], value)
        else:
            raise ConfigError(f"{where}: unknown setting {key!r}")


def _check(where: str, key: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except _Bad as e:
        expected = e.args[0]
        if key == "transport_url" and isinstance(value, str) and not expected.startswith("a "):
            raise ConfigError(f"{where}: {expected}") from None
        raise ConfigError(f"{where}: expected {expected}, got {_show(key, value)}") from None


def _show(key: str, value: Any) -> str:
    """
    @return: a short description of a refused value; secrets are described
        by type only.
    """
    if isinstance(value, str) and key in _SECRET:
        return "a string that is not one"
    return show_value(value)
