"""
Tests for L{novasvc.db.schema}.
"""

import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateTable
from twisted.trial.unittest import SynchronousTestCase

from novasvc.db import schema


class ServicesTableTests(SynchronousTestCase):
    """
    The C{services} table has Nova's columns and constraints.
    """

    def test_columns(self) -> None:
        """
        When the table is inspected, then it has Nova's columns with their
        types, nullability and defaults.
        """
        columns = schema.services.c
        expected = {
            "id": sa.Integer, "uuid": sa.String, "host": sa.String, "binary": sa.String,
            "topic": sa.String, "report_count": sa.Integer, "disabled": sa.Boolean,
            "disabled_reason": sa.String, "forced_down": sa.Boolean,
            "last_seen_up": sa.DateTime, "version": sa.Integer, "created_at": sa.DateTime,
            "updated_at": sa.DateTime, "deleted_at": sa.DateTime, "deleted": sa.Integer,
        }
        self.assertEqual(set(columns.keys()), set(expected))
        for name, kind in expected.items():
            self.assertIsInstance(columns[name].type, kind, name)
        self.assertEqual(columns.uuid.type.length, 36)
        for name in ("host", "binary", "topic", "disabled_reason"):
            self.assertEqual(columns[name].type.length, 255, name)
        self.assertTrue(columns.id.primary_key)
        self.assertFalse(columns.report_count.nullable)
        for name, default in [("report_count", 0), ("disabled", False), ("forced_down", False),
                              ("version", 0), ("deleted", 0)]:
            self.assertEqual(columns[name].default.arg, default, name)

    def test_constraints(self) -> None:
        """
        When the table is inspected, then (host, binary, deleted) and (host,
        topic, deleted) are unique and uuid has a unique index.
        """
        uniques = {
            tuple(c.name for c in constraint.columns)
            for constraint in schema.services.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        }
        self.assertEqual(uniques, {("host", "topic", "deleted"), ("host", "binary", "deleted")})
        [index] = schema.services.indexes
        self.assertEqual((index.name, index.unique, [c.name for c in index.columns]),
                         ("services_uuid_idx", True, ["uuid"]))

    def test_ddl(self) -> None:
        """
        When the DDL is compiled for each supported database, then it
        compiles, and MySQL/MariaDB get microsecond timestamps.
        """
        for dialect in (sqlite.dialect(), postgresql.dialect(), mysql.dialect()):
            ddl = str(CreateTable(schema.services).compile(dialect=dialect))
            self.assertIn("UNIQUE", ddl)
        mysql_ddl = CreateTable(schema.services).compile(dialect=mysql.dialect())
        self.assertIn("DATETIME(6)", str(mysql_ddl))

    def test_create_and_reflect(self) -> None:
        """
        When the table is created in SQLite, then reflection finds the
        unique constraints and the uuid index.
        """
        engine = sa.create_engine("sqlite://")
        self.addCleanup(engine.dispose)
        schema.metadata.create_all(engine)
        schema.metadata.create_all(engine)  # a second time does nothing
        inspector = sa.inspect(engine)
        self.assertEqual(
            sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints("services")),
            [("host", "binary", "deleted"), ("host", "topic", "deleted")],
        )
        [index] = inspector.get_indexes("services")
        self.assertEqual((index["name"], bool(index["unique"])), ("services_uuid_idx", True))


class CheckTests(SynchronousTestCase):
    """
    L{schema.check_create}, L{schema.check_update} and their helpers.
    """

    def test_check_create(self) -> None:
        """
        When the arguments are good, then the column values come back.
        """
        self.assertEqual(
            schema.check_create("h", "b", None, 2, True, "why"),
            {"host": "h", "binary": "b", "topic": None, "version": 2,
             "disabled": True, "disabled_reason": "why"},
        )

    def test_check_create_max_length(self) -> None:
        """
        When a string has exactly 255 characters, then it is accepted; 256
        is refused with a message giving the length and the limit.
        """
        schema.check_create("h" * 255, "b", "t")
        with self.assertRaises(ValueError) as raised:
            schema.check_create("h" * 256, "b", "t")
        self.assertIn("256", str(raised.exception))
        self.assertIn("255", str(raised.exception))

    def test_check_update_lists_accepted(self) -> None:
        """
        When an update names an unknown key, then the error names it and
        lists the accepted keys.
        """
        with self.assertRaises(ValueError) as raised:
            schema.check_update({"host": "x"})
        message = str(raised.exception)
        self.assertIn("host", message)
        for key in schema.UPDATABLE_COLUMNS:
            self.assertIn(key, message)

    def test_bool_is_not_an_int(self) -> None:
        """
        When a bool is given where an int is expected, then it is refused.
        """
        self.assertRaises(TypeError, schema.check_update, {"version": True})
        self.assertRaises(TypeError, schema.check_service_id, True)

    def test_naive_utc(self) -> None:
        """
        When a time is aware, then it becomes naive UTC; a naive one is kept;
        anything else is refused.
        """
        minus_two = datetime.timezone(datetime.timedelta(hours=-2))
        aware = datetime.datetime(2026, 1, 1, 1, 30, tzinfo=minus_two)
        self.assertEqual(schema.naive_utc(aware), datetime.datetime(2026, 1, 1, 3, 30))
        naive = datetime.datetime(2026, 1, 1)
        self.assertIs(schema.naive_utc(naive), naive)
        self.assertRaises(TypeError, schema.naive_utc, "2026-01-01")

    def test_default_utcnow(self) -> None:
        """
        When the default clock is read, then it is naive and matches the
        current UTC time.
        """
        now = schema.default_utcnow()
        self.assertIsNone(now.tzinfo)
        utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.assertLess(abs((utc - now).total_seconds()), 5)
