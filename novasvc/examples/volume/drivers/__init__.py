"""
The volume example's drivers, chosen by the C{driver} option of the
C{volume} section:

  - L{FakeVolumeDriver} (C{novasvc.examples.volume.drivers.FakeVolumeDriver},
    the default): in memory;
  - L{FileVolumeDriver} (C{novasvc.examples.volume.drivers.FileVolumeDriver}):
    sparse files in a directory.
"""

from novasvc.examples.volume.drivers.fake import FakeVolumeDriver
from novasvc.examples.volume.drivers.file import FileVolumeDriver

__all__ = ["FakeVolumeDriver", "FileVolumeDriver"]
