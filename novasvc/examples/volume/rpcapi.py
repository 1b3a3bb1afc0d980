# -*- test-case-name: tests.test_examples_volume_rpcapi -*-
"""
L{VolumeAPI}: the client side of the volume service's RPC API, written the
way Nova writes C{nova.compute.rpcapi.ComputeAPI}: one method per remote
method, each choosing the version it sends and, when the version cap does
not allow it, the older form that a not-yet-upgraded service understands;
objects it sends are made compatible with the object versions the capped
API carries (L{VolumeAPI.OBJECT_VERSIONS}).
"""

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred

from novasvc.examples.volume.exceptions import VolumeNotFound
from novasvc.examples.volume.objects import Volume, VolumeObjectSerializer
from novasvc.interfaces import ITransport
from novasvc.objects import REMOTE_EXMODS, BackportingSerializer, versions_for_cap
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import RequestContextSerializer

__all__ = ["VolumeAPI", "EXCEPTIONS_MODULE"]

#: The module whose errors come back as themselves (always allowed).
EXCEPTIONS_MODULE = "novasvc.examples.volume.exceptions"


class VolumeAPI:
    """
    Client side of the volume RPC API (topic C{volume}).

    API version history::

        1.0 - Initial version: create_volume(size_gb), delete_volume(volume_id),
              list_volumes().
        1.1 - Add get_volume(volume_id) (under a 1.0 cap it falls back to
              list_volumes and picks the volume out) and get_stats() (which
              needs 1.1: under a 1.0 cap it fails with RPCVersionCapError).
        1.2 - Volumes are Volume objects (Volume 1.0): create_volume,
              get_volume and list_volumes return them; delete_volume takes
              volume (a Volume) instead of volume_id (under a cap below 1.2
              it sends the volume's id at 1.0).
        1.3 - Volume 1.1 (adds name); create_volume takes name (needs 1.3:
              under a lower cap it fails with RPCVersionCapError). Under a
              1.2 cap, volumes are sent as Volume 1.0 (without name).

    A rolling upgrade sets C{version_cap} to the version the oldest volume
    service speaks (Nova's C{[upgrade_levels] compute}), then lifts it once
    every service is upgraded.

    Every method takes the request context first. Methods that take a
    L{Volume} send the request to the volume's C{host}; the others take an
    optional C{host}: the request goes to the service on that host
    (C{prepare(server=host)}), else to any volume service. Volumes come
    back as L{Volume} objects whatever the service's version (a service
    older than 1.2 answers with C{dict}s, turned into L{Volume}s here).

    Errors of the volume service come back as the classes of
    L{novasvc.examples.volume.exceptions} (e.g. C{VolumeNotFound}), and
    those of oslo.versionedobjects as themselves (e.g.
    C{IncompatibleObjectVersion}: the service does not know the version
    of a Volume sent); a call without a reply in time fails with
    L{novasvc.rpc.errors.MessagingTimeout}.

    @ivar client: the L{RPCClient} (target C{Target(topic="volume",
        version="1.0")}), with the example's serializer.
    """

    #: The newest version this client knows.
    VERSION = "1.3"

    #: The object versions each API version carries, from the first that
    #: carried objects (see L{novasvc.objects.versions_for_cap}).
    OBJECT_VERSIONS: Dict[str, Dict[str, str]] = {
        "1.2": {"Volume": "1.0"},
        "1.3": {"Volume": "1.1"},
    }

    def __init__(self, transport: ITransport, *, config: Optional[Any] = None,
                 version_cap: Optional[str] = None, timeout: Optional[float] = None,
                 topic: str = "volume", clock: Optional[Any] = None) -> None:
        """
        @param transport: the broker connection (started and stopped by the
            caller), e.g. C{novasvc.transport.get_transport(url)}.
        @param config: a L{novasvc.config.Config} for C{control_exchange},
            C{rpc_response_timeout}, C{durable_queues},
            C{transient_queues_ttl} and C{allowed_remote_exmods}; C{None}:
            the defaults.
        @param version_cap: the newest version to send (C{"1.0"} to
            C{"1.3"}); C{None}: no cap. Under a cap of 1.2, L{Volume}s are
            sent as version 1.0.
        @param timeout: B{seconds} a call waits for its reply; C{None}:
            C{rpc_response_timeout}.
        @param topic: the volume service's topic.
        @param clock: C{IReactorTime} for call timeouts (default: the
            global reactor).
        @raise ValueError: if C{version_cap} is not a version.
        """
        if config is None:
            from novasvc.config import Config

            config = Config()
        exmods = tuple(dict.fromkeys([*config.allowed_remote_exmods, EXCEPTIONS_MODULE,
                                      *REMOTE_EXMODS]))
        objects: Any = VolumeObjectSerializer()
        manifest = versions_for_cap(self.OBJECT_VERSIONS, version_cap)
        if manifest is not None:
            objects = BackportingSerializer(objects, manifest)
        self.client = RPCClient(
            transport, Target(topic=topic, version="1.0"), timeout=timeout,
            version_cap=version_cap, control_exchange=config.control_exchange,
            allowed_remote_exmods=exmods, rpc_response_timeout=config.rpc_response_timeout,
            transient_queues_ttl=config.transient_queues_ttl,
            durable_queues=config.durable_queues, clock=clock,
            serializer=RequestContextSerializer(objects),
        )

    def _prepare(self, version: str, host: Optional[str]) -> RPCClient:
        if host is None:
            return self.client.prepare(version=version)
        return self.client.prepare(version=version, server=host)

    def create_volume(self, ctxt: Any, size_gb: Optional[int] = None,
                      host: Optional[str] = None, name: Optional[str] = None
                      ) -> "Deferred[Volume]":
        """
        Create a volume (since 1.0; with a C{name}, 1.3).

        @param size_gb: its size in B{GiB}; C{None}: the service's
            C{default_size_gb}.
        @param host: the host to create it on; C{None}: any.
        @param name: a name for humans, or C{None}.
        @return: a C{Deferred} firing with the L{Volume}, or failing with
            C{InvalidVolume}, C{InsufficientCapacity}, C{VolumeDriverError},
            C{MessagingTimeout}, or L{novasvc.rpc.errors.RPCVersionCapError}
            for a C{name} under a cap below 1.3 (nothing is sent).
        """
        if name is None:
            d = self._prepare("1.0", host).call(ctxt, "create_volume", size_gb=size_gb)
        else:
            d = self._prepare("1.3", host).call(ctxt, "create_volume", size_gb=size_gb, name=name)
        return d.addCallback(_as_volume)

    def delete_volume(self, ctxt: Any, volume: Volume, host: Optional[str] = None
                      ) -> "Deferred[None]":
        """
        Delete a volume, and wait until it is gone: sends the L{Volume}
        (1.3; under a 1.2 cap, made compatible with Volume 1.0), or under a
        lower cap its id (1.0).

        @param volume: the L{Volume}.
        @param host: the host to ask; C{None}: the volume's C{host}.
        @return: a C{Deferred} firing with C{None}, or failing with
            C{VolumeNotFound}, C{InvalidVolume} (busy) or
            C{VolumeDriverError}.
        """
        prepared_host = volume.host if host is None else host
        if self.client.can_send_version("1.2"):
            version = "1.3" if self.client.can_send_version("1.3") else "1.2"
            return self._prepare(version, prepared_host).call(ctxt, "delete_volume", volume=volume)
        return self._prepare("1.0", prepared_host).call(ctxt, "delete_volume", volume_id=volume.id)

    def list_volumes(self, ctxt: Any, host: Optional[str] = None
                     ) -> "Deferred[List[Volume]]":
        """
        List the volumes of one host (since 1.0).

        @param host: the host; C{None}: whichever service takes the call.
        @return: a C{Deferred} firing with a C{list} of L{Volume}s, oldest
            first.
        """
        d = self._prepare("1.0", host).call(ctxt, "list_volumes")
        return d.addCallback(lambda listed: [_as_volume(volume) for volume in listed])

    def get_volume(self, ctxt: Any, volume_id: str,
                   host: Optional[str] = None) -> "Deferred[Volume]":
        """
        Get one volume (1.1; under a 1.0 cap, through C{list_volumes}).

        @param host: the volume's host.
        @return: a C{Deferred} firing with the L{Volume}, or failing with
            C{VolumeNotFound}.
        """
        if self.client.can_send_version("1.1"):
            d = self._prepare("1.1", host).call(ctxt, "get_volume", volume_id=volume_id)
            return d.addCallback(_as_volume)
        d = self.list_volumes(ctxt, host)
        d.addCallback(_pick, volume_id)
        return d

    def get_stats(self, ctxt: Any, host: Optional[str] = None) -> "Deferred[Dict[str, Any]]":
        """
        Get a host's capacity now (1.1).

        @param host: the host; C{None}: whichever service takes the call.
        @return: a C{Deferred} firing with the driver's report (C{dict}:
            C{total_gb}, C{allocated_gb}, C{free_gb}, C{volume_count},
            C{used_bytes}, C{driver}, C{host}), or failing with
            L{novasvc.rpc.errors.RPCVersionCapError} under a 1.0 cap.
        """
        return self._prepare("1.1", host).call(ctxt, "get_stats")


def _as_volume(value: Any) -> Volume:
    """
    @return: C{value} if it is a L{Volume}, else the L{Volume} of a volume
        C{dict} of API 1.0 (a service older than 1.2 answered).
    """
    if isinstance(value, Volume):
        return value
    return Volume.from_record(value)


def _pick(listed: List[Volume], volume_id: str) -> Volume:
    for volume in listed:
        if volume.id == volume_id:
            return volume
    raise VolumeNotFound(volume_id=volume_id)
