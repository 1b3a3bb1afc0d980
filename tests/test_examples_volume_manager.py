"""
Tests for L{novasvc.examples.volume.manager}: the volume manager served by
a L{novasvc.core.service.Service} on the memory transport and store, its table
in SQLite in memory, its timers on a L{task.Clock}, called through
L{novasvc.examples.volume.rpcapi.VolumeAPI}: volumes are
L{novasvc.examples.volume.objects.Volume} objects.
"""

import datetime
import random

import sqlalchemy as sa
from oslo_versionedobjects.exception import IncompatibleObjectVersion
from twisted.internet import defer, task
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from novasvc.config import Config, DatabaseConfig
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.volume.drivers import FakeVolumeDriver
from novasvc.examples.volume.exceptions import (
    InsufficientCapacity,
    InvalidVolume,
    VolumeDriverError,
    VolumeNotFound,
)
from novasvc.examples.volume.manager import VolumeManager, volumes
from novasvc.examples.volume.objects import Volume
from novasvc.examples.volume.rpcapi import VolumeAPI
from novasvc.exceptions import ConfigError, LoadError, StartupError
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import RemoteError
from novasvc.rpc.target import Target
from novasvc.core.service import Service
from novasvc.transport.memory import MemoryBroker, MemoryTransport


class BrokenDriver(FakeVolumeDriver):
    """
    A driver whose backend is not usable.
    """

    def check_for_setup_error(self):
        return defer.fail(VolumeDriverError(reason="no backend here"))


class FlakyDriver(FakeVolumeDriver):
    """
    A driver whose next delete fails once when C{fail_delete} is set.
    """

    fail_delete = False

    def delete_volume(self, volume_id):
        if self.fail_delete:
            self.fail_delete = False
            return defer.fail(VolumeDriverError(reason="disk on fire"))
        return FakeVolumeDriver.delete_volume(self, volume_id)


class VolumeServiceMixin:
    def start(self, host="h1", manager=VolumeManager, **sections):
        """
        Start a volume service (several share one broker and clock).

        @param host: its host.
        @param manager: its manager class.
        @param sections: section values (C{volume=}, C{fake_volume=}).
        @return: a C{Deferred} firing with the started L{Service}; the
            last one started is also C{self.service} (its manager
            C{self.manager}).
        """
        if getattr(self, "broker", None) is None:
            self.clock = task.Clock()
            self.broker = MemoryBroker()
            self.api = self.volume_api()
        config = Config(host=host, periodic_fuzzy_delay=0,
                        database=DatabaseConfig(connection="sqlite://"))
        service = Service.create(
            manager=manager, config=config.with_sections(**sections),
            store=MemoryServiceStore(),
            transport=MemoryTransport(broker=self.broker, clock=self.clock),
            clock=self.clock, rng=random.Random(1))
        self.service, self.manager = service, service.manager
        d = service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return d.addCallback(lambda _: service)

    def volume_api(self, **kwargs):
        """
        @return: a L{VolumeAPI} on the memory broker.
        """
        return VolumeAPI(MemoryTransport(broker=self.broker, clock=self.clock), clock=self.clock,
                         **kwargs)

    def rows(self):
        return self.manager.db.run(
            lambda conn: [tuple(row) for row in conn.execute(
                sa.select(volumes.c.id, volumes.c.host, volumes.c.status).order_by(volumes.c.id))])

    def insert(self, volume_id, host="h1", status="available", size_gb=1):
        return self.manager.db.run(lambda conn: conn.execute(volumes.insert().values(
            id=volume_id, host=host, size_gb=size_gb, status=status, location=None,
            created_at=self.manager._now())))

    def volume(self, volume_id, host="h1", status="available", size_gb=1):
        """
        @return: a L{Volume} with these values (one that need not exist).
        """
        return Volume.from_record({"id": volume_id, "host": host, "size_gb": size_gb,
                                   "status": status, "location": None,
                                   "created_at": datetime.datetime(1970, 1, 1)})

    def raw_client(self, version):
        """
        @return: an L{RPCClient} without a serializer, at C{version}.
        """
        return RPCClient(MemoryTransport(broker=self.broker, clock=self.clock),
                         Target(topic="volume", version=version), clock=self.clock)


class StartTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_start(self):
        """
        When the service starts, then the manager has the configured
        driver, the volumes table exists, and the driver's stats are known.
        """
        yield self.start()
        self.assertIsInstance(self.manager.driver, FakeVolumeDriver)
        self.assertEqual((yield self.rows()), [])
        self.assertEqual(self.manager.stats, {
            "total_gb": 100, "allocated_gb": 0, "free_gb": 100, "volume_count": 0,
            "used_bytes": 0, "driver": "FakeVolumeDriver", "host": "h1"})

    @defer.inlineCallbacks
    def test_setup_error_stops_start(self):
        """
        When the driver's check_for_setup_error fails, then the service does
        not start: its start fails with one line naming init_host, the
        manager and the driver's error (chained as the cause).
        """
        d = self.start(volume={"driver": "tests.test_examples_volume_manager.BrokenDriver"})
        error = yield self.assertFailure(d, StartupError)
        self.assertEqual(str(error), "init_host of novasvc.examples.volume.manager.VolumeManager "
                                     "failed: VolumeDriverError: Volume driver error: no backend "
                                     "here")
        self.assertIsInstance(error.__cause__, VolumeDriverError)

    def test_driver_without_interface(self):
        """
        When the driver option names a class that does not provide
        IVolumeDriver, then building the service fails with LoadError naming
        the interface.
        """
        error = self.assertRaises(LoadError, self.start,
                                  volume={"driver": "novasvc.examples.echo.EchoManager"})
        self.assertIn("IVolumeDriver", str(error))

    def test_driver_section_checked(self):
        """
        When the driver's section has a wrong value, then building the
        service fails with ConfigError naming it.
        """
        error = self.assertRaises(ConfigError, self.start, fake_volume={"capacity_gb": "lots"})
        self.assertIn("fake_volume.capacity_gb", str(error))

    def test_unknown_option(self):
        """
        When the volume section has an unknown key, then ConfigError names
        it.
        """
        error = self.assertRaises(ConfigError, self.start, volume={"default_size": 2})
        self.assertIn("volume.default_size", str(error))


class CreateTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_create(self):
        """
        When a volume is created, then the caller gets a Volume, available
        on this host, without a name; the driver has it, and list_volumes
        shows it.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 2)
        self.assertIsInstance(volume, Volume)
        self.assertEqual((volume.host, volume.size_gb, volume.status, volume.name),
                         ("h1", 2, "available", None))
        self.assertEqual(volume.location, f"fake://{volume.id}")
        self.assertEqual(volume.created_at,
                         datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc))
        self.assertEqual(self.manager.driver.volumes, {volume.id: 2})
        self.assertEqual((yield self.api.list_volumes({})), [volume])

    @defer.inlineCallbacks
    def test_name(self):
        """
        When a volume is created with a name, then it has it, as listed and
        as read back.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 1, name="scratch")
        self.assertEqual(volume.name, "scratch")
        self.assertEqual((yield self.api.get_volume({}, volume.id)).name, "scratch")
        self.assertEqual([v.name for v in (yield self.api.list_volumes({}))], ["scratch"])

    @defer.inlineCallbacks
    def test_invalid_name(self):
        """
        When the name is not a string or is longer than 255 characters,
        then the caller gets InvalidVolume and nothing is recorded.
        """
        yield self.start()
        for name in (7, "x" * 256):
            yield self.assertFailure(self.api.create_volume({}, 1, name=name), InvalidVolume)
        self.assertEqual((yield self.rows()), [])

    @defer.inlineCallbacks
    def test_default_size(self):
        """
        When no size is given, then the volume has the configured
        default_size_gb.
        """
        yield self.start(volume={"default_size_gb": 3})
        volume = yield self.api.create_volume({})
        self.assertEqual(volume.size_gb, 3)

    @defer.inlineCallbacks
    def test_invalid_size(self):
        """
        When the size is not a whole number of GiB >= 1, then the caller
        gets InvalidVolume and nothing is recorded.
        """
        yield self.start()
        for size in (0, -2, 1.5, "2", True):
            yield self.assertFailure(self.api.create_volume({}, size), InvalidVolume)
        self.assertEqual((yield self.rows()), [])

    @defer.inlineCallbacks
    def test_over_capacity(self):
        """
        When the driver has too little room, then the caller gets
        InsufficientCapacity with its details and no record is left.
        """
        yield self.start(fake_volume={"capacity_gb": 3})
        yield self.api.create_volume({}, 2)
        error = yield self.assertFailure(self.api.create_volume({}, 2), InsufficientCapacity)
        self.assertEqual(error.kwargs, {"size_gb": 2, "free_gb": 1})
        self.assertEqual(len((yield self.rows())), 1)


class DeleteTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_delete(self):
        """
        When a volume is deleted (given as the Volume), then its record and
        the driver's volume are gone.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 1)
        self.assertIsNone((yield self.api.delete_volume({}, volume)))
        self.assertEqual((yield self.rows()), [])
        self.assertEqual(self.manager.driver.volumes, {})

    @defer.inlineCallbacks
    def test_delete_by_id(self):
        """
        When a client of API 1.0 deletes a volume by its id, then it is
        gone too.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 1)
        yield self.raw_client("1.0").call({}, "delete_volume", volume_id=volume.id)
        self.assertEqual((yield self.rows()), [])

    @defer.inlineCallbacks
    def test_unknown(self):
        """
        When the volume is unknown (or, from a 1.0 client, its id is not
        even a string), then the caller gets VolumeNotFound naming it.
        """
        yield self.start()
        error = yield self.assertFailure(self.api.delete_volume({}, self.volume("nope")),
                                         VolumeNotFound)
        self.assertEqual(error.volume_id, "nope")
        error = yield self.assertFailure(
            self.raw_client("1.0").call({}, "delete_volume", volume_id=7), RemoteError)
        self.assertEqual(error.exc_type, "VolumeNotFound")

    @defer.inlineCallbacks
    def test_not_a_volume(self):
        """
        When delete_volume gets neither a volume nor an id, or a volume that
        is not a Volume object (a plain dict), then the caller gets
        InvalidVolume saying what it needs.
        """
        yield self.start()
        client = self.raw_client("1.2")
        error = yield self.assertFailure(client.call({}, "delete_volume"), RemoteError)
        self.assertEqual(error.exc_type, "InvalidVolume")
        self.assertIn("volume_id", str(error))
        error = yield self.assertFailure(
            client.call({}, "delete_volume", volume={"id": "v1"}), RemoteError)
        self.assertIn("Volume object", str(error))

    @defer.inlineCallbacks
    def test_other_host(self):
        """
        When the volume belongs to another host sharing the database, then
        this host neither lists nor deletes it.
        """
        yield self.start()
        yield self.insert("theirs", host="h2")
        self.assertEqual((yield self.api.list_volumes({})), [])
        yield self.assertFailure(self.api.delete_volume({}, self.volume("theirs", host="h2"),
                                                        host="h1"), VolumeNotFound)
        self.assertEqual((yield self.rows()), [("theirs", "h2", "available")])

    @defer.inlineCallbacks
    def test_busy(self):
        """
        When the volume is being created or deleted, then the caller gets
        InvalidVolume saying so and the record is unchanged.
        """
        yield self.start()
        yield self.insert("v1", status="creating")
        error = yield self.assertFailure(self.api.delete_volume({}, self.volume("v1")),
                                         InvalidVolume)
        self.assertIn("creating", str(error))
        self.assertEqual((yield self.rows()), [("v1", "h1", "creating")])

    @defer.inlineCallbacks
    def test_driver_failure(self):
        """
        When the driver fails to delete, then the caller gets its error,
        the volume is in status error, and a second delete removes it.
        """
        yield self.start(volume={"driver": "tests.test_examples_volume_manager.FlakyDriver"})
        volume = yield self.api.create_volume({}, 1)
        self.manager.driver.fail_delete = True
        yield self.assertFailure(self.api.delete_volume({}, volume), VolumeDriverError)
        self.assertEqual((yield self.rows()), [(volume.id, "h1", "error")])
        yield self.api.delete_volume({}, volume)
        self.assertEqual((yield self.rows()), [])

    @defer.inlineCallbacks
    def test_driver_lost_it(self):
        """
        When the driver no longer has the volume, then the delete succeeds,
        removes the record and logs a warning.
        """
        yield self.start()
        yield self.insert("v1")
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.api.delete_volume({}, self.volume("v1"))
        self.assertEqual((yield self.rows()), [])
        warned = [e for e in events if e.get("log_level") == LogLevel.warn and e.get("id") == "v1"]
        self.assertEqual(len(warned), 1)


class ReadTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_list_oldest_first(self):
        """
        When volumes were created at different times, then they are listed
        oldest first.
        """
        yield self.start()
        first = yield self.api.create_volume({}, 1)
        self.clock.advance(10)
        second = yield self.api.create_volume({}, 1)
        listed = yield self.api.list_volumes({})
        self.assertEqual([v.id for v in listed], [first.id, second.id])
        self.assertEqual(listed[1].created_at,
                         datetime.datetime(1970, 1, 1, 0, 0, 10, tzinfo=datetime.timezone.utc))

    @defer.inlineCallbacks
    def test_get_volume(self):
        """
        When one volume is asked for, then it comes back as created; an
        unknown id gives VolumeNotFound.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 1)
        self.assertEqual((yield self.api.get_volume({}, volume.id)), volume)
        yield self.assertFailure(self.api.get_volume({}, "nope"), VolumeNotFound)

    @defer.inlineCallbacks
    def test_get_stats(self):
        """
        When the stats are asked for, then they are the driver's now, with
        the host.
        """
        yield self.start()
        yield self.api.create_volume({}, 5)
        stats = yield self.api.get_stats({}, host="h1")
        self.assertEqual((stats["allocated_gb"], stats["free_gb"], stats["volume_count"],
                          stats["host"]), (5, 95, 1, "h1"))

    @defer.inlineCallbacks
    def test_periodic_stats(self):
        """
        When the driver's capacity changes, then the periodic task brings
        the manager's stats up to date within 60 seconds.
        """
        yield self.start()
        self.manager.driver.volumes["outside"] = 7
        self.assertEqual(self.manager.stats["allocated_gb"], 0)
        self.clock.advance(60)
        self.assertEqual(self.manager.stats["allocated_gb"], 7)

    @defer.inlineCallbacks
    def test_framework_names_hidden(self):
        """
        When a caller asks for the manager's driver, stats, serializer or
        lifecycle hooks over RPC, then it gets NoSuchMethod (as a
        RemoteError).
        """
        yield self.start()
        for name in ("driver", "stats", "serializer", "init_host", "_update_volume_stats"):
            error = yield self.assertFailure(self.api.client.call({}, name), RemoteError)
            self.assertEqual(error.exc_type, "NoSuchMethod")


class ObjectVersionTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_on_the_wire(self):
        """
        When a client without the example's serializer calls the service,
        at API 1.0 or 1.3, then the volume comes back as the primitive of a
        Volume 1.1.
        """
        yield self.start()
        for version, name in (("1.0", None), ("1.3", "n")):
            kwargs = {} if name is None else {"name": name}
            primitive = yield self.raw_client(version).call({}, "create_volume", size_gb=1,
                                                            **kwargs)
            self.assertEqual((primitive["novasvc_volume_object.name"],
                              primitive["novasvc_volume_object.version"]), ("Volume", "1.1"))
            self.assertEqual(primitive["novasvc_volume_object.data"]["name"], name)

    @defer.inlineCallbacks
    def test_newer_object_refused(self):
        """
        When a request carries a Volume of a newer version than the service
        knows, then the caller gets an error naming IncompatibleObjectVersion
        and the versions (a RemoteError for a plain client, the exception
        itself for VolumeAPI's client), nothing is deleted, and the service
        keeps serving.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 1)
        primitive = volume.obj_to_primitive()
        primitive["novasvc_volume_object.version"] = "1.99"
        error = yield self.assertFailure(
            self.raw_client("1.3").call({}, "delete_volume", volume=primitive), RemoteError)
        self.assertEqual(error.exc_type, "IncompatibleObjectVersion")
        self.assertIn("1.99", str(error))
        self.assertIn("supported version is 1.1", str(error))
        error = yield self.assertFailure(
            self.api.client.prepare(version="1.3").call({}, "delete_volume", volume=primitive),
            IncompatibleObjectVersion)
        self.assertIn("1.99", str(error))
        self.assertEqual((yield self.api.list_volumes({})), [volume])
        yield self.api.delete_volume({}, volume)
        self.assertEqual((yield self.rows()), [])
