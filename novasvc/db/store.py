# -*- test-case-name: tests.test_db_store -*-
"""
L{SQLServiceStore}: the C{services} table in an SQL database through
SQLAlchemy Core, with every statement run in a bounded thread pool of its own
(C{deferToThreadPool}), never on the reactor thread.

This module is the store's public face (C{__all__}); the work is shared
with private modules beside it. The engine is made by
L{novasvc.db._engine} (which databases and drivers, the timeouts; tools
get the same with L{open_engine}), the statements are those of
L{novasvc.db._rows} (L{record_from_row} for tools that query the table
themselves), and this module adds the thread pool's lifecycle and the
checks of each call's arguments (L{novasvc.db.rules}). A database error
reaches the caller as the failure of the returned C{Deferred}; nothing
waits forever.

L{SQLServiceStore.start} tells the errors that retrying cannot mend from
those that may pass (L{permanent_cause}, in L{novasvc.db._permanent}): the
first kind fails with L{PermanentDatabaseError}, a one-line
L{novasvc.exceptions.ConfigError}; the second with the database error
itself, for the caller to retry.

It also checks the schema revision (L{novasvc.db.migration.prepare}): an
empty database gets the C{services} table at the newest revision, and one
that is out of date is refused with a one-line
L{novasvc.db.migration.SchemaOutOfDate} saying to run C{novasvc-manage db
sync} (or is upgraded, with C{auto_sync}); neither is retried.
"""

import datetime
import uuid
from functools import partial
from typing import Any, Callable, List, Optional, TypeVar

from sqlalchemy.engine import Engine
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from novasvc._reactor import global_reactor_if_none
from novasvc.db import _rows, migration, rules
from novasvc.db._engine import is_sqlite_memory, make_engine, open_engine
from novasvc.db._permanent import PermanentDatabaseError, permanent_cause
from novasvc.db._rows import record_from_row
from novasvc.interfaces import IServiceStore

__all__ = [
    "SQLServiceStore",
    "PermanentDatabaseError",
    "permanent_cause",
    "open_engine",
    "record_from_row",
]

_T = TypeVar("_T")


@implementer(IServiceStore)
class SQLServiceStore:
    """
    The C{services} table in an SQL database.

    Every method returns a C{Deferred} and runs its statements in this
    store's own thread pool (at most C{thread_pool_size} at once), started by
    L{start} and stopped by L{stop}, or by the reactor's shutdown if L{stop}
    was never called. Until L{start} and after L{stop}, calls fail with
    C{RuntimeError}.

    @ivar engine: the SQLAlchemy C{Engine} (for tools and tests; use it from
        a thread, never from the reactor thread).
    @type engine: C{sqlalchemy.engine.Engine}
    """

    _log = Logger()

    def __init__(
        self,
        connection: str,
        *,
        reactor: Optional[Any] = None,
        thread_pool_size: int = 10,
        utcnow: Optional[Callable[[], datetime.datetime]] = None,
        connect_timeout: float = 10,
        query_timeout: float = 60,
        auto_sync: bool = False,
    ) -> None:
        """
        @param connection: an SQLAlchemy URL, as C{database.connection}.
        @type connection: C{str}
        @param reactor: provides
            L{twisted.internet.interfaces.IReactorThreads} and
            L{twisted.internet.interfaces.IReactorCore};
            default: the global reactor, looked up when first needed.
        @param thread_pool_size: the most statements running at once
            (forced to 1 for an in-memory SQLite database).
        @type thread_pool_size: C{int}
        @param utcnow: returns the current time, naive UTC or aware (it is
            converted); default: the system clock. Called on the reactor
            thread.
        @param connect_timeout: the most B{seconds} opening one connection
            may take (PostgreSQL rounds it up to whole seconds, at least 2).
        @type connect_timeout: C{float}
        @param query_timeout: on MySQL/MariaDB, the most B{seconds} to wait
            for the server's answer to one statement (driver read/write
            timeouts). PostgreSQL uses TCP keepalives and
            C{tcp_user_timeout} (about 25 seconds) instead, which notice a
            server that vanished, not one that is there and slow.
        @type query_timeout: C{float}
        @param auto_sync: let L{start} upgrade a database whose schema is
            out of date instead of refusing it (C{database.auto_sync}; see
            L{novasvc.db.migration.prepare}).
        @type auto_sync: C{bool}

        @raise novasvc.exceptions.ConfigError: if C{connection} is not a
            usable URL or its driver is not installed (the message hides the
            password).
        @raise ValueError: for a non-positive size or timeout.
        """
        if thread_pool_size < 1:
            raise ValueError(f"thread_pool_size must be at least 1, got {thread_pool_size!r}")
        if not connect_timeout > 0 or not query_timeout > 0:
            raise ValueError("connect_timeout and query_timeout must be positive")
        self.engine: Engine = make_engine(
            connection, thread_pool_size, connect_timeout, query_timeout
        )
        if is_sqlite_memory(self.engine.url):
            thread_pool_size = 1
        self._reactor = reactor
        self._thread_pool_size = thread_pool_size
        self._utcnow = utcnow if utcnow is not None else rules.default_utcnow
        self._auto_sync = auto_sync
        self._pool: Optional[ThreadPool] = None
        self._shutdown_trigger: Optional[object] = None
        self._closing = False
        self._in_flight = 0
        self._idle_waiters: List[Deferred] = []
        self._stop_waiters: List[Deferred] = []

    def __repr__(self) -> str:
        return f"<SQLServiceStore {self.engine.url.render_as_string(hide_password=True)}>"

    # Plumbing.

    def _get_reactor(self) -> Any:
        if self._reactor is None:
            self._reactor = global_reactor_if_none()
        return self._reactor

    def _now(self) -> datetime.datetime:
        return rules.naive_utc(self._utcnow())

    def run(self, work: Callable[..., _T], *args: Any) -> "Deferred[_T]":
        """
        Run C{work(*args)} in this store's thread pool (for other users of
        the same database, such as L{novasvc.db.api.Database}).

        @return: a C{Deferred} firing with C{work}'s result; failing with
            C{RuntimeError} when the store is not running.
        """
        return self._submit(work, *args)

    def _submit(self, work: Callable[..., _T], *args: Any) -> "Deferred[_T]":
        """
        Run C{work(*args)} in the pool; refuse it when not running.
        """
        if self._pool is None or self._closing:
            return fail(RuntimeError("the service store is not running; call start() first"))
        self._in_flight += 1
        d = deferToThreadPool(self._get_reactor(), self._pool, work, *args)
        d.addBoth(self._work_done)
        return d

    def _work_done(self, result: _T) -> _T:
        self._in_flight -= 1
        if self._in_flight == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
        return result

    def _when_idle(self) -> Deferred:
        if self._in_flight == 0:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    # Lifecycle.

    def start(self) -> Deferred:
        """
        Start the thread pool and check the schema revision
        (L{migration.prepare}): an empty database gets the C{services}
        table, one at the newest revision is used, an out-of-date one is
        refused (or upgraded, with C{auto_sync}).

        @return: a C{Deferred} firing with C{None}. It fails with
            L{PermanentDatabaseError} when retrying cannot help (see
            L{permanent_cause}), with a
            L{migration.SchemaVersionError} (a L{novasvc.exceptions.ConfigError} too) when the
            schema is out of date or newer than this novasvc, with the
            database error itself otherwise (for example when the server
            cannot be reached); either way the store is stopped again and
            L{start} may be retried. It fails with C{RuntimeError} if the
            store is running already.
        """
        if self._pool is not None:
            return fail(RuntimeError("the service store is already running"))
        reactor = self._get_reactor()
        pool = ThreadPool(minthreads=0, maxthreads=self._thread_pool_size, name="novasvc-db")
        pool.start()
        self._pool = pool
        self._closing = False
        self._shutdown_trigger = reactor.addSystemEventTrigger(
            "during", "shutdown", self._stop_at_shutdown
        )
        d = self._submit(partial(migration.prepare, auto_sync=self._auto_sync), self.engine)
        d.addCallbacks(self._started, self._start_failed)
        return d

    def _started(self, outcome: str) -> None:
        if outcome == migration.CREATED:
            self._log.info("Created the services table at {url} (schema revision {revision})",
                           url=repr(self), revision=migration.HEAD_REVISION)
        elif outcome == migration.UPGRADED:
            self._log.info("Upgraded the schema at {url} to revision {revision} "
                           "(database.auto_sync)", url=repr(self), revision=migration.HEAD_REVISION)
        self._log.info("Opened the services table at {url}", url=repr(self))

    def _start_failed(self, failure: Failure) -> Deferred:
        cause = permanent_cause(failure.value, self.engine.url)
        if cause is not None:
            shown = self.engine.url.render_as_string(hide_password=True)
            failure = Failure(PermanentDatabaseError(f"database {shown} cannot be used: {cause}"))
        d = self.stop()
        d.addCallback(lambda _: failure)
        return d

    def stop(self) -> Deferred:
        """
        Refuse new calls, wait for the calls already made, close the
        database connections and stop the thread pool. Stopping a store
        that is not running does nothing.

        @return: a C{Deferred} firing with C{None}.
        """
        if self._pool is None:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._stop_waiters.append(waiter)
        if not self._closing:
            self._closing = True
            pool = self._pool
            d = self._when_idle()
            if not is_sqlite_memory(self.engine.url):
                # (Closing an in-memory SQLite connection would lose the
                # database; a new start keeps it, as a server would.)
                d.addCallback(
                    lambda _: deferToThreadPool(self._get_reactor(), pool, self.engine.dispose)
                )
            d.addErrback(
                lambda f: self._log.failure("Closing the database connections failed", f)
            )
            d.addBoth(lambda _: self._stopped())
        return waiter

    def _release_pool(self) -> None:
        pool, self._pool = self._pool, None
        trigger, self._shutdown_trigger = self._shutdown_trigger, None
        if trigger is not None:
            self._get_reactor().removeSystemEventTrigger(trigger)
        if pool is not None:
            pool.stop()
        self._closing = False

    def _stopped(self) -> None:
        self._release_pool()
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _stop_at_shutdown(self) -> None:
        """
        The reactor is shutting down and L{stop} was not called: stop the
        pool (its threads would keep the process alive) and close the
        connections.
        """
        self._shutdown_trigger = None
        self._closing = True
        self._release_pool()
        self.engine.dispose()

    # The IServiceStore methods.

    def get_by_host_and_binary(self, host: str, binary: str) -> Deferred:
        """
        See L{IServiceStore.get_by_host_and_binary}.
        """
        try:
            rules.check_filters(host=host, binary=binary)
        except (TypeError, ValueError):
            return fail()
        return self._submit(_rows.get_by_host_and_binary, self.engine, host, binary)

    def get(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.get}.
        """
        try:
            rules.check_service_id(service_id)
        except TypeError:
            return fail()
        return self._submit(_rows.get, self.engine, service_id)

    def create(
        self,
        host: str,
        binary: str,
        topic: Optional[str],
        version: int = 0,
        disabled: bool = False,
        disabled_reason: Optional[str] = None,
    ) -> Deferred:
        """
        See L{IServiceStore.create}. Bad arguments fail the C{Deferred} with
        C{TypeError} or C{ValueError} (L{rules.check_create}); a live row
        with the same (C{host}, C{binary}) or (C{host}, C{topic}) fails it
        with L{novasvc.exceptions.ServiceExists}.
        """
        try:
            values = rules.check_create(host, binary, topic, version, disabled, disabled_reason)
        except (TypeError, ValueError):
            return fail()
        values.update(
            uuid=str(uuid.uuid4()),
            created_at=self._now(),
            report_count=0,
            forced_down=False,
            deleted=0,
        )
        return self._submit(_rows.create, self.engine, values)

    def update(self, service_id: int, **values: Any) -> Deferred:
        """
        See L{IServiceStore.update}. Bad values fail the C{Deferred} with
        C{TypeError} or C{ValueError} (L{rules.check_update}); a change of
        C{topic} onto another live service's topic on the same host fails it
        with L{novasvc.exceptions.ServiceExists}.
        """
        try:
            rules.check_service_id(service_id)
            changes = rules.check_update(values)
        except (TypeError, ValueError):
            return fail()
        changes["updated_at"] = self._now()
        return self._submit(_rows.update, self.engine, service_id, changes)

    def report_state(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.report_state}: one C{UPDATE} setting
        C{report_count = report_count + 1} and C{last_seen_up} and
        C{updated_at} to now, then the row is read back.
        """
        try:
            rules.check_service_id(service_id)
        except TypeError:
            return fail()
        return self._submit(_rows.report_state, self.engine, service_id, self._now())

    def destroy(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.destroy}. C{updated_at} is left as it was (as
        oslo.db's soft delete).
        """
        try:
            rules.check_service_id(service_id)
        except TypeError:
            return fail()
        return self._submit(_rows.destroy, self.engine, service_id, self._now())

    def list_services(
        self,
        host: Optional[str] = None,
        binary: Optional[str] = None,
        topic: Optional[str] = None,
        include_deleted: bool = False,
    ) -> Deferred:
        """
        See L{IServiceStore.list_services}.
        """
        try:
            filters = rules.check_filters(host=host, binary=binary, topic=topic)
        except (TypeError, ValueError):
            return fail()
        return self._submit(_rows.list_services, self.engine, filters, include_deleted)

    def ping(self) -> Deferred:
        """
        See L{IServiceStore.ping}: C{SELECT 1} in the store's thread pool (a
        connection is opened if the pool has none).
        """
        return self._submit(_rows.ping, self.engine)
