# -*- test-case-name: tests.test_api_share -*-
"""
L{ReactorShare}: how much of the reactor thread's time the API of a service
may take, as a budget of B{seconds} that refills with time (a token bucket
of reactor time).

The API measures the time it spends on the reactor thread (reading and
parsing a request, handling it, finishing its answer) and takes it from
the budget; the budget refills by C{share} seconds each second, up to
C{burst} seconds. While it is spent, the API starts no further request
(L{novasvc.api.observe.Observer} waits L{ReactorShare.wait} seconds), so
that the reactor is left idle, ready for the service's RPC, at least
C{1 - share} of the time under any API load.
"""

import time
from typing import Callable, Iterator
from contextlib import contextmanager

__all__ = ["BURST", "ReactorShare"]

#: B{Seconds} of reactor time the API may take at once after a quiet while.
BURST = 0.005


class ReactorShare:
    """
    A budget of reactor time.

    @ivar share: the fraction of the reactor the API may take over time
        (C{0 < share <= 1}).
    @ivar spent: B{seconds} of reactor time measured so far, in total.
    """

    def __init__(self, share: float, meter: Callable[[], float] = time.perf_counter,
                 burst: float = BURST) -> None:
        """
        @param share: the fraction of the reactor's time the API may take,
            above 0 and at most 1.
        @param meter: reads B{seconds} from a monotonic clock, both to
            measure the API's work and to refill the budget.
        @param burst: the most B{seconds} the budget holds.
        @raise ValueError: for a share not above 0 and at most 1, or a
            negative burst.
        """
        if not 0 < share <= 1:
            raise ValueError(f"share must be above 0 and at most 1, not {share!r}")
        if burst < 0:
            raise ValueError(f"burst must be 0 or more seconds, not {burst!r}")
        self.share = share
        self.spent = 0.0
        self._meter = meter
        self._burst = burst
        self._balance = burst
        self._at = meter()
        self._depth = 0

    def _refill(self) -> float:
        now = self._meter()
        self._balance = min(self._burst, self._balance + (now - self._at) * self.share)
        self._at = now
        return self._balance

    def wait(self) -> float:
        """
        @return: B{seconds} until the API may start more work: C{0.0} while
            the budget is not spent.
        """
        balance = self._refill()
        return 0.0 if balance >= 0 else -balance / self.share

    @contextmanager
    def spending(self) -> Iterator[None]:
        """
        Take the reactor time the block runs from the budget; a block run
        inside another is counted once, by the outer one.
        """
        self._depth += 1
        if self._depth > 1:
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._refill()
        started = self._at
        try:
            yield
        finally:
            self._depth -= 1
            now = self._meter()
            used = now - started
            self.spent += used
            # The budget refilled while the block ran, and the block used it.
            self._balance = min(self._burst, self._balance + used * self.share - used)
            self._at = now
