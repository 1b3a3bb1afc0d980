# -*- test-case-name: tests.test_cli_database -*-
"""
What C{novasvc-manage}'s database commands work with (L{Context}: the
engine, the configuration, the clock, what they changed), and the C{db}
commands: C{db sync} upgrades the schema to the newest revision, C{db
version} shows the database's revision and the newest.
"""

import argparse
import datetime
from typing import IO, Callable, List, Tuple

import attrs
from sqlalchemy.engine import Connection, Engine

from novasvc.config import Config
from novasvc.db import migration
from novasvc.db.record import ServiceRecord

__all__ = ["Context", "Refused", "db_sync", "db_version"]


class Refused(Exception):
    """
    A command refused as it stands (one line; exit status 1).
    """


@attrs.frozen
class Context:
    """
    What the database commands work with.
    """

    engine: Engine
    settings: Config
    utcnow: Callable[[], datetime.datetime]
    #: What the command changed, as C{(action, record)}, for notifications.
    changes: List[Tuple[str, ServiceRecord]] = attrs.field(factory=list)

    @property
    def where(self) -> str:
        """
        The database's URL, its password hidden, for messages.
        """
        return self.engine.url.render_as_string(hide_password=True)

    def checked(self, connection: Connection) -> Connection:
        """
        @return: C{connection}, once the schema is found at the newest
            revision.
        @raise migration.SchemaVersionError: otherwise.
        """
        migration.check(migration.read_state(connection), self.where)
        return connection


def db_sync(args: argparse.Namespace, out: IO[str], context: Context) -> None:
    """
    C{db sync}: upgrade the schema to the newest revision and say so.
    """
    before, after = migration.sync(context.engine)
    if before == after:
        print(f"The database is at schema revision {after.revision}, the newest: "
              f"nothing to do.", file=out)
    else:
        print(f"Upgraded the database from schema revision {before.describe()} to "
              f"{after.revision}.", file=out)


def db_version(args: argparse.Namespace, out: IO[str], context: Context) -> None:
    """
    C{db version}: print the database's revision and the newest.
    """
    state = migration.read_state(context.engine)
    note = "" if state.known else " (newer than this novasvc)"
    print(f"current: {state.describe()}{note}", file=out)
    print(f"head: {migration.HEAD_REVISION}", file=out)
