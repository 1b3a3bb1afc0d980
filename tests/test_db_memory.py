"""
Tests for L{novasvc.db.memory}.
"""

from twisted.trial.unittest import SynchronousTestCase

from novasvc.db.memory import MemoryServiceStore
from novasvc.exceptions import ServiceNotFound
from novasvc.testing.store_contract import make_store_contract_tests


class MemoryServiceStoreContractTests(
    make_store_contract_tests(lambda case, utcnow: MemoryServiceStore(utcnow=utcnow))
):
    """
    L{MemoryServiceStore} follows the L{novasvc.interfaces.IServiceStore}
    contract.
    """


class MemoryServiceStoreTests(SynchronousTestCase):
    """
    What is particular to L{MemoryServiceStore}.
    """

    def test_synchronous(self) -> None:
        """
        When a started memory store is called, then the returned Deferred
        has already fired.
        """
        store = MemoryServiceStore()
        self.assertIsNone(self.successResultOf(store.start()))
        record = self.successResultOf(store.create("h", "novasvc-x", "x"))
        self.assertEqual(self.successResultOf(store.report_state(record.id)).report_count, 1)
        self.failureResultOf(store.get(99), ServiceNotFound)

    def test_not_started(self) -> None:
        """
        When a memory store that was never started is called, then the call
        fails at once with C{RuntimeError} saying to call start().
        """
        failure = self.failureResultOf(MemoryServiceStore().create("h", "b", "t"), RuntimeError)
        self.assertIn("start()", str(failure.value))

    def test_default_clock(self) -> None:
        """
        When no clock is given, then C{created_at} is the system's naive
        UTC time.
        """
        from novasvc.db.rules import default_utcnow

        store = MemoryServiceStore()
        store.start()
        before = default_utcnow()
        record = self.successResultOf(store.create("h", "b", "t"))
        after = default_utcnow()
        self.assertIsNone(record.created_at.tzinfo)
        self.assertTrue(before <= record.created_at <= after)
