"""
Tests for L{novasvc.examples.volume.rpcapi.VolumeAPI}: versions, the
version cap and its fallbacks, routing to one host, and errors, against
volume services on the memory transport (one of them still at API 1.0, as
during a rolling upgrade).
"""

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.config import Config
from novasvc.examples.volume.exceptions import VolumeNotFound
from novasvc.examples.volume.manager import VolumeManager
from novasvc.examples.volume.rpcapi import EXCEPTIONS_MODULE, VolumeAPI
from novasvc.rpc.errors import RemoteError, RPCVersionCapError
from novasvc.rpc.target import Target
from novasvc.transport.memory import MemoryTransport
from tests.test_examples_volume_manager import VolumeServiceMixin


class OldVolumeManager(VolumeManager):
    """
    A volume service not upgraded yet: it speaks API 1.0 only.
    """

    target = Target(version="1.0")


class VersionTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_get_volume_at_1_1(self):
        """
        When there is no cap and the service speaks 1.1, then get_volume
        asks for the volume itself.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 1)
        self.assertEqual((yield self.api.get_volume({}, volume["id"])), volume)

    @defer.inlineCallbacks
    def test_old_service_needs_cap(self):
        """
        When the service speaks only 1.0 and the client has no cap, then
        get_volume fails with the service's UnsupportedVersion: why a
        rolling upgrade sets the cap.
        """
        yield self.start(manager=OldVolumeManager)
        error = yield self.assertFailure(self.api.get_volume({}, "v"), RemoteError)
        self.assertEqual(error.exc_type, "UnsupportedVersion")

    @defer.inlineCallbacks
    def test_get_volume_fallback(self):
        """
        When the cap is 1.0, then get_volume is answered from the 1.0
        list_volumes by an old service: the volume, or VolumeNotFound.
        """
        yield self.start(manager=OldVolumeManager)
        api = self.volume_api(version_cap="1.0")
        self.assertFalse(api.client.can_send_version("1.1"))
        volume = yield api.create_volume({}, 1)
        yield api.create_volume({}, 2)
        self.assertEqual((yield api.get_volume({}, volume["id"])), volume)
        error = yield self.assertFailure(api.get_volume({}, "nope"), VolumeNotFound)
        self.assertEqual(error.volume_id, "nope")

    @defer.inlineCallbacks
    def test_get_stats_capped(self):
        """
        When the cap is 1.0, then get_stats fails with RPCVersionCapError
        and sends nothing.
        """
        yield self.start(manager=OldVolumeManager)
        api = self.volume_api(version_cap="1.0")
        published = []
        self.patch(MemoryTransport, "publish", lambda *args, **kwargs: published.append(args))
        yield self.assertFailure(api.get_stats({}), RPCVersionCapError)
        self.assertEqual(published, [])

    @defer.inlineCallbacks
    def test_1_0_methods_under_cap(self):
        """
        When the cap is 1.0, then create, list and delete work with a new
        service too.
        """
        yield self.start()
        api = self.volume_api(version_cap="1.0")
        volume = yield api.create_volume({}, 1)
        self.assertEqual((yield api.list_volumes({})), [volume])
        yield api.delete_volume({}, volume["id"])
        self.assertEqual((yield api.list_volumes({})), [])


class RoutingTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_host(self):
        """
        When two hosts serve the topic, then a call naming a host goes to
        that host only.
        """
        yield self.start(host="h1")
        yield self.start(host="h2")
        for _ in range(3):
            volume = yield self.api.create_volume({}, 1, host="h2")
            self.assertEqual(volume["host"], "h2")
        self.assertEqual((yield self.api.list_volumes({}, host="h1")), [])
        self.assertEqual(len((yield self.api.list_volumes({}, host="h2"))), 3)
        yield self.assertFailure(self.api.delete_volume({}, volume["id"], host="h1"),
                                 VolumeNotFound)
        yield self.api.delete_volume({}, volume["id"], host="h2")
        stats = yield self.api.get_stats({}, host="h2")
        self.assertEqual((stats["host"], stats["volume_count"]), ("h2", 2))


class ConstructionTests(SynchronousTestCase):
    def transport(self):
        return MemoryTransport(clock=object())

    def test_defaults(self):
        """
        When built without configuration, then the client targets topic
        volume at 1.0 on the openstack exchange, without a cap, and allows
        the example's exceptions module.
        """
        api = VolumeAPI(self.transport())
        self.assertEqual((api.client.target.topic, api.client.target.version), ("volume", "1.0"))
        self.assertIsNone(api.client.version_cap)
        self.assertEqual(api.client.allowed_remote_exmods, (EXCEPTIONS_MODULE,))
        self.assertEqual(VolumeAPI.VERSION, VolumeManager.target.version)

    def test_config(self):
        """
        When built with a configuration, then the client takes its exchange
        and timeout from it, and adds the example's module to its
        allowed_remote_exmods once.
        """
        config = Config(control_exchange="nova", rpc_response_timeout=5,
                        allowed_remote_exmods=("myproj.exceptions", EXCEPTIONS_MODULE))
        api = VolumeAPI(self.transport(), config=config, version_cap="1.1", timeout=2)
        self.assertEqual(api.client.allowed_remote_exmods, ("myproj.exceptions", EXCEPTIONS_MODULE))
        self.assertEqual((api.client.version_cap, api.client.timeout), ("1.1", 2))
        self.assertEqual(api.client._control_exchange, "nova")
        self.assertTrue(api.client.can_send_version("1.1"))

    def test_bad_cap(self):
        """
        When the version cap is not a version, then ValueError.
        """
        self.assertRaises(ValueError, VolumeAPI, self.transport(), version_cap="one")
