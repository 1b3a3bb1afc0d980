# -*- test-case-name: tests.test_testing_harness -*-
"""
L{ServiceHarness}: run your own manager in process, as
C{twistd novasvc} would, without a broker or a database server: an
in-memory broker (L{novasvc.transport.memory}), an in-memory C{services}
table (L{novasvc.db.memory}), a L{twisted.internet.task.Clock} for every
timer, and SQLite in memory as the manager's C{self.db}.

Calls and casts go through the real RPC path (wire format, dispatcher,
access policy, error replies), so a test sees what a remote caller would::

    class VolumeManagerTests(SynchronousTestCase):
        def test_create(self):
            harness = ServiceHarness(VolumeManager)
            self.successResultOf(harness.start())
            self.assertEqual(self.successResultOf(harness.call("create_volume", size_gb=1))["size_gb"], 1)
            harness.advance(60)                       # periodic tasks and report_state run
            self.successResultOf(harness.stop())

A manager that uses C{self.db} does its database work in a thread: test it
with trial's asynchronous C{TestCase} (C{await harness.call(...)}), which
runs the real reactor for that work while the clock stays fake.
"""

import datetime
from typing import Any, List, Optional

from twisted.internet import defer, task

from novasvc.config import Config
from novasvc.context import RequestContext, get_admin_context
from novasvc.db.memory import MemoryServiceStore
from novasvc.db.record import ServiceRecord
from novasvc.notify.drivers import TestDriver
from novasvc.notify.message import Notification
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.core.service import Service
from novasvc.core.servicegroup import is_up
from novasvc.transport.memory import MemoryBroker, MemoryTransport

__all__ = ["ServiceHarness", "EPOCH"]

#: What the harness's services table reads as "now" when its clock is at 0.
EPOCH = datetime.datetime(2026, 1, 1)


class ServiceHarness:
    """
    One service, its broker and its services table, all in memory.

    @ivar clock: the L{task.Clock} every timer of the service uses.
    @ivar broker: the L{MemoryBroker} (its C{queues} can be inspected).
    @ivar store: the L{MemoryServiceStore} holding the C{services} rows.
    @ivar service: the L{novasvc.core.service.Service}.
    @ivar context: the request context L{call} and L{cast} send by default
        (an admin context).
    """

    def __init__(self, manager: Any, *, config: Optional[Config] = None,
                 host: Optional[str] = None, topic: Optional[str] = None,
                 binary: Optional[str] = None, db: Optional[Any] = None,
                 clock: Optional[task.Clock] = None,
                 periodic_fuzzy_delay: Optional[float] = 0) -> None:
        """
        @param manager: what C{--manager} would name: a dotted path, a
            L{novasvc.core.manager.Manager} subclass, a factory, a module or an
            object.
        @param config: the configuration (default: the defaults, with host
            C{test-host}); its manager and driver sections are bound as the
            service's are. Load a YAML file with
            L{novasvc.config.load_config}, or give sections in code with
            C{Config().with_sections(stock={"driver": "memory"})}.
        @param host: overrides C{config.host}.
        @param topic: the topic (default: the manager's C{topic}).
        @param binary: the binary (default: C{novasvc-<topic>}).
        @param db: the manager's database API (default: a
            L{novasvc.db.api.Database} on SQLite in memory, opened on first
            use).
        @param clock: the clock (default: a new L{task.Clock} at 0).
        @param periodic_fuzzy_delay: the most B{seconds} of random delay
            before the first periodic run: C{0} by default, whatever
            C{config} says, so that periodic tasks run at fixed times
            (the first pass at once, the next ones after their spacing);
            C{None} takes C{config.periodic_fuzzy_delay}.
        @raise novasvc.exceptions.ConfigError: as L{Service.create}.
        @raise novasvc.exceptions.LoadError: as L{Service.create}.
        """
        self.clock = clock if clock is not None else task.Clock()
        self.broker = MemoryBroker()
        self.store = MemoryServiceStore(utcnow=self.utcnow)
        if config is None:
            config = Config(host="test-host", periodic_fuzzy_delay=0)
        if host is not None:
            config = config.replace(host=host)
        if db is None:
            from novasvc.db.api import Database

            db = Database(connection="sqlite://")
        self.service: Service = Service.create(
            host=config.host, binary=binary, topic=topic, manager=manager, config=config,
            store=self.store, transport=MemoryTransport(broker=self.broker, clock=self.clock),
            db=db, clock=self.clock, periodic_fuzzy_delay=periodic_fuzzy_delay,
        )
        self.context: RequestContext = get_admin_context()
        self._client: Optional[RPCClient] = None
        # Every notification is kept too (the test driver beside the
        # configured ones): the manager's and the service's versioned ones.
        self._sent, self._versioned_sent = TestDriver(), TestDriver()
        service = self.service
        service.manager.notifier = service.manager.notifier.with_driver(self._sent)
        service.versioned_notifier = service.versioned_notifier.with_driver(self._versioned_sent)

    @property
    def manager(self) -> Any:
        """
        The manager the service hosts (L{novasvc.core.manager.Manager}).
        """
        return self.service.manager

    @property
    def notifications(self) -> List[Notification]:
        """
        The notifications the manager sent through C{self.notifier}, oldest
        first (L{novasvc.notify.message.Notification}s: C{publisher_id},
        C{event_type}, C{priority}, C{payload} and C{context} as
        serialized), whatever the C{notifications:} section says; they also
        go where its drivers send them.
        """
        return self._sent.notifications

    @property
    def versioned_notifications(self) -> List[Notification]:
        """
        The versioned notifications the service sent about its record
        (C{service.create}, C{service.delete}), oldest first.
        """
        return self._versioned_sent.notifications

    @property
    def config(self) -> Config:
        """
        The service's bound configuration (L{Config}).
        """
        return self.service.config

    def utcnow(self) -> datetime.datetime:
        """
        @return: the time the harness's clock says, as naive UTC:
            L{EPOCH} plus C{clock.seconds()}.
        """
        return EPOCH + datetime.timedelta(seconds=self.clock.seconds())

    # -- lifecycle --------------------------------------------------------

    def start(self) -> defer.Deferred:
        """
        Start the service: C{init_host}, the services row, the RPC
        consumers, the timers (as L{Service.startService}).

        @return: a C{Deferred} firing once the service is ready.
        """
        return self.service.startService()

    def stop(self) -> defer.Deferred:
        """
        Stop the service gracefully (in-flight requests, C{cleanup_host}).

        @return: a C{Deferred} firing once stopped.
        """
        return self.service.stopService()

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """
        Move the clock forward by C{seconds}, C{step} seconds at a time, so
        that periodic tasks and C{report_state} run as they would in that
        time.

        @param seconds: how far, in B{seconds}.
        @param step: the largest single move, in B{seconds}.
        @raise ValueError: for a negative C{seconds} or a C{step} <= 0.
        """
        if seconds < 0 or step <= 0:
            raise ValueError("seconds must be >= 0 and step > 0")
        left = seconds
        while left > 0:
            move = min(step, left)
            self.clock.advance(move)
            left -= move

    # -- RPC ----------------------------------------------------------------

    def client(self, **target: Any) -> RPCClient:
        """
        @param target: L{Target} fields (C{server}, C{version},
            C{namespace}, C{fanout}...); the topic defaults to the service's.
        @return: an L{RPCClient} on the harness's broker, with the
            service's serializer (L{Service.serializer}), as a caller of the
            same project has.
        """
        target.setdefault("topic", self.service.topic)
        return RPCClient(MemoryTransport(broker=self.broker, clock=self.clock), Target(**target),
                         control_exchange=self.config.control_exchange,
                         allowed_remote_exmods=self.config.allowed_remote_exmods,
                         rpc_response_timeout=self.config.rpc_response_timeout,
                         missing_consumer_retry_timeout=self.config.kombu_missing_consumer_retry_timeout,
                         clock=self.clock, serializer=self.service.serializer)

    def _default_client(self) -> RPCClient:
        if self._client is None:
            self._client = self.client()
        return self._client

    def call(self, method: str, *, ctxt: Any = None, **kwargs: Any) -> defer.Deferred:
        """
        Call a method of the manager over the in-memory broker, as a remote
        caller would.

        @param method: the method's name.
        @param ctxt: the request context (default: L{context}).
        @param kwargs: the method's arguments.
        @return: a C{Deferred} firing with the reply, or failing with the
            remote error (e.g. L{novasvc.rpc.errors.NoSuchMethod}).
        """
        return self._default_client().call(self.context if ctxt is None else ctxt, method,
                                           **kwargs)

    def cast(self, method: str, *, ctxt: Any = None, **kwargs: Any) -> defer.Deferred:
        """
        Cast to a method of the manager (no reply).

        @return: a C{Deferred} firing once the broker took the message.
        """
        return self._default_client().cast(self.context if ctxt is None else ctxt, method,
                                           **kwargs)

    # -- the services table -------------------------------------------------

    def services(self, include_deleted: bool = False) -> List[ServiceRecord]:
        """
        @return: the rows of the in-memory C{services} table
            (L{ServiceRecord}s ordered by id).
        """
        return self.successful(self.store.list_services(include_deleted=include_deleted))

    def is_up(self) -> bool:
        """
        @return: whether this service counts as up now (Nova's
            C{servicegroup} rule with the service's C{service_down_time}).
        @raise LookupError: before the service has a row.
        """
        ref = self.service.service_ref
        if ref is None:
            raise LookupError("the service has no row yet: start() it first")
        record = self.successful(self.store.get(ref.id))
        return is_up(record, self.utcnow(), self.service.service_down_time)

    @staticmethod
    def successful(d: defer.Deferred) -> Any:
        """
        @return: the result of a C{Deferred} that has already fired.
        @raise AssertionError: if it has not fired, or failed (the failure
            is raised as its exception).
        """
        results: List[Any] = []
        d.addBoth(results.append)
        if not results:
            raise AssertionError(f"{d!r} has not fired")
        result = results[0]
        if isinstance(result, defer.Failure):
            result.raiseException()
        return result

