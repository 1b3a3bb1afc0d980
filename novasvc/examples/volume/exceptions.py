# -*- test-case-name: tests.test_examples_volume_drivers -*-
"""
The errors of the volume example, raised by its drivers and its manager.

They cross the wire as themselves: a caller that lists
C{novasvc.examples.volume.exceptions} in C{allowed_remote_exmods} (as
L{novasvc.examples.volume.rpcapi.VolumeAPI} always does) gets the same class
back, with the same C{kwargs}; any other caller gets a
L{novasvc.rpc.errors.RemoteError} naming the class.

Each error is built from keyword arguments, as Nova's C{NovaException}:
C{VolumeNotFound(volume_id="v1")}. The message is the class's C{msg_fmt}
filled with them; the keyword arguments are kept as C{kwargs} (which the wire
carries) and as attributes (C{error.volume_id}).
"""

from typing import Any, Dict, Optional

__all__ = [
    "VolumeError",
    "VolumeNotFound",
    "VolumeExists",
    "InvalidVolume",
    "InsufficientCapacity",
    "VolumeDriverError",
]


class VolumeError(Exception):
    """
    Base class of the volume example's errors.

    @cvar msg_fmt: the message, a C{str.format} template over the keyword
        arguments.
    @ivar kwargs: the keyword arguments (C{dict}), sent over the wire.
    """

    msg_fmt = "A volume error occurred."

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        """
        @param message: the message; C{None} fills L{msg_fmt} from C{kwargs}.
        @param kwargs: the details, e.g. C{volume_id=}; JSON values, so that
            they survive the trip over the wire.
        """
        if message is None:
            try:
                message = self.msg_fmt.format(**kwargs)
            except (KeyError, IndexError, ValueError):
                # A caller forgot a detail: keep the template rather than fail.
                message = self.msg_fmt
        Exception.__init__(self, message)
        self.kwargs: Dict[str, Any] = dict(kwargs)
        for name, value in kwargs.items():
            setattr(self, name, value)


class VolumeNotFound(VolumeError):
    """
    No volume with this id (on this host, for the manager; in the backend,
    for a driver). Detail: C{volume_id} (C{str}).
    """

    msg_fmt = "Volume {volume_id} could not be found."


class VolumeExists(VolumeError):
    """
    A driver was asked to create a volume whose id it already has. Detail:
    C{volume_id} (C{str}).
    """

    msg_fmt = "Volume {volume_id} already exists."


class InvalidVolume(VolumeError):
    """
    A request the volume service refuses as it stands: a size that is not a
    whole number of GiB >= 1, an id a driver cannot use, or a volume in a
    state that does not allow the operation. Detail: C{reason} (C{str}).
    """

    msg_fmt = "Invalid volume: {reason}"


class InsufficientCapacity(VolumeError):
    """
    The backend has too little free capacity for a new volume. Details:
    C{size_gb} (requested, GiB) and C{free_gb} (left, GiB).
    """

    msg_fmt = "Cannot create a volume of {size_gb} GiB: only {free_gb} GiB free."


class VolumeDriverError(VolumeError):
    """
    The backend failed: it is not set up correctly (see
    L{IVolumeDriver.check_for_setup_error
    <novasvc.examples.volume.interfaces.IVolumeDriver.check_for_setup_error>})
    or an operation on it failed (e.g. an I/O error). Detail: C{reason}
    (C{str}).
    """

    msg_fmt = "Volume driver error: {reason}"
