"""
End-to-end test of the volume example: C{twistd -n novasvc --config
etc/volume.yaml} as a process on the local RabbitMQ, called through a real
L{novasvc.examples.volume.rpcapi.VolumeAPI}, making real sparse files.
"""

import os
import signal
import sqlite3
import uuid

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from novasvc.config import Config
from novasvc.examples.volume.exceptions import VolumeNotFound
from novasvc.examples.volume.rpcapi import VolumeAPI
from novasvc.transport import get_transport
from tests._services import poll, require_service
from tests.test_examples_volume_config import VOLUME_YAML
from tests.test_core_service_process import TwistdProcessMixin

RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"
GiB = 2 ** 30


class VolumeProcessTests(TwistdProcessMixin, TestCase):
    timeout = 120

    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)
        unique = uuid.uuid4().hex[:8]
        # A topic of its own, so that no other volume service on this
        # broker shares its queues.
        self.topic = f"volume_{unique}"
        self.exchange = f"novasvc-volume-{unique}"
        self.host = f"vol-{unique}"
        self.volumes_dir = os.path.abspath(self.mktemp())
        self.dbpath = os.path.abspath(self.mktemp()) + ".sqlite"

    def start_volume_service(self):
        return self.start_twistd(
            "--config", VOLUME_YAML, "--topic", self.topic,
            "--manager", "novasvc.examples.volume.manager.VolumeManager",
            "--host", self.host, "--control-exchange", self.exchange,
            "--database-connection", f"sqlite:///{self.dbpath}", "--periodic-fuzzy-delay", "0",
            env={"NOVASVC_TRANSPORT_URL": RABBIT_URL, "NOVASVC_VOLUMES_DIR": self.volumes_dir,
                 "NOVASVC_VOLUMES_CAPACITY_GB": "10"},
        )

    def volume_api(self):
        transport = get_transport(RABBIT_URL)
        transport.start()
        self.addCleanup(transport.stop)
        # The service's topic queues outlive it (as oslo's): remove them.
        for queue in (self.topic, f"{self.topic}.{self.host}"):
            self.addCleanup(transport.delete_queue, queue)
        return VolumeAPI(transport, config=Config(control_exchange=self.exchange),
                         topic=self.topic, timeout=20)

    def rows(self):
        db = sqlite3.connect(self.dbpath)
        try:
            return db.execute("SELECT id, host, size_gb, status FROM volumes").fetchall()
        finally:
            db.close()

    @defer.inlineCallbacks
    def test_create_list_delete_then_sigterm(self):
        """
        When twistd runs etc/volume.yaml and a VolumeAPI creates a volume on
        its host, then a sparse file of that many GiB exists in the
        configured directory and a row in the volumes table; listing, the
        stats and a delete work over RabbitMQ with Volume objects, errors
        come back as the example's own classes, and SIGTERM ends the
        service with status 0; its log has no warning about eventlet (which
        oslo.versionedobjects imports).
        """
        process = self.start_volume_service()
        yield poll(lambda: "is ready" in self.output(), "the volume service is ready",
                   interval=0.1)
        api = self.volume_api()

        volume = yield api.create_volume({}, 2, host=self.host, name="data")
        self.assertEqual((volume.host, volume.size_gb, volume.status, volume.name),
                         (self.host, 2, "available", "data"))
        path = os.path.join(self.volumes_dir, f"volume-{volume.id}.img")
        self.assertEqual(volume.location, path)
        st = os.stat(path)
        self.assertEqual(st.st_size, 2 * GiB)
        self.assertLess(st.st_blocks * 512, GiB)
        self.assertEqual(self.rows(), [(volume.id, self.host, 2, "available")])

        self.assertEqual((yield api.list_volumes({}, host=self.host)), [volume])
        self.assertEqual((yield api.get_volume({}, volume.id, host=self.host)), volume)
        stats = yield api.get_stats({}, host=self.host)
        self.assertEqual((stats["total_gb"], stats["allocated_gb"], stats["driver"]),
                         (10, 2, "FileVolumeDriver"))

        yield api.delete_volume({}, volume)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(self.rows(), [])
        error = yield self.assertFailure(api.delete_volume({}, volume), VolumeNotFound)
        self.assertEqual(error.volume_id, volume.id)

        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        self.assertEqual(code, 0, self.output())
        self.assertNotIn("guest:guest", self.output())
        self.assertNotIn("Eventlet is deprecated", self.output())

    @defer.inlineCallbacks
    def test_broken_driver_stops_start(self):
        """
        When the volumes directory cannot be made (its parent is a file),
        then the service does not start: it exits non-zero, logging the
        driver's error naming the directory.
        """
        with open(os.path.abspath(self.mktemp()), "w") as parent:
            parent.write("not a directory")
        self.volumes_dir = os.path.join(parent.name, "volumes")
        process = self.start_volume_service()
        code = yield self.wait_exit(process)
        self.assertNotEqual(code, 0)
        self.assertIn("VolumeDriverError", self.output())
        self.assertIn(self.volumes_dir, self.output())
