"""
What both volume drivers share: the checks of a volume id and a size, and
the driver's own configuration section.
"""

import re
from typing import Any, Optional

from novasvc.config.options import Section
from novasvc.examples.volume.exceptions import InvalidVolume

#: Bytes in one GiB.
GiB = 2 ** 30

VOLUME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_volume_id(volume_id: Any) -> str:
    """
    @return: C{volume_id}, when it is a usable id (see
        L{IVolumeDriver.create_volume
        <novasvc.examples.volume.interfaces.IVolumeDriver.create_volume>}).
    @raise InvalidVolume: otherwise.
    """
    if not (isinstance(volume_id, str) and VOLUME_ID.fullmatch(volume_id)):
        raise InvalidVolume(reason=f"volume id {volume_id!r} is not 1-64 letters, digits, "
                                   "'-' or '_' starting with a letter or digit")
    return volume_id


def check_size(size_gb: Any) -> int:
    """
    @return: C{size_gb}, when it is an C{int} >= 1 (GiB).
    @raise InvalidVolume: otherwise (C{True}, C{1.5} and C{"2"} included).
    """
    if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb < 1:
        raise InvalidVolume(reason=f"size {size_gb!r} is not a whole number of GiB >= 1")
    return size_gb


def own_section(driver: Any, config: Optional[Any]) -> Section:
    """
    The driver's section of C{config}: bound already when
    L{novasvc.core.manager.Manager.load_driver} built the driver, bound here
    when a test or a script passes a configuration made by hand.

    @param driver: the driver (declaring C{options} and C{config_section}).
    @param config: a L{novasvc.config.Config}, or C{None} for the defaults.
    @raise novasvc.exceptions.ConfigError: if the section's values are
        refused (e.g. a required option is missing).
    """
    if config is None:
        from novasvc.config import Config

        config = Config()
    return config.bind([driver]).section(driver.config_section)
