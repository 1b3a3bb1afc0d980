# -*- test-case-name: tests.test_examples_volume_rpcapi -*-
"""
L{VolumeAPI}: the client side of the volume service's RPC API, written the
way Nova writes C{nova.compute.rpcapi.ComputeAPI}: one method per remote
method, each choosing the version it sends and, when the version cap does
not allow it, the older form that a not-yet-upgraded service understands.
"""

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred

from novasvc.examples.volume.exceptions import VolumeNotFound
from novasvc.interfaces import ITransport
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target

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

    A rolling upgrade sets C{version_cap} to the version the oldest volume
    service speaks (Nova's C{[upgrade_levels] compute}), then lifts it once
    every service is upgraded.

    Every method takes the request context first and an optional C{host}:
    the request goes to the service on that host (C{prepare(server=host)}),
    else to any volume service. A volume lives on one host, so methods
    naming a volume should give its C{host} (the C{host} key of the dict
    L{create_volume} returns) when several hosts serve the topic.

    Errors of the volume service come back as the classes of
    L{novasvc.examples.volume.exceptions} (e.g. C{VolumeNotFound}); a call
    without a reply in time fails with
    L{novasvc.rpc.errors.MessagingTimeout}.

    @ivar client: the L{RPCClient} (target C{Target(topic="volume",
        version="1.0")}).
    """

    #: The newest version this client knows.
    VERSION = "1.1"

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
        @param version_cap: the newest version to send (C{"1.0"} or
            C{"1.1"}); C{None}: no cap.
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
        exmods = tuple(dict.fromkeys([*config.allowed_remote_exmods, EXCEPTIONS_MODULE]))
        self.client = RPCClient(
            transport, Target(topic=topic, version="1.0"), timeout=timeout,
            version_cap=version_cap, control_exchange=config.control_exchange,
            allowed_remote_exmods=exmods, rpc_response_timeout=config.rpc_response_timeout,
            transient_queues_ttl=config.transient_queues_ttl,
            durable_queues=config.durable_queues, clock=clock,
        )

    def _prepare(self, version: str, host: Optional[str]) -> RPCClient:
        if host is None:
            return self.client.prepare(version=version)
        return self.client.prepare(version=version, server=host)

    def create_volume(self, ctxt: Any, size_gb: Optional[int] = None,
                      host: Optional[str] = None) -> "Deferred[Dict[str, Any]]":
        """
        Create a volume (since 1.0).

        @param size_gb: its size in B{GiB}; C{None}: the service's
            C{default_size_gb}.
        @param host: the host to create it on; C{None}: any.
        @return: a C{Deferred} firing with the volume (C{dict}: C{id},
            C{host}, C{size_gb}, C{status}, C{location}, C{created_at}), or
            failing with C{InvalidVolume}, C{InsufficientCapacity},
            C{VolumeDriverError} or C{MessagingTimeout}.
        """
        return self._prepare("1.0", host).call(ctxt, "create_volume", size_gb=size_gb)

    def delete_volume(self, ctxt: Any, volume_id: str,
                      host: Optional[str] = None) -> "Deferred[None]":
        """
        Delete a volume (since 1.0), and wait until it is gone.

        @param host: the volume's host.
        @return: a C{Deferred} firing with C{None}, or failing with
            C{VolumeNotFound}, C{InvalidVolume} (busy) or
            C{VolumeDriverError}.
        """
        return self._prepare("1.0", host).call(ctxt, "delete_volume", volume_id=volume_id)

    def list_volumes(self, ctxt: Any, host: Optional[str] = None
                     ) -> "Deferred[List[Dict[str, Any]]]":
        """
        List the volumes of one host (since 1.0).

        @param host: the host; C{None}: whichever service takes the call.
        @return: a C{Deferred} firing with a C{list} of volumes (C{dict}s),
            oldest first.
        """
        return self._prepare("1.0", host).call(ctxt, "list_volumes")

    def get_volume(self, ctxt: Any, volume_id: str,
                   host: Optional[str] = None) -> "Deferred[Dict[str, Any]]":
        """
        Get one volume (1.1; under a 1.0 cap, through C{list_volumes}).

        @param host: the volume's host.
        @return: a C{Deferred} firing with the volume (C{dict}), or failing
            with C{VolumeNotFound}.
        """
        if self.client.can_send_version("1.1"):
            return self._prepare("1.1", host).call(ctxt, "get_volume", volume_id=volume_id)
        d = self._prepare("1.0", host).call(ctxt, "list_volumes")
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


def _pick(listed: List[Dict[str, Any]], volume_id: str) -> Dict[str, Any]:
    for volume in listed:
        if volume.get("id") == volume_id:
            return volume
    raise VolumeNotFound(volume_id=volume_id)
