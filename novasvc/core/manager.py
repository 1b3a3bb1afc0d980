# -*- test-case-name: tests.test_core_manager -*-
"""
The L{Manager} base class: the logic of one service, its lifecycle hooks and
its periodic tasks (Nova's C{nova.manager.Manager}); and L{load_manager},
which turns what C{--manager} names into one.
"""

import inspect
import socket
from typing import Any, ClassVar, FrozenSet, List, Mapping, Optional, Sequence

from novasvc.config.loader import create_object, describe_object, load_driver, load_object
from novasvc.config.options import DriverOpt, Opt, Section
from novasvc.exceptions import LoadError

__all__ = ["Manager", "load_manager", "check_module", "null_notifier"]

from novasvc.periodic import PeriodicTasks  # noqa: E402 (after __all__ for readability)


class Manager(PeriodicTasks):
    """
    Base class of the managers a service hosts, as Nova's C{Manager}.

    B{RPC methods.} Every public method of a subclass (name not starting
    with C{_} and not in L{rpc_hidden_names}) can be called over RPC as
    C{method(context, **kwargs)}, where C{context} is the caller's request
    context. It may return a value (JSON-serialisable), a C{Deferred} or a
    coroutine (C{async def}); the reply is sent when the result is ready.
    Blocking work belongs off the reactor thread (e.g. C{deferToThread}).

    B{Periodic tasks.} Decorate methods with
    L{novasvc.periodic.periodic_task}; the service calls L{periodic_tasks}
    from its dynamic timer. Tasks run in every process of the service.

    B{Lifecycle.} The service calls, in order: L{init_host} (before its
    record in the C{services} table is created or updated),
    L{pre_start_hook} (before consuming RPC), L{post_start_hook} (once RPC
    consumers run); at shutdown L{cleanup_host}; on SIGHUP L{reset}. All are
    no-ops here.

    @cvar target: the L{novasvc.rpc.target.Target} this manager serves, set
        by subclasses, e.g. C{Target(version="1.3")} (its namespace and the
        highest version it implements). C{None}: as oslo.messaging treats an
        endpoint without a target, the default namespace at version 1.0.
    B{Configuration.} A manager declares its own options in L{options} (a
    sequence of L{novasvc.config.options.Opt}); they are read from the YAML section
    named L{config_section} (default: the topic), validated at start-up,
    and reach the manager as L{config} (the whole read-only
    L{novasvc.config.Config}) and L{section} (its own part). A
    L{novasvc.config.options.DriverOpt} chooses a driver by dotted path, which
    L{load_driver} loads and verifies against the declared interface.

    B{Database.} L{db} is the database API chosen by the C{db_driver}
    setting (default: L{novasvc.db.api.Database} on the service's
    database), so a manager can keep its own tables, as Nova's managers
    have C{self.db}.

    @cvar serializer: the RPC serializer the service uses for this
        manager's requests (see L{novasvc.rpc.serializer}): an instance, or a
        class or zero-argument factory called once by the service; C{None}:
        none. The configuration key C{serializer} beats it.
    B{Notifications.} A manager that lists endpoints in
    L{notification_endpoints} gets a notification listener started by its
    service (see L{novasvc.notify.listener}); the manager itself is not an
    endpoint unless listed.

    @cvar notification_endpoints: the notification endpoint objects (methods
        named by priority, an optional C{filter_rule}); empty: no listener.
    @cvar notification_targets: the L{novasvc.rpc.target.Target}s listened
        to; C{None}: one per topic of the configuration's
        C{notifications.topics} when it has that key, else
        C{Target(topic="notifications")}.
    @cvar notification_pool: the listener's pool, or C{None}.
    @cvar notification_allow_requeue: whether an endpoint's C{REQUEUE} (or
        error) gives the notification back to the broker.
    @cvar options: the options of this manager's section (C{Sequence[Opt]}).
    @cvar config_section: the YAML section holding them (C{str}; default:
        the topic).
    @cvar rpc_hidden_names: names never callable over RPC: every lifecycle
        and framework attribute of this class. The RPC dispatcher refuses
        them and every name starting with C{_}. A subclass may extend it
        (C{Manager.rpc_hidden_names | {"helper"}}).
    @ivar host: the host this manager runs on (the service's C{host}).
    @type host: C{str}
    @ivar service_name: the service's name, e.g. C{"compute"}.
    @type service_name: C{str}
    @ivar additional_endpoints: more RPC endpoint objects served next to
        the manager (Nova's attribute of the same name); empty here.
    @type additional_endpoints: C{list}
    @ivar config: the validated, read-only configuration
        (L{novasvc.config.Config}); the defaults when none was given.
    @ivar db: the database API (L{novasvc.db.api.IDatabaseAPI}), or C{None}
        when the manager was built without one.
    @ivar notifier: the manager's L{novasvc.notify.notifier.Notifier}, as
        Nova's C{self.notifier}: unversioned notifications published as
        C{<service_name>.<host>} through the drivers and topics of the
        C{notifications:} section, with the manager's serializer
        (C{self.notifier.info(context, "volume.create.end", payload)}). A
        manager built outside a service has one that sends nothing.
    @ivar tracing: the service's L{novasvc.tracing.Tracing} when its
        C{tracing.enabled}, else C{None}: give it to the RPC clients the
        manager makes (C{RPCClient(..., tracing=self.tracing)}) so that
        their calls are spans of the request being served.
    """

    tracing: Optional[Any] = None

    target: ClassVar[Optional[Any]] = None
    options: ClassVar[Sequence[Opt]] = ()
    config_section: ClassVar[Optional[str]] = None
    serializer: ClassVar[Optional[Any]] = None
    notification_endpoints: Sequence[object] = ()
    notification_targets: Optional[Sequence[Any]] = None
    notification_pool: Optional[str] = None
    notification_allow_requeue: bool = False

    rpc_hidden_names: ClassVar[FrozenSet[str]] = frozenset(
        {
            # Manager's own attributes and hooks.
            "host",
            "service_name",
            "target",
            "additional_endpoints",
            "tracing",
            "rpc_hidden_names",
            "config",
            "db",
            "options",
            "config_section",
            "section",
            "load_driver",
            "serializer",
            "notification_endpoints",
            "notification_targets",
            "notification_pool",
            "notification_allow_requeue",
            "notifier",
            # Not defined here, but read by the Service (Service.create takes
            # a manager class's topic when no binary names one).
            "topic",
            "init_host",
            "pre_start_hook",
            "post_start_hook",
            "cleanup_host",
            "reset",
            "periodic_tasks",
            # Inherited from novasvc.periodic.PeriodicTasks.
            "run_periodic_tasks",
            "add_periodic_task",
            "wait_for_periodic_tasks",
            "clock",
            "run_external_periodic_tasks",
            "periodic_metrics",
        }
    )

    def __init__(
        self, host: Optional[str] = None, service_name: str = "undefined", *args: Any,
        config: Optional[Any] = None, db: Optional[Any] = None, notifier: Optional[Any] = None,
        **kwargs: Any
    ) -> None:
        """
        @param host: the host name; C{None} means C{socket.gethostname()}
            (the Service passes its configured C{host}).
        @param service_name: the service's name, for logs and C{ping}.
        @param config: the L{novasvc.config.Config} (the Service passes its
            own, bound to this manager's section); C{None}: the defaults.
        @param db: the database API (the Service passes the one C{db_driver}
            names).
        @param notifier: the L{novasvc.notify.notifier.Notifier}; C{None}:
            one that sends nothing, which the service hosting the manager
            replaces with one made from its configuration (publisher id
            C{<service_name>.<host>}, the service's serializer) before
            C{init_host}.
        @param args: passed on to the next class in the MRO (so managers
            can combine mixins); left-over arguments raise C{TypeError}.
        @param kwargs: likewise.
        @raise novasvc.exceptions.ConfigError: if C{config} is C{None} and
            a declared option is required.
        """
        super().__init__(*args, **kwargs)
        self.host: str = host if host is not None else socket.gethostname()
        self.service_name: str = service_name
        self.additional_endpoints: List[object] = []
        if config is None:
            from novasvc.config import Config

            config = Config()
        self.config = config.bind([self], default_section=service_name)
        self.db = db
        self.notifier = notifier if notifier is not None else null_notifier()

    @property
    def section(self) -> Section:
        """
        This manager's own validated options (L{novasvc.config.options.Section}),
        read from its L{config_section}.

        @raise KeyError: if the manager declares no options.
        """
        return self.config.section(self.config_section or self.service_name)

    def load_driver(self, option: str = "driver", *args: Any, **kwargs: Any) -> Any:
        """
        Load the driver a L{novasvc.config.options.DriverOpt} of this manager's
        section chooses, as Nova's managers load C{volume_driver}: through
        L{novasvc.config.loader.load_driver}, verified against the option's
        interface. The option's value is an alias of its entry point group
        or a dotted path. The factory is called with those of C{host},
        C{service_name}, C{config} (the read-only configuration) and C{db}
        (this manager's L{db}) that its signature accepts: a driver class
        whose C{__init__} takes none of them is called with none.

        @param option: the option's name.
        @param args: positional arguments for the driver's factory.
        @param kwargs: keyword arguments for it.
        @return: the driver.
        @raise novasvc.exceptions.LoadError: if it cannot be loaded or does
            not provide the interface (the message names what is missing).
        @raise KeyError: if no such L{DriverOpt} is declared.
        """
        opt = next((o for o in self.options if o.name == option and isinstance(o, DriverOpt)),
                   None)
        if opt is None:
            raise KeyError(f"{type(self).__name__} declares no DriverOpt {option!r}")
        offer = {"host": self.host, "service_name": self.service_name,
                 "config": self.config, "db": self.db}
        return load_driver(self.section[option], opt.interface, *args, group=opt.group,
                           offer={k: v for k, v in offer.items() if k not in kwargs}, **kwargs)

    def init_host(self, service_ref: Optional[Any]) -> None:
        """
        Prepare the host, before the service record is created or updated.

        @param service_ref: the service's L{novasvc.db.record.ServiceRecord},
            or C{None} on a first start (as Nova since 2023).
        """

    def pre_start_hook(self, service_ref: Any) -> None:
        """
        Called once the service record exists, before RPC consumers start.

        @param service_ref: the service's L{novasvc.db.record.ServiceRecord}.
        """

    def post_start_hook(self) -> None:
        """
        Called right after the RPC consumers started.
        """

    def cleanup_host(self) -> None:
        """
        Called at shutdown, once RPC consumers stopped.
        """

    def reset(self) -> None:
        """
        Called on SIGHUP: re-read whatever configuration may change at
        runtime.
        """

    def periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float:
        """
        Run the due periodic tasks; what the service's timer calls.

        @param context: passed to each task (an admin context).
        @param raise_on_error: see
            L{novasvc.periodic.PeriodicTasks.run_periodic_tasks}.
        @return: B{seconds} until the next call is useful.
        """
        return self.run_periodic_tasks(context, raise_on_error=raise_on_error)


def null_notifier() -> Any:
    """
    @return: the process's notifier that sends nothing (driver C{noop}),
        what a manager built outside a service has as C{notifier}.
    """
    global _NULL_NOTIFIER
    if _NULL_NOTIFIER is None:
        from novasvc.notify.notifier import Notifier

        _NULL_NOTIFIER = Notifier(None, driver="noop")
    return _NULL_NOTIFIER


_NULL_NOTIFIER: Optional[Any] = None


class _Adapted(Manager):
    """
    A module or plain object served as a manager: its public functions are
    the RPC methods, and the service supplies the lifecycle hooks it lacks
    (each hook it has is called).
    """

    def __init__(self, wrapped: Any, **kwargs: Any) -> None:
        Manager.__init__(self, **kwargs)
        self.wrapped = wrapped
        self.target = getattr(wrapped, "target", None)  # type: ignore[misc]
        self.additional_endpoints = [wrapped]

    def _hook(self, name: str, *args: Any) -> Any:
        hook = getattr(self.wrapped, name, None)
        return hook(*args) if callable(hook) else None

    def init_host(self, service_ref: Optional[Any]) -> Any:
        return self._hook("init_host", service_ref)

    def pre_start_hook(self, service_ref: Any) -> Any:
        return self._hook("pre_start_hook", service_ref)

    def post_start_hook(self) -> Any:
        return self._hook("post_start_hook")

    def cleanup_host(self) -> Any:
        return self._hook("cleanup_host")

    def reset(self) -> Any:
        return self._hook("reset")


def load_manager(manager: Any, *, host: str, service_name: str,
                 offer: Mapping[str, Any] = {}) -> Manager:
    """
    Build the manager that C{--manager} or C{<topic>_manager} names, as
    Nova's documentation puts it: "singletons, classes, modules or
    objects". A L{Manager} subclass or any other factory is called with
    those of C{host}, C{service_name} and the entries of C{offer}
    (C{config}, C{db}) that its signature accepts (with none, for a factory
    that takes none); a module or an object is served as it is, wrapped so
    that it has the lifecycle hooks it lacks (a module serves only the
    public functions it defines itself, and one that defines none is
    refused).

    @param manager: a dotted path, or the object it would name.
    @param host: the service's host.
    @param service_name: the service's name (its topic).
    @param offer: more keyword arguments for a factory that takes them.
    @return: a L{Manager}.
    @raise LoadError: a one-line message naming the path, what it is and
        why it cannot serve: it cannot be imported, calling it raised, or
        it has nothing callable over RPC.
    """
    path = manager if isinstance(manager, str) else describe_object(manager)
    found = load_object(manager) if isinstance(manager, str) else manager
    built = create_object(path, found, "manager",
                          offer={"host": host, "service_name": service_name, **offer})
    if isinstance(built, Manager):
        return built
    check_module(path, built)
    if not inspect.ismodule(built) and not _public_methods(built):
        made = ("" if built is found
                else f" (calling {describe_object(found)} returned a {type(built).__qualname__})")
        raise LoadError(f"cannot serve manager {path!r}: it is a {describe_object(built)}"
                        f"{made} with no public methods to call over RPC; expected a Manager "
                        "class, a factory, a module or an object with methods")
    return _Adapted(built, host=host, service_name=service_name,
                    **{k: v for k, v in offer.items() if k in ("config", "db", "notifier")})


def check_module(path: str, found: Any) -> None:
    """
    Refuse a module named as a manager that has nothing to serve, the
    usual sign of a path whose class name was forgotten
    (C{--manager=inventory.manager}).

    @param path: the dotted path, for the message.
    @param found: what it names.
    @raise LoadError: if C{found} is a module defining no public function;
        the message names the manager classes the module defines.
    """
    if inspect.ismodule(found) and not _module_functions(found):
        raise LoadError(f"cannot serve manager {path!r}: module {found.__name__} defines no "
                        f"public function to call over RPC{_did_you_mean(found)}")


def _module_functions(module: Any) -> List[str]:
    """
    @return: the public functions C{module} defines itself (not those it
        imports), which is what serving it offers over RPC.
    """
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(value)
            and value.__module__ == module.__name__]


def _did_you_mean(module: Any) -> str:
    """
    @return: C{" (did you mean pkg.mod.Name?)"} naming the manager classes
        C{module} defines, or C{""}.
    """
    classes = [f"{module.__name__}.{name}" for name, value in vars(module).items()
               if inspect.isclass(value) and issubclass(value, Manager) and value is not Manager
               and value.__module__ == module.__name__]
    return f" (did you mean {' or '.join(classes)}?)" if classes else ""


def _public_methods(obj: Any) -> List[str]:
    """
    @return: the public callable attributes C{obj}'s own class defines
        (nothing for the instances of built-in types such as C{str}).
    """
    cls = type(obj)
    if cls.__module__ == "builtins":
        return []
    return [name for name in dir(cls) if not name.startswith("_")
            and callable(getattr(obj, name, None))]
