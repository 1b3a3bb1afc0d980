"""
Tests for L{novasvc.db._engine}: the engine of a database URL, with the
installed driver chosen, and the messages that refuse a URL.
"""

import ast
import importlib.util
import os
import sys
from typing import Any

import sqlalchemy as sa
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from novasvc.db._engine import is_sqlite_memory, make_engine, open_engine
from novasvc.exceptions import ConfigError
from novasvc.process.tap import Options, makeService


class OpenEngineTests(SynchronousTestCase):
    """
    L{open_engine} makes an engine from a connection string.
    """

    def test_bad_url(self) -> None:
        """
        When the connection is not an SQLAlchemy URL, then opening it
        fails with C{ConfigError} that does not repeat the text (it may hold
        a password).
        """
        with self.assertRaises(ConfigError) as raised:
            open_engine("postgresql//user:s3cret@host")
        self.assertNotIn("s3cret", str(raised.exception))

    def test_unknown_dialect(self) -> None:
        """
        When the URL names an unknown database, then opening it fails with
        C{ConfigError} showing the URL with its password hidden.
        """
        with self.assertRaises(ConfigError) as raised:
            open_engine("nosuchdb://user:s3cret@host/db")
        self.assertIn("nosuchdb://user:***@host/db", str(raised.exception))
        self.assertNotIn("s3cret", str(raised.exception))

    def test_installed_driver(self) -> None:
        """
        When the URL names no driver, then an installed one is used:
        SQLAlchemy's default if present, else psycopg2 or PyMySQL.
        """

        def has(module: str) -> bool:
            return importlib.util.find_spec(module) is not None

        pg = open_engine("postgresql://u@h/db").url.drivername
        my = open_engine("mysql://u@h/db").url.drivername
        self.assertEqual(pg, "postgresql" if has("psycopg") else "postgresql+psycopg2")
        self.assertEqual(my, "mysql" if has("MySQLdb") else "mysql+pymysql")

    def test_sqlite_memory(self) -> None:
        """
        When the URL names an in-memory SQLite database, then
        L{is_sqlite_memory} says so and the engine's one connection is
        shared (every thread sees the same database); a file is not in
        memory.
        """
        for connection in ("sqlite://", "sqlite:///:memory:",
                           "sqlite:///file:x?mode=memory&uri=true"):
            engine = make_engine(connection, 4, 10, 60)
            self.assertTrue(is_sqlite_memory(engine.url), connection)
            self.assertIsInstance(engine.pool, sa.pool.StaticPool)
        self.assertFalse(is_sqlite_memory(sa.engine.make_url("sqlite:///services.sqlite")))


_ABSENT = object()


def _uninstall(case: SynchronousTestCase, *modules: str) -> None:
    """
    Make importing each of C{modules} fail as for a module that is not
    installed (C{None} in C{sys.modules}), until C{case}'s cleanup.
    """

    def restore(name: str, previous: Any) -> None:
        if previous is _ABSENT:
            del sys.modules[name]
        else:
            sys.modules[name] = previous

    for name in modules:
        case.addCleanup(restore, name, sys.modules.get(name, _ABSENT))
        sys.modules[name] = None  # type: ignore[assignment]


class MissingDriverTests(SynchronousTestCase):
    """
    A URL whose database driver is not installed is refused with a message
    naming the extra of novasvc that installs one.
    """

    def refused(self, connection: str) -> str:
        """
        @return: the message of the L{ConfigError} that building a store
            from C{connection} raises, after checking that it is one line
            without the password C{s3cret}.
        """
        with self.assertRaises(ConfigError) as raised:
            open_engine(connection)
        message = str(raised.exception)
        self.assertNotIn("s3cret", message)
        self.assertNotIn("\n", message)
        return message

    def message_for(self, extra: str, module: str) -> str:
        """
        @return: the message for a URL of the C{extra}'s database naming the
            driver C{module} while that module is not installed.
        """
        _uninstall(self, module)
        return self.refused(f"{extra}+{module}://u:s3cret@h/db")

    def test_postgresql(self) -> None:
        """
        When no PostgreSQL driver is installed, then a C{postgresql://} URL
        (or one naming psycopg2) is refused with the extra to install.
        """
        _uninstall(self, "psycopg", "psycopg2")
        for connection in ("postgresql://u:s3cret@h/db", "postgresql+psycopg2://u:s3cret@h/db"):
            scheme = connection.partition(":")[0]
            self.assertEqual(
                self.refused(connection),
                f"database connection {scheme}://u:***@h/db needs a PostgreSQL driver: "
                "pip install 'novasvc[postgresql]'",
            )

    def test_mysql(self) -> None:
        """
        When no MySQL driver is installed, then a C{mysql://} or
        C{mariadb://} URL (or one naming PyMySQL) is refused with the extra
        to install.
        """
        _uninstall(self, "MySQLdb", "pymysql")
        for scheme in ("mysql", "mariadb", "mysql+pymysql"):
            self.assertEqual(
                self.refused(f"{scheme}://u:s3cret@h/db"),
                f"database connection {scheme}://u:***@h/db needs a MySQL/MariaDB driver: "
                "pip install 'novasvc[mysql]'",
            )

    def test_other_named_driver(self) -> None:
        """
        When the URL names a driver the extra does not install, and that
        driver is missing, then the message names it, the extra and the URL
        scheme that uses the extra's driver.
        """
        for connection, module in [
            ("postgresql+pg8000://u:s3cret@h/db", "pg8000"),
            ("mariadb+mysqldb://u:s3cret@h/db", "MySQLdb"),
        ]:
            _uninstall(self, module)
            scheme = connection.partition(":")[0]
            backend = scheme.partition("+")[0]
            extra, driver = ("postgresql", "psycopg2") if backend == "postgresql" else (
                "mysql", "pymysql")
            message = self.refused(connection)
            self.assertTrue(
                message.startswith(
                    f"database connection {scheme}://u:***@h/db needs the "
                    f"{scheme.partition('+')[2]} driver, which is not installed ("
                ),
                message,
            )
            self.assertTrue(
                message.endswith(
                    f"install it, or pip install 'novasvc[{extra}]' and use {backend}+{driver}://"
                ),
                message,
            )

    def test_database_without_extra(self) -> None:
        """
        When the driver of a database novasvc has no extra for is missing,
        then the message shows the URL and the missing module.
        """
        _uninstall(self, "pyodbc")
        message = self.refused("mssql+pyodbc://u:s3cret@h/db")
        self.assertTrue(
            message.startswith(
                "database connection mssql+pyodbc://u:***@h/db needs its driver, which is "
                "not installed ("
            ),
            message,
        )
        self.assertIn("pyodbc", message.partition("(")[2])

    def test_broken_driver(self) -> None:
        """
        When the driver is installed but fails to import, then the message
        gives the import error rather than an extra to install.
        """

        def broken(*args: Any, **kwargs: Any) -> None:
            raise ImportError("libpq.so.5: cannot open shared object file")

        self.patch(sa, "create_engine", broken)
        message = self.refused("postgresql+psycopg2://u:s3cret@h/db")
        self.assertEqual(
            message,
            "database connection postgresql+psycopg2://u:***@h/db cannot be used: "
            "libpq.so.5: cannot open shared object file",
        )

    def test_extras_in_setup(self) -> None:
        """
        When the extras the messages name are installed, then they bring
        the drivers the messages lead to: psycopg2 for C{[postgresql]},
        PyMySQL for C{[mysql]}.
        """
        setup = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "setup.py")
        with open(setup, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        [extras] = [
            ast.literal_eval(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.keyword) and node.arg == "extras_require"
        ]
        for extra, project, module in [
            ("postgresql", "psycopg2-binary", "psycopg2"),
            ("mysql", "PyMySQL", "pymysql"),
        ]:
            self.assertEqual(
                [requirement.partition(">")[0] for requirement in extras[extra]], [project]
            )
            self.assertIn(f"'novasvc[{extra}]'", self.message_for(extra, module))

    def test_twistd_exits(self) -> None:
        """
        When C{twistd novasvc} is given such a URL, then building the
        service ends the process with C{novasvc: error:} and the message.
        """
        _uninstall(self, "psycopg", "psycopg2")
        options = Options()
        options.parseOptions([
            "--manager=novasvc.examples.echo.EchoManager",
            "--transport-url=memory://missing-driver",
            "--database-connection=postgresql://u:s3cret@h/db",
        ])
        error = self.assertRaises(SystemExit, makeService, options, Clock())
        self.assertEqual(
            error.code,
            "novasvc: error: database connection postgresql://u:***@h/db needs a PostgreSQL "
            "driver: pip install 'novasvc[postgresql]'",
        )
