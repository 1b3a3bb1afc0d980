# -*- test-case-name: tests.test_examples_volume_drivers -*-
"""
The contract every L{IVolumeDriver} should meet, as a test mixin, so that
a driver written elsewhere can be checked the way the example's own are::

    from twisted.trial.unittest import TestCase
    from novasvc.examples.volume.testing import VolumeDriverContractMixin

    class MyDriverContractTests(VolumeDriverContractMixin, TestCase):
        def make_driver(self, capacity_gb):
            return MyDriver(...)     # a driver that may hold capacity_gb GiB

Mix it into a L{twisted.trial.unittest.TestCase} (the asynchronous one: a
real driver's C{Deferred}s fire from threads). Sizes stay small (a few
GiB) so that a backend with real, sparse storage can run it anywhere.
"""

from typing import Any, List

from twisted.internet import defer

from novasvc.examples.volume.exceptions import (
    InsufficientCapacity,
    InvalidVolume,
    VolumeExists,
    VolumeNotFound,
)
from novasvc.examples.volume.interfaces import IVolumeDriver
from novasvc.testing.driver_contract import DriverContractMixin

__all__ = ["VolumeDriverContractMixin"]


class VolumeDriverContractMixin(DriverContractMixin):
    """
    Tests of the L{IVolumeDriver} contract, beside the checks every driver
    passes (L{DriverContractMixin}: it provides the interface, its options
    are well formed). Subclasses define L{make_driver}; the driver passes
    C{check_for_setup_error} first.
    """

    interface = IVolumeDriver

    #: The capacity, in GiB, of the drivers the tests make.
    capacity_gb = 4

    def make_driver(self, capacity_gb: int) -> Any:
        """
        @param capacity_gb: the GiB the driver may hand out.
        @return: a fresh driver without volumes (or a C{Deferred} of one).
        """
        raise NotImplementedError(f"{type(self).__name__} must define make_driver")

    @defer.inlineCallbacks
    def driver(self, capacity_gb: Any = None):
        driver = yield defer.maybeDeferred(
            self.make_driver, self.capacity_gb if capacity_gb is None else capacity_gb)
        yield driver.check_for_setup_error()
        return driver

    @defer.inlineCallbacks
    def test_methods_return_deferreds(self):
        """
        When any method is called, then it returns a Deferred, also when it
        fails.
        """
        driver = yield self.driver()
        calls = [driver.check_for_setup_error, lambda: driver.create_volume("v1", 1),
                 driver.list_volumes, driver.get_stats, lambda: driver.delete_volume("v1")]
        for call in calls:  # one after the other: a driver need not order concurrent calls
            result = call()
            self.assertIsInstance(result, defer.Deferred)
            yield result
        failing = driver.delete_volume("v1")
        self.assertIsInstance(failing, defer.Deferred)
        yield self.assertFailure(failing, VolumeNotFound)

    @defer.inlineCallbacks
    def test_create(self):
        """
        When a volume is created, then the driver returns it (id, size in
        GiB, a location string) and lists it the same way.
        """
        driver = yield self.driver()
        volume = yield driver.create_volume("v1", 2)
        self.assertEqual((volume["id"], volume["size_gb"]), ("v1", 2))
        self.assertIsInstance(volume["location"], str)
        self.assertEqual((yield driver.list_volumes()), [volume])

    @defer.inlineCallbacks
    def test_create_existing(self):
        """
        When a volume is created with an id the driver has, then it fails
        with VolumeExists naming the id, and the first volume is unchanged.
        """
        driver = yield self.driver()
        first = yield driver.create_volume("v1", 1)
        error = yield self.assertFailure(driver.create_volume("v1", 2), VolumeExists)
        self.assertEqual(error.volume_id, "v1")
        self.assertEqual((yield driver.list_volumes()), [first])

    @defer.inlineCallbacks
    def test_create_over_capacity(self):
        """
        When a volume is larger than the free capacity, then it fails with
        InsufficientCapacity giving the requested and free GiB, and nothing
        is created.
        """
        driver = yield self.driver()
        yield driver.create_volume("v1", self.capacity_gb - 1)
        error = yield self.assertFailure(driver.create_volume("v2", 2), InsufficientCapacity)
        self.assertEqual(error.kwargs, {"size_gb": 2, "free_gb": 1})
        self.assertEqual([v["id"] for v in (yield driver.list_volumes())], ["v1"])

    @defer.inlineCallbacks
    def test_create_whole_capacity(self):
        """
        When volumes fill the capacity exactly, then they are created and
        nothing is free.
        """
        driver = yield self.driver()
        yield driver.create_volume("v1", self.capacity_gb - 1)
        yield driver.create_volume("v2", 1)
        stats = yield driver.get_stats()
        self.assertEqual((stats["allocated_gb"], stats["free_gb"]), (self.capacity_gb, 0))

    @defer.inlineCallbacks
    def test_concurrent_creates_respect_capacity(self):
        """
        When creates are issued together that would exceed the capacity
        together, then only those that fit succeed and the others fail with
        InsufficientCapacity.
        """
        driver = yield self.driver()
        size = self.capacity_gb // 2
        results = yield defer.DeferredList(
            [driver.create_volume(f"v{n}", size) for n in range(3)], consumeErrors=True)
        failed = [result for ok, result in results if not ok]
        self.assertEqual(len(failed), 1)
        failed[0].trap(InsufficientCapacity)
        self.assertEqual(len((yield driver.list_volumes())), 2)

    @defer.inlineCallbacks
    def test_invalid_size(self):
        """
        When the size is not a whole number of GiB >= 1, then the create
        fails with InvalidVolume and nothing is created.
        """
        driver = yield self.driver()
        for size in (0, -1, 1.5, True, "2", None):
            yield self.assertFailure(driver.create_volume("v1", size), InvalidVolume)
        self.assertEqual((yield driver.list_volumes()), [])

    @defer.inlineCallbacks
    def test_invalid_id(self):
        """
        When the id is empty, too long, not a string or has characters
        other than letters, digits, - and _ (such as a path), then the
        create fails with InvalidVolume.
        """
        driver = yield self.driver()
        for volume_id in ("", "../v1", "a/b", ".hidden", "-v", "x" * 65, 7, None):
            yield self.assertFailure(driver.create_volume(volume_id, 1), InvalidVolume)
        yield driver.create_volume("x" * 64, 1)
        self.assertEqual([v["id"] for v in (yield driver.list_volumes())], ["x" * 64])

    @defer.inlineCallbacks
    def test_delete(self):
        """
        When a volume is deleted, then it is no longer listed and its
        capacity is free again.
        """
        driver = yield self.driver()
        yield driver.create_volume("v1", self.capacity_gb)
        result = yield driver.delete_volume("v1")
        self.assertIsNone(result)
        self.assertEqual((yield driver.list_volumes()), [])
        yield driver.create_volume("v2", self.capacity_gb)

    @defer.inlineCallbacks
    def test_delete_missing(self):
        """
        When an id the driver does not have is deleted (twice, or never
        created, or not even a valid id), then it fails with VolumeNotFound
        naming the id.
        """
        driver = yield self.driver()
        yield driver.create_volume("v1", 1)
        yield driver.delete_volume("v1")
        for volume_id in ("v1", "never", "../v1"):
            error = yield self.assertFailure(driver.delete_volume(volume_id), VolumeNotFound)
            self.assertEqual(error.volume_id, volume_id)

    @defer.inlineCallbacks
    def test_list_sorted(self):
        """
        When several volumes exist, then they are listed sorted by id.
        """
        driver = yield self.driver()
        for volume_id in ("c", "a", "b"):
            yield driver.create_volume(volume_id, 1)
        listed: List[Any] = yield driver.list_volumes()
        self.assertEqual([(v["id"], v["size_gb"]) for v in listed], [("a", 1), ("b", 1), ("c", 1)])

    @defer.inlineCallbacks
    def test_stats_empty(self):
        """
        When the driver has no volume, then its stats show the whole
        capacity free, no volume, and its class name.
        """
        driver = yield self.driver()
        stats = yield driver.get_stats()
        self.assertEqual(stats, {
            "total_gb": self.capacity_gb, "allocated_gb": 0, "free_gb": self.capacity_gb,
            "volume_count": 0, "used_bytes": stats["used_bytes"], "driver": type(driver).__name__,
        })
        self.assertEqual(stats["used_bytes"], 0)

    @defer.inlineCallbacks
    def test_stats(self):
        """
        When volumes exist, then the stats count them and their GiB, and
        used_bytes is a whole number of bytes no more than their size.
        """
        driver = yield self.driver()
        yield driver.create_volume("v1", 1)
        yield driver.create_volume("v2", 2)
        stats = yield driver.get_stats()
        self.assertEqual((stats["total_gb"], stats["allocated_gb"], stats["free_gb"],
                          stats["volume_count"]),
                         (self.capacity_gb, 3, self.capacity_gb - 3, 2))
        self.assertIsInstance(stats["used_bytes"], int)
        self.assertTrue(0 <= stats["used_bytes"] <= 3 * 2 ** 30, stats["used_bytes"])
