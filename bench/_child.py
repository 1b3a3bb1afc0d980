# -*- test-case-name: tests.test_bench -*-
"""
What every benchmark child process (a server or a client of one system)
shares, whatever its I/O model: how it reads its settings, the payload it
sends, the line protocol it speaks with the driver, and the clock a server
uses to time the dispatch of casts.

The protocol: the driver writes one JSON object per line to the child's
stdin, C{{"cmd": NAME, ...}}; the child answers each command with exactly one
JSON line on stdout, C{{"event": NAME, ...}} (same NAME) or
C{{"event": "error", "cmd": NAME, "error": TEXT}}. A child also writes
unrequested events: C{{"event": "ready"}} once it serves (server) or is
connected (client), and C{{"event": "dispatched", ...}} when an armed
L{DispatchClock} has counted its casts. Logs go to stderr, never stdout.

Every time is C{time.monotonic()} (CLOCK_MONOTONIC, shared by all processes
of the machine, so a client's publish times and a server's dispatch times can
be compared) or C{time.perf_counter()} for intervals measured in one
process; all in B{seconds}.
"""

import json
import math
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["DispatchClock", "PAYLOAD_SIZE", "combine_tallies", "encode_event", "latency_summary", "make_payload", "percentile",
           "read_settings"]

#: The default size of the echoed value, in characters (ASCII, so bytes).
PAYLOAD_SIZE = 100


def read_settings(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """
    @param argv: the process arguments; C{sys.argv} when C{None}.
    @return: the settings the driver passed as the one JSON argument: at
        least C{url} (an AMQP URL), C{topic}, C{exchange}, C{host}; the
        clients also get C{payload} (an C{int} size).
    @raise SystemExit: when the argument is missing or not a JSON object.
    """
    argv = sys.argv if argv is None else argv
    try:
        settings = json.loads(argv[1])
    except (IndexError, ValueError) as e:
        raise SystemExit(f"usage: {argv[0]} SETTINGS_JSON ({e})")
    if not isinstance(settings, dict):
        raise SystemExit(f"usage: {argv[0]} SETTINGS_JSON (an object)")
    return settings


def make_payload(size: int = PAYLOAD_SIZE) -> str:
    """
    @param size: how many characters.
    @return: an ASCII string of C{size} characters, the same for every
        system, so that each sends the same argument to C{echo}.
    """
    pattern = "novasvc-bench-0123456789-"
    return (pattern * (size // len(pattern) + 1))[:size]


def percentile(values: Sequence[float], fraction: float) -> float:
    """
    The nearest-rank percentile.

    @param values: a non-empty sequence of numbers (any order).
    @param fraction: between 0 and 1, e.g. C{0.99}.
    @return: the smallest value such that at least C{fraction} of
        C{values} are less than or equal to it.
    @raise ValueError: when C{values} is empty.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered) - 1e-9)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def latency_summary(latencies: List[float]) -> Dict[str, float]:
    """
    @param latencies: round-trip times in B{seconds}, one per call, in the
        order they were made.
    @return: C{p50_us} and C{p99_us} (microseconds) and C{rate} (calls per
        second of the whole sequence).
    """
    total = sum(latencies)
    return {
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "rate": len(latencies) / total if total > 0 else 0.0,
    }


def encode_event(event: Dict[str, Any]) -> bytes:
    """
    @param event: a JSON-able C{dict} with an C{event} key.
    @return: its JSON line, newline included, as UTF-8 bytes.
    """
    return (json.dumps(event, separators=(",", ":")) + "\n").encode("utf-8")


class DispatchClock:
    """
    Times a batch of casts on the server side: once armed for C{n} casts it
    notes the C{time.monotonic()} of the first and of the C{n}th call of
    L{hit}, then reports both through C{report} and disarms. Unarmed, L{hit}
    does nothing, so calls made in the other phases are not counted.

    Thread-safe (the oslo.messaging server calls L{hit} from its worker
    threads); the lock is taken in every system so each pays the same.
    """

    def __init__(self, report: Callable[[Dict[str, Any]], None]) -> None:
        """
        @param report: called once per armed batch with
            C{{"event": "dispatched", "n", "first", "last"}} (times in
            B{seconds}, C{time.monotonic()}).
        """
        self._report = report
        self._lock = threading.Lock()
        self._expected = 0
        self._count = 0
        self._first = 0.0
        self._last = 0.0

    def arm(self, n: int) -> None:
        """
        Count the next C{n} hits (C{n} >= 1); forget any batch in progress.
        """
        with self._lock:
            self._expected = int(n)
            self._count = 0
            self._first = 0.0
            self._last = 0.0

    def hit(self) -> None:
        """
        One cast was dispatched to the endpoint.
        """
        with self._lock:
            if not self._expected:
                return
            now = time.monotonic()
            self._count += 1
            self._last = now
            if self._count == 1:
                self._first = now
            if self._count < self._expected:
                return
            n, first = self._count, self._first
            self._expected = 0
        self._report({"event": "dispatched", "n": n, "first": first, "last": now})

    def tally(self) -> Dict[str, Any]:
        """
        The batch in progress so far, for a server that is one of several
        workers sharing a queue (each sees only part of a batch, so none
        reaches the armed count: the driver adds up the workers' tallies).

        @return: C{{"event": "tally", "n", "first", "last"}}: how many hits
            since L{arm} and the C{time.monotonic()} of the first and of the
            latest (B{seconds}; C{0.0} before the first hit).
        """
        with self._lock:
            return {"event": "tally", "n": self._count, "first": self._first, "last": self._last}


def combine_tallies(tallies: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """
    @param tallies: the workers' C{tally} replies (C{n}, C{first}, C{last}).
    @return: C{{"n", "first", "last"}} of the workers together: the sum of
        the counts, the earliest first and the latest last dispatch among
        the workers that dispatched any (both C{0.0} when none did).
    """
    busy = [t for t in tallies if t["n"] > 0]
    return {"n": sum(t["n"] for t in busy),
            "first": min((t["first"] for t in busy), default=0.0),
            "last": max((t["last"] for t in busy), default=0.0)}
