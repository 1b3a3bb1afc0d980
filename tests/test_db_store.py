"""
Tests for L{novasvc.db.store}: the L{IServiceStore} contract against SQLite
(a file and in memory), PostgreSQL and MariaDB, and what is particular to
running SQLAlchemy in a thread pool.

PostgreSQL (C{127.0.0.1:5432}, user C{postgres}) and MariaDB
(C{127.0.0.1:3306}, C{root}) tests each use a database of their own,
C{novasvc_test_<uuid hex>}, dropped afterwards; without the server they skip
(or fail in CI).
"""

import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, List

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.threads import deferToThread
from twisted.python.threadable import isInIOThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.db.store import PermanentDatabaseError, SQLServiceStore
from tests._services import free_port, require_service
from novasvc.testing.store_contract import SettableUTCNow, make_store_contract_tests

PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"


def _admin(server: str, *statements: str, **params: Any) -> List[Any]:
    """
    Run statements on the server's admin database outside a transaction (in
    a thread: it blocks).

    @return: the rows of the last statement, if it returns any.
    """
    engine = sa.create_engine(
        server + ("postgres" if server.startswith("postgresql") else ""),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 5},
    )
    try:
        with engine.connect() as conn:
            for statement in statements:
                result = conn.execute(sa.text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


async def _temporary_database(case: TestCase, kind: str) -> str:
    """
    Create a database of its own for C{case}, dropped at cleanup.

    @param kind: C{"postgresql"} or C{"mariadb"}.
    @return: the SQLAlchemy URL of the new database.
    """
    name = f"novasvc_test_{uuid.uuid4().hex}"
    if kind == "postgresql":
        require_service("PostgreSQL", "127.0.0.1", 5432)
        server, quoted, drop_suffix = PG_SERVER, f'"{name}"', " WITH (FORCE)"
    else:
        require_service("MariaDB", "127.0.0.1", 3306)
        server, quoted, drop_suffix = MARIADB_SERVER, f"`{name}`", ""
    await deferToThread(_admin, server, f"CREATE DATABASE {quoted}")
    case.addCleanup(deferToThread, _admin, server, f"DROP DATABASE IF EXISTS {quoted}{drop_suffix}")
    return server + name


async def _postgresql_store(case: TestCase, utcnow: SettableUTCNow) -> SQLServiceStore:
    return SQLServiceStore(
        await _temporary_database(case, "postgresql"), utcnow=utcnow, thread_pool_size=4
    )


async def _mariadb_store(case: TestCase, utcnow: SettableUTCNow) -> SQLServiceStore:
    return SQLServiceStore(
        await _temporary_database(case, "mariadb"), utcnow=utcnow, thread_pool_size=4
    )


def _sqlite_file_url(case: TestCase) -> str:
    return "sqlite:///" + case.mktemp() + ".sqlite"


class SQLiteFileContractTests(
    make_store_contract_tests(
        lambda case, utcnow: SQLServiceStore(_sqlite_file_url(case), utcnow=utcnow)
    )
):
    """
    L{SQLServiceStore} on an SQLite file follows the contract.
    """


class SQLiteMemoryContractTests(
    make_store_contract_tests(lambda case, utcnow: SQLServiceStore("sqlite://", utcnow=utcnow))
):
    """
    L{SQLServiceStore} on an in-memory SQLite database follows the contract.
    """


class PostgreSQLContractTests(make_store_contract_tests(_postgresql_store)):
    """
    L{SQLServiceStore} on PostgreSQL follows the contract.
    """


class MariaDBContractTests(make_store_contract_tests(_mariadb_store)):
    """
    L{SQLServiceStore} on MariaDB follows the contract.
    """


class MariaDBTableTests(TestCase):
    """
    The services table as L{SQLServiceStore} creates it on MariaDB.
    """

    async def test_table_options(self) -> None:
        """
        When the store creates the table on MariaDB, then it is InnoDB with
        utf8mb4 text and microsecond timestamps (as Nova's tables, with
        microseconds kept).
        """
        url = await _temporary_database(self, "mariadb")
        store = SQLServiceStore(url, thread_pool_size=1)
        await store.start()
        self.addCleanup(store.stop)
        name = url.rsplit("/", 1)[1]
        [(engine, collation)] = await deferToThread(
            _admin, MARIADB_SERVER,
            "SELECT engine, table_collation FROM information_schema.tables "
            "WHERE table_schema = :name AND table_name = 'services'", name=name,
        )
        self.assertEqual(engine, "InnoDB")
        self.assertTrue(collation.startswith("utf8mb4"), collation)
        [(precision,)] = await deferToThread(
            _admin, MARIADB_SERVER,
            "SELECT datetime_precision FROM information_schema.columns "
            "WHERE table_schema = :name AND table_name = 'services' AND column_name = 'updated_at'", name=name,
        )
        self.assertEqual(precision, 6)


async def _exercise(store: SQLServiceStore) -> None:
    """
    Call every L{IServiceStore} method once.
    """
    record = await store.create("h", "novasvc-x", "x")
    await store.get(record.id)
    await store.get_by_host_and_binary("h", "novasvc-x")
    await store.update(record.id, disabled=True)
    await store.report_state(record.id)
    await store.list_services()
    await store.destroy(record.id)


class _RecordingReactor:
    """
    The real reactor, except that system event triggers are only recorded.
    """

    def __init__(self) -> None:
        self.triggers: Dict[object, tuple] = {}

    def addSystemEventTrigger(self, phase, event, f, *args, **kwargs):
        handle = object()
        self.triggers[handle] = (phase, event, f)
        return handle

    def removeSystemEventTrigger(self, handle) -> None:
        del self.triggers[handle]

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


def _silent_server(case: TestCase) -> int:
    """
    A TCP port that accepts connections (the kernel completes the
    handshake) and never says a word.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    case.addCleanup(server.close)
    return server.getsockname()[1]


class SQLServiceStoreThreadTests(TestCase):
    """
    L{SQLServiceStore} does its database work in its own bounded thread
    pool, and stops it.
    """

    async def test_never_on_reactor_thread(self) -> None:
        """
        When every method runs (including start's schema creation and
        stop's closing of connections), then no connection is opened and no
        statement executed on the reactor thread, only in the store's pool
        threads.
        """
        store = SQLServiceStore(_sqlite_file_url(self))
        seen: List[tuple] = []

        def record(*args: Any, **kwargs: Any) -> None:
            seen.append((isInIOThread(), threading.current_thread().name))

        sa.event.listen(store.engine, "connect", record)
        sa.event.listen(store.engine, "before_cursor_execute", record)
        sa.event.listen(store.engine, "close", record)
        await store.start()
        await _exercise(store)
        await store.stop()
        self.assertGreater(len(seen), 8)
        self.assertEqual([entry for entry in seen if entry[0]], [])
        self.assertEqual(
            {name for _, name in seen if not name.startswith("PoolThread-novasvc-db-")}, set()
        )

    async def test_pool_is_bounded(self) -> None:
        """
        When more calls are made at once than C{thread_pool_size}, then no
        more than that many threads run statements.
        """
        store = SQLServiceStore(_sqlite_file_url(self), thread_pool_size=2)
        threads = set()
        sa.event.listen(
            store.engine,
            "before_cursor_execute",
            lambda *a, **kw: threads.add(threading.current_thread().name),
        )
        await store.start()
        self.addCleanup(store.stop)
        await gatherResults([store.list_services() for _ in range(12)])
        self.assertLessEqual(len(threads), 2)

    async def test_stop_waits_for_submitted_work(self) -> None:
        """
        When the store is stopped while calls are running, then those calls
        complete normally before stop's Deferred fires, and a call made after
        stop() fails at once with C{RuntimeError}.
        """
        store = SQLServiceStore(_sqlite_file_url(self))
        await store.start()
        order: List[str] = []
        running = [
            store.list_services().addCallback(lambda _: order.append("work")) for _ in range(3)
        ]
        stopping = store.stop().addCallback(lambda _: order.append("stopped"))
        late = store.list_services()
        self.failureResultOf(late, RuntimeError)
        await gatherResults(running + [stopping])
        self.assertEqual(order, ["work", "work", "work", "stopped"])

    async def test_shutdown_trigger(self) -> None:
        """
        When the store starts, then it registers a trigger during reactor
        shutdown that stops its pool (so its threads cannot keep the
        process alive); stop() removes that trigger.
        """
        recording = _RecordingReactor()
        store = SQLServiceStore(_sqlite_file_url(self), reactor=recording)
        await store.start()
        [(phase, event, trigger)] = recording.triggers.values()
        self.assertEqual((phase, event), ("during", "shutdown"))
        trigger()
        recording.triggers.clear()  # as the reactor's shutdown does
        self.failureResultOf(store.list_services(), RuntimeError)
        await store.stop()
        await store.start()
        self.assertEqual(len(recording.triggers), 1)
        await store.stop()
        self.assertEqual(recording.triggers, {})

    async def test_in_memory_sqlite_shared(self) -> None:
        """
        When the database is C{sqlite://}, then every call sees the same
        in-memory database, and it survives a stop and a new start.
        """
        store = SQLServiceStore("sqlite://", thread_pool_size=8)
        await store.start()
        self.addCleanup(store.stop)
        records = await gatherResults(
            [store.create(f"h{i}", "novasvc-x", "x") for i in range(4)]
        )
        await store.stop()
        await store.start()
        self.assertEqual(await store.list_services(), sorted(records, key=lambda r: r.id))


class SQLServiceStoreConnectionTests(TestCase):
    """
    Connection problems reach the caller as failures, in bounded time, and a
    restarted database is picked up again.
    """

    async def test_refused(self) -> None:
        """
        When nothing listens on the database port, then start() fails with
        the database error and can be retried.
        """
        store = SQLServiceStore(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x")
        with self.assertRaises(sa_exc.OperationalError):
            await store.start()
        with self.assertRaises(sa_exc.OperationalError):
            await store.start()
        await store.stop()

    async def test_silent_mariadb(self) -> None:
        """
        When the MySQL/MariaDB server accepts the connection but never
        answers, then start() fails after about the timeouts instead of
        waiting forever.
        """
        url = f"mysql+pymysql://root@127.0.0.1:{_silent_server(self)}/x"
        store = SQLServiceStore(url, connect_timeout=0.5, query_timeout=0.5)
        began = time.monotonic()
        with self.assertRaises(sa_exc.OperationalError):
            await store.start()
        self.assertLess(time.monotonic() - began, 30)  # generous for a loaded machine; forever is the bug

    async def test_silent_postgresql(self) -> None:
        """
        When the PostgreSQL server accepts the connection but never answers,
        then start() fails after C{connect_timeout} (at least 2 seconds, as
        libpq counts) instead of waiting forever.
        """
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{_silent_server(self)}/x"
        store = SQLServiceStore(url, connect_timeout=1)
        began = time.monotonic()
        with self.assertRaises(sa_exc.OperationalError):
            await store.start()
        self.assertLess(time.monotonic() - began, 30)  # generous for a loaded machine; forever is the bug

    async def test_postgresql_vanished_server_bounds(self) -> None:
        """
        When the store connects to PostgreSQL, then libpq has TCP keepalives
        and C{tcp_user_timeout} (25 s), so a server host that vanishes is
        noticed whether or not it acknowledged the last statement; a value
        in the URL's query wins.
        """
        url = await _temporary_database(self, "postgresql")

        def parameters(connection: str) -> Dict[str, str]:
            store = SQLServiceStore(connection)
            try:
                raw = store.engine.raw_connection()
                try:
                    return raw.dbapi_connection.get_dsn_parameters()
                finally:
                    raw.close()
            finally:
                store.engine.dispose()

        found = await deferToThread(parameters, url)
        self.assertEqual((found["keepalives"], found["keepalives_idle"],
                          found["keepalives_interval"], found["keepalives_count"],
                          found["tcp_user_timeout"]), ("1", "10", "5", "3", "25000"))
        found = await deferToThread(parameters, url + "?tcp_user_timeout=7000")
        self.assertEqual(found["tcp_user_timeout"], "7000")

    async def _reconnects(self, kind: str, kill_connections) -> None:
        """
        Fill the store's pool with connections, have the server kill them
        with C{kill_connections(database_name)} (run in a thread; returns
        how many it killed), then check that the next calls succeed.
        """
        url = await _temporary_database(self, kind)
        store = SQLServiceStore(url, thread_pool_size=2)
        await store.start()
        self.addCleanup(store.stop)
        record = await store.create("h", "novasvc-x", "x")
        await gatherResults([store.get(record.id) for _ in range(4)])
        killed = await deferToThread(kill_connections, url.rsplit("/", 1)[1])
        self.assertGreater(killed, 0)
        for _ in range(3):
            self.assertEqual((await store.report_state(record.id)).id, record.id)

    async def test_postgresql_restart(self) -> None:
        """
        When the server closes every connection of the store's pool (as a
        PostgreSQL restart does), then the next calls succeed on new
        connections.
        """

        def kill(name: str) -> int:
            return len(
                _admin(
                    PG_SERVER,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()",
                    name=name,
                )
            )

        await self._reconnects("postgresql", kill)

    async def test_mariadb_restart(self) -> None:
        """
        When the server kills every connection of the store's pool (as a
        MariaDB restart does), then the next calls succeed on new
        connections.
        """

        def kill(name: str) -> int:
            ids = [
                row[0]
                for row in _admin(
                    MARIADB_SERVER,
                    "SELECT id FROM information_schema.processlist WHERE db = :name",
                    name=name,
                )
            ]
            if ids:
                _admin(MARIADB_SERVER, *[f"KILL {i}" for i in ids])
            return len(ids)

        await self._reconnects("mariadb", kill)


class PermanentErrorTests(TestCase):
    """
    L{SQLServiceStore.start} fails with L{PermanentDatabaseError} when no
    retry can help, and with the database error itself when one may.
    """

    async def assert_permanent(self, url: str, *expected: str) -> str:
        store = SQLServiceStore(url, connect_timeout=5)
        with self.assertRaises(PermanentDatabaseError) as raised:
            await store.start()
        message = str(raised.exception)
        self.assertNotIn("\n", message)
        for text in expected:
            self.assertIn(text, message)
        return message

    async def test_sqlite_missing_directory(self) -> None:
        """
        When the SQLite file's directory does not exist, then the error is
        permanent and names the directory.
        """
        directory = os.path.abspath(self.mktemp())
        await self.assert_permanent(f"sqlite:///{directory}/services.sqlite",
                                    f"the directory {directory} does not exist")

    async def test_postgresql_unknown_database(self) -> None:
        """
        When the PostgreSQL database does not exist, then the error is
        permanent and quotes the server.
        """
        require_service("PostgreSQL", "127.0.0.1", 5432)
        name = f"novasvc_missing_{uuid.uuid4().hex}"
        await self.assert_permanent(PG_SERVER + name, f'database "{name}" does not exist')

    async def test_postgresql_unknown_role(self) -> None:
        """
        When PostgreSQL refuses the user, then the error is permanent and
        the password is not shown.
        """
        require_service("PostgreSQL", "127.0.0.1", 5432)
        message = await self.assert_permanent(
            "postgresql+psycopg2://nobody_here:s3cret@127.0.0.1:5432/postgres",
            'role "nobody_here" does not exist', "nobody_here:***@")
        self.assertNotIn("s3cret", message)

    async def test_mariadb_unknown_database(self) -> None:
        """
        When the MariaDB database does not exist, then the error is
        permanent, with the server's error number.
        """
        require_service("MariaDB", "127.0.0.1", 3306)
        name = f"novasvc_missing_{uuid.uuid4().hex}"
        await self.assert_permanent(MARIADB_SERVER + name, f"Unknown database '{name}' (error 1049)")

    async def test_mariadb_access_denied(self) -> None:
        """
        When MariaDB refuses the user, then the error is permanent.
        """
        require_service("MariaDB", "127.0.0.1", 3306)
        await self.assert_permanent("mysql+pymysql://nobody_here:s3cret@127.0.0.1:3306/x",
                                    "Access denied for user 'nobody_here'", "(error 1045)")

    async def test_refused_is_transient(self) -> None:
        """
        When nothing listens on the port, then the error is the driver's,
        not a permanent one.
        """
        for url in (f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x",
                    f"mysql+pymysql://root@127.0.0.1:{free_port()}/x"):
            store = SQLServiceStore(url, connect_timeout=2)
            with self.assertRaises(sa_exc.OperationalError):
                await store.start()


class SQLServiceStoreConfigTests(SynchronousTestCase):
    """
    Building a L{SQLServiceStore} from a connection string.
    """

    def test_repr_hides_password(self) -> None:
        """
        When a store is shown, then the password is hidden.
        """
        store = SQLServiceStore("postgresql+psycopg2://user:s3cret@host/db")
        self.assertNotIn("s3cret", repr(store))
        self.assertIn("user:***@host/db", repr(store))

    def test_bad_sizes(self) -> None:
        """
        When the pool size or a timeout is not positive, then construction
        fails with C{ValueError}.
        """
        for kwargs in ({"thread_pool_size": 0}, {"connect_timeout": 0}, {"query_timeout": -1}):
            self.assertRaises(ValueError, SQLServiceStore, "sqlite://", **kwargs)
