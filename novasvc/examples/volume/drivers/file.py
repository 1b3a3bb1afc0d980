# -*- test-case-name: tests.test_examples_volume_drivers -*-
"""
L{FileVolumeDriver}: one sparse file per volume in a directory, made with
C{ftruncate}, so a 100 GiB volume takes no disk space until written to.

Every file system call runs in the reactor's thread pool
(C{deferToThreadPool}); the reactor thread only schedules and collects.
"""

import os
import re
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from twisted.internet.defer import Deferred, DeferredLock, fail
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from novasvc.config.options import Opt
from novasvc.examples.volume.drivers._common import (
    VOLUME_ID,
    GiB,
    check_size,
    check_volume_id,
    own_section,
)
from novasvc.examples.volume.exceptions import (
    InsufficientCapacity,
    VolumeDriverError,
    VolumeExists,
    VolumeNotFound,
)
from novasvc.examples.volume.interfaces import IVolumeDriver

__all__ = ["FileVolumeDriver"]

_T = TypeVar("_T")
_FILE = re.compile(rf"volume-({VOLUME_ID.pattern})\.img")


@implementer(IVolumeDriver)
class FileVolumeDriver:
    """
    An L{IVolumeDriver} keeping volume C{<id>} as the sparse file
    C{<volumes_dir>/volume-<id>.img} of exactly C{size_gb} GiB (its
    C{st_size}); the volume's C{location} is that path.

    Capacity is thin-provisioned: the sizes of the volumes add up to at
    most C{capacity_gb}, whatever the file system's free space, and
    C{get_stats} reports the space the files really take as C{used_bytes}
    (C{st_blocks}). Files of the directory that are not named like a
    volume are ignored.

    Creates and deletes run one at a time (a L{DeferredLock}), so the
    capacity check and the creation are atomic within one process; two
    processes must not share a directory.

    Configuration, section C{file_volume}::

        file_volume:
          volumes_dir: /var/lib/novasvc/volumes   # required; made if missing
          capacity_gb: 100

    @ivar volumes_dir: the directory (C{str}, absolute).
    @ivar capacity_gb: GiB of volumes it may hold (C{int}).
    """

    config_section = "file_volume"
    options = (
        Opt("volumes_dir", str,
            help="Directory holding one sparse file per volume; made at start-up if missing."),
        Opt("capacity_gb", int, default=100, minimum=1,
            help="GiB of volumes the directory may hold (thin: the files are sparse)."),
    )

    def __init__(self, config: Optional[Any] = None, reactor: Optional[Any] = None) -> None:
        """
        @param config: a L{novasvc.config.Config} (the manager offers its
            own) giving the C{file_volume} section.
        @param reactor: provides C{IReactorThreads}, whose thread pool runs
            the file system calls; default: the global reactor, when first
            needed.
        @raise novasvc.exceptions.ConfigError: if the C{file_volume}
            section is refused (C{volumes_dir} is required).
        """
        section = own_section(self, config)
        self.volumes_dir: str = os.path.abspath(section.volumes_dir)
        self.capacity_gb: int = section.capacity_gb
        self._reactor = reactor
        self._lock = DeferredLock()

    def __repr__(self) -> str:
        return f"<FileVolumeDriver {self.volumes_dir} ({self.capacity_gb} GiB)>"

    def _in_thread(self, work: Callable[..., _T], *args: Any) -> "Deferred[_T]":
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), work, *args)

    def check_for_setup_error(self) -> Deferred:
        """
        See L{IVolumeDriver.check_for_setup_error}: makes C{volumes_dir}
        (and its parents) if missing, then checks that a file can be made
        and removed there.

        @raise VolumeDriverError: (as the failure) naming the directory and
            the reason.
        """
        return self._in_thread(self._check)

    def create_volume(self, volume_id: str, size_gb: int) -> Deferred:
        """
        See L{IVolumeDriver.create_volume}.
        """
        try:
            check_volume_id(volume_id)
            check_size(size_gb)
        except Exception:
            return fail()
        return self._lock.run(self._in_thread, self._create, volume_id, size_gb)

    def delete_volume(self, volume_id: str) -> Deferred:
        """
        See L{IVolumeDriver.delete_volume}.
        """
        if not (isinstance(volume_id, str) and VOLUME_ID.fullmatch(volume_id)):
            return fail(VolumeNotFound(volume_id=volume_id))
        return self._lock.run(self._in_thread, self._delete, volume_id)

    def list_volumes(self) -> Deferred:
        """
        See L{IVolumeDriver.list_volumes}.
        """
        return self._in_thread(self._list)

    def get_stats(self) -> Deferred:
        """
        See L{IVolumeDriver.get_stats}.
        """
        return self._in_thread(self._stats)

    # -- the blocking halves, run in a worker thread ----------------------

    def _path(self, volume_id: str) -> str:
        return os.path.join(self.volumes_dir, f"volume-{volume_id}.img")

    def _error(self, e: OSError, path: Optional[str] = None) -> VolumeDriverError:
        where = path or e.filename or self.volumes_dir
        return VolumeDriverError(reason=f"{where}: {e.strerror or e}")

    def _check(self) -> None:
        probe = os.path.join(self.volumes_dir, f".probe-{uuid.uuid4().hex}")
        try:
            os.makedirs(self.volumes_dir, exist_ok=True)
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
        except FileExistsError:
            raise VolumeDriverError(reason=f"{self.volumes_dir}: exists and is not a directory")
        except OSError as e:
            raise self._error(e, self.volumes_dir) from e

    def _scan(self) -> List[Tuple[str, os.stat_result]]:
        """
        @return: (volume id, stat) of each volume file, sorted by id.
        """
        found = []
        try:
            with os.scandir(self.volumes_dir) as entries:
                for entry in entries:
                    match = _FILE.fullmatch(entry.name)
                    if match and entry.is_file(follow_symlinks=False):
                        found.append((match.group(1), entry.stat(follow_symlinks=False)))
        except OSError as e:
            raise self._error(e, self.volumes_dir) from e
        return sorted(found)

    def _volume(self, volume_id: str, st: os.stat_result) -> Dict[str, Any]:
        return {"id": volume_id, "size_gb": st.st_size // GiB, "location": self._path(volume_id)}

    def _create(self, volume_id: str, size_gb: int) -> Dict[str, Any]:
        scanned = self._scan()
        if any(found == volume_id for found, _ in scanned):
            raise VolumeExists(volume_id=volume_id)
        free = max(0, self.capacity_gb - sum(st.st_size // GiB for _, st in scanned))
        if size_gb > free:
            raise InsufficientCapacity(size_gb=size_gb, free_gb=free)
        path = self._path(volume_id)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise VolumeExists(volume_id=volume_id) from None
        except OSError as e:
            raise self._error(e, path) from e
        try:
            try:
                os.ftruncate(fd, size_gb * GiB)
            finally:
                os.close(fd)
        except OSError as e:
            # Leave nothing behind: the volume does not exist.
            try:
                os.unlink(path)
            except OSError:
                pass
            raise self._error(e, path) from e
        return self._volume(volume_id, os.stat(path))

    def _delete(self, volume_id: str) -> None:
        path = self._path(volume_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise VolumeNotFound(volume_id=volume_id) from None
        except OSError as e:
            raise self._error(e, path) from e

    def _list(self) -> List[Dict[str, Any]]:
        return [self._volume(volume_id, st) for volume_id, st in self._scan()]

    def _stats(self) -> Dict[str, Any]:
        scanned = self._scan()
        allocated = sum(st.st_size // GiB for _, st in scanned)
        return {
            "total_gb": self.capacity_gb,
            "allocated_gb": allocated,
            "free_gb": max(0, self.capacity_gb - allocated),
            "volume_count": len(scanned),
            "used_bytes": sum(st.st_blocks * 512 for _, st in scanned),
            "driver": type(self).__name__,
        }
