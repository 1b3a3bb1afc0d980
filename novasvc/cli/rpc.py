# -*- test-case-name: tests.test_cli_rpc -*-
"""
C{novasvc-rpc}: call or cast an RPC method, or send a notification, from a
shell.

Usage::

    novasvc-rpc [options] call|cast [options] TOPIC METHOD [key=VALUE ...]
    novasvc-rpc [options] notify [options] EVENT_TYPE [key=VALUE ...]
    novasvc-rpc [options] listen [options] TOPIC

Every option may come before or after C{call|cast}:

  - C{--config FILE} (C{-c}): the YAML file C{twistd novasvc --config}
    reads, with the same loader (L{novasvc.config.load_config}) and the same
    precedence: built-in defaults < file < command-line options. The CLI
    uses C{transport_url}, C{control_exchange}, C{rpc_response_timeout}
    (the default C{--timeout}), C{durable_queues}, C{allowed_remote_exmods},
    C{transient_queues_ttl}, C{kombu_missing_consumer_retry_timeout},
    C{heartbeat_timeout_threshold} and the TLS keys (C{ssl},
    C{ssl_ca_file}, C{ssl_cert_file}, C{ssl_key_file}); it reads but
    does not validate manager and driver sections;
  - C{--transport-url}, C{--control-exchange}: override the file; the
    environment variable C{NOVASVC_TRANSPORT_URL} stands in for the
    built-in default URL, so the file and C{--transport-url} beat it;
  - C{--server}, C{--fanout}, C{--timeout}, C{--namespace},
    C{--rpc-version}: where the request goes and how long to wait.

Each C{key=VALUE} is one keyword argument of the method:

  - C{key=JSON}: the value decoded as JSON, or the text itself when it is
    not valid JSON (C{name=vol1} and C{name='"vol1"'} are the same);
  - C{key=@FILE}: the same rule applied to the whole content of C{FILE}
    (UTF-8), e.g. a large JSON document;
  - C{key=@-}: the same, from standard input (one argument at most);
  - C{key=@@TEXT}: the string C{@TEXT} (one C{@} dropped), for a value that
    really starts with C{@}; C{key='"@TEXT"'} says the same in JSON.

The request carries an admin context (Nova's C{get_admin_context}).

C{notify} sends one notification through L{novasvc.notify.Notifier} (the
C{key=VALUE} pairs are its payload, a JSON object): C{--priority} (one of
oslo's seven, default C{info}), C{--publisher-id} (default
C{novasvc-rpc.<host>}), C{--topic} (repeatable; default the file's
C{notifications.topics}), C{--driver} (C{messagingv2}, the default, or
C{messaging}); the file's C{control_exchange}, C{durable_queues}, quorum
queue settings and C{notifications.retry} apply, whatever
C{notifications.driver} says. C{--server}, C{--fanout}, C{--namespace}
and C{--rpc-version} are refused there. It exits 0 once the broker
confirmed the notification on every topic, 1 when it was not sent
(C{error: ...}), 2 when no confirmation came within C{--timeout}.

C{listen} prints each notification of C{TOPIC} as one JSON line until
Ctrl-C, SIGINT or SIGTERM, then exits 0: C{--priority} (repeatable;
default all seven), C{--pool NAME} (join that pool; without it, a private
auto-deleted queue takes nothing from other listeners), C{--exchange}
(default the control exchange), C{--count N} (exit after N); see
L{novasvc.cli._listen}.

Output and exit status:

  - B{0}: C{call} printed the result as one line of JSON on stdout; C{cast}
    was confirmed by the broker (nothing printed);
  - B{1}: the remote method raised (C{Remote error: <class> <message>} and
    the remote traceback on stderr) or the request could not be sent
    (C{error: <message>}, e.g. no queue took it within
    C{kombu_missing_consumer_retry_timeout} seconds: no server consumes the
    topic);
  - B{2}: no reply (or, for a cast, no broker confirmation) within
    C{--timeout} seconds (default: C{rpc_response_timeout}, 60);
  - B{64} (C{EX_USAGE}): bad command-line arguments, a bad configuration
    file, or an argument file that cannot be read (not argparse's 2, which
    means a timeout here). The error is one line on stderr; client-supplied
    values in it are shortened and passwords hidden.

This module parses the command line and runs C{call} and C{cast}; the
rest is beside it: the shared options and settings
(L{novasvc.cli._rpc_options}), the C{key=VALUE} arguments
(L{novasvc.cli._rpc_arguments}), the exit statuses and error lines
(L{novasvc.cli._rpc_exit}), C{notify} (L{novasvc.cli._rpc_notify}) and
C{listen} (L{novasvc.cli._listen}).
"""

import argparse
import json
import os
import sys
from functools import partial
from typing import IO, Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence

from twisted.internet import defer, task
from twisted.python.failure import Failure

from novasvc.cli._listen import add_listen_command, parse_listen, run_listen
from novasvc.cli._rpc_arguments import parse_pairs
from novasvc.cli._rpc_exit import EXIT_OK, EXIT_REMOTE_ERROR, EXIT_TIMEOUT, EXIT_USAGE, describe_error
from novasvc.cli._rpc_notify import add_notify_command, parse_notify, run_notify
from novasvc.cli._rpc_options import (EPILOG, TRANSPORT_URL_VARIABLE, Parser, add_options, check_timeout,
                                      load_settings)
from novasvc.config import Config
from novasvc.context import get_admin_context
from novasvc.exceptions import ConfigError
from novasvc._text import show_value
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import MessagingTimeout
from novasvc.rpc.target import Target, parse_version
from novasvc.transport.url import TLSOptions

__all__ = ["main", "run", "parse_arguments", "EXIT_OK", "EXIT_REMOTE_ERROR", "EXIT_TIMEOUT", "EXIT_USAGE",
           "TRANSPORT_URL_VARIABLE"]


def _build_parser() -> Parser:
    parser = Parser(prog="novasvc-rpc", description="Call or cast an RPC method (oslo.messaging wire format).",
                    epilog=EPILOG)
    add_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="call|cast|notify|listen", required=True)
    for name, text in (("call", "call a method and print its result"),
                       ("cast", "send a method without waiting for it")):
        sub = commands.add_parser(name, help=text, description=text, epilog=EPILOG)
        add_options(sub, top=False)
        sub.add_argument("topic", help="the topic, e.g. compute")
        sub.add_argument("method", help="the method name")
        sub.add_argument("arguments", nargs="*", metavar="key=VALUE",
                         help="keyword arguments: key=JSON, key=@FILE, key=@- (standard input) or key=@@TEXT")
    add_notify_command(commands)
    add_listen_command(commands)
    return parser


def parse_arguments(argv: Optional[Sequence[str]] = None, *, stdin: Optional[IO[str]] = None,
                    environ: Optional[Mapping[str, str]] = None) -> argparse.Namespace:
    """
    Parse the command line, load the configuration and read the argument
    files.

    @param argv: the arguments after the program name; C{sys.argv[1:]} when
        C{None}.
    @param stdin: what C{key=@-} reads (C{sys.stdin} when C{None}).
    @param environ: the environment, for C{NOVASVC_TRANSPORT_URL} and the
        file's C{${NAME}} references (C{os.environ} when C{None}).
    @return: the options: C{settings} (the loaded L{Config}),
        C{transport_url}, C{control_exchange} and C{timeout} (seconds) as the
        settings resolve them, C{config} (the file or C{None}), C{command}
        (C{"call"} or C{"cast"}), C{server}, C{fanout}, C{namespace},
        C{rpc_version}, C{topic}, C{method} and C{kwargs} (a C{dict} of the
        decoded C{key=VALUE} pairs); for C{notify} and C{listen}, see
        L{novasvc.cli._rpc_notify.parse_notify} and
        L{novasvc.cli._listen.parse_listen}.
    @raise SystemExit: with L{EXIT_USAGE} (after printing the error on
        stderr) for bad arguments, a bad configuration file or an argument
        file that cannot be read; with 0 for C{--help}.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    stdin = sys.stdin if stdin is None else stdin
    if args.command == "listen":
        return parse_listen(parser, args, environ)
    if args.command == "notify":
        return parse_notify(parser, args, environ, stdin)
    if args.command == "call" and args.fanout:
        parser.error("--fanout is for cast only: a call needs one server to reply")
    if args.fanout and args.server:
        parser.error("--fanout and --server exclude each other")
    check_timeout(parser, args)
    if args.rpc_version is not None:
        try:
            parse_version(args.rpc_version)
        except ValueError:
            parser.error(f"--rpc-version must be X.Y or X.Y.Z (integers), not {show_value(args.rpc_version)}")
    args.timeout = load_settings(parser, args, environ).rpc_response_timeout
    args.kwargs = parse_pairs(parser, args.arguments, stdin)
    return args


def run(reactor: Any, args: argparse.Namespace, *, transport_factory: Optional[Callable[..., Any]] = None,
        stdout: Optional[IO[str]] = None, stderr: Optional[IO[str]] = None) -> defer.Deferred:
    """
    Send the request L{parse_arguments} described and report the outcome.

    @param reactor: the reactor (also the clock for timeouts).
    @param args: from L{parse_arguments}; C{args.settings} gives what the
        options do not (durable queues, allowed remote exception modules,
        reply queue TTL, AMQP heartbeat).
    @param transport_factory: makes the transport from C{(url, reactor=)};
        L{novasvc.transport.get_transport}, with the settings' heartbeat,
        TLS options and C{amqp_client}, when C{None}.
    @param stdout: where the result goes (C{sys.stdout} when C{None}).
    @param stderr: where errors go (C{sys.stderr} when C{None}).
    @return: a C{Deferred} firing with the exit status (see the module
        docstring) once the transport is stopped.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    settings: Config = args.settings
    factory = transport_factory or partial(_default_transport,
                                           heartbeat=int(settings.heartbeat_timeout_threshold),
                                           tls=TLSOptions.from_config(settings), client=settings.amqp_client,
                                           failover_strategy=settings.kombu_failover_strategy)
    try:
        transport = factory(args.transport_url, reactor=reactor)
    except ConfigError as e:
        print(f"novasvc-rpc: {e}", file=err)
        return defer.succeed(EXIT_USAGE)
    transport.start()
    command = _COMMANDS.get(args.command)
    if command is not None:
        return command(reactor, transport, args, out, err).addCallback(_stop_transport, transport)
    target = Target(topic=args.topic, server=args.server, fanout=args.fanout, namespace=args.namespace,
                    version=args.rpc_version)
    try:
        client = RPCClient.from_config(transport, settings, target, timeout=args.timeout, clock=reactor)
    except ValueError as e:
        print(f"novasvc-rpc: {e}", file=err)
        d = defer.succeed(EXIT_USAGE)
    else:
        d = _send(reactor, client, args, out, err)
    d.addCallback(_stop_transport, transport)
    return d


def _default_transport(url: str, reactor: Any, heartbeat: int, tls: TLSOptions, client: str = "pika",
                       failover_strategy: str = "round-robin") -> Any:
    from novasvc.transport import get_transport

    return get_transport(url, reactor=reactor, heartbeat=heartbeat, tls=tls, client=client,
                         failover_strategy=failover_strategy)


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
        print(describe_error(failure.value), file=err)
        return EXIT_REMOTE_ERROR

    d.addCallbacks(succeeded, failed)
    return d


def _stop_transport(code: int, transport: Any) -> defer.Deferred:
    d = defer.maybeDeferred(transport.stop)
    d.addBoth(lambda _: code)
    return d


#: The sub-commands that run without an RPC client: name -> runner
#: C{(reactor, transport, args, out, err)} returning a C{Deferred} exit
#: status.
_COMMANDS: Dict[str, Callable[..., defer.Deferred]] = {"notify": run_notify, "listen": run_listen}


def main(argv: Optional[List[str]] = None, *, react: Optional[Callable[..., Any]] = None,
         transport_factory: Optional[Callable[..., Any]] = None, stdin: Optional[IO[str]] = None,
         stdout: Optional[IO[str]] = None, stderr: Optional[IO[str]] = None) -> NoReturn:
    """
    The C{novasvc-rpc} console script: parse, run on the global reactor
    with C{twisted.internet.task.react}, exit with the status.

    @param argv: the arguments after the program name; C{sys.argv[1:]} when
        C{None}.
    @param react: replaces C{task.react} (tests).
    @param transport_factory: see L{run}.
    @param stdin: see L{parse_arguments}.
    @param stdout: see L{run}.
    @param stderr: see L{run}.
    @raise SystemExit: always, with the exit status.
    """
    args = parse_arguments(argv, stdin=stdin)
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
