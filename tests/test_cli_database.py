"""
Tests for L{novasvc.cli._database}: C{novasvc-manage db sync} and C{db
version} through L{novasvc.cli.manage.main}, and the schema check of the
service commands.
"""

import json
import os

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from novasvc.db import migration, schema
from tests._manage import _ManageTestCase


class DatabaseCommandTests(_ManageTestCase):
    """
    C{db sync} and C{db version}, and the schema check of the service
    commands.
    """

    def setUp(self) -> None:
        self.url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        self.config = self.config_for(self.url)

    def test_sync_from_empty(self) -> None:
        """
        When C{db sync} runs on an empty database, then it upgrades it to
        the head; a second run does nothing; C{db version} shows it.
        """
        self.assertEqual(self.ok("-c", self.config, "db", "version"),
                         f"current: none (empty database)\nhead: {migration.HEAD_REVISION}\n")
        self.assertEqual(self.ok("-c", self.config, "db", "sync"),
                         "Upgraded the database from schema revision none (empty database) to "
                         f"{migration.HEAD_REVISION}.\n")
        self.assertEqual(self.ok("-c", self.config, "db", "sync"),
                         f"The database is at schema revision {migration.HEAD_REVISION}, the "
                         "newest: nothing to do.\n")
        self.assertEqual(self.ok("db", "version", "-c", self.config),
                         f"current: {migration.HEAD_REVISION}\nhead: {migration.HEAD_REVISION}\n")

    def make_before_migrations(self) -> None:
        engine = sa.create_engine(self.url, poolclass=NullPool)
        try:
            schema.metadata.create_all(engine)
        finally:
            engine.dispose()

    def test_sync_from_before_migrations(self) -> None:
        """
        When C{db sync} runs on a database made before migrations, then it
        says so and upgrades it; until then the service commands refuse it
        with the same message a service gives.
        """
        self.make_before_migrations()
        error = self.failed(1, "-c", self.config, "service", "list")
        self.assertEqual(error, f"novasvc-manage: error: database {self.url} is at schema "
                                "revision none (a services table from before migrations), this "
                                f"novasvc needs {migration.HEAD_REVISION}; run: novasvc-manage "
                                "db sync --config <file>")
        self.assertEqual(self.ok("-c", self.config, "db", "sync"),
                         "Upgraded the database from schema revision none (a services table "
                         f"from before migrations) to {migration.HEAD_REVISION}.\n")
        self.assertEqual(json.loads(self.ok("-c", self.config, "service", "list", "--json")), [])

    def test_service_commands_on_empty(self) -> None:
        """
        When a service command runs on an empty database, then it exits 1
        saying to run C{db sync}, and creates nothing.
        """
        for argv in (["service", "list"], ["service", "delete", "h", "b"]):
            self.assertIn("is at schema revision none (empty database)",
                          self.failed(1, "-c", self.config, *argv))
        self.assertEqual(migration.current(self.url), None)
        self.assertFalse(migration.read_state(self.url_engine()).has_services)

    def url_engine(self) -> sa.engine.Engine:
        engine = sa.create_engine(self.url, poolclass=NullPool)
        self.addCleanup(engine.dispose)
        return engine

    def test_unknown_revision(self) -> None:
        """
        When the database is at a revision this novasvc does not know, then
        C{db version} says so and C{db sync} and the service commands exit
        1 saying to upgrade novasvc.
        """
        self.ok("-c", self.config, "db", "sync")
        with self.url_engine().begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0042'"))
        self.assertEqual(self.ok("-c", self.config, "db", "version"),
                         f"current: 0042 (newer than this novasvc)\nhead: {migration.HEAD_REVISION}\n")
        for argv in (["db", "sync"], ["service", "list"]):
            self.assertIn("newer than this novasvc", self.failed(1, "-c", self.config, *argv))

    def test_database_error(self) -> None:
        """
        When the database cannot be opened, then the tool exits 1 with one
        line naming it and the driver's reason.
        """
        missing = os.path.abspath(self.mktemp())
        url = f"sqlite:///{missing}/services.sqlite"
        error = self.failed(1, "--database-connection", url, "db", "sync")
        self.assertEqual(error, f"novasvc-manage: error: database {url} failed: unable to open "
                                "database file")
