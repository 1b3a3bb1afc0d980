# -*- test-case-name: tests.test_cli_rpc -*-
"""
C{novasvc-rpc listen}: print the notifications of a topic as they come.

Usage::

    novasvc-rpc [options] listen [--priority P ...] [--pool NAME] [--exchange X] [--count N] TOPIC

Each notification is one line of JSON on stdout, flushed at once, with the
keys C{priority}, C{event_type}, C{publisher_id}, C{payload}, C{ctxt} and
C{metadata} (what an endpoint gets). It listens until Ctrl-C, SIGINT or
SIGTERM (or C{--count} notifications), then exits 0; a line on stderr says
when it consumes.

Without C{--pool}, it takes nothing from anyone: it listens through a
private queue of its own (C{novasvc-rpc-listen-<uuid hex>}, auto-deleted
once it stops, expiring after C{transient_queues_ttl} seconds if it never
consumed: 1,800 when that is 0), bound to the topic's routing keys, so every other listener, and
the queues the notifiers declared, still get every notification. With
C{--pool NAME} it joins that pool as an oslo listener with C{pool=NAME}
would: it then takes (and acknowledges) its share of the pool's
notifications.

Public through L{novasvc.cli.rpc}.
"""

import argparse
import json
import math
import uuid
from typing import IO, Any, Callable, List, Mapping

from twisted.internet import defer

from novasvc.cli._rpc_options import Parser, add_options, load_settings
from novasvc.notify.message import PRIORITIES
from novasvc._text import clip

__all__ = ["add_listen_command", "parse_listen", "run_listen", "notification_line"]

_OPTIONS_REFUSED = ("--server", "--fanout", "--namespace", "--rpc-version", "--timeout")


_EPILOG = ("Each line: {\"priority\", \"event_type\", \"publisher_id\", \"payload\", \"ctxt\", \"metadata\"}. "
           "Exit status: 0 once interrupted (Ctrl-C, SIGINT, SIGTERM) or after --count notifications, "
           "64 usage error (arguments or configuration file).")


def add_listen_command(commands: Any) -> None:
    """
    Add the C{listen} sub-command to C{novasvc-rpc}'s sub-parsers, with the
    broker and configuration options but not the request's.

    @param commands: the sub-parsers.
    """
    text = "print each notification of a topic as one JSON line until interrupted"
    description = (f"{text}. Without --pool it listens through a private queue of its own (auto-deleted when it "
                   "stops), so it takes no notification from any other listener; with --pool NAME it joins that "
                   "pool and takes its share of the pool's notifications. Exits 0 on Ctrl-C, SIGINT or SIGTERM.")
    sub = commands.add_parser("listen", help=text, description=description, epilog=_EPILOG)
    add_options(sub, top=False, request=False)
    listening = sub.add_argument_group("listening")
    listening.add_argument("--priority", choices=PRIORITIES, action="append", default=None, dest="priorities",
                           help="a priority to listen to, repeatable (default: all seven)")
    listening.add_argument("--pool", metavar="NAME", default=None,
                           help="join this pool (its queue NAME, shared with the pool's other listeners) instead "
                                "of listening through a private queue")
    listening.add_argument("--exchange", metavar="NAME", default=None,
                           help="the exchange the topic's notifications go to (default: the control exchange)")
    listening.add_argument("--count", metavar="N", type=int, default=None,
                           help="exit 0 after printing N notifications")
    sub.add_argument("topic", metavar="TOPIC", help="the notification topic, e.g. notifications")


def parse_listen(parser: Parser, args: argparse.Namespace, environ: Mapping[str, str]) -> argparse.Namespace:
    """
    The rest of C{parse_arguments} for C{listen}.

    @param parser: the parser, whose C{error} exits with C{EX_USAGE}.
    @param args: what the parser parsed.
    @param environ: for the configuration file.
    @return: C{args} with C{settings}, C{transport_url},
        C{control_exchange}, C{priorities} (default: all), C{pool},
        C{exchange}, C{count} and C{topic}.
    """
    for option in _OPTIONS_REFUSED:
        if getattr(args, option[2:].replace("-", "_"), None):
            parser.error(f"{option} is for call, cast and notify, not listen")
    if not args.topic.strip() or any(c.isspace() for c in args.topic):
        parser.error(f"TOPIC must be a topic name, not {clip(args.topic)!r}")
    if args.pool is not None and not args.pool.strip():
        parser.error("--pool must name a pool")
    if args.count is not None and args.count < 1:
        parser.error(f"--count must be at least 1, not {args.count}")
    load_settings(parser, args, environ)
    args.priorities = [p for p in PRIORITIES if p in (args.priorities or PRIORITIES)]
    return args


def notification_line(priority: str, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
                      metadata: Any) -> str:
    """
    @return: one notification as the JSON line C{listen} prints (values
        JSON cannot encode are shown as their C{str}).
    """
    return json.dumps({"priority": priority, "event_type": event_type, "publisher_id": publisher_id,
                       "payload": payload, "ctxt": ctxt, "metadata": metadata}, default=str)


class _Printer:
    """
    The endpoint of C{listen}: a method per priority listened to, each
    printing its notification; it fires C{done} once C{count} were printed
    or stdout is gone.
    """

    def __init__(self, priorities: List[str], out: IO[str], count: Any, done: defer.Deferred) -> None:
        self._out = out
        self._left = count
        self._done = done
        for priority in priorities:
            setattr(self, priority, self._method(priority))

    def _method(self, priority: str) -> Callable[..., None]:
        def show(ctxt: Any, publisher_id: Any, event_type: Any, payload: Any, metadata: Any) -> None:
            if self._done.called:
                return
            try:
                self._out.write(notification_line(priority, ctxt, publisher_id, event_type, payload, metadata) + "\n")
                self._out.flush()
            except (OSError, ValueError):  # a closed pipe (| head) or file
                self._done.callback(None)
                return
            if self._left is not None:
                self._left -= 1
                if self._left == 0:
                    self._done.callback(None)

        return show


def run_listen(reactor: Any, transport: Any, args: argparse.Namespace, out: IO[str],
               err: IO[str]) -> defer.Deferred:
    """
    Listen and print until interrupted (the reactor shutting down), or
    C{--count} notifications were printed.

    @return: a C{Deferred} firing with 0 once the listener stopped.
    """
    from novasvc.notify.listener import NotificationListener
    from novasvc.rpc.target import Target
    from novasvc.transport.topology import QuorumQueues

    settings = args.settings
    done: defer.Deferred = defer.Deferred()
    pool, expires = args.pool, None
    if pool is None:
        pool = f"novasvc-rpc-listen-{uuid.uuid4().hex}"
        ttl = settings.transient_queues_ttl
        expires = ttl if ttl and math.isfinite(ttl) else 1800.0
    listener = NotificationListener(
        transport, [Target(topic=args.topic, exchange=args.exchange)],
        [_Printer(args.priorities, out, args.count, done)], pool=pool, pool_expires=expires,
        control_exchange=args.control_exchange, durable_queues=settings.durable_queues,
        quorum=QuorumQueues.from_config(settings), clock=reactor, max_inflight=1)

    def consuming(_: Any) -> None:
        print(f"novasvc-rpc: listening to {args.topic}.{{{','.join(args.priorities)}}} on exchange "
              f"{args.exchange or args.control_exchange} through queue {pool}; Ctrl-C to stop", file=err)
        err.flush()

    listener.start().addCallback(consuming)

    result: defer.Deferred = defer.Deferred()
    closing: List[defer.Deferred] = []

    def stop(_: Any) -> None:
        d = listener.wait(5.0)
        d.addBoth(lambda _: transport.stop())
        d.addBoth(closed)

    def closed(_: Any) -> None:
        try:
            reactor.removeSystemEventTrigger(trigger)
        except (ValueError, KeyError):
            pass  # shutting down: the trigger ran
        waiters, closing[:] = list(closing), []
        for waiter in waiters:
            waiter.callback(None)
        result.callback(0)

    def shutting_down() -> Any:
        # SIGINT or SIGTERM: Twisted stops the reactor; stop listening and
        # close the connection first.
        if not done.called:
            done.callback(None)
        if result.called:
            return None
        waiter: defer.Deferred = defer.Deferred()
        closing.append(waiter)
        return waiter

    done.addCallback(stop)
    trigger = reactor.addSystemEventTrigger("before", "shutdown", shutting_down)
    return result
