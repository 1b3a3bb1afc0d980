# -*- test-case-name: tests.test_db_engine -*-
"""
The SQLAlchemy C{Engine} of a database URL, made the one way every novasvc
user of the database makes it: the service store's pool
(L{novasvc.db.store.SQLServiceStore}), the schema tools
(L{novasvc.db.migration}) and C{novasvc-manage}.

Supported databases: SQLite (a file, or C{sqlite://} in memory), PostgreSQL
(psycopg2 or psycopg) and MySQL/MariaDB (PyMySQL or mysqlclient). A URL that
names no driver (C{postgresql://}, C{mysql://}) gets one that is installed.
The drivers are not installed with novasvc itself but by its extras,
C{novasvc[postgresql]} (psycopg2) and C{novasvc[mysql]} (PyMySQL); without
one, the URL is refused with a message naming the extra.

Connections are checked before use (C{pool_pre_ping}), so a restarted
database is picked up again by the next statement; connecting is bounded by
C{connect_timeout} and, where the driver allows it, a server that vanished
is noticed within a bounded time too (PostgreSQL: TCP keepalives and
C{tcp_user_timeout}, about 25 seconds either way).
"""

import importlib.util
import math
from typing import Any, Callable, Dict

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from novasvc.exceptions import ConfigError

# libpq TCP keepalives: a server that vanished while a call waits for its
# answer is noticed within about idle + interval * count seconds instead of
# the kernel's two hours; tcp_user_timeout (milliseconds) does the same when
# what was sent is never acknowledged (the host gone before the statement
# reached it), instead of the kernel's retransmissions for about 15 minutes.
# Neither ends a wait on a server that is there but does not answer (hung,
# or a lock): the API gives up on such a call at its deadline.
_PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25000,
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


def is_sqlite_memory(url: URL) -> bool:
    """
    @param url: a database URL.
    @return: whether it names an in-memory SQLite database, which lives as
        long as its one connection.
    """
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


def make_engine(
    connection: str, pool_size: int, connect_timeout: float, query_timeout: float
) -> Engine:
    """
    The engine on C{connection}: the installed driver chosen, connecting
    and waiting for the server bounded, connections checked before use.

    @param connection: an SQLAlchemy URL, as C{database.connection}.
    @param pool_size: the most connections open at once (an in-memory
        SQLite database has one, shared).
    @param connect_timeout: see L{novasvc.db.store.SQLServiceStore.__init__}.
    @param query_timeout: see L{novasvc.db.store.SQLServiceStore.__init__}.
    @return: the SQLAlchemy C{Engine}.
    @raise ConfigError: if C{connection} is not a usable URL or its driver
        is not installed (the message hides the password).
    """
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
        if is_sqlite_memory(url):
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
    @param connect_timeout: see L{novasvc.db.store.SQLServiceStore.__init__},
        in B{seconds}.
    @param query_timeout: see L{novasvc.db.store.SQLServiceStore.__init__},
        in B{seconds}.
    @return: the SQLAlchemy C{Engine}.
    @raise ConfigError: if C{connection} is not a usable URL or its driver
        is not installed (the message hides the password).
    """
    return make_engine(connection, 1, connect_timeout, query_timeout)
