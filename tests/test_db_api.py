"""
Tests for L{novasvc.db.api}: one contract run against the database API on
SQLite in memory (its twin), an SQLite file, PostgreSQL, and sharing the SQL
services store's pool.
"""

import sqlalchemy as sa
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from novasvc.config import Config, DatabaseConfig
from novasvc.db.api import Database
from novasvc.db.store import PermanentDatabaseError, SQLServiceStore
from novasvc.interfaces import IDatabaseAPI
from tests.test_db_store import _temporary_database

_metadata = sa.MetaData()
_things = sa.Table("things", _metadata, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(40), nullable=False))


class _Boom(Exception):
    pass


class _DatabaseContract:
    """
    What every L{IDatabaseAPI} does; C{make()} returns a Deferred-free or
    awaitable database.
    """

    async def make(self) -> Database:
        raise NotImplementedError

    async def ready(self) -> Database:
        db = await self.make()
        self.addCleanup(db.stop)
        await db.create_tables(_metadata)
        return db

    async def test_provides(self) -> None:
        """
        When the database API is built, then it provides L{IDatabaseAPI}.
        """
        self.assertTrue(verifyObject(IDatabaseAPI, await self.make()))

    async def test_runCommits(self) -> None:
        """
        When work returns, then its transaction is committed and its result
        is the Deferred's.
        """
        db = await self.ready()
        inserted = await db.run(lambda conn, name: conn.execute(
            _things.insert().values(name=name)).inserted_primary_key[0], "a")
        names = await db.run(lambda conn: [r.name for r in conn.execute(sa.select(_things))])
        self.assertEqual((inserted, names), (1, ["a"]))

    async def test_runRollsBack(self) -> None:
        """
        When work raises, then its changes are rolled back and the Deferred
        fails with the error.
        """
        db = await self.ready()

        def insert_then_fail(conn):
            conn.execute(_things.insert().values(name="lost"))
            raise _Boom()

        with self.assertRaises(_Boom):
            await db.run(insert_then_fail)
        count = await db.run(lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(_things)).scalar())
        self.assertEqual(count, 0)

    async def test_offReactorThread(self) -> None:
        """
        When work runs, then it runs in a thread other than the reactor's.
        """
        import threading

        db = await self.ready()
        ident = await db.run(lambda conn: threading.get_ident())
        self.assertNotEqual(ident, threading.get_ident())

    async def test_createTablesTwice(self) -> None:
        """
        When the tables are created again, then nothing happens.
        """
        db = await self.ready()
        await db.create_tables(_metadata)


class SQLiteMemoryTests(_DatabaseContract, TestCase):
    async def make(self) -> Database:
        return Database(connection="sqlite://", reactor=reactor)


class SQLiteFileTests(_DatabaseContract, TestCase):
    async def make(self) -> Database:
        config = Config(database=DatabaseConfig(connection=f"sqlite:///{self.mktemp()}.sqlite"))
        return Database(config=config, reactor=reactor)


class PostgreSQLTests(_DatabaseContract, TestCase):
    async def make(self) -> Database:
        return Database(connection=await _temporary_database(self, "postgresql"), reactor=reactor)


class SharedStoreTests(_DatabaseContract, TestCase):
    async def make(self) -> Database:
        store = SQLServiceStore(f"sqlite:///{self.mktemp()}.sqlite", reactor=reactor)
        await store.start()
        self.addCleanup(store.stop)
        db = Database(config=Config(), store=store)
        self.store = store
        return db

    async def test_sharesTheStore(self) -> None:
        """
        When the service's store is an SQL store, then the database API uses
        its connections (the same database) and leaves stopping it to its
        owner.
        """
        db = await self.ready()
        tables = await self.store.run(lambda: sa.inspect(self.store.engine).get_table_names())
        self.assertIn("things", tables)
        await db.stop()
        self.assertEqual(await self.store.list_services(), [])


class LazyOpenTests(TestCase):
    """
    A database API of its own opens on first use.
    """

    async def test_failedStartRetried(self) -> None:
        """
        When the database cannot be opened (its directory is missing: a
        L{PermanentDatabaseError}), then the work fails with the error, and
        a later call tries again.
        """
        missing = self.mktemp() + "/no/such/dir/db.sqlite"
        db = Database(connection=f"sqlite:///{missing}", reactor=reactor)
        with self.assertRaises(PermanentDatabaseError):
            await db.run(lambda conn: 1)
        with self.assertRaises(PermanentDatabaseError):
            await db.run(lambda conn: 1)
        await db.stop()

    def test_reprHidesPassword(self) -> None:
        """
        When the database API is shown, then its password is not.
        """
        db = Database(connection="postgresql://u:s3cret@h/db")
        self.assertNotIn("s3cret", repr(db))
