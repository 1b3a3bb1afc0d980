"""
Tests for L{novasvc.api._share}: the budget of reactor time of the API of
a service.
"""

from typing import List

from twisted.trial import unittest

from novasvc.api._share import BURST, ReactorShare


class _Meter:
    """
    A clock read by hand: C{now} B{seconds}.
    """

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ReactorShareTests(unittest.SynchronousTestCase):
    """
    L{ReactorShare}.
    """

    def setUp(self) -> None:
        self.meter = _Meter()

    def work(self, share: ReactorShare, seconds: float) -> None:
        with share.spending():
            self.meter.now += seconds

    def test_refused(self) -> None:
        """
        When the share is not above 0 and at most 1, or the burst is
        negative, then ValueError.
        """
        for bad in (0, -0.5, 1.5):
            self.assertRaises(ValueError, ReactorShare, bad, self.meter)
        self.assertRaises(ValueError, ReactorShare, 0.5, self.meter, burst=-1)

    def test_burst_then_wait(self) -> None:
        """
        When the API has used more than its burst, then it waits until its
        share of the time since it started makes up for it: with a
        quarter and a 5 ms burst, 10 ms of work is allowed 20 ms after it
        started, so 10 ms of waiting.
        """
        share = ReactorShare(0.25, self.meter, burst=0.005)
        self.assertEqual(share.wait(), 0.0)
        self.work(share, 0.004)
        self.assertEqual(share.wait(), 0.0)
        share = ReactorShare(0.25, self.meter, burst=0.005)
        self.work(share, 0.010)
        self.assertAlmostEqual(share.wait(), 0.010)
        self.meter.now += 0.006
        self.assertAlmostEqual(share.wait(), 0.004)
        self.meter.now += 0.004
        self.assertAlmostEqual(share.wait(), 0.0, places=9)
        self.assertAlmostEqual(share.spent, 0.010)

    def test_idle_does_not_hoard(self) -> None:
        """
        When the API was idle for long, then the budget holds its burst
        only: the next work past it waits as before.
        """
        share = ReactorShare(0.5, self.meter, burst=0.002)
        self.meter.now += 3600
        self.work(share, 0.004)
        self.assertAlmostEqual(share.wait(), 0.0, places=9)
        self.work(share, 0.004)
        self.assertAlmostEqual(share.wait(), 0.004)

    def test_nested_once(self) -> None:
        """
        When a block runs inside another, then its time is taken once.
        """
        share = ReactorShare(0.5, self.meter, burst=0.0)
        with share.spending():
            self.meter.now += 0.001
            with share.spending():
                self.meter.now += 0.002
        self.assertAlmostEqual(share.spent, 0.003)
        self.assertAlmostEqual(share.wait(), 0.003)

    def test_failure_counted(self) -> None:
        """
        When the block raises, then its time is taken all the same and the
        exception goes on.
        """
        share = ReactorShare(0.5, self.meter, burst=0.0)

        def fail() -> None:
            with share.spending():
                self.meter.now += 0.002
                raise KeyError("x")

        self.assertRaises(KeyError, fail)
        self.assertAlmostEqual(share.spent, 0.002)
        self.assertAlmostEqual(share.wait(), 0.002)

    def test_long_run_share(self) -> None:
        """
        When work is started whenever the budget allows, then over a long
        run it takes the share of the time, give or take the burst.
        """
        for fraction in (0.1, 0.25, 0.5, 1.0):
            share = ReactorShare(fraction, self.meter)
            started = self.meter.now
            waits: List[float] = []
            while self.meter.now - started < 10.0:
                wait = share.wait()
                if wait:
                    waits.append(wait)
                    self.meter.now += max(wait, 1e-6)
                else:
                    self.work(share, 0.0007)
            taken = share.spent / (self.meter.now - started)
            self.assertLess(abs(taken - fraction), 0.005, (taken, fraction))
            self.assertEqual(bool(waits), fraction < 1)
        self.assertEqual(BURST, 0.005)
