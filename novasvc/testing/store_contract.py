"""
The contract of L{novasvc.interfaces.IServiceStore}, as one test suite that
runs against every implementation (flocker's C{make_*_tests(fixture)} way).

Use it as::

    class MemoryServiceStoreContractTests(make_store_contract_tests(make)):
        '''The memory store follows the IServiceStore contract.'''

where C{make(case, utcnow)} returns an unstarted store (or a C{Deferred}
firing with one) whose clock is C{utcnow}. C{make} may register cleanups on
C{case}: they run after the store has been stopped.
"""

import datetime
import uuid
from typing import Callable, List

import attrs

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from novasvc.exceptions import ServiceExists, ServiceNotFound
from novasvc.interfaces import IServiceStore

#: Where the contract's clock starts: microseconds included, so a store that
#: loses them fails.
START = datetime.datetime(2026, 3, 4, 5, 6, 7, 891011)


class SettableUTCNow:
    """
    A C{utcnow} callable for stores, moved by hand.

    @ivar now: what the next call returns.
    """

    def __init__(self, now: datetime.datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> datetime.datetime:
        """
        Move the clock forward.

        @param seconds: how far, in B{seconds}.
        @return: the new time.
        """
        self.now += datetime.timedelta(seconds=seconds)
        return self.now


def make_store_contract_tests(
    make_store: Callable[[TestCase, SettableUTCNow], object],
) -> type:
    """
    Build the contract test case for one L{IServiceStore} implementation.

    @param make_store: called with the test case and the contract's clock;
        returns an unstarted L{IServiceStore} provider, or a C{Deferred}
        firing with one.
    @return: a L{TestCase} subclass to subclass in a test module.
    """

    class StoreContractTests(TestCase):
        """
        The behaviour every L{IServiceStore} shares.
        """

        async def setUp(self) -> None:
            self.clock = SettableUTCNow()
            self.store = await maybeDeferred(make_store, self, self.clock)
            await self.store.start()
            self.addCleanup(self.store.stop)

        async def assert_fails(self, d: Deferred, exception: type) -> BaseException:
            with self.assertRaises(exception) as raised:
                await d
            return raised.exception

        async def create(self, host: str = "host1", binary: str = "novasvc-volume",
                         topic: str = "volume", **kwargs):
            return await self.store.create(host, binary, topic, **kwargs)

        def test_interface(self) -> None:
            """
            When the store is made, then it provides L{IServiceStore}
            completely.
            """
            self.assertTrue(verifyObject(IServiceStore, self.store))

        async def test_create(self) -> None:
            """
            When a service is created, then the record has the given host,
            binary, topic and version, a fresh uuid, C{report_count} 0,
            C{created_at} now and no other timestamp.
            """
            record = await self.create(version=7)
            self.assertIsInstance(record.id, int)
            self.assertEqual(str(uuid.UUID(record.uuid)), record.uuid)
            self.assertEqual(
                (record.host, record.binary, record.topic, record.version),
                ("host1", "novasvc-volume", "volume", 7),
            )
            self.assertEqual(
                (record.report_count, record.disabled, record.disabled_reason,
                 record.forced_down, record.deleted),
                (0, False, None, False, 0),
            )
            self.assertEqual(record.created_at, START)
            self.assertEqual(
                (record.updated_at, record.deleted_at, record.last_seen_up), (None, None, None)
            )

        async def test_create_defaults(self) -> None:
            """
            When a service is created without version or disabled, then
            version is 0 and it is enabled.
            """
            record = await self.store.create("host1", "novasvc-volume", "volume")
            self.assertEqual((record.version, record.disabled), (0, False))

        async def test_create_disabled(self) -> None:
            """
            When a service is created disabled with a reason, then both are
            stored.
            """
            record = await self.create(disabled=True, disabled_reason="maintenance")
            self.assertEqual(await self.store.get(record.id), record)
            self.assertEqual((record.disabled, record.disabled_reason), (True, "maintenance"))

        async def test_create_ids_and_uuids(self) -> None:
            """
            When two services are created, then their ids increase and their
            uuids differ.
            """
            first = await self.create(binary="novasvc-a", topic="a")
            second = await self.create(binary="novasvc-b", topic="b")
            self.assertGreater(second.id, first.id)
            self.assertNotEqual(first.uuid, second.uuid)

        async def test_create_without_topic(self) -> None:
            """
            When two services of one host have no topic, then both are
            created (like Nova's API services).
            """
            first = await self.create(binary="novasvc-api", topic=None)
            second = await self.create(binary="novasvc-metadata", topic=None)
            self.assertEqual((first.topic, second.topic), (None, None))

        async def test_get(self) -> None:
            """
            When a created service is read by id, then the same record comes
            back.
            """
            record = await self.create()
            self.assertEqual(await self.store.get(record.id), record)

        async def test_get_unknown(self) -> None:
            """
            When an id that was never created is read, then it fails with
            L{ServiceNotFound}.
            """
            await self.assert_fails(self.store.get(424242), ServiceNotFound)

        async def test_get_by_host_and_binary(self) -> None:
            """
            When a service is looked up by host and binary, then its record
            comes back; another host or binary gives C{None}.
            """
            record = await self.create()
            self.assertEqual(
                await self.store.get_by_host_and_binary("host1", "novasvc-volume"), record
            )
            self.assertIsNone(await self.store.get_by_host_and_binary("host2", "novasvc-volume"))
            self.assertIsNone(await self.store.get_by_host_and_binary("host1", "novasvc-other"))

        async def test_duplicate_binary(self) -> None:
            """
            When a second live service is created with the same host and
            binary, then it fails with L{ServiceExists} and the first is
            untouched.
            """
            record = await self.create()
            await self.assert_fails(self.create(topic="other"), ServiceExists)
            self.assertEqual(await self.store.list_services(), [record])

        async def test_duplicate_topic(self) -> None:
            """
            When a second live service is created with the same host and
            topic (another binary), then it fails with L{ServiceExists}, as
            Nova's (host, topic, deleted) constraint.
            """
            await self.create()
            await self.assert_fails(self.create(binary="novasvc-other"), ServiceExists)

        async def test_same_binary_other_host(self) -> None:
            """
            When the same binary and topic are created on two hosts, then
            both exist.
            """
            await self.create(host="host1")
            await self.create(host="host2")
            self.assertEqual(
                [r.host for r in await self.store.list_services(binary="novasvc-volume")],
                ["host1", "host2"],
            )

        async def test_concurrent_duplicate(self) -> None:
            """
            When the same service is created twice at once, then exactly one
            succeeds and the other fails with L{ServiceExists}.
            """
            def exists(failure):
                failure.trap(ServiceExists)
                return "exists"

            results = await gatherResults(
                [
                    self.store.create("host1", "novasvc-volume", "volume").addCallbacks(
                        lambda r: "created", exists
                    )
                    for _ in range(2)
                ]
            )
            self.assertEqual(sorted(results), ["created", "exists"])
            self.assertEqual(len(await self.store.list_services()), 1)

        async def test_create_after_destroy(self) -> None:
            """
            When a service was destroyed, then a new live service with the
            same host, binary and topic can be created, with a new id; the
            old row stays, deleted.
            """
            old = await self.create()
            await self.store.destroy(old.id)
            new = await self.create()
            self.assertNotEqual(new.id, old.id)
            self.assertEqual(
                await self.store.get_by_host_and_binary("host1", "novasvc-volume"), new
            )
            everything = await self.store.list_services(include_deleted=True)
            self.assertEqual(
                [(r.id, r.deleted) for r in everything], [(old.id, old.id), (new.id, 0)]
            )

        async def test_update(self) -> None:
            """
            When a service is updated, then the given columns change,
            C{updated_at} is now, and the other columns stay.
            """
            record = await self.create()
            now = self.clock.advance(30)
            updated = await self.store.update(
                record.id, disabled=True, disabled_reason="broken disk",
                forced_down=True, version=3, topic="volume2",
            )
            self.assertEqual(
                updated,
                type(record)(
                    id=record.id, uuid=record.uuid, host="host1", binary="novasvc-volume",
                    topic="volume2", disabled=True, disabled_reason="broken disk",
                    forced_down=True, version=3, created_at=START, updated_at=now,
                ),
            )
            self.assertEqual(await self.store.get(record.id), updated)

        async def test_update_same_values(self) -> None:
            """
            When a service is updated twice to the same value within the
            same microsecond, then both succeed (an unchanged row still
            counts as found).
            """
            record = await self.create()
            await self.store.update(record.id, disabled=True)
            again = await self.store.update(record.id, disabled=True)
            self.assertTrue(again.disabled)

        async def test_update_clears_reason(self) -> None:
            """
            When C{disabled_reason} is updated to C{None}, then it is
            cleared.
            """
            record = await self.create(disabled=True, disabled_reason="x")
            updated = await self.store.update(record.id, disabled=False, disabled_reason=None)
            self.assertEqual((updated.disabled, updated.disabled_reason), (False, None))

        async def test_update_refuses_unknown_keys(self) -> None:
            """
            When an update names a column that may not be updated, then it
            fails with C{ValueError} naming it, and nothing changes.
            """
            record = await self.create()
            for key in ("report_count", "host", "id", "deleted", "last_seen_up", "bogus"):
                error = await self.assert_fails(
                    self.store.update(record.id, disabled=True, **{key: 1}), ValueError
                )
                self.assertIn(key, str(error))
            self.assertEqual(await self.store.get(record.id), record)

        async def test_update_bad_values(self) -> None:
            """
            When an update gives a value of the wrong type, then it fails
            with C{TypeError}, and a too long string with C{ValueError}.
            """
            record = await self.create()
            await self.assert_fails(self.store.update(record.id, disabled="yes"), TypeError)
            await self.assert_fails(self.store.update(record.id, version="2"), TypeError)
            await self.assert_fails(
                self.store.update(record.id, disabled_reason="x" * 256), ValueError
            )
            self.assertEqual(await self.store.get(record.id), record)

        async def test_update_topic_collision(self) -> None:
            """
            When a service's topic is updated to the topic of another live
            service on its host, then it fails with L{ServiceExists}.
            """
            await self.create(binary="novasvc-a", topic="a")
            b = await self.create(binary="novasvc-b", topic="b")
            await self.assert_fails(self.store.update(b.id, topic="a"), ServiceExists)
            self.assertEqual((await self.store.get(b.id)).topic, "b")

        async def test_update_unknown(self) -> None:
            """
            When an unknown or destroyed service is updated, then it fails
            with L{ServiceNotFound}.
            """
            await self.assert_fails(self.store.update(424242, disabled=True), ServiceNotFound)
            record = await self.create()
            await self.store.destroy(record.id)
            await self.assert_fails(self.store.update(record.id, disabled=True), ServiceNotFound)

        async def test_report_state(self) -> None:
            """
            When a service reports, then C{report_count} grows by one and
            C{last_seen_up} and C{updated_at} are now, each time.
            """
            record = await self.create()
            first = self.clock.advance(10)
            reported = await self.store.report_state(record.id)
            self.assertEqual(
                (reported.report_count, reported.last_seen_up, reported.updated_at),
                (1, first, first),
            )
            second = self.clock.advance(10.5)
            reported = await self.store.report_state(record.id)
            self.assertEqual(
                (reported.report_count, reported.last_seen_up, reported.updated_at),
                (2, second, second),
            )
            self.assertEqual(await self.store.get(record.id), reported)
            self.assertEqual(reported.created_at, START)

        async def test_report_state_concurrent(self) -> None:
            """
            When several reports run at once, then none is lost.
            """
            record = await self.create()
            await gatherResults([self.store.report_state(record.id) for _ in range(5)])
            self.assertEqual((await self.store.get(record.id)).report_count, 5)

        async def test_report_state_after_destroy(self) -> None:
            """
            When a destroyed service reports, then it fails with
            L{ServiceNotFound} and the row is not recreated.
            """
            record = await self.create()
            await self.store.destroy(record.id)
            await self.assert_fails(self.store.report_state(record.id), ServiceNotFound)
            self.assertIsNone(await self.store.get_by_host_and_binary("host1", "novasvc-volume"))
            everything = await self.store.list_services(include_deleted=True)
            self.assertEqual([(r.id, r.report_count) for r in everything], [(record.id, 0)])

        async def test_report_state_unknown(self) -> None:
            """
            When an id that was never created reports, then it fails with
            L{ServiceNotFound}.
            """
            await self.assert_fails(self.store.report_state(424242), ServiceNotFound)

        async def test_destroy(self) -> None:
            """
            When a service is destroyed, then C{deleted} is its id,
            C{deleted_at} is now, C{updated_at} is unchanged, and it can no
            longer be read or destroyed again.
            """
            record = await self.create()
            now = self.clock.advance(5)
            self.assertIsNone(await self.store.destroy(record.id))
            [deleted] = await self.store.list_services(include_deleted=True)
            self.assertEqual(
                deleted, attrs.evolve(record, deleted=record.id, deleted_at=now)
            )
            await self.assert_fails(self.store.get(record.id), ServiceNotFound)
            await self.assert_fails(self.store.destroy(record.id), ServiceNotFound)

        async def test_list_services(self) -> None:
            """
            When services are listed, then live ones come ordered by id,
            filtered by each of host, binary and topic given, and deleted
            ones only with C{include_deleted}.
            """
            a = await self.create(host="h1", binary="novasvc-volume", topic="volume")
            b = await self.create(host="h2", binary="novasvc-volume", topic="volume")
            c = await self.create(host="h1", binary="novasvc-scheduler", topic="scheduler")
            d = await self.create(host="h3", binary="novasvc-volume", topic="volume")
            await self.store.destroy(d.id)
            [d] = await self.store.list_services(host="h3", include_deleted=True)
            listed = self.store.list_services

            async def ids(**filters) -> List[int]:
                return [r.id for r in await listed(**filters)]

            self.assertEqual(await listed(), [a, b, c])
            self.assertEqual(await ids(host="h1"), [a.id, c.id])
            self.assertEqual(await ids(binary="novasvc-volume"), [a.id, b.id])
            self.assertEqual(await ids(topic="scheduler"), [c.id])
            self.assertEqual(await ids(host="h1", topic="volume"), [a.id])
            self.assertEqual(await ids(host="h9"), [])
            self.assertEqual(await listed(include_deleted=True), [a, b, c, d])
            self.assertEqual(await ids(host="h3", include_deleted=True), [d.id])

        async def test_aware_clock(self) -> None:
            """
            When the store's clock gives an aware time, then timestamps are
            stored as the naive UTC equivalent.
            """
            self.clock.now = datetime.datetime(
                2026, 3, 4, 7, 0, 0, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
            )
            record = await self.create()
            self.assertEqual(record.created_at, datetime.datetime(2026, 3, 4, 5, 0, 0, 5))
            self.assertIsNone((await self.store.get(record.id)).created_at.tzinfo)

        async def test_bad_create(self) -> None:
            """
            When a service is created with a missing, empty, too long or
            mistyped value, then it fails with C{TypeError} or C{ValueError}
            and nothing is stored.
            """
            for kwargs, exception in [
                ({"host": ""}, ValueError),
                ({"host": None}, TypeError),
                ({"binary": b"novasvc-volume"}, TypeError),
                ({"topic": "t" * 256}, ValueError),
                ({"version": "1"}, TypeError),
                ({"disabled": 1}, TypeError),
                ({"disabled_reason": 5}, TypeError),
            ]:
                await self.assert_fails(self.create(**kwargs), exception)
            self.assertEqual(await self.store.list_services(include_deleted=True), [])

        async def test_bad_lookups(self) -> None:
            """
            When an id is not an int or a filter is not a string, then the
            call fails with C{TypeError}.
            """
            await self.assert_fails(self.store.get("1"), TypeError)
            await self.assert_fails(self.store.report_state(None), TypeError)
            await self.assert_fails(self.store.destroy(1.0), TypeError)
            await self.assert_fails(self.store.get_by_host_and_binary("h", 3), TypeError)
            await self.assert_fails(self.store.list_services(host=["h"]), TypeError)

        async def test_stopped(self) -> None:
            """
            When the store is stopped, then calls fail with C{RuntimeError}
            (and do not wait), a second stop does nothing, and a new start
            finds the rows again.
            """
            record = await self.create()
            await self.store.stop()
            await self.assert_fails(self.store.get(record.id), RuntimeError)
            await self.assert_fails(self.store.report_state(record.id), RuntimeError)
            await self.store.stop()
            await self.store.start()
            self.assertEqual(await self.store.get(record.id), record)

        async def test_start_twice(self) -> None:
            """
            When a running store is started again, then that fails with
            C{RuntimeError} and the store keeps working.
            """
            await self.assert_fails(self.store.start(), RuntimeError)
            await self.create()

        async def test_ping(self) -> None:
            """
            When a running store is pinged, then the C{Deferred} fires with
            C{None}; once stopped, the ping fails with C{RuntimeError}.
            """
            self.assertIsNone(await self.store.ping())
            await self.store.stop()
            await self.assert_fails(self.store.ping(), RuntimeError)

    return StoreContractTests
