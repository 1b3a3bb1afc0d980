# -*- test-case-name: tests.test_db_permanent -*-
"""
Telling a database error at start-up that retrying cannot mend (a database
that does not exist, a failed authentication, an SQLite file whose
directory is missing) from one that may pass (the server refuses
connections, does not answer in time, is starting up): L{permanent_cause},
and L{PermanentDatabaseError}, the one-line L{ConfigError} that
L{novasvc.db.store.SQLServiceStore.start} fails with for the first kind.
"""

import os
import re
from typing import Optional

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from novasvc.exceptions import ConfigError

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
