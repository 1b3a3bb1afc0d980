"""
Unmodified oslo.messaging peers of the volume example, exchanging Volume
objects through oslo.versionedobjects' C{VersionedObjectSerializer}; run as
subprocesses by C{tests/test_examples_volume_interop.py}.

  python _oslo_volume_peer.py client URL EXCHANGE TOPIC HOST
      Calls the volume service on HOST with an oslo RPCClient and the
      example's serializer, and prints one JSON line per step:
      {"step": name, "ok": result} or {"step": name, "error": class,
      "module": ..., "message": ..., "mro": ["module.class", ...]}.

  python _oslo_volume_peer.py server URL EXCHANGE TOPIC HOST VOLUME_VERSION
      Serves the volume API with an oslo RPCServer (threading executor),
      prints READY once consuming, and stops when stdin closes.
      VOLUME_VERSION "1.1": the example's own objects module (API 1.3);
      "1.0": a service of the release before, which knows Volume 1.0 only
      (API 1.2), with classes of its own declaring the same namespaces.
"""

import datetime
import json
import sys
import threading
import uuid

import oslo_messaging as om
from oslo_versionedobjects import base, fields

from novasvc.examples.volume.exceptions import VolumeNotFound
from tests._oslo_peer import _transport, serve

EXMODS = ["novasvc.examples.volume.exceptions", "oslo_versionedobjects.exception"]


def _example_objects():
    """
    @return: (Volume, serializer class, RPC API version) of the example.
    """
    from novasvc.examples.volume import objects

    return objects.Volume, objects.VolumeObjectSerializer, "1.3"


def _release_before_objects():
    """
    @return: (Volume, serializer class, RPC API version) as the release
        before had them: Volume 1.0, no name, API 1.2.
    """

    class OldRegistry(base.VersionedObjectRegistry):
        pass

    class OldObject(base.VersionedObject):
        OBJ_SERIAL_NAMESPACE = "novasvc_volume_object"
        OBJ_PROJECT_NAMESPACE = "novasvc_volume"

    @OldRegistry.register
    class Volume(OldObject):
        VERSION = "1.0"
        fields = {
            "id": fields.StringField(),
            "host": fields.StringField(),
            "size_gb": fields.IntegerField(),
            "status": fields.EnumField(valid_values=("creating", "available", "deleting", "error")),
            "location": fields.StringField(nullable=True),
            "created_at": fields.DateTimeField(),
        }

    class OldSerializer(base.VersionedObjectSerializer):
        OBJ_BASE_CLASS = OldObject

    return Volume, OldSerializer, "1.2"


def _described(volume):
    """
    @return: what the test checks of a volume: its class, version and
        fields (JSON values).
    """
    data = volume.obj_to_primitive()["novasvc_volume_object.data"]
    return {"class": type(volume).__name__, "version": volume.VERSION, "fields": data}


class VolumeEndpoint:
    """
    The volume API kept in memory, with the objects of one release.
    """

    def __init__(self, volume_class, version, host):
        self.Volume = volume_class
        self.target = om.Target(version=version)
        self.host = host
        self.volumes = {}
        self.deleted = []
        self.lock = threading.Lock()

    def _new(self, values):
        volume = self.Volume()
        for name, value in values.items():
            if name in self.Volume.fields:
                setattr(volume, name, value)
        volume.obj_reset_changes()
        return volume

    def create_volume(self, ctxt, size_gb=None, name=None):
        values = {"id": str(uuid.uuid4()), "host": self.host, "size_gb": size_gb or 1,
                  "status": "available", "location": "oslo://memory", "name": name,
                  "created_at": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)}
        with self.lock:
            volume = self.volumes[values["id"]] = self._new(values)
        return volume

    def get_volume(self, ctxt, volume_id):
        with self.lock:
            if volume_id not in self.volumes:
                raise VolumeNotFound(volume_id=volume_id)
            return self.volumes[volume_id]

    def list_volumes(self, ctxt):
        with self.lock:
            return list(self.volumes.values())

    def delete_volume(self, ctxt, volume_id=None, volume=None):
        if volume is not None:
            if not isinstance(volume, self.Volume):
                raise TypeError(f"volume is a {type(volume).__name__}, not a Volume")
            volume_id = volume.id
            self.deleted.append(_described(volume))
        with self.lock:
            if self.volumes.pop(volume_id, None) is None:
                raise VolumeNotFound(volume_id=volume_id)

    def get_stats(self, ctxt):
        return {"total_gb": 10, "allocated_gb": 0, "free_gb": 10, "volume_count": len(self.volumes),
                "used_bytes": 0, "driver": "oslo-peer", "host": self.host}

    def deleted_volumes(self, ctxt):
        """
        @return: the version and fields of each Volume delete_volume got.
        """
        return list(self.deleted)


def client(url, exchange, topic, host):
    Volume, Serializer, _ = _example_objects()
    transport = _transport(url, exchange, EXMODS)
    rpc = om.get_rpc_client(transport, om.Target(topic=topic, server=host), timeout=20,
                            serializer=Serializer())
    ctxt = {"user_id": "oslo-user", "project_id": "p1"}

    def step(label, version, method, **kwargs):
        result = None
        try:
            result = rpc.prepare(version=version).call(ctxt, method, **kwargs)
        except Exception as e:
            out = {"error": type(e).__name__, "module": type(e).__module__, "message": str(e),
                   "mro": [c.__module__ + "." + c.__name__ for c in type(e).__mro__]}
        else:
            if isinstance(result, list):
                out = {"ok": [_described(v) if isinstance(v, Volume) else v for v in result]}
            else:
                out = {"ok": _described(result) if isinstance(result, Volume) else result}
        print(json.dumps({"step": label, **out}), flush=True)
        return result

    try:
        volume = step("create", "1.3", "create_volume", size_gb=2, name="from-oslo")
        step("get", "1.1", "get_volume", volume_id=volume.id)
        step("list", "1.0", "list_volumes")
        too_new = volume.obj_to_primitive()
        too_new["novasvc_volume_object.version"] = "1.99"
        step("too_new", "1.3", "delete_volume", volume=too_new)
        step("delete", "1.3", "delete_volume", volume=volume)
        step("delete_again", "1.3", "delete_volume", volume=volume)
        step("list_after", "1.0", "list_volumes")
    finally:
        transport.cleanup()


def server(url, exchange, topic, host, volume_version):
    chosen = _example_objects if volume_version == "1.1" else _release_before_objects
    Volume, Serializer, api_version = chosen()
    transport = _transport(url, exchange)
    endpoint = VolumeEndpoint(Volume, api_version, host)
    rpc = om.get_rpc_server(transport, om.Target(topic=topic, server=host), [endpoint],
                            executor="threading", serializer=Serializer())
    serve(rpc, transport)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"client": client, "server": server}[mode](*args)
