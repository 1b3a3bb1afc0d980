# -*- test-case-name: tests.test_manager -*-
"""
The L{Manager} base class: the logic of one service, its lifecycle hooks and
its periodic tasks (Nova's C{nova.manager.Manager}).
"""

import socket
from typing import Any, ClassVar, FrozenSet, List, Optional

from novasvc.periodic import PeriodicTasks

__all__ = ["Manager"]


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
    """

    target: ClassVar[Optional[Any]] = None

    rpc_hidden_names: ClassVar[FrozenSet[str]] = frozenset(
        {
            # Manager's own attributes and hooks.
            "host",
            "service_name",
            "target",
            "additional_endpoints",
            "rpc_hidden_names",
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
        }
    )

    def __init__(
        self, host: Optional[str] = None, service_name: str = "undefined", *args: Any, **kwargs: Any
    ) -> None:
        """
        @param host: the host name; C{None} means C{socket.gethostname()}
            (the Service passes its configured C{host}).
        @param service_name: the service's name, for logs and C{ping}.
        @param args: passed on to the next class in the MRO (so managers
            can combine mixins); left-over arguments raise C{TypeError}.
        @param kwargs: likewise.
        """
        super().__init__(*args, **kwargs)
        self.host: str = host if host is not None else socket.gethostname()
        self.service_name: str = service_name
        self.additional_endpoints: List[object] = []

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
