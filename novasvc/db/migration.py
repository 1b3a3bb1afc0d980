# -*- test-case-name: tests.test_db_migration -*-
"""
The schema revision of the C{services} table's database: what it is
(L{read_state}, L{current}), bringing it to the newest (L{sync}, behind
C{novasvc-manage db sync}), and the check a store makes when it starts
(L{prepare}).

The revisions are an Alembic script directory packaged with novasvc
(C{novasvc/db/migrations/}), driven from code: no C{alembic.ini}. The
revision a database is at is the one row of Alembic's C{alembic_version}
table. Revision C{0001} is the schema novasvc made before it had
migrations (C{metadata.create_all}), so such a database, which has a
C{services} table and no C{alembic_version}, is stamped C{0001} by L{sync}
once its columns are checked, then upgraded.

L{prepare} and L{read_state} use plain SQLAlchemy and never import Alembic
(a service's start-up time and memory are tracked): they compare what the
database says with L{HEAD_REVISION}, a constant a test holds equal to
Alembic's head. Only L{sync} and L{head} import Alembic.
"""

from contextlib import contextmanager
from typing import Any, Callable, FrozenSet, Iterator, Optional, Tuple, Union

import attrs
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from novasvc.db import schema
from novasvc.db._engine import open_engine
from novasvc.exceptions import ConfigError

__all__ = [
    "REVISIONS",
    "HEAD_REVISION",
    "CREATED",
    "CURRENT",
    "UPGRADED",
    "SYNC_HINT",
    "SchemaVersionError",
    "SchemaOutOfDate",
    "SchemaTooNew",
    "SchemaMismatch",
    "SchemaState",
    "read_state",
    "current",
    "head",
    "check",
    "prepare",
    "sync",
]

#: Every revision of C{novasvc/db/migrations/versions/}, oldest first.
REVISIONS: Tuple[str, ...] = ("0001",)
#: The revision this novasvc's L{novasvc.db.schema} describes (Alembic's
#: head).
HEAD_REVISION: str = REVISIONS[-1]

#: What L{prepare} did: created the schema in an empty database, found it
#: at L{HEAD_REVISION}, or upgraded it (C{database.auto_sync}).
CREATED = "created"
CURRENT = "current"
UPGRADED = "upgraded"

#: The command that upgrades a database, as an out-of-date message says it.
SYNC_HINT = "run: novasvc-manage db sync --config <file>"

_VERSION_TABLE = "alembic_version"
# Alembic's version table, as Alembic itself creates it.
_version = sa.Table(
    _VERSION_TABLE,
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name=f"{_VERSION_TABLE}_pkc"),
)
# The columns of the services table at revision 0001: those a database made
# before migrations must have to be stamped 0001.
_REVISION_0001_COLUMNS: FrozenSet[str] = frozenset({
    "created_at", "updated_at", "deleted_at", "id", "uuid", "host", "binary", "topic",
    "report_count", "disabled", "disabled_reason", "last_seen_up", "forced_down", "version",
    "deleted",
})
# How many times prepare() looks again at a database that another process
# is changing (two services starting at once on an empty database).
_MOST_ATTEMPTS = 5


class SchemaVersionError(ConfigError):
    """
    The database's schema revision is not one this novasvc can use as it
    is. The message is one line naming the database (password hidden), the
    revision found and what to do. A start-up retry cannot mend it.
    """


class SchemaOutOfDate(SchemaVersionError):
    """
    The database is at an older revision than L{HEAD_REVISION}, or was made
    before migrations: C{novasvc-manage db sync} upgrades it.
    """


class SchemaTooNew(SchemaVersionError):
    """
    The database is at a revision this novasvc does not know: a newer
    novasvc upgraded it.
    """


class SchemaMismatch(SchemaVersionError):
    """
    A C{services} table made before migrations lacks columns of revision
    C{0001}: it is not novasvc's, and L{sync} leaves it alone.
    """


@attrs.frozen
class SchemaState:
    """
    What a database says of its schema.

    @ivar revision: the revision in C{alembic_version} (C{str}; several
        rows are joined with commas), or C{None} when that table is missing
        or empty.
    @ivar has_services: whether the C{services} table exists (C{bool}).
    """

    revision: Optional[str]
    has_services: bool

    @property
    def empty(self) -> bool:
        """
        C{True} for a database with neither a revision nor a C{services}
        table (other tables, such as a manager's, may be there).
        """
        return self.revision is None and not self.has_services

    @property
    def before_migrations(self) -> bool:
        """
        C{True} for a C{services} table without a revision: made by a
        novasvc before migrations (C{create_all}).
        """
        return self.revision is None and self.has_services

    @property
    def known(self) -> bool:
        """
        C{True} unless the revision is one this novasvc does not know.
        """
        return self.revision is None or self.revision in REVISIONS

    def describe(self) -> str:
        """
        @return: the revision, or what stands for it, in a few words:
            C{"0001"}, C{"none (empty database)"}, C{"none (a services table
            from before migrations)"}.
        """
        if self.revision is not None:
            return self.revision
        if self.has_services:
            return "none (a services table from before migrations)"
        return "none (empty database)"


def _shown(bind: Union[Engine, Connection]) -> str:
    return bind.engine.url.render_as_string(hide_password=True)


@contextmanager
def _connected(bind: Union[Engine, Connection]) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as connection:
            yield connection


def read_state(bind: Union[Engine, Connection]) -> SchemaState:
    """
    Read the revision and whether the C{services} table exists, with plain
    SQLAlchemy (blocking).

    @param bind: an engine, or a connection to read through (in its
        transaction).
    @return: the L{SchemaState}.
    @raise sqlalchemy.exc.DBAPIError: when the database cannot be read.
    """
    return _look(bind)[0]


def _look(bind: Union[Engine, Connection]) -> Tuple[SchemaState, bool]:
    """
    @return: the L{SchemaState}, and whether C{alembic_version} exists
        (which an empty one does not say).
    """
    with _connected(bind) as connection:
        inspector = sa.inspect(connection)
        has_services = inspector.has_table(schema.services.name)
        has_version = inspector.has_table(_VERSION_TABLE)
        revision = None
        if has_version:
            rows = connection.execute(sa.select(_version.c.version_num)).scalars().all()
            revision = ",".join(sorted(rows)) or None
    return SchemaState(revision=revision, has_services=has_services), has_version


def check(state: SchemaState, where: str) -> None:
    """
    Refuse a schema that is not at L{HEAD_REVISION}.

    @param state: from L{read_state}.
    @param where: the database, for the message (its URL, password
        hidden).
    @raise SchemaTooNew: for a revision not in L{REVISIONS}.
    @raise SchemaOutOfDate: for an older revision, a database made before
        migrations, or an empty one; the message says to run C{novasvc-manage
        db sync}.
    """
    error = _refusal(state, where)
    if error is not None:
        raise error


def _refusal(state: SchemaState, where: str) -> Optional[SchemaVersionError]:
    if not state.known:
        return SchemaTooNew(
            f"database {where} is at schema revision {state.revision}, newer than this "
            f"novasvc (which knows up to {HEAD_REVISION}); upgrade novasvc"
        )
    if state.revision == HEAD_REVISION and state.has_services:
        return None
    found = state.describe()
    if state.revision is not None and not state.has_services:
        found += " without a services table"
    return SchemaOutOfDate(
        f"database {where} is at schema revision {found}, this novasvc needs "
        f"{HEAD_REVISION}; {SYNC_HINT}"
    )


def current(url_or_engine: Union[str, Engine]) -> Optional[str]:
    """
    @param url_or_engine: an SQLAlchemy URL (C{str}, opened as a store
        opens it and closed again) or an engine.
    @return: the database's revision, or C{None} when it has none (empty,
        or made before migrations: see L{read_state}).
    @raise ConfigError: for an unusable URL or a missing driver.
    @raise sqlalchemy.exc.DBAPIError: when the database cannot be read.
    """
    with _engine(url_or_engine) as engine:
        return read_state(engine).revision


def head() -> str:
    """
    Ask Alembic for the head of novasvc's script directory (imports
    Alembic; L{HEAD_REVISION} says the same without it).

    @return: the head revision id.
    """
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def prepare(engine: Engine, *, auto_sync: bool = False,
            upgrade: Optional[Callable[[Engine], object]] = None) -> str:
    """
    The start-up check of L{novasvc.db.store.SQLServiceStore} (blocking;
    imports Alembic only to upgrade):

      - an empty database gets the newest schema (L{schema.metadata}) and
        is stamped L{HEAD_REVISION}: a new database is not out of date;
      - a database at L{HEAD_REVISION} is used as it is (its C{services}
        table is created if missing: another process stamped it and is
        creating it);
      - one at an older revision, or made before migrations, is refused
        with L{SchemaOutOfDate}, unless C{auto_sync} upgrades it (L{sync});
      - one at a revision this novasvc does not know is always refused
        with L{SchemaTooNew}.

    Another process may be doing the same at the same moment (two services
    starting on an empty database): when a statement fails and the
    database has changed meanwhile, the check starts again from what it
    now finds.

    @param engine: the store's engine.
    @param auto_sync: upgrade an out-of-date database instead of refusing
        it (C{database.auto_sync}).
    @param upgrade: what upgrades (default: L{sync}; tests).
    @return: L{CREATED}, L{CURRENT} or L{UPGRADED}.
    @raise SchemaVersionError: see above.
    @raise sqlalchemy.exc.DBAPIError: when the database fails otherwise.
    """
    seen = _look(engine)
    attempts = 1
    while True:
        try:
            return _prepare_once(engine, seen[0], auto_sync, upgrade or sync)
        except sa_exc.DBAPIError:
            before, seen = seen, _look(engine)
            if seen == before or attempts >= _MOST_ATTEMPTS:
                raise
            attempts += 1


def _prepare_once(engine: Engine, state: SchemaState, auto_sync: bool,
                  upgrade: Callable[[Engine], object]) -> str:
    if state.empty or (state.revision == HEAD_REVISION and not state.has_services):
        _create_at_head(engine)
        return CREATED
    if state.revision == HEAD_REVISION:
        return CURRENT
    if auto_sync and state.known:
        upgrade(engine)
        return UPGRADED
    raise _refusal(state, _shown(engine)) or AssertionError(f"not refused: {state}")


def _create_at_head(engine: Engine) -> None:
    """
    Create the newest schema and stamp it L{HEAD_REVISION}, in one
    transaction where the database allows DDL in one (PostgreSQL). The
    version row comes first: a process looking meanwhile sees a database
    at the head whose C{services} table is still to come, never one that
    seems made before migrations.
    """
    with engine.begin() as connection:
        _version.create(connection, checkfirst=True)
        if connection.execute(sa.select(_version.c.version_num)).first() is None:
            connection.execute(sa.insert(_version).values(version_num=HEAD_REVISION))
        schema.metadata.create_all(connection)


@contextmanager
def _engine(url_or_engine: Union[str, Engine]) -> Iterator[Engine]:
    if isinstance(url_or_engine, Engine):
        yield url_or_engine
        return
    engine = open_engine(url_or_engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "novasvc.db:migrations")
    return config


def sync(url_or_engine: Union[str, Engine]) -> Tuple[SchemaState, SchemaState]:
    """
    Upgrade the database to L{HEAD_REVISION} with Alembic (blocking), in
    one transaction where the database allows it (PostgreSQL; MySQL and
    MariaDB commit each DDL statement).

    An empty database gets every revision from the first, and so does one
    with a revision but no C{services} table (there is nothing to keep); a
    database made before migrations has its C{services} table checked for
    revision C{0001}'s columns, is stamped C{0001}, then upgraded; one at
    the head is left as it is.

    @param url_or_engine: an SQLAlchemy URL (C{str}, opened as a store
        opens it and closed again) or an engine.
    @return: the L{SchemaState} before and after.
    @raise SchemaTooNew: for a revision this novasvc does not know.
    @raise SchemaMismatch: for a C{services} table made before migrations
        that lacks columns of revision C{0001}.
    @raise ConfigError: for an unusable URL or a missing driver.
    @raise sqlalchemy.exc.DBAPIError: when the database fails.
    """
    from alembic import command

    with _engine(url_or_engine) as engine:
        where = _shown(engine)
        config = _alembic_config()
        with engine.begin() as connection:
            before = read_state(connection)
            if not before.known:
                check(before, where)
            config.attributes["connection"] = connection
            if before.before_migrations:
                columns = {column["name"] for column in sa.inspect(connection).get_columns(
                    schema.services.name)}
                missing = sorted(_REVISION_0001_COLUMNS - columns)
                if missing:
                    raise SchemaMismatch(
                        f"database {where} has a services table without a schema revision "
                        f"that lacks the columns {', '.join(missing)} of revision "
                        f"{REVISIONS[0]}; it is not one novasvc made, and is left as it is"
                    )
                command.stamp(config, REVISIONS[0])
            elif before.revision is not None and not before.has_services:
                command.stamp(config, "base")
            command.upgrade(config, "head")
            after = read_state(connection)
        return before, after
