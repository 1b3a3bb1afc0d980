"""
Tests for L{novasvc.db.migration} and the Alembic script directory
C{novasvc/db/migrations/}: C{sync} from an empty database and from one made
before migrations, the start-up check of L{SQLServiceStore} (refusal,
C{auto_sync}, unknown revisions, two stores at once), on an SQLite file,
PostgreSQL and MariaDB, each test in a database of its own created and
dropped (skipped without the server, failed in CI).
"""

import os
import subprocess
import sys
from typing import Any, Dict, List

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.config import Config, DatabaseConfig
from novasvc.db import migration, schema
from novasvc.db.migration import (
    HEAD_REVISION,
    REVISIONS,
    SchemaMismatch,
    SchemaOutOfDate,
    SchemaState,
    SchemaTooNew,
    SchemaVersionError,
)
from novasvc.db.store import SQLServiceStore
from novasvc.examples.echo import EchoManager
from novasvc.exceptions import ConfigError
from novasvc.core.service import Service
from novasvc.transport.memory import MemoryTransport
from tests import test_db_store as _store_tests
from tests.test_core_service_process import TwistdProcessMixin

HERE = os.path.dirname(os.path.abspath(__file__))
_SYNC_HINT = "run: novasvc-manage db sync --config <file>"


def _engine(url: str) -> sa.engine.Engine:
    return sa.create_engine(url, poolclass=NullPool)


def _blocking(url: str, work: Any, *args: Any) -> Any:
    """
    Run C{work(engine, *args)} on a fresh engine for C{url}, then close it.
    """
    engine = _engine(url)
    try:
        return work(engine, *args)
    finally:
        engine.dispose()


def _in_thread(url: str, work: Any, *args: Any) -> defer.Deferred:
    return deferToThread(_blocking, url, work, *args)


def _alembic_config(connection: sa.engine.Connection) -> Any:
    config = migration._alembic_config()
    config.attributes["connection"] = connection
    return config


def _make_before_migrations(engine: sa.engine.Engine) -> None:
    """
    Make the database a novasvc made before migrations: revision 0001's
    table (what C{create_all} made then) without C{alembic_version}, with
    one row.
    """
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), REVISIONS[0])
        connection.execute(sa.text("DROP TABLE alembic_version"))
        connection.execute(sa.text(
            "INSERT INTO services (host, " + _quoted(engine, "binary") + ", topic, report_count, "
            "disabled, forced_down, version, deleted) VALUES ('h1', 'novasvc-old', 'old', 7, "
            "false, false, 1, 0)"))


def _quoted(engine: sa.engine.Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _set_revision(engine: sa.engine.Engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def _rows(engine: sa.engine.Engine) -> List[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            sa.select(schema.services.c.host, schema.services.c.binary,
                      schema.services.c.report_count))]


def _version_rows(engine: sa.engine.Engine) -> List[str]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _drop_all(engine: sa.engine.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE services"))
        connection.execute(sa.text("DROP TABLE alembic_version"))


def _snapshot(engine: sa.engine.Engine) -> Dict[str, Any]:
    """
    The services table as the database reflects it: columns (type,
    nullability, server default), primary key, unique constraints, indexes
    and table options (engine and character set on MariaDB).
    """
    inspector = sa.inspect(engine)
    return {
        "columns": [(c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                    for c in inspector.get_columns("services")],
        "primary key": inspector.get_pk_constraint("services")["constrained_columns"],
        "unique": sorted((u["name"], tuple(u["column_names"]))
                         for u in inspector.get_unique_constraints("services")),
        "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                          for i in inspector.get_indexes("services")),
        "options": inspector.get_table_options("services"),
    }


def _differences(engine: sa.engine.Engine) -> List[Any]:
    """
    Alembic's comparison of the database with L{schema.metadata} (types
    included; server defaults are compared by L{_snapshot}, as Alembic
    misreads MariaDB's boolean defaults).
    """
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, schema.metadata)


class _MigrationTests:
    """
    The behaviours every database shares; C{database()} gives the URL of a
    new, empty database of the test's own.
    """

    async def database(self) -> str:
        raise NotImplementedError()

    async def test_sync_from_empty(self) -> None:
        """
        When an empty database is synced, then every revision runs and the
        schema equals L{schema.metadata}'s, and what a store creates on an
        empty database (create and stamp) is the same schema.
        """
        url = await self.database()
        before, after = await deferToThread(migration.sync, url)
        self.assertEqual((before, after), (SchemaState(None, False), SchemaState(HEAD_REVISION, True)))
        self.assertEqual(await _in_thread(url, _differences), [])
        migrated = await _in_thread(url, _snapshot)
        await _in_thread(url, _drop_all)
        store = SQLServiceStore(url, thread_pool_size=1)
        await store.start()
        await store.stop()
        self.assertEqual(await _in_thread(url, _snapshot), migrated)
        self.assertEqual(await _in_thread(url, _version_rows), [HEAD_REVISION])

    async def test_sync_from_before_migrations(self) -> None:
        """
        When a database made before migrations is synced, then it is
        stamped 0001 and upgraded to the head, its rows kept.
        """
        url = await self.database()
        await _in_thread(url, _make_before_migrations)
        before, after = await deferToThread(migration.sync, url)
        self.assertEqual((before, after), (SchemaState(None, True), SchemaState(HEAD_REVISION, True)))
        self.assertEqual(await _in_thread(url, _rows), [("h1", "novasvc-old", 7)])
        self.assertEqual(await _in_thread(url, _differences), [])

    async def test_sync_at_head(self) -> None:
        """
        When a database at the head is synced, then nothing changes.
        """
        url = await self.database()
        await deferToThread(migration.sync, url)
        before, after = await deferToThread(migration.sync, url)
        self.assertEqual(before, after)
        self.assertEqual(await _in_thread(url, _version_rows), [HEAD_REVISION])

    async def test_sync_foreign_table(self) -> None:
        """
        When a services table without a revision lacks revision 0001's
        columns, then sync refuses it, naming the missing columns, and
        stamps nothing.
        """
        url = await self.database()

        def foreign(engine: sa.engine.Engine) -> None:
            with engine.begin() as connection:
                connection.execute(sa.text("CREATE TABLE services (id INTEGER PRIMARY KEY, "
                                           "host VARCHAR(20))"))

        await _in_thread(url, foreign)
        with self.assertRaises(SchemaMismatch) as raised:
            await deferToThread(migration.sync, url)
        self.assertIn("lacks the columns binary, created_at", str(raised.exception))
        self.assertEqual(await deferToThread(migration.current, url), None)

    async def test_start_refuses_before_migrations(self) -> None:
        """
        When a store starts on a database made before migrations, then it
        fails with a one-line L{SchemaOutOfDate} (a L{ConfigError}, which
        the service does not retry) naming both revisions and the command
        to run; after C{db sync} the same store starts.
        """
        url = await self.database()
        await _in_thread(url, _make_before_migrations)
        store = SQLServiceStore(url, thread_pool_size=1)
        with self.assertRaises(SchemaOutOfDate) as raised:
            await store.start()
        message = str(raised.exception)
        self.assertIsInstance(raised.exception, ConfigError)
        self.assertNotIn("\n", message)
        self.assertIn("is at schema revision none (a services table from before migrations), "
                      f"this novasvc needs {HEAD_REVISION}; {_SYNC_HINT}", message)
        await deferToThread(migration.sync, url)
        await store.start()
        try:
            self.assertEqual([r.host for r in await store.list_services()], ["h1"])
        finally:
            await store.stop()

    async def test_start_auto_sync(self) -> None:
        """
        When a store with C{auto_sync} starts on a database made before
        migrations, then it upgrades it and starts, rows kept.
        """
        url = await self.database()
        await _in_thread(url, _make_before_migrations)
        store = SQLServiceStore(url, thread_pool_size=1, auto_sync=True)
        await store.start()
        try:
            self.assertEqual([r.binary for r in await store.list_services()], ["novasvc-old"])
        finally:
            await store.stop()
        self.assertEqual(await deferToThread(migration.current, url), HEAD_REVISION)

    async def test_unknown_revision(self) -> None:
        """
        When the database is at a revision this novasvc does not know, then
        a store refuses it even with C{auto_sync}, saying to upgrade
        novasvc, and sync refuses it too, leaving it as it is.
        """
        url = await self.database()
        await deferToThread(migration.sync, url)
        await _in_thread(url, _set_revision, "9999")
        for auto_sync in (False, True):
            store = SQLServiceStore(url, thread_pool_size=1, auto_sync=auto_sync)
            with self.assertRaises(SchemaTooNew) as raised:
                await store.start()
            self.assertIn("is at schema revision 9999, newer than this novasvc (which knows up "
                          f"to {HEAD_REVISION}); upgrade novasvc", str(raised.exception))
        with self.assertRaises(SchemaTooNew):
            await deferToThread(migration.sync, url)
        self.assertEqual(await deferToThread(migration.current, url), "9999")

    async def test_two_stores_at_once(self) -> None:
        """
        When two stores start at the same time on an empty database, then
        both start and the database is at the head, stamped once.
        """
        url = await self.database()
        stores = [SQLServiceStore(url, thread_pool_size=1) for _ in range(2)]
        await defer.gatherResults([store.start() for store in stores], consumeErrors=True)
        for store in stores:
            await store.stop()
        self.assertEqual(await _in_thread(url, _version_rows), [HEAD_REVISION])
        self.assertEqual(await _in_thread(url, _differences), [])


class SQLiteFileMigrationTests(_MigrationTests, TestCase):
    """
    Migrations on an SQLite file.
    """

    async def database(self) -> str:
        return "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"


class PostgreSQLMigrationTests(_MigrationTests, TestCase):
    """
    Migrations on PostgreSQL.
    """

    async def database(self) -> str:
        return await _store_tests._temporary_database(self, "postgresql")


    async def test_password_hidden(self) -> None:
        """
        When the database URL has a password, then the refusal hides it.
        """
        url = await self.database()
        await _in_thread(url, _make_before_migrations)
        with_password = url.replace("postgres@", "postgres:s3cret@")  # trust: not checked
        with self.assertRaises(SchemaOutOfDate) as raised:
            await SQLServiceStore(with_password, thread_pool_size=1).start()
        self.assertNotIn("s3cret", str(raised.exception))
        self.assertIn("postgres:***@", str(raised.exception))


class MariaDBMigrationTests(_MigrationTests, TestCase):
    """
    Migrations on MariaDB.
    """

    async def database(self) -> str:
        return await _store_tests._temporary_database(self, "mariadb")

    async def test_table_options(self) -> None:
        """
        When revision 0001 runs on MariaDB, then the table is InnoDB with
        utf8mb4 text and microsecond timestamps, as the store's
        C{create_all} makes it.
        """
        url = await self.database()
        await deferToThread(migration.sync, url)
        name = url.rsplit("/", 1)[1]
        [(engine, collation)] = await deferToThread(
            _store_tests._admin, _store_tests.MARIADB_SERVER,
            "SELECT engine, table_collation FROM information_schema.tables "
            "WHERE table_schema = :name AND table_name = 'services'", name=name)
        self.assertEqual(engine, "InnoDB")
        self.assertTrue(collation.startswith("utf8mb4"), collation)
        [(precision,)] = await deferToThread(
            _store_tests._admin, _store_tests.MARIADB_SERVER,
            "SELECT datetime_precision FROM information_schema.columns WHERE table_schema = :name "
            "AND table_name = 'services' AND column_name = 'last_seen_up'", name=name)
        self.assertEqual(precision, 6)


class RevisionTests(SynchronousTestCase):
    """
    The constants that the start-up check uses instead of Alembic.
    """

    def test_head_constant(self) -> None:
        """
        When Alembic reads the script directory, then its head is
        L{HEAD_REVISION} and its revisions, oldest first, are L{REVISIONS}.
        """
        script = ScriptDirectory.from_config(migration._alembic_config())
        self.assertEqual(migration.head(), HEAD_REVISION)
        self.assertEqual(script.get_heads(), [HEAD_REVISION])
        walked = [revision.revision for revision in script.walk_revisions("base", "heads")]
        self.assertEqual(tuple(reversed(walked)), REVISIONS)

    def test_revision_0001_columns(self) -> None:
        """
        When revision 0001 runs, then its table has exactly the columns that
        sync requires of a database made before migrations.
        """
        url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        engine = _engine(url)
        self.addCleanup(engine.dispose)
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "0001")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("services")}
        self.assertEqual(columns, migration._REVISION_0001_COLUMNS)

    def test_packaged(self) -> None:
        """
        When setup.py is read, then its package data holds env.py, the
        template and the revisions, and alembic is a requirement.
        """
        with open(os.path.join(os.path.dirname(HERE), "setup.py"), encoding="utf-8") as f:
            text = f.read()
        for pattern in ('"migrations/*.py"', '"migrations/*.mako"', '"migrations/versions/*.py"',
                        '"alembic>='):
            self.assertIn(pattern, text)


class CheckTests(SynchronousTestCase):
    """
    L{migration.check}'s refusals, one line each.
    """

    where = "postgresql://u:***@h/db"

    def refusal(self, state: SchemaState) -> str:
        error = self.assertRaises(SchemaVersionError, migration.check, state, self.where)
        self.assertNotIn("\n", str(error))
        return str(error)

    def test_head(self) -> None:
        """
        When the database is at the head, then it is not refused.
        """
        migration.check(SchemaState(HEAD_REVISION, True), self.where)

    def test_empty(self) -> None:
        """
        When the database is empty, then it is out of date (for tools that
        do not create it).
        """
        self.assertEqual(
            self.refusal(SchemaState(None, False)),
            f"database {self.where} is at schema revision none (empty database), this novasvc "
            f"needs {HEAD_REVISION}; {_SYNC_HINT}")

    def test_older(self) -> None:
        """
        When the database is at a known older revision, then the message
        names it and the one needed.
        """
        self.patch(migration, "REVISIONS", ("0001", "0002"))
        self.patch(migration, "HEAD_REVISION", "0002")
        self.assertEqual(
            self.refusal(SchemaState("0001", True)),
            f"database {self.where} is at schema revision 0001, this novasvc needs 0002; "
            f"{_SYNC_HINT}")

    def test_head_without_table(self) -> None:
        """
        When the revision is the head but the services table is missing,
        then the database is out of date.
        """
        self.assertIn(f"at schema revision {HEAD_REVISION} without a services table",
                      self.refusal(SchemaState(HEAD_REVISION, False)))

    def test_several_rows(self) -> None:
        """
        When alembic_version holds several revisions (branches novasvc does
        not have), then they are an unknown revision.
        """
        error = self.assertRaises(SchemaTooNew, migration.check,
                                  SchemaState("0001,0002", True), self.where)
        self.assertIn("revision 0001,0002, newer than this novasvc", str(error))


class PrepareTests(SynchronousTestCase):
    """
    L{migration.prepare} on an SQLite file: older revisions, and another
    process changing the database meanwhile.
    """

    def setUp(self) -> None:
        self.url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        self.engine = _engine(self.url)
        self.addCleanup(self.engine.dispose)

    def test_older_revision(self) -> None:
        """
        When the database is at a revision older than the head, then
        prepare refuses it, and with C{auto_sync} upgrades it.
        """
        self.assertEqual(migration.prepare(self.engine), migration.CREATED)
        self.patch(migration, "REVISIONS", ("0001", "0002"))
        self.patch(migration, "HEAD_REVISION", "0002")
        error = self.assertRaises(SchemaOutOfDate, migration.prepare, self.engine)
        self.assertIn("is at schema revision 0001, this novasvc needs 0002", str(error))
        upgraded: List[sa.engine.Engine] = []

        def upgrade(engine: sa.engine.Engine) -> None:
            _set_revision(engine, "0002")
            upgraded.append(engine)

        self.assertEqual(migration.prepare(self.engine, auto_sync=True, upgrade=upgrade),
                         migration.UPGRADED)
        self.assertEqual((upgraded, migration.prepare(self.engine)), ([self.engine], migration.CURRENT))

    def test_lost_race(self) -> None:
        """
        When creating fails because another process created the schema
        meanwhile, then prepare looks again and finds it at the head.
        """
        real = migration._create_at_head
        calls: List[int] = []

        def raced(engine: sa.engine.Engine) -> None:
            calls.append(1)
            real(engine)  # the other process
            raise sa_exc.OperationalError("CREATE TABLE services", {}, Exception("table exists"))

        self.patch(migration, "_create_at_head", raced)
        self.assertEqual(migration.prepare(self.engine), migration.CURRENT)
        self.assertEqual(calls, [1])

    def test_failure_without_change(self) -> None:
        """
        When creating fails and the database has not changed, then the
        error is raised.
        """
        def broken(engine: sa.engine.Engine) -> None:
            raise sa_exc.OperationalError("CREATE TABLE services", {}, Exception("disk full"))

        self.patch(migration, "_create_at_head", broken)
        error = self.assertRaises(sa_exc.OperationalError, migration.prepare, self.engine)
        self.assertIn("disk full", str(error))

    def test_head_without_table(self) -> None:
        """
        When the database is stamped at the head and has no services table
        (another process is creating it), then prepare creates it.
        """
        with self.engine.begin() as connection:
            migration._version.create(connection)
            connection.execute(sa.insert(migration._version).values(version_num=HEAD_REVISION))
        self.assertEqual(migration.prepare(self.engine), migration.CREATED)
        self.assertEqual(migration.read_state(self.engine), SchemaState(HEAD_REVISION, True))
        self.assertEqual(_version_rows(self.engine), [HEAD_REVISION])


class SyncTests(SynchronousTestCase):
    """
    L{migration.sync} in the states only a failure or a hand leaves.
    """

    def test_revision_without_table(self) -> None:
        """
        When the database has a revision but no services table, then sync
        runs every revision from the first and the table is there.
        """
        url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        engine = _engine(url)
        self.addCleanup(engine.dispose)
        migration.sync(engine)
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE services"))
        before, after = migration.sync(engine)
        self.assertEqual((before, after), (SchemaState(HEAD_REVISION, False),
                                           SchemaState(HEAD_REVISION, True)))
        self.assertEqual(_differences(engine), [])


class ServiceTests(TestCase):
    """
    C{database.auto_sync} reaches the service's store.
    """

    async def test_auto_sync_from_config(self) -> None:
        """
        When a service is created with C{database.auto_sync: true} on a
        database made before migrations, then its store upgrades it and
        starts; without it, the store refuses.
        """
        url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        await _in_thread(url, _make_before_migrations)
        for auto_sync in (False, True):
            service = Service.create(
                manager=EchoManager,
                config=Config(host="h", database=DatabaseConfig(connection=url, auto_sync=auto_sync)),
                transport=MemoryTransport(clock=reactor), clock=reactor)
            if not auto_sync:
                with self.assertRaises(SchemaOutOfDate):
                    await service.store.start()
                continue
            await service.store.start()
            await service.store.stop()
        self.assertEqual(await deferToThread(migration.current, url), HEAD_REVISION)


class ImportCostTests(SynchronousTestCase):
    """
    Starting a store does not load Alembic.
    """

    def test_store_start_without_alembic(self) -> None:
        """
        When a store starts on an empty SQLite file (created) and again on
        the same file (at the head), then Alembic is not imported.
        """
        path = os.path.abspath(self.mktemp()) + ".sqlite"
        code = "\n".join([
            "import sys",
            "from twisted.internet import task",
            "from novasvc.db.store import SQLServiceStore",
            "async def main(reactor):",
            "    for _ in range(2):",
            f"        store = SQLServiceStore({'sqlite:///' + path!r}, reactor=reactor)",
            "        await store.start()",
            "        await store.stop()",
            "    print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))",
            "task.react(lambda reactor: __import__('twisted.internet.defer').internet.defer"
            ".ensureDeferred(main(reactor)))",
        ])
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(HERE)).stdout
        self.assertEqual(out.strip(), "[]")
        self.assertEqual(migration.current("sqlite:///" + path), HEAD_REVISION)


class TwistdTests(TwistdProcessMixin, TestCase):
    """
    C{twistd novasvc} on a database made before migrations.
    """

    timeout = 90

    @defer.inlineCallbacks
    def test_exits_1_saying_to_sync(self):
        """
        When twistd -n starts on a database made before migrations, then it
        logs one error line saying to run db sync and exits 1, without
        retrying or a traceback.
        """
        path = os.path.abspath(self.mktemp()) + ".sqlite"
        url = "sqlite:///" + path
        yield _in_thread(url, _make_before_migrations)
        process = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://",
            f"--database-connection={url}")
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertEqual(code, 1, out)
        errors = [line for line in out.splitlines() if "#error]" in line]
        self.assertEqual(len(errors), 1, out)
        self.assertIn(f"The service failed to start: database {url} is at schema revision none "
                      f"(a services table from before migrations), this novasvc needs "
                      f"{HEAD_REVISION}; {_SYNC_HINT}", errors[0])
        self.assertNotIn("Traceback", out)
        self.assertNotIn("retrying", out)
