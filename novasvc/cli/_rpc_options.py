# -*- test-case-name: tests.test_cli_rpc -*-
"""
The options every C{novasvc-rpc} sub-command shares: the parser (a usage
error exits with C{EX_USAGE}), the broker and configuration options, the
request options, and the configuration they load, as C{twistd novasvc}
loads it.
"""

import argparse
import math
import sys
from typing import Any, Mapping, NoReturn

from novasvc.cli._rpc_exit import EXIT_USAGE
from novasvc.config import DEFAULT_TRANSPORT_URL, Config, load_config
from novasvc.exceptions import ConfigError

__all__ = ["Parser", "add_options", "check_timeout", "load_settings", "show_name", "EPILOG",
           "TRANSPORT_URL_VARIABLE"]

#: The environment variable that stands in for the default transport URL.
TRANSPORT_URL_VARIABLE = "NOVASVC_TRANSPORT_URL"

#: The end of C{--help} for C{call}, C{cast} and C{notify}.
EPILOG = ("Every option may come before or after call|cast. "
          "Arguments: key=JSON (a value that is not valid JSON is taken as a string), "
          "key=@FILE reads the value from FILE and key=@- from standard input (same rule), "
          "key=@@TEXT is the string @TEXT. "
          "Exit status: 0 success, 1 remote error or request not sent, 2 timeout, "
          "64 usage error (arguments, configuration file or argument file).")
#: File names longer than this are shortened in messages.
_LONGEST_NAME = 160


def show_name(name: str) -> str:
    """
    @param name: a file name from the command line.
    @return: C{name} quoted, and cut short if it is long.
    """
    if len(name) > _LONGEST_NAME:
        name = name[:_LONGEST_NAME - 3] + "..."
    return repr(name)


class Parser(argparse.ArgumentParser):
    """
    argparse, but a usage error exits with C{EX_USAGE} (64) since 2 means a
    timeout.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.fail(message)

    def fail(self, message: str) -> NoReturn:
        """
        Exit with C{EX_USAGE} after one line on stderr, without the usage:
        for errors in what the arguments name (files) rather than in their
        syntax.

        @param message: the reason; line breaks become spaces.
        """
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.splitlines())}\n")


def add_options(parser: argparse.ArgumentParser, top: bool, request: bool = True) -> None:
    """
    Add the options to the top-level parser or to a sub-command's.

    @param parser: where to add them.
    @param top: C{True} for the top-level parser; a sub-command's options
        default to C{SUPPRESS}, so that one given before the sub-command is
        not reset by it.
    @param request: C{False} for only the broker and configuration options,
        without C{--server}, C{--fanout}, C{--timeout}, C{--namespace} and
        C{--rpc-version}.
    """
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    where = parser.add_argument_group("broker and configuration")
    where.add_argument("-c", "--config", metavar="FILE", default=default(None),
                       help="the YAML file of 'twistd novasvc --config' (transport_url, control_exchange, "
                            "rpc_response_timeout, durable_queues, allowed_remote_exmods...); "
                            "options given here beat it")
    where.add_argument("--transport-url", metavar="URL", default=default(None),
                       help=f"the broker (default: the file's transport_url, else ${TRANSPORT_URL_VARIABLE}, "
                            f"else {DEFAULT_TRANSPORT_URL})")
    where.add_argument("--control-exchange", metavar="NAME", default=default(None),
                       help="the topic exchange (default: the file's control_exchange, else openstack; "
                            "Nova uses nova)")
    if not request:
        return
    group = parser.add_argument_group("request")
    group.add_argument("--server", metavar="HOST", default=default(None),
                       help="address one host (<topic>.<server>)")
    group.add_argument("--fanout", action="store_true", default=default(False),
                       help="every server of the topic (cast only)")
    group.add_argument("--timeout", metavar="SECONDS", type=float, default=default(None),
                       help="seconds to wait for the reply or the broker's confirmation (default: the "
                            "file's rpc_response_timeout, else 60)")
    group.add_argument("--namespace", default=default(None), help="the API namespace (e.g. baseapi)")
    group.add_argument("--rpc-version", metavar="X.Y", default=default(None),
                       help="the API version to ask for")


def check_timeout(parser: Parser, args: argparse.Namespace) -> None:
    """
    Refuse a C{--timeout} that is not a positive number of seconds.

    @raise SystemExit: with C{EX_USAGE}, through C{parser.error}.
    """
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error(f"--timeout must be a positive number of seconds, not {args.timeout}")


def load_settings(parser: Parser, args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """
    Load the configuration and set C{args.settings}, and the
    C{transport_url} and C{control_exchange} it resolves.

    @param parser: what reports a bad file (C{EX_USAGE}).
    @param args: the parsed options (C{config}, C{transport_url},
        C{control_exchange}, C{timeout}).
    @param environ: for C{$NOVASVC_TRANSPORT_URL} and the file's
        C{${NAME}} references.
    @return: the L{Config} from the defaults (and C{$NOVASVC_TRANSPORT_URL}),
        C{--config} and the options, as C{twistd novasvc} builds it.
    @raise SystemExit: with C{EX_USAGE} for a bad configuration file.
    """
    overrides = {"transport_url": args.transport_url, "control_exchange": args.control_exchange,
                 "rpc_response_timeout": args.timeout}
    defaults = {"transport_url": (environ.get(TRANSPORT_URL_VARIABLE) or None,
                                  f"environment variable {TRANSPORT_URL_VARIABLE}")}
    try:
        settings = load_config(args.config, overrides, environ=environ, defaults=defaults)
    except ConfigError as e:
        message = str(e)
        if args.config is not None and len(args.config) > _LONGEST_NAME:
            message = message.replace(args.config, show_name(args.config))
        parser.fail(message)
    args.settings = settings
    args.transport_url = settings.transport_url
    args.control_exchange = settings.control_exchange
    return settings
