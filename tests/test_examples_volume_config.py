"""
Tests for C{etc/volume.yaml}, the configuration of the volume example.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import load_config
from novasvc.db.api import Database
from novasvc.examples.volume.drivers import FakeVolumeDriver, FileVolumeDriver
from novasvc.examples.volume.manager import VolumeManager
from novasvc.exceptions import ConfigError
from novasvc.process.tap import Options

VOLUME_YAML = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "etc", "volume.yaml")


class VolumeYamlTests(SynchronousTestCase):
    def test_defaults(self):
        """
        When etc/volume.yaml is loaded without environment variables, then
        it runs the volume manager with the file driver on the local
        RabbitMQ, an SQLite file, and a volumes directory, all relative to
        the working directory.
        """
        config = load_config(VOLUME_YAML, environ={})
        self.assertEqual(config.manager_for("volume"),
                         "novasvc.examples.volume.manager.VolumeManager")
        self.assertEqual(config.transport_url, "rabbit://guest:guest@localhost:5672/")
        self.assertEqual(config.database.connection, "sqlite:///volume.sqlite")
        self.assertIn("novasvc.examples.volume.exceptions", config.allowed_remote_exmods)
        bound = config.bind([VolumeManager], default_section="volume")
        self.assertEqual(dict(bound.section("volume")), {"driver": "file", "default_size_gb": 1})
        self.assertEqual(dict(bound.section("file_volume")),
                         {"volumes_dir": "volumes", "capacity_gb": 100})

    def test_switch_driver_one_edit(self):
        """
        When the file's volume.driver is changed from file to fake and
        nothing else, then the manager built from it has the fake driver,
        and the file driver's section left in the file is accepted.
        """
        with open(VOLUME_YAML, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("  driver: file\n", text)
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("  driver: file\n", "  driver: fake\n"))
        config = load_config(path, environ={})
        manager = VolumeManager(host="h", service_name="volume", config=config,
                                db=Database(connection="sqlite://"))
        self.assertIsInstance(manager.driver, FakeVolumeDriver)
        self.assertEqual(manager.driver.capacity_gb, 100)

    def test_unchosen_section_validated(self):
        """
        When the section of the driver not chosen has a wrong value, then
        the bind refuses it naming the key and saying the driver is not
        chosen.
        """
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("volume:\n  driver: file\nfile_volume:\n  volumes_dir: v\n"
                    "fake_volume:\n  capacity_gb: lots\n")
        error = self.assertRaises(ConfigError, load_config(path).bind, [VolumeManager], "volume")
        self.assertIn(f"{path}, line 6: fake_volume.capacity_gb: expected an integer >= 1",
                      str(error))
        self.assertIn("driver 'fake' of novasvc.volume.drivers, installed but not chosen",
                      str(error))

    def test_environment(self):
        """
        When the environment names the broker, database, volumes directory
        and capacity, then the manager built from the file has a file
        driver using them.
        """
        volumes_dir = os.path.abspath(self.mktemp())
        config = load_config(VOLUME_YAML, environ={
            "NOVASVC_TRANSPORT_URL": "memory://volume-test",
            "NOVASVC_DATABASE_CONNECTION": "sqlite://",
            "NOVASVC_VOLUMES_DIR": volumes_dir,
            "NOVASVC_VOLUMES_CAPACITY_GB": "7",
        })
        self.assertEqual((config.transport_url, config.database.connection),
                         ("memory://volume-test", "sqlite://"))
        manager = VolumeManager(host="h", service_name="volume", config=config,
                                db=Database(connection="sqlite://"))
        self.assertIsInstance(manager.driver, FileVolumeDriver)
        self.assertEqual((manager.driver.volumes_dir, manager.driver.capacity_gb), (volumes_dir, 7))

    def test_bad_capacity(self):
        """
        When the capacity from the environment is not an integer, then the
        bind refuses it naming the file, line and key.
        """
        config = load_config(VOLUME_YAML, environ={"NOVASVC_VOLUMES_CAPACITY_GB": "lots"})
        error = self.assertRaises(ConfigError, config.bind, [VolumeManager], "volume")
        self.assertIn(f"{VOLUME_YAML}, line", str(error))
        self.assertIn("file_volume.capacity_gb", str(error))

    def test_twistd_options(self):
        """
        When twistd's options name the file and overrides, then the
        overrides win over the file.
        """
        options = Options()
        options.parseOptions(["--config", VOLUME_YAML, "--host", "vol-1",
                              "--database-connection", "sqlite:///other.sqlite"])
        self.assertEqual((options.settings.host, options.settings.database.connection),
                         ("vol-1", "sqlite:///other.sqlite"))
        self.assertEqual(options.settings.manager_for("volume"),
                         "novasvc.examples.volume.manager.VolumeManager")
