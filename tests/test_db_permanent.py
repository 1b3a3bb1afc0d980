"""
Tests for L{novasvc.db._permanent}: which database errors at start-up no
retry mends. (How L{novasvc.db.store.SQLServiceStore.start} fails on real
servers with them is in C{tests.test_db_store}.)
"""

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from twisted.trial.unittest import SynchronousTestCase

from novasvc.db._permanent import permanent_cause


class _DriverError(Exception):
    """
    A driver error with a PostgreSQL C{pgcode}.
    """

    def __init__(self, message: str, pgcode: Any = None) -> None:
        Exception.__init__(self, message)
        self.pgcode = pgcode


class PermanentCauseTests(SynchronousTestCase):
    """
    L{permanent_cause} sorts database errors.
    """

    def cause(self, url: str, orig: BaseException) -> Any:
        return permanent_cause(sa_exc.OperationalError("SELECT 1", {}, orig), sa.engine.make_url(url))

    def test_postgresql_codes(self) -> None:
        """
        When a PostgreSQL error carries an SQLSTATE of class 28, 3D or 42,
        then it is permanent; class 57 (server shutting down) and 08
        (connection failure) are not.
        """
        url = "postgresql://u@h/d"
        for code in ("28P01", "3D000", "42501"):
            self.assertEqual(self.cause(url, _DriverError("refused  for\n good", code)), "refused for good")
        for code in ("57P01", "08006", None):
            self.assertIsNone(self.cause(url, _DriverError("server closed the connection", code)))

    def test_mysql_codes(self) -> None:
        """
        When a MySQL error number means access denied or unknown database,
        then it is permanent; 2003 (cannot connect) and 2013 (lost
        connection) are not.
        """
        url = "mysql+pymysql://u@h/d"
        self.assertEqual(self.cause(url, Exception(1044, "Access denied")), "Access denied (error 1044)")
        for code in (2003, 2013):
            self.assertIsNone(self.cause(url, Exception(code, "Can't connect")))

    def test_not_a_database_error(self) -> None:
        """
        When the error does not come from the driver, then it is not
        permanent.
        """
        self.assertIsNone(permanent_cause(ValueError("x"), sa.engine.make_url("sqlite://")))

    def test_sqlite_file(self) -> None:
        """
        When SQLite cannot open its file, then the error is permanent, and
        names the file's directory when that is missing; a locked database
        is not permanent.
        """
        missing = self.mktemp()
        unable = Exception("unable to open database file")
        self.assertEqual(
            self.cause(f"sqlite:///{missing}/services.sqlite", unable),
            f"unable to open database file: the directory {os.path.abspath(missing)} "
            "does not exist",
        )
        self.assertEqual(self.cause("sqlite:///services.sqlite", unable),
                         "unable to open database file")
        self.assertIsNone(self.cause("sqlite:///services.sqlite",
                                     Exception("database is locked")))
