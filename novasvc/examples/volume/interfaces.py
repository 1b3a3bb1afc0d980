# -*- test-case-name: tests.test_examples_volume_drivers -*-
"""
L{IVolumeDriver}: what the volume manager asks of a storage backend, as
Cinder's C{VolumeDriver} (the manager keeps the records, the driver the
bytes).

Units: sizes are whole B{GiB} (2**30 bytes) in names ending C{_gb}, and
B{bytes} in names ending C{_bytes}. Every method returns a C{Deferred} and
never blocks the reactor thread: a driver whose backend blocks (files,
block devices, remote APIs through blocking clients) runs that work in a
thread (C{deferToThread}/C{deferToThreadPool}).

A driver is chosen by the C{driver} option of the manager's C{volume}
section and built by L{novasvc.core.manager.Manager.load_driver}, which offers
it C{config=} (the whole read-only L{novasvc.config.Config}); a driver
declares its own options (C{options}, C{config_section}) and reads them
with C{config.section(name)}. L{novasvc.examples.volume.testing} holds the
contract tests every driver should pass.
"""

from zope.interface import Interface

__all__ = ["IVolumeDriver"]


class IVolumeDriver(Interface):
    """
    A volume backend.

    A volume, as drivers report it, is a C{dict}::

        {"id": "6f1c...", "size_gb": 2, "location": "/var/lib/volumes/volume-6f1c....img"}

    where C{id} (C{str}) is the id the manager chose, C{size_gb} (C{int})
    the size in GiB and C{location} (C{str}) where the backend keeps it (a
    path, a URL), for humans and logs.

    Errors are the failures of the returned C{Deferred}s, of the classes in
    L{novasvc.examples.volume.exceptions}.
    """

    def check_for_setup_error():
        """
        Check that the backend can be used (directories exist or can be
        made, permissions, credentials), before the service takes requests;
        the manager calls it from C{init_host}, so a broken backend stops
        the service at start-up with the reason.

        @return: a C{Deferred} firing with C{None}.
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: (as the
            failure) naming what is wrong.
        """

    def create_volume(volume_id, size_gb):
        """
        Create a volume.

        @param volume_id: its id: letters, digits, C{-} and C{_}, starting
            with a letter or digit, at most 64 characters (a UUID fits).
        @type volume_id: C{str}
        @param size_gb: its size in B{GiB}, an C{int} >= 1.
        @return: a C{Deferred} firing with the volume (C{dict}, see
            above).
        @raise novasvc.examples.volume.exceptions.VolumeExists: the id is
            taken.
        @raise novasvc.examples.volume.exceptions.InsufficientCapacity: the
            free capacity is smaller than C{size_gb}.
        @raise novasvc.examples.volume.exceptions.InvalidVolume: the id or
            the size is not acceptable.
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the
            backend failed; nothing is left behind.
        """

    def delete_volume(volume_id):
        """
        Delete a volume and free its capacity.

        @param volume_id: its id.
        @type volume_id: C{str}
        @return: a C{Deferred} firing with C{None}.
        @raise novasvc.examples.volume.exceptions.VolumeNotFound: there is no
            such volume.
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the
            backend failed.
        """

    def list_volumes():
        """
        @return: a C{Deferred} firing with a C{list} of volumes (C{dict}s,
            see above), sorted by id.
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the
            backend failed.
        """

    def get_stats():
        """
        Report the backend's capacity, as Cinder's C{get_volume_stats}.

        @return: a C{Deferred} firing with a C{dict}:
            C{total_gb} (C{int}, GiB the backend may hand out),
            C{allocated_gb} (C{int}, GiB promised to volumes),
            C{free_gb} (C{int}, C{total_gb - allocated_gb}, never below 0),
            C{volume_count} (C{int}),
            C{used_bytes} (C{int}, bytes the volumes really occupy; a
            thin-provisioning backend reports less than their size) and
            C{driver} (C{str}, the driver's class name).
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the
            backend failed.
        """
