# -*- test-case-name: tests.test_core_service -*-
"""
L{Service}: one Manager served over RPC, with its C{services} record, the
report_state heartbeat and the periodic task timer, as Nova's
C{nova.service.Service}.

Start order (Nova's C{Service.start()}): open the store, look up the record,
C{manager.init_host(service_ref)}, create or update the record,
C{manager.pre_start_hook(service_ref)}, start the RPC consumers (connected
and consuming), C{manager.post_start_hook()}, report the state once (so
that the service is up at once, even after a restart), start the report
timer, start the periodic timer, then the HTTP API when the process gave
one (L{Service.serve_api}); only then is the service ready. Each step is a
child service (L{novasvc.core._service_steps}), so stopping runs the steps'
stop halves in reverse: the API stops, the timers stop, the RPC server
stops consuming and waits for in-flight calls (up to
C{graceful_shutdown_timeout} seconds), C{manager.cleanup_host()} runs,
then the transport and the store close.

Notifications (L{novasvc.core.service_status}): the versioned
C{service.create} when the service creates its record, C{service.delete}
when L{Service.kill} deletes it, through L{Service.versioned_notifier}; the
manager's own through C{manager.notifier}. Neither waits on the broker
during start-up.

The database steps retry what may pass (the server is down or slow), with a
log line per attempt giving the delay before the next one, and give up at
once on what will not (a L{ConfigError} such as
L{novasvc.db.store.PermanentDatabaseError}; see L{novasvc.core._service_retry}). Stopping while the start still
retries cancels it: nothing starts after the stop. L{Service.stop_now} cuts
a stop short (a second SIGTERM).
"""

import os
import random
from typing import Any, Callable, List, Optional, Union

from twisted.application.service import IService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc.core._notification_listener import manager_listener
from novasvc._phase import Phase
from novasvc._reactor import at_most, global_reactor_if_none
from novasvc.core._service_create import serializer_for, service_arguments
from novasvc.core._service_retry import one_line, qualified, retry
from novasvc.core._service_steps import PeriodicStep, Step
from novasvc.config import Config
from novasvc.context import get_admin_context
from novasvc.exceptions import (
    LifecycleError,
    ConfigError,
    LoadError,
    ServiceExists,
    ServiceNotFound,
    StartupError,
)
from novasvc.interfaces import IDatabaseAPI, IServiceStore, ITransport
from novasvc.core.lifecycle import AsyncMultiService
from novasvc.core.manager import Manager
from novasvc.periodic import fuzzy_delay
from novasvc.rpc.dispatcher import BaseRPCAPI
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.core.service_status import CREATE, DELETE, notify_service
from novasvc.core.servicegroup import ReportStateService, effective_service_down_time
from novasvc.transport.topology import QuorumQueues

_log = Logger()

#: Version written to the record's C{version} column (Nova's SERVICE_VERSION).
SERVICE_VERSION = 1
#: Seconds before the first report (Nova's INITIAL_REPORTING_DELAY).
INITIAL_REPORTING_DELAY = 5.0
# Children whose stop is always waited for, even by stop_now(): closing them
# gives unsettled deliveries back to the broker and database connections back.
_ALWAYS_CLOSED = frozenset({"transport", "db", "store"})


class Service(AsyncMultiService):
    """
    A Nova-style service hosting one L{Manager}.

    @ivar host: the host name (C{str}).
    @ivar binary: the binary name, e.g. C{novasvc-volume} (C{str}).
    @ivar topic: the RPC topic, e.g. C{volume} (C{str}).
    @ivar manager: the L{Manager} instance.
    @ivar service_ref: the L{novasvc.db.record.ServiceRecord} once started, else C{None}.
    @ivar store: the L{IServiceStore}.
    @ivar transport: the L{ITransport}.
    @ivar rpcserver: the L{RPCServer} serving C{Target(topic, server=host)}.
    @ivar serializer: the serializer of its requests (see
        L{novasvc.rpc.serializer}): what the C{serializer} configuration key
        names, else what the manager's C{serializer} attribute gives; or
        C{None}.
    @ivar notification_listener: the
        L{novasvc.notify.listener.NotificationListener} of the manager's
        C{notification_endpoints} (started after the RPC server, stopped
        and drained before it), or C{None} when it lists none.
    @ivar db: the manager's L{IDatabaseAPI}, or C{None}; stopped after the
        manager's C{cleanup_host}.
    @ivar tracing: the L{novasvc.tracing.Tracing} of the service's RPC when
        C{config.tracing.enabled}, else C{None}; it starts first and stops
        last.
    @ivar versioned_notifier: the L{novasvc.notify.notifier.Notifier} of the
        versioned notifications about this service (C{service.create},
        C{service.delete}), publisher id C{<binary>:<host>}; it sends
        nothing unless C{notifications.notification_format} includes them
        and a driver is configured.
    @ivar api: the HTTP API served in this process as the last step (see
        L{serve_api}), else C{None}; its C{port} is the port it listens on.
    """

    def __init__(self, host: str, binary: str, topic: str, manager: Manager, *,
                 config: Config, store: IServiceStore, transport: ITransport,
                 report_interval: Optional[float], periodic_enable: bool,
                 periodic_fuzzy_delay: float, periodic_interval_max: Optional[float],
                 clock=None, rng: Optional[random.Random] = None,
                 db: Optional[IDatabaseAPI] = None, versioned_notifier: Optional[Any] = None) -> None:
        AsyncMultiService.__init__(self)
        clock = global_reactor_if_none(clock)
        self.host, self.binary, self.topic = host, binary, topic
        self.manager = manager
        self.config = config
        self.store = store
        self.transport = transport
        self.db = db
        self.clock = clock
        self.service_ref = None
        self.report_state_service: Optional[ReportStateService] = None
        self.report_interval = report_interval
        self.service_down_time = effective_service_down_time(report_interval, config.service_down_time)
        self._rng = rng or random.Random()
        self._destroy_on_stop = False
        self._ran = False
        self._hurried = False
        self._host_initialised = False
        self._hurry_waiters: List[defer.Deferred] = []
        self.setName(binary)

        manager.clock = clock
        from novasvc.core.manager import null_notifier
        from novasvc.notify.notifier import Notifier

        if versioned_notifier is None:
            versioned_notifier = Notifier.from_config(transport, config, publisher_id=f"{binary}:{host}",
                                                      versioned=True, clock=clock)
        self.versioned_notifier = versioned_notifier
        self.tracing = None
        if config.tracing.enabled:
            from novasvc.tracing import Tracing  # imports OpenTelemetry: only when enabled

            self.tracing = Tracing.from_config(config.tracing, binary, host, reactor=clock)
        # The clients the manager makes trace with it (RPCClient(...,
        # tracing=self.tracing)); no other client of the process does.
        manager.tracing = self.tracing
        endpoints = [manager, BaseRPCAPI(manager.service_name)] + list(manager.additional_endpoints)
        self.serializer = serializer_for(manager, config)
        if getattr(manager, "notifier", None) in (None, null_notifier()):
            manager.notifier = Notifier.from_config(transport, config,
                                                    publisher_id=f"{manager.service_name}.{host}",
                                                    serializer=self.serializer, clock=clock)
        self.rpcserver = RPCServer(
            transport, Target(topic=topic, server=host), endpoints,
            control_exchange=config.control_exchange, clock=clock,
            max_inflight=config.rpc_max_inflight, ack=config.rpc_ack,
            duplicate_window=config.rpc_duplicate_window,
            durable_queues=config.durable_queues,
            transient_queues_ttl=config.transient_queues_ttl, quorum=QuorumQueues.from_config(config),
            reply_retry_timeout=config.kombu_missing_consumer_retry_timeout, tracing=self.tracing,
            serializer=self.serializer,
        )
        self.notification_listener = manager_listener(manager, transport, config, clock=clock,
                                                      serializer=self.serializer)
        if self.tracing is not None:
            # First to start, last to stop: it flushes the spans of the stop.
            Step(start=self.tracing.start, stop=self.tracing.stop, name="tracing").setServiceParent(self)
        Step(start=self._start_store, stop=store.stop, name="store").setServiceParent(self)
        if db is not None:
            # Opened on first use (or by the manager); closed after cleanup_host.
            Step(start=lambda: None, stop=db.stop, name="db").setServiceParent(self)
        Step(start=transport.start, stop=transport.stop, name="transport").setServiceParent(self)
        Step(start=self._start_record, stop=self._stop_record, name="record").setServiceParent(self)
        Step(start=self.rpcserver.start, stop=self._drain_rpc, name="rpc").setServiceParent(self)
        if self.notification_listener is not None:
            Step(start=self.notification_listener.start, stop=self._drain_notifications,
                  name="notifications").setServiceParent(self)
        Step(start=lambda: self._hook("post_start_hook"),
              name="post_start_hook").setServiceParent(self)
        if report_interval:
            # Report once before "ready", so that a restarted service is up
            # at once rather than after its first timer report.
            Step(start=self._first_report, name="first_report").setServiceParent(self)
            # A row deleted while the service runs is created again at the
            # next report (see README "The API service", guarded deletes).
            self.report_state_service = ReportStateService(
                store, self._service_id, report_interval=report_interval, clock=clock,
                initial_delay=min(INITIAL_REPORTING_DELAY, report_interval),
                reregister=self._register_again,
            )
            self.report_state_service.setServiceParent(self)
        if periodic_enable:
            delay = fuzzy_delay(periodic_fuzzy_delay, self._rng)
            PeriodicStep(self, delay, periodic_interval_max).setServiceParent(self)
        self.api: Optional[IService] = None

    @classmethod
    def create(cls, host: Optional[str] = None, binary: Optional[str] = None,
               topic: Optional[str] = None, manager: Union[str, Callable[..., Manager], Any] = None,
               report_interval: Optional[float] = None, periodic_enable: Optional[bool] = None,
               periodic_fuzzy_delay: Optional[float] = None,
               periodic_interval_max: Optional[float] = None, *,
               config: Optional[Config] = None, store: Optional[IServiceStore] = None,
               transport: Optional[ITransport] = None, db: Optional[IDatabaseAPI] = None,
               clock=None, rng: Optional[random.Random] = None) -> "Service":
        """
        Build a service, filling every C{None} argument as Nova's
        C{Service.create()} does: C{host} from config; C{topic} from the
        binary minus its C{novasvc-} prefix, else the manager's C{topic}
        attribute; C{manager} from the C{<topic>_manager} config key (or the
        only such key when neither topic nor binary is given); C{binary} as
        C{novasvc-<topic>}; the timer settings from config.

        The configuration is bound to the manager's declared section (and
        its drivers' sections; see L{novasvc.config.Config.bind}) before the
        manager is built.

        @param manager: a dotted path, or what one names: a L{Manager}
            subclass or other factory (called as C{manager(host=,
            service_name=)} plus C{config=} and C{db=} when it takes them), a
            module or an object (see L{novasvc.core.manager.load_manager}).
        @param report_interval: seconds between report_state runs; C{0}
            disables reporting.
        @param periodic_fuzzy_delay: upper bound in seconds of the random delay
            before the first periodic run.
        @param periodic_interval_max: the most seconds the periodic timer idles.
        @param store: the L{IServiceStore} (default: an SQL store on
            C{config.database.connection}).
        @param transport: the L{ITransport} (default: from C{config.transport_url}).
        @param db: the manager's L{IDatabaseAPI} (default: what
            C{config.db_driver} names, built with C{config=}, C{store=} and
            C{reactor=} as it accepts them).
        @param clock: the reactor, or only an C{IReactorTime} (a
            L{twisted.internet.task.Clock} in tests) for the timers. It is
            offered to the store and the database API as their C{reactor}
            only when it provides C{IReactorThreads}; otherwise they run
            their threads on the global reactor.

        @raise ConfigError: when no manager or topic can be found, or the
            manager's section is invalid.
        @raise novasvc.exceptions.LoadError: when the manager (or the
            database API) cannot be imported, built or served; the message
            is one line naming the path and the cause.
        """
        return cls(**service_arguments(
            host, binary, topic, manager, report_interval, periodic_enable, periodic_fuzzy_delay,
            periodic_interval_max, config=config, store=store, transport=transport, db=db,
            clock=clock), rng=rng)

    def serve_api(self, api: IService) -> None:
        """
        Serve C{api} as the last step: it starts once everything else has
        (the record exists, RPC consumes, the timers run), and it stops
        first. The service never builds its API: with C{api.enabled},
        C{twistd novasvc} (L{novasvc.process.tap.makeService}) builds it with
        L{novasvc.api.service.embed}, which calls this.

        @param api: the API, e.g. a L{novasvc.api.service.APIService}; it
            becomes L{api}.
        @raise LifecycleError: when the service has started already, or
            serves an API already.
        """
        if self.phase is not Phase.STOPPED or self._ran or self.api is not None:
            raise LifecycleError(f"service {self.binary} on {self.host} cannot take an API now: "
                                 "give it before the start, once")
        self.api = api
        api.setServiceParent(self)

    # -- lifecycle --------------------------------------------------------

    def startService(self) -> defer.Deferred:
        """
        Start every step in order (see the module docstring).

        @return: a C{Deferred} firing once the service is ready (consuming and
            reporting), or failing if a step failed; while starting, that
            start's outcome; while stopping or once stopped, a failed
            C{Deferred} (L{LifecycleError}): a service runs once, a new
            one is made to run again (its transport and store are closed).
        """
        if self.phase is not Phase.STOPPED:
            return AsyncMultiService.startService(self)
        if self._ran:
            return defer.fail(LifecycleError(
                f"service {self.binary} on {self.host} has stopped and is not started again; make a new one"))
        self._ran = True
        _log.info("Starting {topic} node {host} (binary {binary}, pid {pid})",
                  topic=self.topic, host=self.host, binary=self.binary, pid=os.getpid())
        d = AsyncMultiService.startService(self)
        d.addCallback(self._ready)
        return d

    def _ready(self, _: Any) -> None:
        _log.info("Service {binary} on {host} is ready", binary=self.binary, host=self.host)

    def stopService(self) -> defer.Deferred:
        """
        Stop as Nova's graceful shutdown: timers, then consumers and the
        in-flight drain, C{cleanup_host}, transport, store.

        @return: a C{Deferred} firing once stopped; a stop while stopping
            (SIGTERM, then C{kill()}) waits for the stop under way.
        """
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            _log.info("Stopping {binary} on {host}", binary=self.binary, host=self.host)
        return AsyncMultiService.stopService(self)

    def stop_now(self) -> None:
        """
        Cut a stop short (the launcher calls this on a second SIGTERM): stop
        waiting for requests in flight, periodic tasks, C{cleanup_host} and
        the last report; close the transport and the store at once. Under
        late ack, the requests still running stay unacknowledged, so the
        broker gives them to another server when the connection closes.
        Called before L{stopService}, it makes that stop immediate too.
        """
        self._hurried = True
        waiters, self._hurry_waiters = self._hurry_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _stop_child(self, child) -> defer.Deferred:
        stopping = AsyncMultiService._stop_child(self, child)
        if child.name in _ALWAYS_CLOSED:
            return stopping
        return self._unless_hurried(stopping)

    def _unless_hurried(self, d: defer.Deferred) -> defer.Deferred:
        """
        @return: a C{Deferred} with C{d}'s result, or with C{None} as soon
            as L{stop_now} is called (C{d}'s own result is then dropped).
        """
        if self._hurried:
            d.addErrback(lambda _: None)
            return defer.succeed(None)
        result: defer.Deferred = defer.Deferred()
        self._hurry_waiters.append(result)

        def done(value):
            if result in self._hurry_waiters:
                self._hurry_waiters.remove(result)
                result.callback(value)

        d.addBoth(done)
        return result

    def kill(self) -> defer.Deferred:
        """
        Stop, and soft-delete the service record (as Nova's C{kill()}, meant
        for tests and decommissioning).

        @return: a C{Deferred} firing once stopped.
        """
        self._destroy_on_stop = True
        return self.stopService()

    def reset(self) -> Any:
        """
        Re-read dynamic state (called on SIGHUP): C{manager.reset()}.
        """
        return defer.maybeDeferred(self.manager.reset).addErrback(
            lambda f: _log.failure("Error during {manager}.reset", f, manager=type(self.manager).__name__))

    def periodic_tasks(self, raise_on_error: bool = False) -> float:
        """
        One pass of the manager's periodic tasks with an admin context.

        @return: seconds until the next task is due.
        """
        return self.manager.periodic_tasks(get_admin_context(), raise_on_error=raise_on_error)

    # -- steps ------------------------------------------------------------

    def _service_id(self) -> Optional[int]:
        return self.service_ref.id if self.service_ref is not None else None

    def _start_store(self) -> defer.Deferred:
        return self._retry("open the database", self.store.start)

    @defer.inlineCallbacks
    def _start_record(self):
        ref = yield self._retry("look up the service record",
                                lambda: self.store.get_by_host_and_binary(self.host, self.binary))
        self._host_initialised = True
        yield self._hook("init_host", ref)
        if ref is None:
            ref = yield self._retry("create the service record", self._create_record)
        elif ref.version != SERVICE_VERSION or ref.topic != self.topic:
            ref = yield self._retry("update the service record", lambda: self.store.update(
                ref.id, version=SERVICE_VERSION, topic=self.topic))
        self.service_ref = ref
        yield self._hook("pre_start_hook", ref)

    def _hook(self, name: str, *args: Any) -> defer.Deferred:
        """
        Call the manager's start-up hook C{name}.

        @return: a C{Deferred} with its result, or failing with a
            L{StartupError} whose one-line message names the hook, the
            manager and the cause (chained as C{__cause__}).
        """
        def failed(failure):
            if failure.check(defer.CancelledError, ConfigError, LoadError, StartupError):
                return failure
            error = StartupError(f"{name} of {qualified(self.manager)} failed: "
                                 f"{one_line(failure)}")
            error.__cause__ = failure.value
            return defer.fail(error)

        return defer.maybeDeferred(getattr(self.manager, name), *args).addErrback(failed)

    def _first_report(self) -> defer.Deferred:
        """
        Report the service's state once (as each C{report_interval} tick
        does), retrying while the database fails.
        """
        service_id = self._service_id()
        if service_id is None:
            return defer.succeed(None)
        return self._retry("report the service's state",
                           lambda: self.store.report_state(service_id))

    def _register_again(self) -> defer.Deferred:
        """
        Create this service's row again (it was deleted while the service
        ran), and use it from now on.
        """
        def created(record):
            self.service_ref = record
            return record

        return self._create_record().addCallback(created)

    def _create_record(self) -> defer.Deferred:
        d = self.store.create(self.host, self.binary, self.topic, version=SERVICE_VERSION)

        def created(record):
            # Not waited for: the notifier never fails, and a broker that is
            # not there yet must not hold the start.
            notify_service(self.versioned_notifier, CREATE, record)
            return record

        def raced(failure):
            # A sibling created it first (Nova: ServiceBinaryExists): use theirs.
            failure.trap(ServiceExists)
            return self.store.get_by_host_and_binary(self.host, self.binary)

        return d.addCallbacks(created, raced)

    @defer.inlineCallbacks
    def _stop_record(self):
        if not self._host_initialised:
            return  # stopped before init_host: nothing to clean up
        try:
            yield defer.maybeDeferred(self.manager.cleanup_host)
        except Exception:
            _log.failure("Service error occurred during cleanup_host")
        if self._destroy_on_stop and self.service_ref is not None:
            try:
                yield self.store.destroy(self.service_ref.id)
            except ServiceNotFound:
                _log.warn("Service killed that has no database entry")
            except Exception as e:
                # The database is down: the record stays, and reads as down
                # once its reports are older than service_down_time.
                _log.error("Service {binary} on {host} killed, but its record could not be deleted: {error}",
                           binary=self.binary, host=self.host, error=one_line(Failure(e)))
            else:
                yield self._unless_hurried(at_most(
                    self.clock, notify_service(self.versioned_notifier, DELETE, self.service_ref),
                    self.config.graceful_shutdown_timeout))

    def _drain_rpc(self) -> defer.Deferred:
        d = self.rpcserver.stop()
        d.addCallback(lambda _: self.rpcserver.wait(self.config.graceful_shutdown_timeout or None))
        return d

    def _drain_notifications(self) -> defer.Deferred:
        return self.notification_listener.wait(self.config.graceful_shutdown_timeout or None)  # type: ignore

    def _retry(self, what: str, attempt: Callable[[], Any]) -> defer.Deferred:
        """
        Run C{attempt} until it succeeds, as L{novasvc.core._service_retry.retry}
        does, on the service's clock while the service runs.
        """
        return retry(what, attempt, clock=self.clock, running=lambda: bool(self.running), log=_log)
