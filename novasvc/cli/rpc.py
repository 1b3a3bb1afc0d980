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
"""

import argparse
import json
import math
import os
import sys
from functools import partial
from typing import IO, Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence

from twisted.internet import defer, task
from twisted.python.failure import Failure

from novasvc.cli._listen import add_listen_command, parse_listen, run_listen
from novasvc.config import DEFAULT_TRANSPORT_URL, Config, load_config
from novasvc.context import get_admin_context
from novasvc.exceptions import ConfigError, TransportError
from novasvc._text import show_value
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import MessagingTimeout, RemoteError, RPCError
from novasvc.rpc.target import Target, parse_version
from novasvc.transport.url import TLSOptions

__all__ = ["main", "run", "parse_arguments", "EXIT_OK", "EXIT_REMOTE_ERROR", "EXIT_TIMEOUT", "EXIT_USAGE"]

#: The request succeeded.
EXIT_OK = 0
#: The remote method raised, or the request could not be sent.
EXIT_REMOTE_ERROR = 1
#: No reply (call) or no broker confirmation (cast) within C{--timeout}.
EXIT_TIMEOUT = 2
#: Bad command-line arguments, configuration file or argument file
#: (sysexits' C{EX_USAGE}).
EXIT_USAGE = 64

#: The environment variable that stands in for the default transport URL.
TRANSPORT_URL_VARIABLE = "NOVASVC_TRANSPORT_URL"

_EPILOG = ("Every option may come before or after call|cast. "
           "Arguments: key=JSON (a value that is not valid JSON is taken as a string), "
           "key=@FILE reads the value from FILE and key=@- from standard input (same rule), "
           "key=@@TEXT is the string @TEXT. "
           "Exit status: 0 success, 1 remote error or request not sent, 2 timeout, "
           "64 usage error (arguments, configuration file or argument file).")
#: File names longer than this are shortened in messages.
_LONGEST_NAME = 160


def _show_name(name: str) -> str:
    """
    @return: C{name} quoted, and cut short if it is long.
    """
    if len(name) > _LONGEST_NAME:
        name = name[:_LONGEST_NAME - 3] + "..."
    return repr(name)


class _Parser(argparse.ArgumentParser):
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


def _add_options(parser: argparse.ArgumentParser, top: bool, request: bool = True) -> None:
    """
    Add the options to the top-level parser (C{top}) or to a sub-command's.
    A sub-command's options default to C{SUPPRESS}, so that one given before
    the sub-command is not reset by it. Without C{request}, only the broker
    and configuration options.
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


def _build_parser() -> _Parser:
    parser = _Parser(prog="novasvc-rpc", description="Call or cast an RPC method (oslo.messaging wire format).",
                     epilog=_EPILOG)
    _add_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="call|cast|notify|listen", required=True)
    for name, text in (("call", "call a method and print its result"),
                       ("cast", "send a method without waiting for it")):
        sub = commands.add_parser(name, help=text, description=text, epilog=_EPILOG)
        _add_options(sub, top=False)
        sub.add_argument("topic", help="the topic, e.g. compute")
        sub.add_argument("method", help="the method name")
        sub.add_argument("arguments", nargs="*", metavar="key=VALUE",
                         help="keyword arguments: key=JSON, key=@FILE, key=@- (standard input) or key=@@TEXT")
    _add_notify_command(commands)
    add_listen_command(commands, partial(_add_options, request=False))
    return parser


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _read_value(parser: _Parser, key: str, text: str, stdin: Optional[IO[str]]) -> str:
    """
    @return: the text of an C{@FILE}, C{@-} or C{@@TEXT} value (C{text}
        starts with C{@}).
    """
    if text.startswith("@@"):
        return text[1:]
    name = text[1:]
    if not name:
        parser.fail(f"argument {show_value(key)}: '@' needs a file name (key=@FILE), '-' for standard "
                    f"input (key=@-), or a second '@' for a value that starts with '@' (key=@@TEXT)")
    if name == "-":
        what = "standard input"
        if stdin is None:
            parser.fail(f"argument {show_value(key)}: there is no standard input to read")
        raw = getattr(stdin, "buffer", None)
        try:
            return raw.read().decode("utf-8") if raw is not None else stdin.read()
        except UnicodeDecodeError as e:
            parser.fail(f"argument {show_value(key)}: {what} is not UTF-8 text (byte {e.start})")
        except OSError as e:
            parser.fail(f"argument {show_value(key)}: cannot read {what}: {e.strerror or type(e).__name__}")
    what = f"file {_show_name(name)}"
    try:
        with open(name, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        parser.fail(f"argument {show_value(key)}: {what} is not UTF-8 text (byte {e.start})")
    except (OSError, ValueError) as e:
        # ValueError: a name with a NUL byte; OSError's str() would repeat the
        # whole name, strerror does not.
        reason = getattr(e, "strerror", None) or "not a file name"
        parser.fail(f"argument {show_value(key)}: cannot read {what}: {reason}")


def _parse_pairs(parser: _Parser, pairs: Sequence[str], stdin: Optional[IO[str]]) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = {}
    reads_stdin: Optional[str] = None
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            parser.error(f"argument {show_value(pair)} is not key=VALUE with a Python identifier as key")
        if key in kwargs:
            parser.error(f"argument {show_value(key)} is given twice")
        if text == "@-":
            if reads_stdin is not None:
                parser.error(f"arguments {show_value(reads_stdin)} and {show_value(key)} both ask for "
                             f"standard input (key=@-), which can be read once")
            reads_stdin = key
        kwargs[key] = text
    for key, text in kwargs.items():
        if text.startswith("@"):
            text = _read_value(parser, key, text, stdin)
        kwargs[key] = _decode(text)
    return kwargs


def _load_settings(parser: _Parser, args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """
    @return: the L{Config} from the defaults (and C{$NOVASVC_TRANSPORT_URL}),
        C{--config} and the options, as C{twistd novasvc} builds it.
    """
    overrides = {"transport_url": args.transport_url, "control_exchange": args.control_exchange,
                 "rpc_response_timeout": args.timeout}
    defaults = {"transport_url": (environ.get(TRANSPORT_URL_VARIABLE) or None,
                                  f"environment variable {TRANSPORT_URL_VARIABLE}")}
    try:
        return load_config(args.config, overrides, environ=environ, defaults=defaults)
    except ConfigError as e:
        message = str(e)
        if args.config is not None and len(args.config) > _LONGEST_NAME:
            message = message.replace(args.config, _show_name(args.config))
        parser.fail(message)


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
        decoded C{key=VALUE} pairs).
    @raise SystemExit: with L{EXIT_USAGE} (after printing the error on
        stderr) for bad arguments, a bad configuration file or an argument
        file that cannot be read; with 0 for C{--help}.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "listen":
        return parse_listen(parser, args, os.environ if environ is None else environ, _load_settings)
    if args.command == "notify":
        return _parse_notify(parser, args, os.environ if environ is None else environ,
                             sys.stdin if stdin is None else stdin)
    if args.command == "call" and args.fanout:
        parser.error("--fanout is for cast only: a call needs one server to reply")
    if args.fanout and args.server:
        parser.error("--fanout and --server exclude each other")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error(f"--timeout must be a positive number of seconds, not {args.timeout}")
    if args.rpc_version is not None:
        try:
            parse_version(args.rpc_version)
        except ValueError:
            parser.error(f"--rpc-version must be X.Y or X.Y.Z (integers), not {show_value(args.rpc_version)}")
    args.settings = _load_settings(parser, args, os.environ if environ is None else environ)
    args.transport_url = args.settings.transport_url
    args.control_exchange = args.settings.control_exchange
    args.timeout = args.settings.rpc_response_timeout
    args.kwargs = _parse_pairs(parser, args.arguments, sys.stdin if stdin is None else stdin)
    return args


def _describe(error: BaseException) -> str:
    if isinstance(error, RemoteError):
        return str(error)
    if isinstance(error, (RPCError, TransportError)) or not str(error):
        return f"error: {error or type(error).__name__}"
    name = type(error).__name__
    if type(error).__module__.endswith("_Remote"):
        # Rebuilt from allowed_remote_exmods: show the class the server raised.
        name = name.removesuffix("_Remote")
    return f"Remote error: {name} {error}"


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
        print(_describe(failure.value), file=err)
        return EXIT_REMOTE_ERROR

    d.addCallbacks(succeeded, failed)
    return d


def _stop_transport(code: int, transport: Any) -> defer.Deferred:
    d = defer.maybeDeferred(transport.stop)
    d.addBoth(lambda _: code)
    return d


# -- notify ---------------------------------------------------------------------


def _add_notify_command(commands: Any) -> None:
    from novasvc.notify.message import PRIORITIES

    text = "send a notification (oslo.messaging's format) and wait for the broker's confirmation"
    sub = commands.add_parser("notify", help=text, description=text, epilog=_EPILOG)
    _add_options(sub, top=False)
    notification = sub.add_argument_group("notification")
    notification.add_argument("--priority", choices=PRIORITIES, default="info",
                              help="the priority (default: info); routed <topic>.<priority>")
    notification.add_argument("--publisher-id", metavar="ID", default=None,
                              help="the publisher_id (default: novasvc-rpc.<host>)")
    notification.add_argument("--topic", metavar="TOPIC", action="append", default=None, dest="topics",
                              help="a topic, repeatable (default: the file's notifications.topics, "
                                   "else notifications)")
    notification.add_argument("--driver", choices=("messagingv2", "messaging"), default="messagingv2",
                              help="messagingv2 (the 2.0 envelope, the default) or messaging (no envelope)")
    sub.add_argument("event_type", metavar="EVENT_TYPE", help="the event type, e.g. volume.create.end")
    sub.add_argument("arguments", nargs="*", metavar="key=VALUE",
                     help="the payload's keys: key=JSON, key=@FILE, key=@- (standard input) or key=@@TEXT")


def _parse_notify(parser: _Parser, args: argparse.Namespace, environ: Mapping[str, str],
                  stdin: Optional[IO[str]]) -> argparse.Namespace:
    """
    The rest of L{parse_arguments} for C{notify}: C{settings},
    C{transport_url}, C{control_exchange}, C{timeout}, C{topics},
    C{publisher_id}, C{priority}, C{driver}, C{event_type} and C{payload}
    (the decoded C{key=VALUE} pairs).
    """
    for option, given in (("--server", args.server), ("--fanout", args.fanout), ("--namespace", args.namespace),
                          ("--rpc-version", args.rpc_version)):
        if given:
            parser.error(f"{option} is for call and cast, not notify")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error(f"--timeout must be a positive number of seconds, not {args.timeout}")
    for topic in args.topics or ():
        if not topic.strip() or " " in topic:
            parser.error(f"--topic must be a topic name, not {show_value(topic)}")
    args.settings = _load_settings(parser, args, environ)
    args.transport_url = args.settings.transport_url
    args.control_exchange = args.settings.control_exchange
    args.timeout = args.settings.rpc_response_timeout
    args.topics = list(args.topics or args.settings.notifications.topics)
    if args.publisher_id is None:
        args.publisher_id = f"novasvc-rpc.{args.settings.host}"
    args.payload = _parse_pairs(parser, args.arguments, stdin)
    return args


def _run_notify(reactor: Any, transport: Any, args: argparse.Namespace, out: IO[str],
                err: IO[str]) -> defer.Deferred:
    from novasvc.notify import MessageDeliveryFailure, Notifier
    from novasvc.transport.topology import QuorumQueues

    settings: Config = args.settings
    notifier = Notifier(transport, args.publisher_id, driver=args.driver, topics=args.topics,
                        retry=settings.notifications.retry, control_exchange=args.control_exchange,
                        durable_queues=settings.durable_queues, quorum=QuorumQueues.from_config(settings),
                        clock=reactor)
    d = notifier.deliver(get_admin_context(), args.event_type, args.payload, args.priority)
    # Not addTimeout: cancelling stops the tries, and what the drivers
    # report of it is a MessageDeliveryFailure, not a CancelledError.
    timed_out: List[bool] = []

    def time_out() -> None:
        timed_out.append(True)
        d.cancel()

    timer = reactor.callLater(args.timeout, time_out)

    def failed(failure: Failure) -> int:
        if timed_out:
            print(f"timeout: the broker did not confirm the notification within {args.timeout} s", file=err)
            return EXIT_TIMEOUT
        if failure.check(MessageDeliveryFailure):
            print(f"error: the notification was not sent: {failure.value}", file=err)
        else:
            print(_describe(failure.value), file=err)
        return EXIT_REMOTE_ERROR

    def done(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        return result

    return d.addBoth(done).addCallbacks(lambda _: EXIT_OK, failed)


#: The sub-commands that run without an RPC client: name -> runner
#: C{(reactor, transport, args, out, err)} returning a C{Deferred} exit
#: status.
_COMMANDS: Dict[str, Callable[..., defer.Deferred]] = {"notify": _run_notify, "listen": run_listen}


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
