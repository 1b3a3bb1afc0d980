# -*- test-case-name: tests.test_process_workers_backoff -*-
"""
L{Backoff}: how long a supervising parent waits before it starts a worker
again, so that a worker crashing at start in a loop does not spin.
"""

from typing import Optional

import attrs

__all__ = ["Backoff"]


@attrs.frozen
class Backoff:
    """
    Exponential restart delays: the first restart waits L{first} seconds,
    each restart after a short run waits twice the previous delay, up to
    L{maximum}; a worker that ran for L{stable_after} seconds or more
    before it ended starts the sequence again.

    @ivar first: B{seconds} before the first restart (C{float} > 0).
    @ivar maximum: the most B{seconds} between two restarts (C{float} >=
        C{first}).
    @ivar stable_after: B{seconds} of running after which a worker counts
        as stable (C{float} >= 0).
    """

    first: float = attrs.field(default=1.0, converter=float)
    maximum: float = attrs.field(default=30.0, converter=float)
    stable_after: float = attrs.field(default=60.0, converter=float)

    def __attrs_post_init__(self) -> None:
        if not self.first > 0:
            raise ValueError(f"Backoff.first must be > 0 seconds, got {self.first!r}")
        if not self.maximum >= self.first:
            raise ValueError(f"Backoff.maximum ({self.maximum!r}) must be >= first ({self.first!r})")
        if not self.stable_after >= 0:
            raise ValueError(f"Backoff.stable_after must be >= 0 seconds, got {self.stable_after!r}")

    def delay(self, previous: Optional[float], ran_for: float) -> float:
        """
        @param previous: the B{seconds} waited before the restart that
            started the worker which just ended, or C{None} if it was never
            restarted (or was stable before).
        @param ran_for: B{seconds} the worker ran before it ended.
        @return: the B{seconds} to wait before starting it again.
        """
        if previous is None or ran_for >= self.stable_after:
            return self.first
        return min(previous * 2, self.maximum)
