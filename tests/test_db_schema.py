"""
Tests for L{novasvc.db.schema}.
"""

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
            column_type = columns[name].type
            # The timestamps are a TypeDecorator over DateTime.
            self.assertIsInstance(getattr(column_type, "impl", column_type), kind, name)
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
