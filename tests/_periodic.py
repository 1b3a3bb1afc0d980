"""
Helpers shared by the tests of L{novasvc.periodic}'s modules.
"""

from typing import Any, List, Optional

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent

from novasvc.periodic import PeriodicTasks

CONTEXT = object()


class FixedRandom:
    """
    A random source that always returns C{value}.
    """

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def make(cls: type, random_value: float = 0.0) -> Any:
    """
    @return: an instance of C{cls} on a fresh L{Clock}, with a random source
        fixed at C{random_value}.
    """
    obj = cls()
    obj.clock = Clock()
    obj._periodic_random = FixedRandom(random_value)
    return obj


def messages(observer: EventLoggingObserver, level: Optional[LogLevel] = None) -> List[str]:
    """
    @return: the formatted text of the events C{observer} saw (at C{level}
        only, when given).
    """
    return [formatEvent(e) for e in observer if level is None or e["log_level"] == level]


class Recorder(PeriodicTasks):
    """
    Base for test classes: C{self.ran} lists (task name, clock seconds).
    """

    def __init__(self) -> None:
        super().__init__()
        self.ran: List[tuple] = []

    def record(self, name: str) -> None:
        self.ran.append((name, self.clock.seconds()))
