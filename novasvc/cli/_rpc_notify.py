# -*- test-case-name: tests.test_cli_rpc_notify -*-
"""
C{novasvc-rpc notify}: send one notification through
L{novasvc.notify.Notifier} and wait for the broker's confirmation.

Usage::

    novasvc-rpc [options] notify [--priority P] [--publisher-id ID] [--topic T ...] [--driver D]
                EVENT_TYPE [key=VALUE ...]

The C{key=VALUE} pairs are the payload (L{novasvc.cli._rpc_arguments});
the exit statuses are C{novasvc-rpc}'s (L{novasvc.cli.rpc}).
"""

import argparse
from typing import IO, Any, List, Mapping, Optional

from twisted.internet import defer
from twisted.python.failure import Failure

from novasvc.cli._rpc_arguments import parse_pairs
from novasvc.cli._rpc_exit import EXIT_OK, EXIT_REMOTE_ERROR, EXIT_TIMEOUT, describe_error
from novasvc.cli._rpc_options import EPILOG, Parser, add_options, check_timeout, load_settings
from novasvc.config import Config
from novasvc.context import get_admin_context
from novasvc._text import show_value

__all__ = ["add_notify_command", "parse_notify", "run_notify"]


def add_notify_command(commands: Any) -> None:
    """
    Add the C{notify} sub-command to C{novasvc-rpc}'s sub-parsers.

    @param commands: the sub-parsers.
    """
    from novasvc.notify.message import PRIORITIES

    text = "send a notification (oslo.messaging's format) and wait for the broker's confirmation"
    sub = commands.add_parser("notify", help=text, description=text, epilog=EPILOG)
    add_options(sub, top=False)
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


def parse_notify(parser: Parser, args: argparse.Namespace, environ: Mapping[str, str],
                 stdin: Optional[IO[str]]) -> argparse.Namespace:
    """
    The rest of C{parse_arguments} for C{notify}.

    @param parser: what reports a usage error (C{EX_USAGE}).
    @param args: what the parser parsed.
    @param environ: for the configuration file.
    @param stdin: what C{key=@-} reads.
    @return: C{args} with C{settings}, C{transport_url},
        C{control_exchange}, C{timeout}, C{topics}, C{publisher_id},
        C{priority}, C{driver}, C{event_type} and C{payload} (the decoded
        C{key=VALUE} pairs).
    @raise SystemExit: with C{EX_USAGE} for an option of C{call} and
        C{cast}, a bad C{--timeout} or C{--topic}, a bad configuration file
        or an argument file that cannot be read.
    """
    for option, given in (("--server", args.server), ("--fanout", args.fanout), ("--namespace", args.namespace),
                          ("--rpc-version", args.rpc_version)):
        if given:
            parser.error(f"{option} is for call and cast, not notify")
    check_timeout(parser, args)
    for topic in args.topics or ():
        if not topic.strip() or " " in topic:
            parser.error(f"--topic must be a topic name, not {show_value(topic)}")
    settings = load_settings(parser, args, environ)
    args.timeout = settings.rpc_response_timeout
    args.topics = list(args.topics or settings.notifications.topics)
    if args.publisher_id is None:
        args.publisher_id = f"novasvc-rpc.{settings.host}"
    args.payload = parse_pairs(parser, args.arguments, stdin)
    return args


def run_notify(reactor: Any, transport: Any, args: argparse.Namespace, out: IO[str],
               err: IO[str]) -> defer.Deferred:
    """
    Send the notification L{parse_notify} described.

    @param reactor: the reactor (also the clock for C{--timeout}).
    @param transport: the started transport.
    @param args: from L{parse_notify}.
    @param out: unused (C{notify} prints nothing on success).
    @param err: where a failure is reported, one line.
    @return: a C{Deferred} firing with the exit status: 0 once the broker
        confirmed the notification on every topic, 1 when it was not sent,
        2 when no confirmation came within C{--timeout}.
    """
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
            print(describe_error(failure.value), file=err)
        return EXIT_REMOTE_ERROR

    def done(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        return result

    return d.addBoth(done).addCallbacks(lambda _: EXIT_OK, failed)
