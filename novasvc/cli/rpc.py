# -*- test-case-name: tests.test_cli_rpc -*-
"""
C{novasvc-rpc}: call or cast an RPC method from a shell.

Usage::

    novasvc-rpc [--transport-url URL] [--control-exchange X]
                call|cast [--server HOST] [--fanout] [--timeout S]
                [--namespace NS] [--rpc-version X.Y] TOPIC METHOD [key=JSON ...]

Each C{key=JSON} is one keyword argument of the method; a value that is not
valid JSON is taken as a string (C{name=vol1} and C{name='"vol1"'} are the
same). The request carries an admin context (Nova's C{get_admin_context}).
The transport URL defaults to the environment variable
C{NOVASVC_TRANSPORT_URL}, else C{rabbit://guest:guest@localhost:5672/}.

Output and exit status:

  - B{0}: C{call} printed the result as one line of JSON on stdout; C{cast}
    was confirmed by the broker (nothing printed);
  - B{1}: the remote method raised (C{Remote error: <class> <message>} and
    the remote traceback on stderr) or the request could not be sent;
  - B{2}: no reply (or, for a cast, no broker confirmation) within
    C{--timeout} seconds (default 60, oslo's C{rpc_response_timeout});
  - B{64} (C{EX_USAGE}): bad command-line arguments (not argparse's 2, which
    means a timeout here).
"""

import argparse
import json
import os
import sys
from typing import IO, Any, Callable, Dict, List, NoReturn, Optional, Sequence

from twisted.internet import defer, task
from twisted.python.failure import Failure

from novasvc.context import get_admin_context
from novasvc.exceptions import ConfigError
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import MessagingTimeout, RemoteError, RPCError
from novasvc.rpc.target import Target
from novasvc.transport.url import DEFAULT_URL

__all__ = ["main", "run", "parse_arguments", "EXIT_OK", "EXIT_REMOTE_ERROR", "EXIT_TIMEOUT", "EXIT_USAGE"]

#: The request succeeded.
EXIT_OK = 0
#: The remote method raised, or the request could not be sent.
EXIT_REMOTE_ERROR = 1
#: No reply (call) or no broker confirmation (cast) within C{--timeout}.
EXIT_TIMEOUT = 2
#: Bad command-line arguments (sysexits' C{EX_USAGE}).
EXIT_USAGE = 64

DEFAULT_TIMEOUT = 60.0
_EPILOG = ("exit status: 0 success, 1 remote error or request not sent, 2 timeout, 64 usage error. "
           "Values that are not valid JSON are taken as strings.")


class _Parser(argparse.ArgumentParser):
    """
    argparse, but a usage error exits with C{EX_USAGE} (64) since 2 means a
    timeout.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> _Parser:
    parser = _Parser(prog="novasvc-rpc", description="Call or cast an RPC method (oslo.messaging wire format).",
                     epilog=_EPILOG)
    parser.add_argument("--transport-url",
                        default=os.environ.get("NOVASVC_TRANSPORT_URL") or DEFAULT_URL,
                        help="the broker (default: $NOVASVC_TRANSPORT_URL or %(default)s)")
    parser.add_argument("--control-exchange", default="openstack",
                        help="the topic exchange (default: %(default)s; Nova uses 'nova')")
    commands = parser.add_subparsers(dest="command", metavar="call|cast", required=True)
    for name, text in (("call", "call a method and print its result"),
                       ("cast", "send a method without waiting for it")):
        sub = commands.add_parser(name, help=text, description=text, epilog=_EPILOG)
        sub.add_argument("--server", help="address one host (<topic>.<server>)")
        sub.add_argument("--fanout", action="store_true", help="every server of the topic (cast only)")
        sub.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                         help="seconds to wait for the reply or the broker (default: %(default)s)")
        sub.add_argument("--namespace", help="the API namespace (e.g. baseapi)")
        sub.add_argument("--rpc-version", help="the API version to ask for (X.Y)")
        sub.add_argument("topic", help="the topic, e.g. compute")
        sub.add_argument("method", help="the method name")
        sub.add_argument("arguments", nargs="*", metavar="key=JSON", help="keyword arguments")
    return parser


def _parse_pairs(parser: _Parser, pairs: Sequence[str]) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            parser.error(f"argument {pair!r} is not key=JSON with a Python identifier as key")
        if key in kwargs:
            parser.error(f"argument {key!r} is given twice")
        try:
            kwargs[key] = json.loads(text)
        except ValueError:
            kwargs[key] = text
    return kwargs


def parse_arguments(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """
    Parse the command line.

    @param argv: the arguments after the program name; C{sys.argv[1:]} when
        C{None}.
    @return: the options: C{transport_url}, C{control_exchange}, C{command}
        (C{"call"} or C{"cast"}), C{server}, C{fanout}, C{timeout} (seconds),
        C{namespace}, C{rpc_version}, C{topic}, C{method} and C{kwargs} (a
        C{dict} of the decoded C{key=JSON} pairs).
    @raise SystemExit: with L{EXIT_USAGE} (after printing the usage on
        stderr) for bad arguments, or 0 for C{--help}.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.kwargs = _parse_pairs(parser, args.arguments)
    if args.command == "call" and args.fanout:
        parser.error("--fanout is for cast only: a call needs one server to reply")
    if args.fanout and args.server:
        parser.error("--fanout and --server exclude each other")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, not {args.timeout}")
    return args


def _describe(error: BaseException) -> str:
    if isinstance(error, RemoteError):
        return str(error)
    if isinstance(error, RPCError) or not str(error):
        return f"error: {error or type(error).__name__}"
    return f"Remote error: {type(error).__name__} {error}"


def run(reactor: Any, args: argparse.Namespace, *, transport_factory: Optional[Callable[..., Any]] = None,
        stdout: Optional[IO[str]] = None, stderr: Optional[IO[str]] = None) -> defer.Deferred:
    """
    Send the request L{parse_arguments} described and report the outcome.

    @param reactor: the reactor (also the clock for timeouts).
    @param args: from L{parse_arguments}.
    @param transport_factory: makes the transport from C{(url, reactor=)};
        L{novasvc.transport.get_transport} when C{None}.
    @param stdout: where the result goes (C{sys.stdout} when C{None}).
    @param stderr: where errors go (C{sys.stderr} when C{None}).
    @return: a C{Deferred} firing with the exit status (see the module
        docstring) once the transport is stopped.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    factory = transport_factory or _default_transport
    try:
        transport = factory(args.transport_url, reactor=reactor)
    except ConfigError as e:
        print(f"novasvc-rpc: {e}", file=err)
        return defer.succeed(EXIT_USAGE)
    transport.start()
    target = Target(topic=args.topic, server=args.server, fanout=args.fanout, namespace=args.namespace,
                    version=args.rpc_version)
    try:
        client = RPCClient(transport, target, timeout=args.timeout, control_exchange=args.control_exchange,
                           clock=reactor)
    except ValueError as e:
        print(f"novasvc-rpc: {e}", file=err)
        d = defer.succeed(EXIT_USAGE)
    else:
        d = _send(reactor, client, args, out, err)
    d.addCallback(_stop_transport, transport)
    return d


def _default_transport(url: str, reactor: Any) -> Any:
    from novasvc.transport import get_transport

    return get_transport(url, reactor=reactor)


def _send(reactor: Any, client: RPCClient, args: argparse.Namespace, out: IO[str],
          err: IO[str]) -> defer.Deferred:
    ctxt = get_admin_context()
    if args.command == "call":
        d = client.call(ctxt, args.method, **args.kwargs)
    else:
        d = client.cast(ctxt, args.method, **args.kwargs)
        d.addTimeout(args.timeout, reactor)

    def succeeded(result: Any) -> int:
        if args.command == "call":
            try:
                text = json.dumps(result, sort_keys=True)
            except (TypeError, ValueError):
                text = json.dumps(result, sort_keys=True, default=str)
            print(text, file=out)
        return EXIT_OK

    def failed(failure: Failure) -> int:
        if failure.check(MessagingTimeout):
            print(f"timeout: {failure.value}", file=err)
            return EXIT_TIMEOUT
        if failure.check(defer.TimeoutError):
            print(f"timeout: the broker did not confirm the cast within {args.timeout} s", file=err)
            return EXIT_TIMEOUT
        print(_describe(failure.value), file=err)
        return EXIT_REMOTE_ERROR

    d.addCallbacks(succeeded, failed)
    return d


def _stop_transport(code: int, transport: Any) -> defer.Deferred:
    d = defer.maybeDeferred(transport.stop)
    d.addBoth(lambda _: code)
    return d


def main(argv: Optional[List[str]] = None, *, react: Optional[Callable[..., Any]] = None,
         transport_factory: Optional[Callable[..., Any]] = None, stdout: Optional[IO[str]] = None,
         stderr: Optional[IO[str]] = None) -> NoReturn:
    """
    The C{novasvc-rpc} console script: parse, run on the global reactor
    with C{twisted.internet.task.react}, exit with the status.

    @param argv: the arguments after the program name; C{sys.argv[1:]} when
        C{None}.
    @param react: replaces C{task.react} (tests).
    @param transport_factory: see L{run}.
    @param stdout: see L{run}.
    @param stderr: see L{run}.
    @raise SystemExit: always, with the exit status.
    """
    args = parse_arguments(argv)
    runner = react or task.react

    def _main(reactor: Any) -> defer.Deferred:
        d = run(reactor, args, transport_factory=transport_factory, stdout=stdout, stderr=stderr)
        d.addCallback(_exit)
        return d

    runner(_main)
    raise SystemExit(EXIT_OK)  # not reached with task.react, which exits itself


def _exit(code: int) -> None:
    if code:
        raise SystemExit(code)
