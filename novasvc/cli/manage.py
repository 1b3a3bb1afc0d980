# -*- test-case-name: tests.test_cli_manage -*-
"""
C{novasvc-manage}: the operator's tool for the database and the C{services}
table, as Nova's C{nova-manage db sync} and C{nova service-list},
C{service-disable}, C{service-enable}, C{service-delete}.

Usage::

    novasvc-manage [-c FILE] [--database-connection URL] COMMAND ...

    db sync                      upgrade the schema to the newest revision
    db version                   the database's revision and the newest
    service list [--host H] [--binary B] [--json]
    service disable HOST BINARY [--reason TEXT]
    service enable HOST BINARY
    service force-down HOST BINARY [--unset]
                                 mark a service down now (or clear the mark), as
                                 Nova's service-force-down
    service delete HOST BINARY [--force]
                                 soft delete, as Nova's service delete; a
                                 service that is up is refused (exit 1, one
                                 line) unless --force
    token new --role reader|admin [--name NAME]

C{--config} (C{-c}) is the YAML file of C{twistd novasvc --config}, read
with the same loader and precedence (L{novasvc.config.load_config}):
built-in defaults < file < C{--database-connection}. The tool uses
C{database.connection}, and for C{service list} C{service_down_time} and
C{report_interval} (C{service delete} too, to tell whether the service
is up); C{service list} shows the last report (C{last_seen_up}) as
freshness, which disabling a service does not move. It reads but does not validate manager and driver
sections. Options may come before or after the command.

The work is synchronous (plain SQLAlchemy on an engine made as the
service's store makes its own, L{novasvc.db.store.open_engine}). The
C{service} commands refuse a database whose schema is not at the newest
revision, as a service does, with the same message.

Notifications: when the file's C{notifications:} section sends versioned
notifications, C{service disable}, C{service enable} and C{service
force-down} send one C{service.update} when they change C{disabled},
C{disabled_reason} or C{forced_down}, and
C{service delete} one C{service.delete}, as Nova's API does
(L{novasvc.core.service_status}); only then is a reactor run, to publish them
to the file's C{transport_url} (L{novasvc.cli._notify}). A notification
the broker has not confirmed within C{rpc_response_timeout} seconds is
reported on stderr as not sent; the change itself is made either way, and
the exit status is that of the change.

Exit status: B{0} success; B{1} the database failed or refused (out-of-date
schema, unknown revision) or no live service matches (one line on
stderr); B{64} (C{EX_USAGE}) bad arguments or configuration.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import secrets
import sys
import unicodedata
from typing import IO, Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

import attrs
import sqlalchemy as sa
import yaml
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from novasvc.config import Config, load_config
from novasvc.db import migration, rules, schema
from novasvc.db.record import ServiceRecord
from novasvc.db.store import open_engine, record_from_row
from novasvc.exceptions import ConfigError, ServiceNotFound
from novasvc._text import quote
from novasvc.core.service_status import DELETE, UPDATE, status_changed
from novasvc.core.servicegroup import effective_service_down_time, is_up

__all__ = ["main", "parse_arguments", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "ROLES"]

#: The command succeeded.
EXIT_OK = 0
#: The database failed or refused, or no live service matches.
EXIT_FAILURE = 1
#: Bad command-line arguments or configuration (sysexits' C{EX_USAGE}).
EXIT_USAGE = 64

#: The roles a bearer token may have (C{token new --role}).
ROLES = ("reader", "admin")

#: The columns of C{service list}, as C{nova service-list} (the topic in
#: the place of Nova's zone).
LIST_COLUMNS = ("Id", "Binary", "Host", "Topic", "Status", "State", "Last Seen Up",
                "Disabled Reason")

_PROG = "novasvc-manage"
_services = schema.services


class _Parser(argparse.ArgumentParser):
    """
    argparse, but a usage error exits with C{EX_USAGE} (64).
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.splitlines())}\n")


def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    """
    Add C{--config} and C{--database-connection} to the top-level parser
    (C{top}) or to a command's, where they default to C{SUPPRESS} so that
    one given before the command is kept.
    """
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("configuration")
    group.add_argument("-c", "--config", metavar="FILE", default=default,
                       help="the YAML file of 'twistd novasvc --config' (database.connection, "
                            "service_down_time, report_interval); options given here beat it")
    group.add_argument("--database-connection", metavar="URL", default=default,
                       help="the SQLAlchemy URL of the database (default: the file's "
                            "database.connection, else sqlite:///novasvc.sqlite)")


def _command(commands: Any, name: str, text: str, handler: Callable[..., int],
             database: bool = True) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=text, description=text)
    if database:
        _add_common(parser, top=False)
    parser.set_defaults(handler=handler, needs_database=database)
    return parser


def _build_parser() -> _Parser:
    parser = _Parser(prog=_PROG, description="Manage novasvc's database and services table.",
                     epilog="Exit status: 0 success, 1 database error or refusal or no such "
                            "service, 64 usage or configuration error.")
    _add_common(parser, top=True)
    groups = parser.add_subparsers(dest="group", metavar="db|service|drivers|token",
                                   required=True)

    db = groups.add_parser("db", help="the database schema").add_subparsers(
        dest="command", metavar="sync|version", required=True)
    _command(db, "sync", "upgrade the schema to the newest revision", _db_sync)
    _command(db, "version", "show the schema revision of the database and the newest",
             _db_version)

    service = groups.add_parser("service", help="the services table").add_subparsers(
        dest="command", metavar="list|disable|enable|force-down|delete", required=True)
    listing = _command(service, "list", "list the live services, as nova service-list",
                       _service_list)
    listing.add_argument("--host", help="only this host's services")
    listing.add_argument("--binary", help="only this binary's services")
    listing.add_argument("--json", action="store_true",
                         help="a JSON list of objects instead of a table")
    for name, text, handler in (
            ("disable", "disable a service (the scheduler's view; it keeps running)",
             _service_disable),
            ("enable", "enable a service", _service_enable),
            ("force-down", "mark a service down whatever its reports say (Nova's "
                           "forced_down), or with --unset clear the mark", _service_force_down),
            ("delete", "delete a service's row (soft delete); refused while the service "
                       "is up, unless --force", _service_delete)):
        command = _command(service, name, text, handler)
        command.add_argument("host", metavar="HOST")
        command.add_argument("binary", metavar="BINARY", help="e.g. novasvc-volume")
        if name == "disable":
            command.add_argument("--reason", metavar="TEXT",
                                 help="why (shown as Disabled Reason; at most "
                                      f"{rules.MAX_STRING_LENGTH} characters)")
        if name == "delete":
            command.add_argument("--force", action="store_true",
                                 help="delete it even though it is up (it registers again "
                                      "while it runs)")
        if name == "force-down":
            command.add_argument("--unset", action="store_true",
                                 help="clear forced_down: the reports decide again")

    drivers = _command(groups, "drivers", "list the drivers each DriverOpt of the "
                       "managers may choose (by name or dotted path), and the one chosen",
                       _drivers, database=False)
    _add_common(drivers, top=False)
    drivers.add_argument("--manager", action="append", default=[], metavar="DOTTED.PATH",
                         help="a manager to show (default: the file's <topic>_manager keys)")

    token = groups.add_parser("token", help="API bearer tokens").add_subparsers(
        dest="command", metavar="new", required=True)
    new = _command(token, "new", "print a new random bearer token and the configuration "
                                 "that accepts it", _token_new, database=False)
    new.add_argument("--role", required=True, choices=ROLES, help="what the token may do")
    new.add_argument("--name", help="a name for the token in the configuration "
                                    "(default: token-<first 8 hex digits of its SHA-256>)")
    return parser


def parse_arguments(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """
    Parse the command line (no file is read).

    @param argv: the arguments after the program name; C{sys.argv[1:]} when
        C{None}.
    @return: the options: C{group} (C{"db"}, C{"service"}, C{"token"}),
        C{command}, C{config}, C{database_connection} and the command's
        own.
    @raise SystemExit: with L{EXIT_USAGE} after printing the error on
        stderr; with 0 for C{--help}.
    """
    return _build_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None, *, stdout: Optional[IO[str]] = None,
         stderr: Optional[IO[str]] = None, environ: Optional[Mapping[str, str]] = None,
         utcnow: Optional[Callable[[], datetime.datetime]] = None,
         notify: Optional[Callable[[Config, Sequence[Tuple[str, ServiceRecord]], IO[str]], None]] = None
         ) -> int:
    """
    The C{novasvc-manage} console script.

    @param argv: the arguments after the program name; C{sys.argv[1:]} when
        C{None}.
    @param stdout: where results go (C{sys.stdout} when C{None}).
    @param stderr: where errors go (C{sys.stderr} when C{None}).
    @param environ: for the file's C{${NAME}} references (C{os.environ}
        when C{None}).
    @param utcnow: the current time, naive UTC, for C{service list}'s
        State (default: the system clock).
    @param notify: called as C{notify(config, changes, stderr)} after a
        command changed the services table, with each change as
        C{(action, record)} (L{novasvc.core.service_status.UPDATE} or
        C{DELETE}); default: L{novasvc.cli._notify.send_service_notifications},
        which sends them when the configuration asks for versioned
        notifications.
    @return: the exit status (see the module docstring); C{--help} and
        usage errors return theirs too.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parse_arguments(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if not args.needs_database:
        args.environ = environ
        with contextlib.redirect_stderr(err):
            return args.handler(args, out)
    try:
        settings = load_config(args.config, {"database_connection": args.database_connection},
                               environ=environ)
        engine = open_engine(settings.database.connection)
    except ConfigError as e:
        print(f"{_PROG}: error: {' '.join(str(e).splitlines())}", file=err)
        return EXIT_USAGE
    context = _Context(engine=engine, settings=settings,
                       utcnow=utcnow or rules.default_utcnow)
    try:
        status = args.handler(args, out, context)
    except (ServiceNotFound, migration.SchemaVersionError, _Refused) as e:
        print(f"{_PROG}: error: {e}", file=err)
        return EXIT_FAILURE
    except (TypeError, ValueError) as e:  # a value the rules refuse (--reason)
        print(f"{_PROG}: error: {e}", file=err)
        return EXIT_USAGE
    except sa_exc.DBAPIError as e:
        print(f"{_PROG}: error: database {context.where} failed: {_one_line(e.orig)}", file=err)
        return EXIT_FAILURE
    finally:
        engine.dispose()
    if context.changes:
        if notify is None:
            from novasvc.cli._notify import send_service_notifications as notify
        notify(settings, context.changes, err)
    return status


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@attrs.frozen
class _Context:
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
        return self.engine.url.render_as_string(hide_password=True)

    def checked(self, connection: Connection) -> Connection:
        """
        @return: C{connection}, once the schema is found at the newest
            revision.
        @raise migration.SchemaVersionError: otherwise.
        """
        migration.check(migration.read_state(connection), self.where)
        return connection


# -- db ----------------------------------------------------------------------


def _db_sync(args: argparse.Namespace, out: IO[str], context: _Context) -> int:
    before, after = migration.sync(context.engine)
    if before == after:
        print(f"The database is at schema revision {after.revision}, the newest: "
              f"nothing to do.", file=out)
    else:
        print(f"Upgraded the database from schema revision {before.describe()} to "
              f"{after.revision}.", file=out)
    return EXIT_OK


def _db_version(args: argparse.Namespace, out: IO[str], context: _Context) -> int:
    state = migration.read_state(context.engine)
    note = "" if state.known else " (newer than this novasvc)"
    print(f"current: {state.describe()}{note}", file=out)
    print(f"head: {migration.HEAD_REVISION}", file=out)
    return EXIT_OK


# -- service -----------------------------------------------------------------


def _live(host: Optional[str] = None, binary: Optional[str] = None) -> Any:
    query = sa.select(_services).where(_services.c.deleted == 0).order_by(_services.c.id)
    if host is not None:
        query = query.where(_services.c.host == host)
    if binary is not None:
        query = query.where(_services.c.binary == binary)
    return query


def _find(connection: Connection, host: str, binary: str) -> ServiceRecord:
    row = connection.execute(_live(host, binary)).mappings().first()
    if row is None:
        raise ServiceNotFound(f"no live service with host {quote(host)} and binary "
                              f"{quote(binary)}")
    return record_from_row(row)


def _service_list(args: argparse.Namespace, out: IO[str], context: _Context) -> int:
    with context.engine.connect() as connection:
        rows = context.checked(connection).execute(_live(args.host, args.binary)).mappings()
        records = [record_from_row(row) for row in rows]
    settings = context.settings
    down_time = effective_service_down_time(settings.report_interval, settings.service_down_time)
    now = context.utcnow()
    states = ["up" if is_up(record, now, down_time) else "down" for record in records]
    if args.json:
        json.dump([_as_json(record, state) for record, state in zip(records, states)], out,
                  indent=2)
        out.write("\n")
        return EXIT_OK
    table = [[str(record.id), record.binary, record.host, record.topic,
              "disabled" if record.disabled else "enabled", state,
              _timestamp(record.last_seen_up),
              record.disabled_reason] for record, state in zip(records, states)]
    out.write(_format_table(LIST_COLUMNS, table))
    return EXIT_OK


def _timestamp(when: Optional[datetime.datetime]) -> Optional[str]:
    return None if when is None else when.isoformat(timespec="microseconds")


def _as_json(record: ServiceRecord, state: str) -> Dict[str, Any]:
    return {
        "id": record.id,
        "uuid": record.uuid,
        "binary": record.binary,
        "host": record.host,
        "topic": record.topic,
        "status": "disabled" if record.disabled else "enabled",
        "state": state,
        "updated_at": _timestamp(record.updated_at),
        "disabled_reason": record.disabled_reason,
        "forced_down": record.forced_down,
        "last_seen_up": _timestamp(record.last_seen_up),
        "report_count": record.report_count,
        "version": record.version,
        "created_at": _timestamp(record.created_at),
    }


def _set_disabled(args: argparse.Namespace, out: IO[str], context: _Context,
                  disabled: bool, reason: Optional[str]) -> int:
    # Enabling clears the reason, as Nova's os-services API does.
    record = _change(context, args, {"disabled": disabled, "disabled_reason": reason})
    out.write(_format_table(("Host", "Binary", "Status", "Disabled Reason"), [[
        record.host, record.binary, "disabled" if disabled else "enabled", record.disabled_reason]]))
    return EXIT_OK


def _change(context: _Context, args: argparse.Namespace, values: Dict[str, Any]) -> ServiceRecord:
    """
    Update the live row of C{args.host} and C{args.binary} with C{values}
    (checked by L{rules.check_update}) and C{updated_at} now, and remember
    a C{service.update} when its status changed.

    @return: the record as it is now.
    """
    changes = rules.check_update(values)
    changes["updated_at"] = rules.naive_utc(context.utcnow())
    with context.engine.begin() as connection:
        before = _find(context.checked(connection), args.host, args.binary)
        connection.execute(sa.update(_services).where(_services.c.id == before.id)
                           .values(**changes))
        record = attrs.evolve(before, **changes)
    if status_changed(before, record):
        context.changes.append((UPDATE, record))
    return record


def _service_force_down(args: argparse.Namespace, out: IO[str], context: _Context) -> int:
    record = _change(context, args, {"forced_down": not args.unset})
    out.write(_format_table(("Host", "Binary", "Forced Down"), [[
        record.host, record.binary, "true" if record.forced_down else "false"]]))
    return EXIT_OK


def _service_disable(args: argparse.Namespace, out: IO[str], context: _Context) -> int:
    return _set_disabled(args, out, context, True, args.reason)


def _service_enable(args: argparse.Namespace, out: IO[str], context: _Context) -> int:
    return _set_disabled(args, out, context, False, None)


class _Refused(Exception):
    """
    A command refused as it stands (one line; exit status 1).
    """


def _service_delete(args: argparse.Namespace, out: IO[str], context: _Context) -> int:
    now = rules.naive_utc(context.utcnow())
    settings = context.settings
    down_time = effective_service_down_time(settings.report_interval, settings.service_down_time)
    with context.engine.begin() as connection:
        record = _find(context.checked(connection), args.host, args.binary)
        if not args.force and is_up(record, now, down_time):
            raise _Refused(f"service {record.id} ({_escape(record.binary)} on "
                           f"{_escape(record.host)}) is up: stop it first, or delete it anyway "
                           "with --force (a running service registers again)")
        # Soft delete, as the store's destroy(): deleted = id frees the
        # (host, binary) pair for a new live row.
        connection.execute(sa.update(_services)
                           .where(_services.c.id == record.id, _services.c.deleted == 0)
                           .values(deleted=_services.c.id, deleted_at=now))
    context.changes.append((DELETE, record))
    print(f"Deleted service {record.id} ({_escape(record.binary)} on {_escape(record.host)}).",
          file=out)
    return EXIT_OK


# -- token -------------------------------------------------------------------


def _drivers(args: argparse.Namespace, out: IO[str]) -> int:
    from novasvc.cli._drivers import HEADERS, driver_rows

    try:
        settings = load_config(args.config, {"database_connection": args.database_connection},
                               environ=args.environ)
        rows = driver_rows(settings, args.manager)
    except ConfigError as e:
        print(f"{_PROG}: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return EXIT_USAGE
    out.write(_format_table(HEADERS, rows))
    return EXIT_OK


def _token_new(args: argparse.Namespace, out: IO[str]) -> int:
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    name = args.name if args.name is not None else f"token-{digest[:8]}"
    snippet = yaml.safe_dump({"api": {"tokens": [{"name": name, "role": args.role,
                                                  "sha256": digest}]}},
                             sort_keys=False, default_flow_style=False)
    print(f"Bearer token (shown once; the configuration keeps only its SHA-256):\n{token}\n",
          file=out)
    print("Add to the configuration file (merge into an existing api.tokens list):", file=out)
    out.write(snippet)
    return EXIT_OK


# -- output ------------------------------------------------------------------

# Categories shown as escapes: controls, format characters (bidirectional
# overrides, zero-width), surrogates, private use, unassigned, line and
# paragraph separators.
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(text: str) -> str:
    """
    @param text: text a client chose (a host, a reason...).
    @return: C{text} whole, with each character that could move the cursor,
        change the terminal's state or reorder the line written as a Python
        escape (C{\\x1b}, C{\\u202e}).
    """
    if text.isprintable():
        return text
    parts = []
    for char in text:
        if unicodedata.category(char) in _ESCAPED:
            code = ord(char)
            parts.append(f"\\x{code:02x}" if code < 0x100 else
                         f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            parts.append(char)
    return "".join(parts)


def _width(text: str) -> int:
    """
    @return: the columns C{text} takes on a terminal: East Asian wide
        characters take two, combining marks none.
    """
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _format_table(headers: Sequence[str], rows: Sequence[Sequence[Optional[str]]]) -> str:
    """
    A table in a box, as C{nova service-list} prints it: C{None} shows as
    C{-}; text is never cut, and is escaped (L{_escape}).

    @param headers: the column titles.
    @param rows: the cells, one sequence per row, as many as C{headers}.
    @return: the lines, each ending with a newline.
    """
    cells: List[List[str]] = [list(headers)] + [
        ["-" if cell is None else _escape(cell) for cell in row] for row in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+\n"

    def line(row: List[str]) -> str:
        return "|" + "|".join(f" {cell}{' ' * (width - _width(cell))} "
                              for cell, width in zip(row, widths)) + "|\n"

    return rule + line(cells[0]) + rule + "".join(line(row) for row in cells[1:]) + rule


if __name__ == "__main__":
    sys.exit(main())
