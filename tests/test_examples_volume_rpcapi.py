"""
Tests for L{novasvc.examples.volume.rpcapi.VolumeAPI}: versions, the
version cap and its fallbacks, object backports, routing to one host, and
errors, against volume services on the memory transport (some of them still
at an older API, as during a rolling upgrade).
"""

import datetime

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.config import Config
from novasvc.context import RequestContext
from novasvc.examples.volume.exceptions import VolumeNotFound
from novasvc.examples.volume.manager import VolumeManager
from novasvc.examples.volume.objects import Volume
from novasvc.examples.volume.rpcapi import EXCEPTIONS_MODULE, VolumeAPI
from novasvc.rpc.errors import RemoteError, RPCVersionCapError
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import NoOpSerializer
from novasvc.transport.memory import MemoryTransport
from tests.test_examples_volume_manager import VolumeServiceMixin


def _as_dict(volume):
    """
    @return: the volume C{dict} of API 1.0.
    """
    return volume.obj_to_primitive(target_version="1.0")["novasvc_volume_object.data"]


class OldVolumeManager(VolumeManager):
    """
    A volume service not upgraded yet: it speaks API 1.0 only, with volumes
    as C{dict}s and no object serializer.
    """

    target = Target(version="1.0")
    serializer = NoOpSerializer

    async def create_volume(self, ctxt, size_gb=None):
        return _as_dict(await VolumeManager.create_volume(self, ctxt, size_gb))

    async def delete_volume(self, ctxt, volume_id):
        return await VolumeManager.delete_volume(self, ctxt, volume_id=volume_id)

    async def list_volumes(self, ctxt):
        return [_as_dict(volume) for volume in await VolumeManager.list_volumes(self, ctxt)]


class Volume10Manager(VolumeManager):
    """
    A volume service at API 1.2: it takes Volume objects, of version 1.0
    (it records the version and fields of each volume it is given).
    """

    target = Target(version="1.2")

    def __init__(self, *args, **kwargs):
        VolumeManager.__init__(self, *args, **kwargs)
        self.received = []

    async def delete_volume(self, ctxt, volume_id=None, volume=None):
        self.received.append((volume.VERSION, volume.obj_attr_is_set("name")))
        return await VolumeManager.delete_volume(self, ctxt, volume_id, volume)


class VersionTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_get_volume_at_1_1(self):
        """
        When there is no cap and the service speaks 1.1, then get_volume
        asks for the volume itself.
        """
        yield self.start()
        volume = yield self.api.create_volume({}, 1)
        self.assertEqual((yield self.api.get_volume({}, volume.id)), volume)

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
        list_volumes by an old service: the volume (a Volume made from the
        service's dict, without a name), or VolumeNotFound.
        """
        yield self.start(manager=OldVolumeManager)
        api = self.volume_api(version_cap="1.0")
        self.assertFalse(api.client.can_send_version("1.1"))
        volume = yield api.create_volume({}, 1)
        self.assertIsInstance(volume, Volume)
        self.assertEqual((volume.size_gb, volume.name), (1, None))
        yield api.create_volume({}, 2)
        self.assertEqual((yield api.get_volume({}, volume.id)), volume)
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
        When the cap is 1.0, then create, list and delete (by id) work with
        an old service and a new one, and volumes are Volume objects (Volume
        1.1 from the new service).
        """
        for manager, host in ((OldVolumeManager, "old"), (VolumeManager, "new")):
            yield self.start(manager=manager, host=host)
            api = self.volume_api(version_cap="1.0")
            volume = yield api.create_volume({}, 1, host=host)
            self.assertIsInstance(volume, Volume)
            if host == "new":
                self.assertEqual(volume.VERSION, "1.1")
            self.assertEqual((yield api.list_volumes({}, host=host)), [volume])
            yield api.delete_volume({}, volume)
            self.assertEqual((yield api.list_volumes({}, host=host)), [])


class ObjectVersionTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_backported_under_1_2_cap(self):
        """
        When the cap is 1.2 and the service speaks 1.2 (Volume 1.0), then
        a Volume 1.1 is sent as Volume 1.0, without its name, and the
        delete works.
        """
        yield self.start(manager=Volume10Manager)
        api = self.volume_api(version_cap="1.2")
        volume = yield api.create_volume({}, 1)
        volume.name = "set by the caller"
        yield api.delete_volume({}, volume)
        self.assertEqual(self.manager.received, [("1.0", False)])
        self.assertEqual((yield api.list_volumes({})), [])

    @defer.inlineCallbacks
    def test_no_cap_against_1_2_service(self):
        """
        When there is no cap and the service speaks only 1.2, then a delete
        (which carries a Volume 1.1, at 1.3) fails with the service's
        UnsupportedVersion: why a rolling upgrade sets the cap.
        """
        yield self.start(manager=Volume10Manager)
        volume = yield self.api.create_volume({}, 1)
        error = yield self.assertFailure(self.api.delete_volume({}, volume), RemoteError)
        self.assertEqual(error.exc_type, "UnsupportedVersion")
        self.assertEqual(self.manager.received, [])

    @defer.inlineCallbacks
    def test_name_needs_1_3(self):
        """
        When the cap is below 1.3, then create_volume with a name fails with
        RPCVersionCapError and sends nothing; without a name it works.
        """
        yield self.start(manager=Volume10Manager)
        api = self.volume_api(version_cap="1.2")
        published = []
        original = MemoryTransport.publish

        def publish(transport, *args, **kwargs):
            published.append(args)
            return original(transport, *args, **kwargs)

        self.patch(MemoryTransport, "publish", publish)
        yield self.assertFailure(api.create_volume({}, 1, name="n"), RPCVersionCapError)
        self.assertEqual(published, [])
        self.assertIsNone((yield api.create_volume({}, 1)).name)

    @defer.inlineCallbacks
    def test_object_at_1_3(self):
        """
        When there is no cap, then a Volume goes as Volume 1.1 and its
        name reaches the service.
        """
        yield self.start()
        received = []
        original = VolumeManager.delete_volume

        async def delete_volume(manager, ctxt, volume_id=None, volume=None):
            received.append((volume.VERSION, volume.name))
            return await original(manager, ctxt, volume_id, volume)

        self.patch(VolumeManager, "delete_volume", delete_volume)
        volume = yield self.api.create_volume({}, 1, name="kept")
        yield self.api.delete_volume({}, volume)
        self.assertEqual(received, [("1.1", "kept")])


class RoutingTests(VolumeServiceMixin, TestCase):
    @defer.inlineCallbacks
    def test_host(self):
        """
        When two hosts serve the topic, then a call naming a host goes to
        that host only, and a delete goes to the volume's host unless told
        otherwise.
        """
        yield self.start(host="h1")
        yield self.start(host="h2")
        for _ in range(3):
            volume = yield self.api.create_volume({}, 1, host="h2")
            self.assertEqual(volume.host, "h2")
        self.assertEqual((yield self.api.list_volumes({}, host="h1")), [])
        self.assertEqual(len((yield self.api.list_volumes({}, host="h2"))), 3)
        yield self.assertFailure(self.api.delete_volume({}, volume, host="h1"), VolumeNotFound)
        yield self.api.delete_volume({}, volume)
        stats = yield self.api.get_stats({}, host="h2")
        self.assertEqual((stats["host"], stats["volume_count"]), ("h2", 2))


class ConstructionTests(SynchronousTestCase):
    def transport(self):
        return MemoryTransport(clock=object())

    def test_defaults(self):
        """
        When built without configuration, then the client targets topic
        volume at 1.0 on the openstack exchange, without a cap, and allows
        the example's exceptions module and oslo.versionedobjects'.
        """
        api = VolumeAPI(self.transport())
        self.assertEqual((api.client.target.topic, api.client.target.version), ("volume", "1.0"))
        self.assertIsNone(api.client.version_cap)
        self.assertEqual(api.client.allowed_remote_exmods,
                         (EXCEPTIONS_MODULE, "oslo_versionedobjects.exception"))
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
        self.assertEqual(api.client.allowed_remote_exmods,
                         ("myproj.exceptions", EXCEPTIONS_MODULE, "oslo_versionedobjects.exception"))
        self.assertEqual((api.client.version_cap, api.client.timeout), ("1.1", 2))
        self.assertEqual(api.client._control_exchange, "nova")
        self.assertTrue(api.client.can_send_version("1.1"))

    def test_bad_cap(self):
        """
        When the version cap is not a version, then ValueError.
        """
        self.assertRaises(ValueError, VolumeAPI, self.transport(), version_cap="one")

    def test_serializer_follows_cap(self):
        """
        When the cap is 1.2, then the client's serializer writes a Volume as
        version 1.0; without a cap, or with 1.3, as 1.1; and it reads the
        context as a RequestContext.
        """
        volume = Volume.from_record({"id": "v1", "host": "h1", "size_gb": 1, "name": "n",
                                     "status": "available", "location": None,
                                     "created_at": datetime.datetime(1970, 1, 1)})
        for cap, expected in (("1.2", "1.0"), ("1.3", "1.1"), (None, "1.1"), ("1.1", "1.1")):
            serializer = VolumeAPI(self.transport(), version_cap=cap).client.serializer
            sent = serializer.serialize_entity({}, volume)
            self.assertEqual(sent["novasvc_volume_object.version"], expected, cap)
        self.assertIsInstance(serializer.deserialize_context({"user_id": "u"}), RequestContext)
