"""
Tests for L{novasvc.cli._drivers}: C{novasvc-manage drivers} through
L{novasvc.cli.manage.main}.
"""

from tests._manage import _ManageTestCase


class DriversTests(_ManageTestCase):
    """
    C{drivers}: the choices of each C{DriverOpt}.
    """

    def test_volume(self) -> None:
        """
        When the volume example's file is given, then each installed driver
        of its entry point group is listed with its path and section, the
        chosen one marked.
        """
        path = self.write_config("volume_manager: novasvc.examples.volume.manager.VolumeManager\n"
                                 "volume:\n  driver: file\n"
                                 "file_volume:\n  volumes_dir: /srv/volumes\n")
        out = self.ok("drivers", "-c", path)
        lines = [" ".join(line.split()) for line in out.splitlines()]
        self.assertIn("| Option | Name | Driver | Section | Chosen |", lines)
        self.assertIn("| volume.driver | fake | novasvc.examples.volume.drivers.fake:"
                      "FakeVolumeDriver | fake_volume | |", lines)
        self.assertIn("| volume.driver | file | novasvc.examples.volume.drivers.file:"
                      "FileVolumeDriver | file_volume | yes |", lines)

    def test_manager_option_and_dotted_path(self) -> None:
        """
        When --manager names the manager and the default driver is a dotted
        path, then that path is listed as chosen, without a name.
        """
        out = self.ok("drivers", "--manager", "novasvc.examples.volume.manager.VolumeManager")
        lines = [" ".join(line.split()) for line in out.splitlines()]
        self.assertIn("| volume.driver | - | novasvc.examples.volume.drivers.FakeVolumeDriver "
                      "| fake_volume | yes |", lines)

    def test_no_manager(self) -> None:
        """
        When neither a file nor --manager names a manager, then one line
        says so and the exit status is 64.
        """
        self.assertEqual(self.failed(64, "drivers"), "novasvc-manage: error: no manager: give "
                                                     "--manager DOTTED.PATH or a configuration "
                                                     "file with a <topic>_manager key")
