"""
Small tools for tests that consume from a transport: L{Collector} keeps
deliveries, L{capture_log_texts} keeps the log, L{unique} makes names that
do not collide between tests. Used by the transport contract
(L{novasvc.testing.transport_contract}) and by transport tests.
"""

import uuid
from typing import Any, List

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

__all__ = ["Collector", "capture_log_texts", "unique"]


class Collector:
    """
    An C{on_message} callback that keeps every delivery, unsettled unless
    told otherwise.

    @ivar deliveries: the deliveries, in order.
    """

    def __init__(self, settle: str = "none") -> None:
        """
        @param settle: C{"none"} keeps deliveries unsettled, C{"ack"} acks each.
        """
        self.deliveries: List[Any] = []
        self._settle = settle

    def __call__(self, delivery: Any) -> None:
        self.deliveries.append(delivery)
        if self._settle == "ack":
            delivery.ack()

    @property
    def bodies(self) -> List[bytes]:
        """
        The bodies received, in order.
        """
        return [d.body for d in self.deliveries]


def capture_log_texts(case: unittest.TestCase) -> List[str]:
    """
    Record every Twisted log event, formatted, until C{case} ends.

    @return: the list the text lands in.
    """
    texts: List[str] = []

    def observe(event: dict) -> None:
        level = event.get("log_level")
        texts.append(f"{level.name if level else ''} {formatEvent(event)}")

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return texts


def unique(prefix: str) -> str:
    """
    @return: C{prefix} plus a short random suffix, for names that must not
        collide between tests.
    """
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
