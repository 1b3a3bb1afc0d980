# -*- test-case-name: tests.test_db_store -*-
"""
L{SQLServiceStore}: the C{services} table in an SQL database through
SQLAlchemy Core, with every statement run in a bounded thread pool of its own
(C{deferToThreadPool}), never on the reactor thread.

Supported databases: SQLite (a file, or C{sqlite://} in memory), PostgreSQL
(psycopg2 or psycopg) and MySQL/MariaDB (PyMySQL or mysqlclient). A URL that
names no driver (C{postgresql://}, C{mysql://}) gets one that is installed.
The drivers are not installed with novasvc itself but by its extras,
C{novasvc[postgresql]} (psycopg2) and C{novasvc[mysql]} (PyMySQL); without
one, the store refuses the URL with a message naming the extra.

Connections are checked before use (C{pool_pre_ping}), so a restarted
database is picked up again by the next call; connecting is bounded by
C{connect_timeout} and, where the driver allows it, a dead server is noticed
within a bounded time too. A database error reaches the caller as the failure
of the returned C{Deferred}; nothing waits forever.

L{SQLServiceStore.start} tells the errors that retrying cannot mend (a
database that does not exist, a failed authentication, an SQLite file whose
directory is missing) from those that may pass (the server refuses
connections, does not answer in time, is starting up): the first kind fails
with L{PermanentDatabaseError}, a one-line L{ConfigError}; the second with
the database error itself, for the caller to retry.

It also checks the schema revision (L{novasvc.db.migration.prepare}): an
empty database gets the C{services} table at the newest revision, and one
that is out of date is refused with a one-line
L{novasvc.db.migration.SchemaOutOfDate} saying to run C{novasvc-manage db
sync} (or is upgraded, with C{auto_sync}); neither is retried.
"""

import datetime
import importlib.util
import math
import os
import re
import uuid
from functools import partial
from typing import Any, Callable, Dict, List, Optional, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, RowMapping, make_url
from sqlalchemy.pool import StaticPool
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from novasvc._reactor import global_reactor_if_none
from novasvc.db import migration, rules, schema
from novasvc.db.record import ServiceRecord
from novasvc.exceptions import ConfigError, ServiceExists, ServiceNotFound
from novasvc.interfaces import IServiceStore

_T = TypeVar("_T")
_services = schema.services
_FIELDS = [field.name for field in attrs.fields(ServiceRecord)]

# libpq TCP keepalives: a server that vanished mid-call is noticed within
# about idle + interval * count seconds instead of the kernel's two hours.
_PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


#: For each database novasvc has an extra for: its name in messages, the
#: extra, and the driver the extra installs (as written after the C{+} of
#: a URL).
_EXTRAS = {
    "postgresql": ("PostgreSQL", "postgresql", "psycopg2"),
    "mysql": ("MySQL/MariaDB", "mysql", "pymysql"),
    "mariadb": ("MySQL/MariaDB", "mysql", "pymysql"),
}


class PermanentDatabaseError(ConfigError):
    """
    The database refused the store in a way that retrying will not change:
    the database does not exist, the user or password is refused, the
    SQLite file cannot be opened (its directory is missing). The message is
    one line naming the URL (password hidden) and the cause.
    """


# PostgreSQL SQLSTATE classes that no retry mends: 28 invalid authorization,
# 3D invalid catalog (no such database), 42 access rule violation or
# syntax error (e.g. 42501 insufficient privilege).
_PG_PERMANENT_CLASSES = ("28", "3D", "42")
# What libpq says, without an SQLSTATE, when a connection is refused for
# good (the server's messages in English, its default).
_PG_PERMANENT_TEXT = re.compile(
    r'database "[^"]*" does not exist|role "[^"]*" does not exist'
    r"|authentication failed|no pg_hba\.conf entry|no password supplied"
    r"|permission denied for database"
)
# MySQL/MariaDB error numbers that no retry mends: access denied to the
# database (1044) or for the user (1045, 1698), unknown database (1049),
# command denied (1142).
_MYSQL_PERMANENT_CODES = frozenset({1044, 1045, 1049, 1142, 1698})
_SQLITE_PERMANENT_TEXT = (
    "unable to open database file",
    "attempt to write a readonly database",
    "file is not a database",
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def permanent_cause(error: BaseException, url: URL) -> Optional[str]:
    """
    Tell whether a database error at start-up is permanent: retrying the
    same connection would meet it again.

    Connection refused, timeouts, a name that does not resolve, a server
    starting up or shutting down, and every error not recognised are taken
    as transient (C{None}): retrying them costs little, and giving up on a
    database that comes back would not.

    @param error: what a store operation failed with (an SQLAlchemy
        C{DBAPIError}, whose C{orig} is the driver's error).
    @param url: the database URL, to read the backend and an SQLite path.
    @return: the cause, in one line (the driver's message), when permanent;
        C{None} when it may pass.
    """
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    orig = error.orig
    backend = url.get_backend_name()
    text = _one_line(str(orig))
    if backend == "sqlite":
        if not any(known in text for known in _SQLITE_PERMANENT_TEXT):
            return None
        directory = os.path.dirname(os.path.abspath(url.database or ""))
        if url.database and not os.path.isdir(directory):
            return f"{text}: the directory {directory} does not exist"
        return text
    if backend == "postgresql":
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        if (code and code[:2] in _PG_PERMANENT_CLASSES) or _PG_PERMANENT_TEXT.search(text):
            return text
        return None
    if backend in ("mysql", "mariadb"):
        args = getattr(orig, "args", ())
        if args and args[0] in _MYSQL_PERMANENT_CODES:
            return f"{_one_line(str(args[1])) if len(args) > 1 else text} (error {args[0]})"
    return None


def _missing_driver(url: URL, error: ModuleNotFoundError) -> str:
    """
    Say which driver a URL lacks and how to install one.

    @param url: the URL as configured, before L{_with_installed_driver}.
    @param error: raised by importing the driver.
    @return: a one-line message showing the URL with its password hidden.
    """
    shown = url.render_as_string(hide_password=True)
    backend = url.get_backend_name()
    named = url.drivername.partition("+")[2]
    if backend not in _EXTRAS:
        return f"database connection {shown} needs its driver, which is not installed ({error})"
    title, extra, driver = _EXTRAS[backend]
    install = f"pip install 'novasvc[{extra}]'"
    if named in ("", driver):
        return f"database connection {shown} needs a {title} driver: {install}"
    return (
        f"database connection {shown} needs the {named} driver, which is not installed "
        f"({error}); install it, or {install} and use {backend}+{driver}://"
    )


def _with_installed_driver(url: URL) -> URL:
    """
    Give a URL without a driver (C{postgresql://}, C{mysql://},
    C{mariadb://}) the driver novasvc's extras install when SQLAlchemy's
    default one is missing.
    """
    if url.drivername == "postgresql" and not _installed("psycopg") and _installed("psycopg2"):
        return url.set(drivername="postgresql+psycopg2")
    if (
        url.drivername in ("mysql", "mariadb")
        and not _installed("MySQLdb")
        and _installed("pymysql")
    ):
        return url.set(drivername=url.drivername + "+pymysql")
    return url


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def _connect_args(url: URL, connect_timeout: float, query_timeout: float) -> Dict[str, Any]:
    """
    The driver arguments that bound how long connecting and waiting for the
    server may take; a value given in the URL's query wins.
    """
    backend, driver = url.get_backend_name(), url.get_driver_name()
    args: Dict[str, Any] = {}
    if backend == "sqlite":
        args = {"check_same_thread": False}
    elif backend == "postgresql" and driver in ("psycopg2", "psycopg"):
        # libpq counts whole seconds and treats less than 2 as 2.
        args = {"connect_timeout": max(2, math.ceil(connect_timeout)), **_PG_KEEPALIVES}
    elif backend in ("mysql", "mariadb") and driver in ("pymysql", "mysqldb"):
        seconds: Callable[[float], Any] = float if driver == "pymysql" else math.ceil
        args = {
            "connect_timeout": seconds(connect_timeout),
            "read_timeout": seconds(query_timeout),
            "write_timeout": seconds(query_timeout),
        }
    return {name: value for name, value in args.items() if name not in url.query}


def _make_engine(
    connection: str, pool_size: int, connect_timeout: float, query_timeout: float
) -> Engine:
    try:
        url = make_url(connection)
    except (sa_exc.ArgumentError, ValueError, TypeError) as e:
        # The text may hold a password: do not repeat it.
        raise ConfigError(f"database connection is not an SQLAlchemy URL: {e}") from None
    configured, url = url, _with_installed_driver(url)
    try:
        options: Dict[str, Any] = {
            "pool_pre_ping": True,
            "connect_args": _connect_args(url, connect_timeout, query_timeout),
        }
        if _is_sqlite_memory(url):
            # One connection shared by the pool threads, or each would see
            # its own empty database.
            options["poolclass"] = StaticPool
        else:
            options.update(pool_size=pool_size, max_overflow=0)
        if url.get_backend_name() in ("mysql", "mariadb"):
            # Under the server's default wait_timeout (8 hours).
            options["pool_recycle"] = 3600
        return sa.create_engine(url, **options)
    except ModuleNotFoundError as e:
        raise ConfigError(_missing_driver(configured, e)) from e
    except (sa_exc.ArgumentError, ImportError) as e:
        shown = url.render_as_string(hide_password=True)
        raise ConfigError(f"database connection {shown} cannot be used: {e}") from e


def open_engine(connection: str, *, connect_timeout: float = 10,
                query_timeout: float = 60) -> Engine:
    """
    An engine on C{connection} made as a store makes its own (the installed
    driver chosen, bounded timeouts, connections checked before use), with
    one connection, for tools that work synchronously (C{novasvc-manage},
    L{novasvc.db.migration.sync}). The caller disposes of it.

    @param connection: an SQLAlchemy URL, as C{database.connection}.
    @param connect_timeout: see L{SQLServiceStore.__init__}, in B{seconds}.
    @param query_timeout: see L{SQLServiceStore.__init__}, in B{seconds}.
    @return: the SQLAlchemy C{Engine}.
    @raise ConfigError: if C{connection} is not a usable URL or its driver
        is not installed (the message hides the password).
    """
    return _make_engine(connection, 1, connect_timeout, query_timeout)


def record_from_row(row: RowMapping) -> ServiceRecord:
    """
    @param row: a row of the C{services} table, as a mapping.
    @return: it as a L{ServiceRecord}, booleans as C{bool} whatever the
        database stores them as (for tools that query the table
        themselves).
    """
    return _record(row)


def _record(row: RowMapping) -> ServiceRecord:
    values = {name: row[name] for name in _FIELDS}
    values["disabled"] = bool(values["disabled"])
    values["forced_down"] = bool(values["forced_down"])
    values["deleted"] = values["deleted"] or 0
    return ServiceRecord(**values)


def _live(service_id: int) -> sa.ColumnElement[bool]:
    return sa.and_(_services.c.id == service_id, _services.c.deleted == 0)


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
            timeouts). PostgreSQL uses TCP keepalives (about 25 seconds)
            instead.
        @type query_timeout: C{float}
        @param auto_sync: let L{start} upgrade a database whose schema is
            out of date instead of refusing it (C{database.auto_sync}; see
            L{novasvc.db.migration.prepare}).
        @type auto_sync: C{bool}

        @raise ConfigError: if C{connection} is not a usable URL or its
            driver is not installed (the message hides the password).
        @raise ValueError: for a non-positive size or timeout.
        """
        if thread_pool_size < 1:
            raise ValueError(f"thread_pool_size must be at least 1, got {thread_pool_size!r}")
        if not connect_timeout > 0 or not query_timeout > 0:
            raise ValueError("connect_timeout and query_timeout must be positive")
        self.engine: Engine = _make_engine(
            connection, thread_pool_size, connect_timeout, query_timeout
        )
        if _is_sqlite_memory(self.engine.url):
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
            L{migration.SchemaVersionError} (a L{ConfigError} too) when the
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
            if not _is_sqlite_memory(self.engine.url):
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
        return self._submit(self._get_by_host_and_binary, host, binary)

    def _get_by_host_and_binary(self, host: str, binary: str) -> Optional[ServiceRecord]:
        query = sa.select(_services).where(
            _services.c.host == host, _services.c.binary == binary, _services.c.deleted == 0
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row)

    def get(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.get}.
        """
        try:
            rules.check_service_id(service_id)
        except TypeError:
            return fail()
        return self._submit(self._get, service_id)

    def _get(self, service_id: int) -> ServiceRecord:
        with self.engine.connect() as conn:
            return self._select_live(conn, service_id)

    def _select_live(self, conn: Connection, service_id: int) -> ServiceRecord:
        row = conn.execute(sa.select(_services).where(_live(service_id))).mappings().first()
        if row is None:
            raise ServiceNotFound(f"no live service with id {service_id}")
        return _record(row)

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
        with L{ServiceExists}.
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
        return self._submit(self._create, values)

    def _create(self, values: Dict[str, Any]) -> ServiceRecord:
        try:
            with self.engine.begin() as conn:
                result = conn.execute(sa.insert(_services).values(**values))
                return self._select_live(conn, result.inserted_primary_key[0])
        except sa_exc.IntegrityError:
            raise ServiceExists(
                f"a live service with host {values['host']!r} and binary "
                f"{values['binary']!r} or topic {values['topic']!r} exists"
            ) from None

    def update(self, service_id: int, **values: Any) -> Deferred:
        """
        See L{IServiceStore.update}. Bad values fail the C{Deferred} with
        C{TypeError} or C{ValueError} (L{rules.check_update}); a change of
        C{topic} onto another live service's topic on the same host fails it
        with L{ServiceExists}.
        """
        try:
            rules.check_service_id(service_id)
            changes = rules.check_update(values)
        except (TypeError, ValueError):
            return fail()
        changes["updated_at"] = self._now()
        return self._submit(self._update, service_id, changes)

    def _update(self, service_id: int, changes: Dict[str, Any]) -> ServiceRecord:
        try:
            with self.engine.begin() as conn:
                statement = sa.update(_services).where(_live(service_id)).values(**changes)
                result = conn.execute(statement)
                if result.rowcount == 0:
                    raise ServiceNotFound(f"no live service with id {service_id}")
                return self._select_live(conn, service_id)
        except sa_exc.IntegrityError:
            raise ServiceExists(
                f"another live service on this host has topic {changes.get('topic')!r}"
            ) from None

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
        return self._submit(self._report_state, service_id, self._now())

    def _report_state(self, service_id: int, now: datetime.datetime) -> ServiceRecord:
        statement = (
            sa.update(_services)
            .where(_live(service_id))
            .values(report_count=_services.c.report_count + 1, last_seen_up=now, updated_at=now)
        )
        with self.engine.begin() as conn:
            if conn.execute(statement).rowcount == 0:
                raise ServiceNotFound(f"no live service with id {service_id}")
            return self._select_live(conn, service_id)

    def destroy(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.destroy}. C{updated_at} is left as it was (as
        oslo.db's soft delete).
        """
        try:
            rules.check_service_id(service_id)
        except TypeError:
            return fail()
        return self._submit(self._destroy, service_id, self._now())

    def _destroy(self, service_id: int, now: datetime.datetime) -> None:
        statement = (
            sa.update(_services)
            .where(_live(service_id))
            .values(deleted=_services.c.id, deleted_at=now)
        )
        with self.engine.begin() as conn:
            if conn.execute(statement).rowcount == 0:
                raise ServiceNotFound(f"no live service with id {service_id}")

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
        return self._submit(self._list_services, filters, include_deleted)

    def ping(self) -> Deferred:
        """
        See L{IServiceStore.ping}: C{SELECT 1} in the store's thread pool (a
        connection is opened if the pool has none).
        """
        return self._submit(self._ping)

    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def _list_services(self, filters: Dict[str, str], include_deleted: bool) -> List[ServiceRecord]:
        query = sa.select(_services).order_by(_services.c.id)
        for name, value in filters.items():
            query = query.where(_services.c[name] == value)
        if not include_deleted:
            query = query.where(_services.c.deleted == 0)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]
