"""
Tests for the volume example's drivers
(L{novasvc.examples.volume.drivers}): the driver contract of
L{novasvc.examples.volume.testing} against both, and what only the file
driver does (real sparse files, its directory, its threads).
"""

import os
import threading

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.config import Config
from novasvc.examples.volume.drivers import FakeVolumeDriver, FileVolumeDriver
from novasvc.examples.volume.drivers import file as file_module
from novasvc.examples.volume.exceptions import VolumeDriverError, VolumeError, VolumeNotFound
from novasvc.examples.volume.testing import VolumeDriverContractMixin
from novasvc.exceptions import ConfigError
from novasvc.rpc import wire

GiB = 2 ** 30


def fake_driver(capacity_gb):
    return FakeVolumeDriver(Config().with_sections(fake_volume={"capacity_gb": capacity_gb}))


class FakeDriverContractTests(VolumeDriverContractMixin, TestCase):
    """
    L{FakeVolumeDriver} meets the driver contract.
    """

    def make_driver(self, capacity_gb):
        return fake_driver(capacity_gb)


class FileDriverMixin:
    def file_driver(self, capacity_gb=4, volumes_dir=None, **kwargs):
        self.volumes_dir = volumes_dir or os.path.abspath(self.mktemp())
        config = Config().with_sections(file_volume={
            "volumes_dir": self.volumes_dir, "capacity_gb": capacity_gb})
        return FileVolumeDriver(config, **kwargs)


class FileDriverContractTests(FileDriverMixin, VolumeDriverContractMixin, TestCase):
    """
    L{FileVolumeDriver} meets the driver contract.
    """

    def make_driver(self, capacity_gb):
        return self.file_driver(capacity_gb)


class FileDriverTests(FileDriverMixin, TestCase):
    """
    What L{FileVolumeDriver} does on disk.
    """

    @defer.inlineCallbacks
    def test_sparse_file(self):
        """
        When a volume of N GiB is created, then its location is a file in
        volumes_dir whose size is N GiB but which takes (almost) no disk
        space, and used_bytes reports that space.
        """
        driver = self.file_driver()
        yield driver.check_for_setup_error()
        volume = yield driver.create_volume("v1", 2)
        path = os.path.join(self.volumes_dir, "volume-v1.img")
        self.assertEqual(volume["location"], path)
        st = os.stat(path)
        self.assertEqual(st.st_size, 2 * GiB)
        self.assertLess(st.st_blocks * 512, GiB)
        stats = yield driver.get_stats()
        self.assertEqual(stats["used_bytes"], st.st_blocks * 512)

    @defer.inlineCallbacks
    def test_delete_removes_file(self):
        """
        When a volume is deleted, then its file is gone.
        """
        driver = self.file_driver()
        yield driver.check_for_setup_error()
        volume = yield driver.create_volume("v1", 1)
        yield driver.delete_volume("v1")
        self.assertFalse(os.path.exists(volume["location"]))

    @defer.inlineCallbacks
    def test_volumes_survive_restart(self):
        """
        When a new driver opens a directory holding volumes, then it lists
        them and counts them against the capacity.
        """
        driver = self.file_driver()
        yield driver.check_for_setup_error()
        yield driver.create_volume("v1", 3)
        again = self.file_driver(volumes_dir=self.volumes_dir)
        self.assertEqual([(v["id"], v["size_gb"]) for v in (yield again.list_volumes())],
                         [("v1", 3)])
        self.assertEqual((yield again.get_stats())["free_gb"], 1)

    @defer.inlineCallbacks
    def test_other_files_ignored(self):
        """
        When volumes_dir holds files and directories not named like a
        volume, then they are neither listed nor counted.
        """
        driver = self.file_driver()
        yield driver.check_for_setup_error()
        for name in ("notes.txt", "volume-.img", "volume-x.img.bak"):
            with open(os.path.join(self.volumes_dir, name), "w") as f:
                f.write("x")
        os.mkdir(os.path.join(self.volumes_dir, "volume-d.img"))
        self.assertEqual((yield driver.list_volumes()), [])
        self.assertEqual((yield driver.get_stats())["volume_count"], 0)

    @defer.inlineCallbacks
    def test_setup_makes_directory(self):
        """
        When volumes_dir does not exist, then check_for_setup_error makes
        it (with its parents).
        """
        base = os.path.abspath(self.mktemp())
        driver = self.file_driver(volumes_dir=os.path.join(base, "a", "b"))
        yield driver.check_for_setup_error()
        self.assertTrue(os.path.isdir(self.volumes_dir))
        self.assertEqual(os.listdir(self.volumes_dir), [])

    @defer.inlineCallbacks
    def test_setup_error_not_a_directory(self):
        """
        When volumes_dir is a file, then check_for_setup_error fails with
        VolumeDriverError naming the path.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("x")
        driver = self.file_driver(volumes_dir=path)
        error = yield self.assertFailure(driver.check_for_setup_error(), VolumeDriverError)
        self.assertIn(path, str(error))

    @defer.inlineCallbacks
    def test_setup_error_parent_is_a_file(self):
        """
        When a parent of volumes_dir is a file, then check_for_setup_error
        fails with VolumeDriverError naming volumes_dir.
        """
        parent = os.path.abspath(self.mktemp())
        with open(parent, "w") as f:
            f.write("x")
        driver = self.file_driver(volumes_dir=os.path.join(parent, "volumes"))
        error = yield self.assertFailure(driver.check_for_setup_error(), VolumeDriverError)
        self.assertIn(self.volumes_dir, str(error))

    @defer.inlineCallbacks
    def test_io_off_the_reactor_thread(self):
        """
        When a volume is created, listed and deleted, then the file system
        calls run in worker threads, never on the reactor thread.
        """
        driver = self.file_driver()
        threads = []
        for name in ("ftruncate", "scandir", "unlink"):
            self.patch(file_module.os, name, self._recording(getattr(os, name), threads))
        yield driver.check_for_setup_error()
        yield driver.create_volume("v1", 1)
        yield driver.list_volumes()
        yield driver.delete_volume("v1")
        self.assertTrue(threads)
        self.assertNotIn(threading.get_ident(), threads)

    def _recording(self, function, threads):
        def call(*args, **kwargs):
            threads.append(threading.get_ident())
            return function(*args, **kwargs)
        return call

    @defer.inlineCallbacks
    def test_io_error_leaves_nothing(self):
        """
        When sizing the file fails (e.g. the file system refuses the size),
        then the create fails with VolumeDriverError and no file is left.
        """
        driver = self.file_driver()
        yield driver.check_for_setup_error()

        def refuse(fd, size):
            raise OSError(27, "File too large")

        self.patch(file_module.os, "ftruncate", refuse)
        error = yield self.assertFailure(driver.create_volume("v1", 1), VolumeDriverError)
        self.assertIn("File too large", str(error))
        self.assertEqual(os.listdir(self.volumes_dir), [])

    @defer.inlineCallbacks
    def test_directory_gone(self):
        """
        When volumes_dir disappears after start-up, then listing fails with
        VolumeDriverError naming it.
        """
        driver = self.file_driver()
        yield driver.check_for_setup_error()
        os.rmdir(self.volumes_dir)
        error = yield self.assertFailure(driver.list_volumes(), VolumeDriverError)
        self.assertIn(self.volumes_dir, str(error))


class DriverConfigTests(FileDriverMixin, SynchronousTestCase):
    """
    The drivers' own sections.
    """

    def test_fake_defaults(self):
        """
        When the fake driver is made without configuration, then it may
        hand out 100 GiB.
        """
        self.assertEqual(FakeVolumeDriver().capacity_gb, 100)

    def test_file_needs_volumes_dir(self):
        """
        When the file driver's section gives no volumes_dir, then
        ConfigError names file_volume.volumes_dir.
        """
        error = self.assertRaises(ConfigError, FileVolumeDriver, Config())
        self.assertIn("file_volume.volumes_dir", str(error))

    def test_file_capacity_refused(self):
        """
        When capacity_gb is below 1, then ConfigError names it.
        """
        error = self.assertRaises(ConfigError, self.file_driver, capacity_gb=0)
        self.assertIn("file_volume.capacity_gb", str(error))

    def test_file_relative_dir(self):
        """
        When volumes_dir is relative, then it is taken from the working
        directory at start-up and kept absolute.
        """
        driver = FileVolumeDriver(Config().with_sections(file_volume={"volumes_dir": "vols"}))
        self.assertEqual(driver.volumes_dir, os.path.join(os.getcwd(), "vols"))
        self.assertEqual(driver.capacity_gb, 100)


class ExceptionTests(SynchronousTestCase):
    """
    L{novasvc.examples.volume.exceptions} cross the wire as themselves.
    """

    def test_message_and_kwargs(self):
        """
        When an error is made from keyword arguments, then its message is
        filled from them and they are kept as kwargs and attributes.
        """
        error = VolumeNotFound(volume_id="v1")
        self.assertEqual(str(error), "Volume v1 could not be found.")
        self.assertEqual((error.kwargs, error.volume_id), ({"volume_id": "v1"}, "v1"))

    def test_missing_detail(self):
        """
        When a detail of the message is missing, then the template is the
        message (no error while making the error).
        """
        self.assertEqual(str(VolumeNotFound()), VolumeNotFound.msg_fmt)

    def test_round_trip(self):
        """
        When an error is serialized as a failure reply and rebuilt by a
        caller allowing the module, then it is the same class with the same
        kwargs; a caller that does not allow it gets a RemoteError.
        """
        data = wire.serialize_failure(VolumeNotFound(volume_id="v1"))
        error = wire.deserialize_failure(data, ["novasvc.examples.volume.exceptions"])
        self.assertIsInstance(error, VolumeNotFound)
        self.assertIsInstance(error, VolumeError)
        self.assertEqual(error.kwargs, {"volume_id": "v1"})
        self.assertTrue(str(error).startswith("Volume v1 could not be found."))
        other = wire.deserialize_failure(data, [])
        self.assertNotIsInstance(other, VolumeError)
        self.assertEqual(other.exc_type, "VolumeNotFound")
