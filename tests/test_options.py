"""
Tests for L{novasvc.options}.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface

from novasvc.options import REQUIRED, DriverOpt, OptionValueError


class IThing(Interface):
    """
    An interface for a driver option to name.
    """


class DriverOptTests(SynchronousTestCase):
    """
    L{DriverOpt} is written as the module docstring shows:
    C{DriverOpt(name, interface, default=..., help=...)}.
    """

    def test_interface_second(self) -> None:
        """
        When the interface is given as the second positional argument, then
        it is the option's interface, and its values are strings (dotted
        paths).
        """
        opt = DriverOpt("driver", IThing, default="pkg.mod.Driver", help="The driver.")
        self.assertEqual((opt.name, opt.interface, opt.type, opt.default, opt.help),
                         ("driver", IThing, str, "pkg.mod.Driver", "The driver."))
        self.assertEqual(opt.check("pkg.other:Driver"), "pkg.other:Driver")

    def test_required_by_default(self) -> None:
        """
        When no default is given, then the option is required.
        """
        opt = DriverOpt("driver", interface=IThing)
        self.assertIs(opt.default, REQUIRED)
        self.assertTrue(opt.required)

    def test_not_an_interface(self) -> None:
        """
        When the interface is not a zope interface (e.g. a type, as with
        L{novasvc.options.Opt}), then TypeError names the option.
        """
        error = self.assertRaises(TypeError, DriverOpt, "driver", str)
        self.assertIn("'driver'", str(error))

    def test_not_a_path(self) -> None:
        """
        When a value is not a dotted path, then it is refused.
        """
        opt = DriverOpt("driver", IThing, default=None)
        self.assertRaises(OptionValueError, opt.check, "not a path")
