# -*- test-case-name: tests.test_metrics_recorder -*-
"""
The values every metric shares: the outcome and label names, the label
limits, the bucket bounds and L{Histogram}. The bottom of L{novasvc.metrics}:
it imports none of the package's other modules.
"""

from bisect import bisect_left
from typing import List, Sequence, Tuple

__all__ = [
    "OK",
    "ERROR",
    "NO_SUCH_METHOD",
    "UNSUPPORTED_VERSION",
    "FAILED",
    "RPC_OUTCOMES",
    "UNKNOWN_METHOD",
    "OTHER",
    "LABEL_LIMIT",
    "RPC_BUCKETS",
    "TASK_BUCKETS",
    "Histogram",
    "label_value",
]

#: Outcome: the method returned (for a call: a result was encoded or its
#: encoding failed, the method itself succeeded); a periodic task or a
#: report that succeeded.
OK = "ok"
#: Outcome: the method raised or its C{Deferred} failed, including a
#: C{TypeError} for arguments that do not fit its signature.
ERROR = "error"
#: Outcome: the dispatcher found a compatible endpoint but no method it may
#: call by that name (L{novasvc.rpc.errors.NoSuchMethod}).
NO_SUCH_METHOD = "no_such_method"
#: Outcome: no endpoint is compatible with the requested namespace and
#: version (L{novasvc.rpc.errors.UnsupportedVersion}).
UNSUPPORTED_VERSION = "unsupported_version"
#: Outcome of a periodic task run or a report that failed.
FAILED = "failed"
#: Every outcome of an RPC request, in the order they are exported.
RPC_OUTCOMES = (OK, ERROR, NO_SUCH_METHOD, UNSUPPORTED_VERSION)

#: The method label of a request the dispatcher refused: the name a client
#: sent is not a label, so clients cannot create series.
UNKNOWN_METHOD = "<unknown>"
#: The label that stands for every further value once a label has
#: C{max_label_values} values.
OTHER = "<other>"
#: The most characters of a label value; a longer one is cut and ends
#: with C{"..."}.
LABEL_LIMIT = 100

#: Upper bounds, in B{seconds}, of the RPC dispatch latency buckets.
RPC_BUCKETS: Tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                                  5.0, 10.0, 30.0, 60.0)
#: Upper bounds, in B{seconds}, of the periodic task duration buckets.
TASK_BUCKETS: Tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


def label_value(value: object) -> str:
    """
    @return: C{value} as a label value, at most L{LABEL_LIMIT} + 3
        characters.
    """
    text = value if type(value) is str else str(value)
    if len(text) <= LABEL_LIMIT:
        return text
    return text[:LABEL_LIMIT] + "..."


class Histogram:
    """
    Observations counted in fixed buckets, as Prometheus histograms: an
    observation C{v} goes into the first bucket whose upper bound is
    C{>= v}, or into the last (C{+Inf}) one.

    @ivar bounds: the upper bounds in B{seconds}, ascending, a C{tuple} of
        C{float}.
    @ivar counts: per bucket (not cumulative) counts, one more than
        L{bounds} (the last is C{+Inf}), a C{list} of C{int}.
    @ivar sum: the sum of the observations, in B{seconds}.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        """
        @param bounds: the bucket upper bounds in B{seconds}, strictly
            ascending.
        @raise ValueError: when they are not strictly ascending or empty.
        """
        bounds = tuple(float(bound) for bound in bounds)
        if not bounds or any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"histogram bounds must be strictly ascending and not empty, not {bounds!r}")
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        """
        Count one observation.

        @param seconds: the value, in B{seconds}.
        """
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        """
        How many observations were counted.
        """
        return sum(self.counts)

    def cumulative(self) -> List[Tuple[float, int]]:
        """
        @return: C{(upper bound, count of observations <= it)} for every
            bucket, the last bound C{float("inf")}, as Prometheus exposes
            them.
        """
        total = 0
        result = []
        for bound, count in zip(self.bounds + (float("inf"),), self.counts):
            total += count
            result.append((bound, total))
        return result
