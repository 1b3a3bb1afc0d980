"""
Interoperability of the volume example's versioned objects with unmodified
oslo.messaging peers over the local RabbitMQ, both ways: an oslo RPCClient
with oslo.versionedobjects' serializer calling a novasvc volume service,
and L{novasvc.examples.volume.rpcapi.VolumeAPI} calling oslo RPCServers
that serve the same API (one of them a release behind, knowing Volume 1.0
only). The oslo side runs in a subprocess (C{tests/_oslo_volume_peer.py}).
Each test has its own topic and host. The novasvc side uses
the default AMQP client only: C{tests/test_rpc_interop.py} runs the wire
format on both clients, and objects change only the messages' contents.
"""

import json
import os
import random
import sys
import uuid

from oslo_versionedobjects.exception import IncompatibleObjectVersion
from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from novasvc.config import Config, DatabaseConfig
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.volume.exceptions import VolumeNotFound
from novasvc.examples.volume.manager import VolumeManager
from novasvc.examples.volume.objects import Volume
from novasvc.examples.volume.rpcapi import VolumeAPI
from novasvc.rpc.errors import RemoteError
from novasvc.core.service import Service
from novasvc.transport.url import TransportURL
from tests._services import require_service
from tests.test_rpc_interop import URL, _Amqp, _peer_env, _PeerServer, _require_oslo

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_oslo_volume_peer.py")
DATA = "novasvc_volume_object.data"


class _Unique:
    def unique(self):
        """
        Require RabbitMQ and oslo.messaging, choose the exchange and this
        test's topic and host, and delete the topic's queues at the end.
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        _require_oslo()
        unique = uuid.uuid4().hex[:8]
        # One exchange for every run (nothing deletes exchanges), a topic
        # and host of this test's own.
        self.exchange = "novasvc-volume-interop"
        self.topic = f"volume-interop-{unique}"
        self.host = f"vol-{unique}"
        self.admin = self.transport()
        self.addCleanup(self.remove_queues)

    def remove_queues(self):
        """
        Delete the topic queues of this test's server, which outlive it (as
        oslo's).
        """
        return defer.gatherResults([self.admin.delete_queue(queue)
                                    for queue in (self.topic, f"{self.topic}.{self.host}")])

    def volume_api(self, **kwargs):
        config = Config(control_exchange=self.exchange)
        return VolumeAPI(self.transport(), config=config, topic=self.topic, timeout=20,
                         clock=reactor, **kwargs)


class OsloClientToVolumeServiceTests(_Unique, _Amqp, TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.unique()
        config = Config(host=self.host, control_exchange=self.exchange, periodic_fuzzy_delay=0,
                        database=DatabaseConfig(connection="sqlite://"))
        service = Service.create(manager=VolumeManager, topic=self.topic, config=config,
                                 store=MemoryServiceStore(), transport=self.service_transport(),
                                 clock=reactor, rng=random.Random(1))
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.startService()
        self.manager = service.manager

    def service_transport(self):
        # Started and stopped by the service.
        return self.transport_class(TransportURL.parse(URL), reactor=reactor)

    @defer.inlineCallbacks
    def test_objects_both_ways(self):
        """
        When an oslo client with the example's VersionedObjectSerializer
        creates, gets, lists and deletes volumes on a novasvc volume
        service, then it gets Volume 1.1 objects with their fields, the
        service takes the Volume it sends, a second delete raises
        VolumeNotFound (oslo's remote subclass of it), and a Volume of a
        newer version than the service knows raises
        IncompatibleObjectVersion likewise (the service keeping the volume
        and serving on).
        """
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, [PEER, "client", URL, self.exchange, self.topic, self.host],
            env=_peer_env())
        self.assertEqual(code, 0, err.decode())
        steps = {line["step"]: line for line in map(json.loads, out.decode().splitlines())}
        created = steps["create"]["ok"]
        self.assertEqual((created["class"], created["version"]), ("Volume", "1.1"))
        self.assertEqual((created["fields"]["host"], created["fields"]["size_gb"],
                          created["fields"]["name"], created["fields"]["status"]),
                         (self.host, 2, "from-oslo", "available"))
        self.assertEqual(steps["get"]["ok"], created)
        self.assertEqual(steps["list"]["ok"], [created])
        too_new = steps["too_new"]
        self.assertIn("oslo_versionedobjects.exception.IncompatibleObjectVersion", too_new["mro"])
        self.assertIn("1.99", too_new["message"])
        self.assertEqual(steps["delete"], {"step": "delete", "ok": None})
        self.assertIn("novasvc.examples.volume.exceptions.VolumeNotFound",
                      steps["delete_again"]["mro"])
        self.assertEqual(steps["list_after"]["ok"], [])
        self.assertEqual(self.manager.driver.volumes, {})


class VolumeAPIToOsloServerTests(_Unique, _Amqp, TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def serve(self, volume_version):
        """
        Start an oslo volume server on this test's topic and host.

        @param volume_version: C{"1.1"} (the example's objects, API 1.3) or
            C{"1.0"} (the release before: Volume 1.0, API 1.2).
        """
        self.unique()
        peer = _PeerServer()
        process = reactor.spawnProcess(
            peer, sys.executable,
            [sys.executable, PEER, "server", URL, self.exchange, self.topic, self.host,
             volume_version], env=_peer_env())

        def stop_peer():
            process.closeStdin()
            return peer.ended

        self.addCleanup(stop_peer)
        yield peer.ready

    @defer.inlineCallbacks
    def test_current_server(self):
        """
        When VolumeAPI calls an oslo server of the same release, then it
        gets Volume objects back (with their name), the server gets the
        Volume 1.1 each delete sends, and its VolumeNotFound (the second
        delete) comes back as itself.
        """
        yield self.serve("1.1")
        api = self.volume_api()
        volume = yield api.create_volume({}, 3, host=self.host, name="to-oslo")
        self.assertIsInstance(volume, Volume)
        self.assertEqual((volume.VERSION, volume.host, volume.size_gb, volume.name),
                         ("1.1", self.host, 3, "to-oslo"))
        self.assertEqual((yield api.get_volume({}, volume.id, host=self.host)), volume)
        self.assertEqual((yield api.list_volumes({}, host=self.host)), [volume])
        yield api.delete_volume({}, volume)
        error = yield self.assertFailure(api.delete_volume({}, volume), VolumeNotFound)
        self.assertEqual(error.volume_id, volume.id)
        deleted = yield self.deleted_volumes(api)
        self.assertEqual([(d["version"], d["fields"]["name"]) for d in deleted],
                         [("1.1", "to-oslo")] * 2)

    @defer.inlineCallbacks
    def test_capped_to_release_before(self):
        """
        When VolumeAPI capped at 1.2 calls an oslo server that knows Volume
        1.0 only, then it reads the server's Volume 1.0 objects, and the
        Volume it deletes reaches the server as Volume 1.0 without name.
        """
        yield self.serve("1.0")
        api = self.volume_api(version_cap="1.2")
        volume = yield api.create_volume({}, 1, host=self.host)
        self.assertEqual((volume.VERSION, volume.host, volume.obj_attr_is_set("name")),
                         ("1.0", self.host, False))
        self.assertEqual((yield api.list_volumes({}, host=self.host)), [volume])
        # Made newer on this side (a Volume 1.1 with a name), then deleted.
        newer = Volume.from_record({**{f: getattr(volume, f) for f in volume.fields
                                       if volume.obj_attr_is_set(f)}, "name": "dropped"})
        yield api.delete_volume({}, newer)
        deleted = yield self.deleted_volumes(api)
        self.assertEqual([(d["version"], sorted(d["fields"])) for d in deleted],
                         [("1.0", sorted(set(Volume.fields) - {"name"}))])

    @defer.inlineCallbacks
    def test_release_before_refuses_newer(self):
        """
        When a server knowing Volume 1.0 only is called without the cap,
        then VolumeAPI's delete fails with UnsupportedVersion; and a Volume
        1.1 sent at API 1.2 without backporting gets the server's
        IncompatibleObjectVersion (as itself, to VolumeAPI's client), while
        the server serves on.
        """
        yield self.serve("1.0")
        api = self.volume_api()
        volume = yield api.create_volume({}, 1, host=self.host)
        error = yield self.assertFailure(api.delete_volume({}, volume), RemoteError)
        self.assertEqual(error.exc_type, "UnsupportedVersion")

        unbackported = api.client.prepare(version="1.2", server=self.host)
        newer = Volume.from_record({**{f: getattr(volume, f) for f in volume.fields
                                       if volume.obj_attr_is_set(f)}, "name": "n"})
        error = yield self.assertFailure(
            unbackported.call({}, "delete_volume", volume=newer), IncompatibleObjectVersion)
        self.assertIn("Version 1.1 of Volume is not supported", str(error))
        self.assertEqual((yield api.get_stats({}, host=self.host))["volume_count"], 1)

    def deleted_volumes(self, api):
        """
        @return: a C{Deferred} firing with what the oslo server's
            delete_volume got (version and fields of each Volume).
        """
        return api.client.prepare(server=self.host).call({}, "deleted_volumes")

