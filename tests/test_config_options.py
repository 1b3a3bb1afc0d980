"""
Tests for L{novasvc.config.options}.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface

from novasvc.config.options import (
    REQUIRED,
    DriverOpt,
    Opt,
    OptionError,
    OptionValueError,
    Section,
    build_section,
    declared_options,
)


def _where(key: str) -> str:
    return f"f.yaml, line 3: volume.{key}"


def _suggest(key: str, known) -> str:
    return f" (known: {', '.join(known)})"


class OptTests(SynchronousTestCase):
    """
    L{Opt.check} keeps good values and refuses bad ones with what was expected.
    """

    def test_types(self) -> None:
        """
        When values of each type are checked, then matching ones are kept
        (floats as C{float}, lists as C{tuple}) and others refused.
        """
        self.assertEqual(Opt("a", str).check("x"), "x")
        self.assertEqual(Opt("a", int).check(3), 3)
        self.assertEqual(Opt("a", float).check(3), 3.0)
        self.assertIsInstance(Opt("a", float).check(3), float)
        self.assertIs(Opt("a", bool).check(False), False)
        self.assertEqual(Opt("a", list).check(["x", "y"]), ("x", "y"))
        for opt, bad in [(Opt("a", str), ""), (Opt("a", str), 3), (Opt("a", int), True),
                         (Opt("a", int), 1.5), (Opt("a", float), float("nan")),
                         (Opt("a", bool), "yes"), (Opt("a", list), [1]), (Opt("a", list), "x")]:
            self.assertRaises(OptionValueError, opt.check, bad)

    def test_choicesAndMinimum(self) -> None:
        """
        When an option has choices or a minimum, then values outside are
        refused and the message says what was expected.
        """
        choice = Opt("mode", str, default="a", choices=["a", "b"])
        self.assertEqual(choice.check("b"), "b")
        error = self.assertRaises(OptionValueError, choice.check, "c")
        self.assertEqual(error.args[0], "one of 'a', 'b'")
        size = Opt("size", int, default=1, minimum=1)
        error = self.assertRaises(OptionValueError, size.check, 0)
        self.assertEqual(error.args[0], "an integer >= 1")

    def test_nullDefault(self) -> None:
        """
        When the default is C{None}, then C{null} is accepted; otherwise it
        is refused.
        """
        self.assertIsNone(Opt("a", int, default=None).check(None))
        self.assertRaises(OptionValueError, Opt("a", int, default=1).check, None)

    def test_required(self) -> None:
        """
        When no default is given, then the option is required.
        """
        self.assertTrue(Opt("a").required)
        self.assertIs(Opt("a").default, REQUIRED)
        self.assertFalse(Opt("a", default="x").required)

    def test_badDeclaration(self) -> None:
        """
        When an option is declared with a name that is not an identifier or
        an unsupported type, then C{TypeError} is raised.
        """
        self.assertRaises(TypeError, Opt, "not a name")
        self.assertRaises(TypeError, Opt, "a", dict)

    def test_driverOpt(self) -> None:
        """
        When a L{DriverOpt} is checked, then a dotted path is kept and
        anything else refused.
        """
        opt = DriverOpt("driver", Interface, default="a.b.C")
        self.assertEqual(opt.check("pkg.mod.Driver"), "pkg.mod.Driver")
        self.assertRaises(OptionValueError, opt.check, "not a path")
        self.assertRaises(OptionValueError, opt.check, 3)


class SectionTests(SynchronousTestCase):
    """
    L{Section} is a read-only mapping with attribute access.
    """

    def test_access(self) -> None:
        """
        When a section is read, then keys are items and attributes.
        """
        section = Section("volume", {"driver": "a.B", "size": 2})
        self.assertEqual(section.name, "volume")
        self.assertEqual(section["size"], 2)
        self.assertEqual(section.driver, "a.B")
        self.assertEqual(dict(section), {"driver": "a.B", "size": 2})
        error = self.assertRaises(AttributeError, getattr, section, "missing")
        self.assertIn("'volume' has no option 'missing'", str(error))

    def test_readOnly(self) -> None:
        """
        When an attribute or item is set, then it is refused.
        """
        section = Section("volume", {"size": 2})
        self.assertRaises(AttributeError, setattr, section, "size", 3)
        with self.assertRaises(TypeError):
            section["size"] = 3  # type: ignore[index]

    def test_reprHidesSecrets(self) -> None:
        """
        When a section has a secret option, then its C{repr} shows C{***}.
        """
        section = Section("s", {"user": "me", "password": "s3cret"}, secret=["password"])
        self.assertNotIn("s3cret", repr(section))
        self.assertIn("password=***", repr(section))

    def test_equalityAndHash(self) -> None:
        """
        When two sections have the same name and values, then they are
        equal and hash alike.
        """
        self.assertEqual(Section("a", {"x": 1}), Section("a", {"x": 1}))
        self.assertEqual(hash(Section("a", {"x": 1})), hash(Section("a", {"x": 1})))
        self.assertNotEqual(Section("a", {"x": 1}), Section("b", {"x": 1}))


class DeclaredOptionsTests(SynchronousTestCase):
    """
    L{declared_options} reads what a component declares.
    """

    def test_none(self) -> None:
        """
        When a component declares no options, then there is no section.
        """
        self.assertEqual(declared_options(object()), (None, ()))

    def test_sectionName(self) -> None:
        """
        When a component declares options, then its C{config_section} names
        the section, or the default when it has none.
        """
        class Named:
            config_section = "vol"
            options = (Opt("a", default="x"),)

        class Unnamed:
            options = [Opt("a", default="x")]

        self.assertEqual(declared_options(Named, "other")[0], "vol")
        self.assertEqual(declared_options(Unnamed, "volume"), ("volume", (Opt("a", default="x"),)))
        error = self.assertRaises(TypeError, declared_options, Unnamed)
        self.assertIn("no 'config_section'", str(error))

    def test_badOptions(self) -> None:
        """
        When C{options} is not a sequence of L{Opt} or names an option twice,
        then C{TypeError} says so.
        """
        class NotOpts:
            config_section = "x"
            options = ("a",)

        class Twice:
            config_section = "x"
            options = (Opt("a", default=1, type=int), Opt("a", default=2, type=int))

        self.assertIn("sequence of novasvc.config.options.Opt",
                      str(self.assertRaises(TypeError, declared_options, NotOpts)))
        self.assertIn("'a' is declared twice",
                      str(self.assertRaises(TypeError, declared_options, Twice)))


class BuildSectionTests(SynchronousTestCase):
    """
    L{build_section} validates one section's values.
    """

    options = (DriverOpt("driver", Interface, default="a.B"), Opt("size", int, minimum=1),
               Opt("password", default="x", secret=True))

    def test_defaults(self) -> None:
        """
        When optional keys are missing, then their defaults are filled in,
        in declaration order.
        """
        section = build_section("volume", self.options, {"size": 3}, _where, _suggest)
        self.assertEqual(list(section.items()),
                         [("driver", "a.B"), ("size", 3), ("password", "x")])

    def test_unknownKey(self) -> None:
        """
        When a key is not declared, then L{OptionError} names its place and
        the suggestion.
        """
        error = self.assertRaises(OptionError, build_section, "volume", self.options,
                                  {"size": 1, "sise": 2}, _where, _suggest)
        self.assertEqual(str(error), "f.yaml, line 3: volume.sise: unknown key "
                                     "(known: driver, size, password)")

    def test_wrongType(self) -> None:
        """
        When a value has the wrong type, then the message says what was
        expected and what was given; a secret is not shown.
        """
        error = self.assertRaises(OptionError, build_section, "volume", self.options,
                                  {"size": "big"}, _where, _suggest)
        self.assertEqual(str(error), "f.yaml, line 3: volume.size: expected an integer >= 1, "
                                     "got 'big'")
        error = self.assertRaises(OptionError, build_section, "volume", self.options,
                                  {"size": 1, "password": 3}, _where, _suggest)
        self.assertNotIn("3", str(error).split("got")[1])

    def test_requiredMissing(self) -> None:
        """
        When a required key is missing, then L{OptionError} says so.
        """
        error = self.assertRaises(OptionError, build_section, "volume", self.options, {},
                                  _where, _suggest)
        self.assertEqual(str(error), "f.yaml, line 3: volume.size: required, and not given")


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
        L{novasvc.config.options.Opt}), then TypeError names the option.
        """
        error = self.assertRaises(TypeError, DriverOpt, "driver", str)
        self.assertIn("'driver'", str(error))

    def test_not_a_path(self) -> None:
        """
        When a value is not a dotted path, then it is refused.
        """
        opt = DriverOpt("driver", IThing, default=None)
        self.assertRaises(OptionValueError, opt.check, "not a path")
