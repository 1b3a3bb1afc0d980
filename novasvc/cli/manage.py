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

This module parses the command line and turns what a command raises into
the exit status; the commands are beside it: L{novasvc.cli._database}
(C{db}, and the L{Context<novasvc.cli._database.Context>} every database
command gets), L{novasvc.cli._services}, L{novasvc.cli._token},
L{novasvc.cli._drivers}; tables are printed by L{novasvc.cli._table}.
"""

import argparse
import contextlib
import datetime
import sys
from typing import IO, Any, Callable, Mapping, NoReturn, Optional, Sequence, Tuple

from sqlalchemy import exc as sa_exc

from novasvc.cli._database import Context, Refused, db_sync, db_version
from novasvc.cli._drivers import list_drivers
from novasvc.cli._services import (service_delete, service_disable, service_enable, service_force_down,
                                   service_list)
from novasvc.cli._token import token_new
from novasvc.config import Config, load_config
from novasvc.config.api import ROLES
from novasvc.db import migration, rules
from novasvc.db.record import ServiceRecord
from novasvc.db.store import open_engine
from novasvc.exceptions import ConfigError, ServiceNotFound

__all__ = ["main", "parse_arguments", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "ROLES"]

#: The command succeeded.
EXIT_OK = 0
#: The database failed or refused, or no live service matches.
EXIT_FAILURE = 1
#: Bad command-line arguments or configuration (sysexits' C{EX_USAGE}).
EXIT_USAGE = 64

_PROG = "novasvc-manage"


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


def _command(commands: Any, name: str, text: str, handler: Callable[..., None],
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
    _command(db, "sync", "upgrade the schema to the newest revision", db_sync)
    _command(db, "version", "show the schema revision of the database and the newest",
             db_version)

    service = groups.add_parser("service", help="the services table").add_subparsers(
        dest="command", metavar="list|disable|enable|force-down|delete", required=True)
    listing = _command(service, "list", "list the live services, as nova service-list",
                       service_list)
    listing.add_argument("--host", help="only this host's services")
    listing.add_argument("--binary", help="only this binary's services")
    listing.add_argument("--json", action="store_true",
                         help="a JSON list of objects instead of a table")
    for name, text, handler in (
            ("disable", "disable a service (the scheduler's view; it keeps running)",
             service_disable),
            ("enable", "enable a service", service_enable),
            ("force-down", "mark a service down whatever its reports say (Nova's "
                           "forced_down), or with --unset clear the mark", service_force_down),
            ("delete", "delete a service's row (soft delete); refused while the service "
                       "is up, unless --force", service_delete)):
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
                       list_drivers, database=False)
    _add_common(drivers, top=False)
    drivers.add_argument("--manager", action="append", default=[], metavar="DOTTED.PATH",
                         help="a manager to show (default: the file's <topic>_manager keys)")

    token = groups.add_parser("token", help="API bearer tokens").add_subparsers(
        dest="command", metavar="new", required=True)
    new = _command(token, "new", "print a new random bearer token and the configuration "
                                 "that accepts it", token_new, database=False)
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
        try:
            with contextlib.redirect_stderr(err):
                args.handler(args, out)
        except ConfigError as e:
            return _usage_error(e, err)
        return EXIT_OK
    try:
        settings = load_config(args.config, {"database_connection": args.database_connection},
                               environ=environ)
        engine = open_engine(settings.database.connection)
    except ConfigError as e:
        return _usage_error(e, err)
    context = Context(engine=engine, settings=settings,
                      utcnow=utcnow or rules.default_utcnow)
    try:
        args.handler(args, out, context)
    except (ServiceNotFound, migration.SchemaVersionError, Refused) as e:
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
    return EXIT_OK


def _usage_error(error: ConfigError, err: IO[str]) -> int:
    print(f"{_PROG}: error: {' '.join(str(error).splitlines())}", file=err)
    return EXIT_USAGE


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
