# -*- test-case-name: tests.test_bench -*-
"""
The Twisted half of the benchmark children (novasvc's and the floor's): the
driver's line protocol on stdin/stdout (see L{_child}), the C{profile}
command, and the three client workloads written once for any
C{call()}/C{cast()} pair that returns C{Deferred}s, so novasvc and the floor
are driven by the very same loop.

A child calls L{run} with a C{setup(reactor, commands)} function that
connects, registers its command handlers with L{Commands.handle} and returns
(or fires a C{Deferred}) once the child is ready; L{run} then writes the
C{ready} event and runs the reactor until a handler stops it.
"""

import cProfile
import json
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet import defer, stdio
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from _child import encode_event, latency_summary

__all__ = ["Commands", "run", "sequential_calls", "when_all", "windowed_calls"]

Handler = Callable[[Dict[str, Any]], Any]


class Commands(LineReceiver):
    """
    The driver's commands on stdin, the child's events on stdout.

    Built-in commands: C{profile} (C{action} C{start}, or C{stop} with a
    C{path} to dump the C{cProfile} statistics of what ran in between) and
    C{exit} (calls the handler registered for it, if any, then stops the
    reactor); end of stdin counts as C{exit}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._handlers: Dict[str, Handler] = {}
        self._profile: Optional[cProfile.Profile] = None
        self._exiting = False
        self.handle("profile", self._profile_command)

    def handle(self, name: str, handler: Handler) -> None:
        """
        Register C{handler} for the command C{name}.

        @param handler: called with the command's C{dict}; returns the reply
            C{dict} (its C{event} key is set to C{name}), C{None} for an
            empty reply, or a C{Deferred} of either. An exception or failure
            becomes an C{error} event.
        """
        self._handlers[name] = handler

    def emit(self, event: Dict[str, Any]) -> None:
        """
        Write one event line to stdout.
        """
        if self.transport is not None:
            self.transport.write(encode_event(event))

    def lineReceived(self, line: bytes) -> None:
        try:
            command = json.loads(line)
            name = command["cmd"]
        except (ValueError, KeyError, TypeError) as e:
            self.emit({"event": "error", "cmd": None, "error": f"bad command line {line[:200]!r}: {e}"})
            return
        if name == "exit":
            self._exit()
            return
        handler = self._handlers.get(name)
        if handler is None:
            self.emit({"event": "error", "cmd": name, "error": f"unknown command {name!r}"})
            return
        d = defer.maybeDeferred(handler, command)
        d.addCallbacks(self._replied, self._failed, callbackArgs=(name,), errbackArgs=(name,))

    def _replied(self, reply: Optional[Dict[str, Any]], name: str) -> None:
        event = dict(reply or {})
        event["event"] = name
        self.emit(event)

    def _failed(self, failure: Failure, name: str) -> None:
        sys.stderr.write(failure.getTraceback())
        self.emit({"event": "error", "cmd": name, "error": f"{failure.type.__name__}: {failure.getErrorMessage()}"})

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        self._exit()

    def _exit(self) -> None:
        if self._exiting:
            return
        self._exiting = True
        handler = self._handlers.get("exit")
        d = defer.maybeDeferred(handler, {}) if handler is not None else defer.succeed(None)
        d.addErrback(lambda f: sys.stderr.write(f"exit handler failed: {f.getTraceback()}"))
        d.addBoth(lambda _: self._reactor.stop())

    def _profile_command(self, command: Dict[str, Any]) -> Dict[str, Any]:
        if command.get("action") == "start":
            self._profile = cProfile.Profile()
            self._profile.enable()
            return {}
        profile, self._profile = self._profile, None
        if profile is None:
            raise RuntimeError("profile stop without a start")
        profile.disable()
        profile.dump_stats(command["path"])
        return {"path": command["path"]}


def run(setup: Callable[[Any, Commands], Any]) -> None:
    """
    Log warnings and errors to stderr, read commands from stdin, call
    C{setup(reactor, commands)}, write C{ready} once its result fires (or
    C{error} and exit when it fails), and run the reactor.
    """
    from twisted.internet import reactor

    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr),
                              [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)])],
        redirectStandardIO=False,
    )
    commands = Commands(reactor)
    stdio.StandardIO(commands, reactor=reactor)

    def ready(_: Any) -> None:
        commands.emit({"event": "ready"})

    def failed(failure: Failure) -> None:
        sys.stderr.write(failure.getTraceback())
        commands.emit({"event": "error", "cmd": "setup", "error": failure.getErrorMessage()})
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.maybeDeferred(setup, reactor, commands).addCallbacks(ready, failed))
    reactor.run()


# -- client workloads -----------------------------------------------------------


def sequential_calls(call: Callable[[], defer.Deferred], n: int) -> defer.Deferred:
    """
    Make C{n} calls one after the other, each sent when the previous reply
    came.

    @param call: makes one call; returns a C{Deferred} firing on its reply.
    @return: a C{Deferred} firing with L{latency_summary}'s C{dict}
        (C{p50_us}, C{p99_us}, C{rate}), or failing with the first call's
        failure.
    """
    done: defer.Deferred = defer.Deferred()
    latencies: List[float] = []
    clock = time.perf_counter
    started = [0.0]

    def send() -> None:
        started[0] = clock()
        call().addCallbacks(replied, done.errback)

    def replied(_: Any) -> None:
        latencies.append(clock() - started[0])
        if len(latencies) < n:
            send()
        else:
            done.callback(latency_summary(latencies))

    send()
    return done


def windowed_calls(call: Callable[[], defer.Deferred], n: int, window: int) -> defer.Deferred:
    """
    Make C{n} calls keeping C{window} of them in flight: a new call is sent
    as each reply comes, until C{n} were sent.

    @return: a C{Deferred} firing with C{{"seconds", "rate"}} (from the
        first send to the last reply), or failing with the first failure.
    """
    done: defer.Deferred = defer.Deferred()
    counts = [0, 0]  # sent, replied
    clock = time.perf_counter

    def send() -> None:
        counts[0] += 1
        call().addCallbacks(replied, failed)

    def replied(_: Any) -> None:
        counts[1] += 1
        if counts[1] == n:
            seconds = clock() - start
            done.callback({"seconds": seconds, "rate": n / seconds})
        elif counts[0] < n:
            send()

    def failed(failure: Failure) -> None:
        if not done.called:
            done.errback(failure)

    start = clock()
    for _ in range(min(window, n)):
        send()
    return done


def when_all(n: int) -> Tuple[defer.Deferred, Callable[[Any], None], Callable[[Failure], None]]:
    """
    Wait for a batch of C{n} C{Deferred}s more cheaply than
    C{gatherResults}.

    @return: C{(done, callback, errback)}: add C{callback} and C{errback} to
        each of the C{n}; C{done} fires with the C{time.monotonic()} at which
        the last one fired, or fails with the first failure.
    """
    done: defer.Deferred = defer.Deferred()
    left = [n]

    def one(_: Any) -> None:
        left[0] -= 1
        if left[0] == 0 and not done.called:
            done.callback(time.monotonic())

    def failed(failure: Failure) -> None:
        if not done.called:
            done.errback(failure)

    return done, one, failed
