"""
Tests for L{novasvc.periodic}, the package's public surface.
"""

from twisted.trial.unittest import SynchronousTestCase

import novasvc.periodic
from novasvc.periodic import _decorator, _runner, _timer


class ExportsTests(SynchronousTestCase):
    """
    Tests for what L{novasvc.periodic} exports.
    """

    def test_exports(self) -> None:
        """
        When the package is imported, then C{__all__} names exactly the
        decorator, the runner, the timer and its delay, each the object of
        the module that does that job.
        """
        self.assertEqual(
            sorted(novasvc.periodic.__all__),
            sorted(["DEFAULT_INTERVAL", "periodic_task", "PeriodicTasks", "PeriodicTaskService", "fuzzy_delay"]),
        )
        homes = {
            "DEFAULT_INTERVAL": _decorator,
            "periodic_task": _decorator,
            "PeriodicTasks": _runner,
            "PeriodicTaskService": _timer,
            "fuzzy_delay": _timer,
        }
        for name, module in homes.items():
            self.assertIs(getattr(novasvc.periodic, name), getattr(module, name), name)
