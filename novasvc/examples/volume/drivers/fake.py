# -*- test-case-name: tests.test_examples_volume_drivers -*-
"""
L{FakeVolumeDriver}: volumes kept in memory, as Nova's C{FakeDriver}: the
default driver of the volume example, for tests and demonstrations.
"""

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from novasvc.config.options import Opt
from novasvc.examples.volume.drivers._common import check_size, check_volume_id, own_section
from novasvc.examples.volume.exceptions import (
    InsufficientCapacity,
    VolumeExists,
    VolumeNotFound,
)
from novasvc.examples.volume.interfaces import IVolumeDriver

__all__ = ["FakeVolumeDriver"]


@implementer(IVolumeDriver)
class FakeVolumeDriver:
    """
    An L{IVolumeDriver} whose volumes are entries of a C{dict}: nothing is
    stored, nothing blocks, every C{Deferred} has fired on return. Volumes
    take no real space (C{used_bytes} is C{0}) and their C{location} is
    C{fake://<id>}.

    Configuration, section C{fake_volume}::

        fake_volume:
          capacity_gb: 100     # GiB it may hand out

    @ivar capacity_gb: GiB it may hand out (C{int}).
    @ivar volumes: volume id -> size in GiB (C{dict}); tests may look.
    """

    config_section = "fake_volume"
    options = (
        Opt("capacity_gb", int, default=100, minimum=1,
            help="GiB of volumes the fake backend may hand out."),
    )

    def __init__(self, config: Optional[Any] = None) -> None:
        """
        @param config: a L{novasvc.config.Config} (the manager offers its
            own); C{None} for the defaults.
        @raise novasvc.exceptions.ConfigError: if the C{fake_volume}
            section is refused.
        """
        self.capacity_gb: int = own_section(self, config).capacity_gb
        self.volumes: Dict[str, int] = {}

    def check_for_setup_error(self) -> Deferred:
        """
        See L{IVolumeDriver.check_for_setup_error}: always fine.
        """
        return succeed(None)

    def create_volume(self, volume_id: str, size_gb: int) -> Deferred:
        """
        See L{IVolumeDriver.create_volume}.
        """
        try:
            check_volume_id(volume_id)
            check_size(size_gb)
            if volume_id in self.volumes:
                raise VolumeExists(volume_id=volume_id)
            free = self._free_gb()
            if size_gb > free:
                raise InsufficientCapacity(size_gb=size_gb, free_gb=free)
        except Exception:
            return fail()
        self.volumes[volume_id] = size_gb
        return succeed(self._volume(volume_id))

    def delete_volume(self, volume_id: str) -> Deferred:
        """
        See L{IVolumeDriver.delete_volume}.
        """
        if not isinstance(volume_id, str) or self.volumes.pop(volume_id, None) is None:
            return fail(VolumeNotFound(volume_id=volume_id))
        return succeed(None)

    def list_volumes(self) -> Deferred:
        """
        See L{IVolumeDriver.list_volumes}.
        """
        volumes: List[Dict[str, Any]] = [self._volume(v) for v in sorted(self.volumes)]
        return succeed(volumes)

    def get_stats(self) -> Deferred:
        """
        See L{IVolumeDriver.get_stats}.
        """
        allocated = sum(self.volumes.values())
        return succeed({
            "total_gb": self.capacity_gb,
            "allocated_gb": allocated,
            "free_gb": self._free_gb(),
            "volume_count": len(self.volumes),
            "used_bytes": 0,
            "driver": type(self).__name__,
        })

    def _free_gb(self) -> int:
        return max(0, self.capacity_gb - sum(self.volumes.values()))

    def _volume(self, volume_id: str) -> Dict[str, Any]:
        return {"id": volume_id, "size_gb": self.volumes[volume_id],
                "location": f"fake://{volume_id}"}
