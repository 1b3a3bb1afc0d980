"""
Tests for L{novasvc.config.loader}.
"""

import importlib
import os
import sys
import textwrap
import uuid

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Attribute, Interface, implementer

from novasvc.config.loader import driver_aliases, is_dotted_path, load_driver, load_object, resolve_driver
from novasvc.exceptions import LoadError
from tests._entry_points import install_entry_points


class IGreeter(Interface):
    """
    A small driver interface for these tests.
    """

    greeting = Attribute("The word used to greet (C{str}).")

    def greet(name):
        """
        @return: a greeting for C{name}.
        """


class ICounter(Interface):
    """
    A second interface, never provided.
    """

    def count():
        """
        @return: an C{int}.
        """


GOOD_DRIVERS = """
from zope.interface import implementer, moduleProvides
from tests.test_config_loader import IGreeter

moduleProvides(IGreeter)
greeting = "hi"

def greet(name):
    return "hi " + name

@implementer(IGreeter)
class Greeter:
    def __init__(self, greeting="hello", punctuation=""):
        self.greeting = greeting + punctuation

    def greet(self, name):
        return self.greeting + " " + name

    class Nested:
        pass

def make_greeter(greeting):
    return Greeter(greeting)

def broken_factory():
    raise RuntimeError("no greeter today")

shared = Greeter("shared")

@implementer(IGreeter)
class NoAttribute:
    def greet(self, name):
        return name

@implementer(IGreeter)
class WrongSignature:
    greeting = "x"
    def greet(self):
        return ""

class Undeclared:
    greeting = "x"
    def greet(self, name):
        return name

@implementer(IGreeter)
class Empty:
    pass
"""


class LoadObjectTests(SynchronousTestCase):
    """
    Tests for L{load_object}.
    """

    def setUp(self) -> None:
        self.package = _make_package(self, {"drivers": GOOD_DRIVERS, "sub/__init__.py": "",
                                            "sub/leaf": "VALUE = 3\n"})

    def test_dotted_class(self) -> None:
        """
        When the path is C{pkg.mod.Name}, then the object C{Name} of module
        C{pkg.mod} is returned.
        """
        found = load_object(f"{self.package}.drivers.Greeter")
        self.assertIs(found, sys.modules[f"{self.package}.drivers"].Greeter)

    def test_colon_form(self) -> None:
        """
        When the path is C{pkg.mod:Name}, then C{Name} of C{pkg.mod} is
        returned, and C{pkg.mod:Outer.Inner} walks nested attributes.
        """
        module = importlib.import_module(f"{self.package}.drivers")
        self.assertIs(load_object(f"{self.package}.drivers:make_greeter"), module.make_greeter)
        self.assertIs(load_object(f"{self.package}.drivers:Greeter.Nested"), module.Greeter.Nested)

    def test_module(self) -> None:
        """
        When the path names a module, then the module object is returned,
        also for a submodule of a package.
        """
        self.assertIs(load_object(f"{self.package}.drivers"), sys.modules[f"{self.package}.drivers"])
        self.assertEqual(load_object(f"{self.package}.sub.leaf").VALUE, 3)
        self.assertEqual(load_object(f"{self.package}.sub.leaf.VALUE"), 3)

    def test_stdlib(self) -> None:
        """
        When the path names an object of an installed module, then it is
        returned.
        """
        self.assertIs(load_object("os.path.join"), os.path.join)

    def test_missing_top_module(self) -> None:
        """
        When the first component does not exist, then L{LoadError} says that
        no such module exists.
        """
        name = "novasvc_no_such_" + uuid.uuid4().hex
        error = self.assertRaises(LoadError, load_object, f"{name}.mod.Thing")
        self.assertEqual(str(error), f"cannot load '{name}.mod.Thing': no module named '{name}'")

    def test_missing_submodule(self) -> None:
        """
        When a package has no such submodule nor attribute, then
        L{LoadError} names the missing module.
        """
        error = self.assertRaises(LoadError, load_object, f"{self.package}.nope.Thing")
        self.assertIn(f"no module named '{self.package}.nope'", str(error))

    def test_missing_attribute(self) -> None:
        """
        When the module exists but has no such attribute, then L{LoadError}
        names the module and the attribute.
        """
        error = self.assertRaises(LoadError, load_object, f"{self.package}.drivers.Greter")
        self.assertIn(f"module '{self.package}.drivers' has no attribute 'Greter'", str(error))
        error = self.assertRaises(LoadError, load_object, f"{self.package}.drivers:Greeter.Nope")
        self.assertIn(f"object '{self.package}.drivers.Greeter' has no attribute 'Nope'", str(error))

    def test_colon_module_missing(self) -> None:
        """
        When the part before the colon is not a module, then L{LoadError}
        says so, even if it is an attribute path.
        """
        error = self.assertRaises(LoadError, load_object, f"{self.package}.drivers.Greeter:x")
        self.assertIn(f"no module named '{self.package}.drivers.Greeter'", str(error))

    def test_import_raises(self) -> None:
        """
        When importing the module raises, then L{LoadError} names the module,
        the exception and where it was raised, and chains it.
        """
        package = _make_package(self, {"boom": "x = 1\nraise RuntimeError('kaboom')\n"})
        error = self.assertRaises(LoadError, load_object, f"{package}.boom.Thing")
        self.assertIn(f"importing '{package}.boom' raised RuntimeError: kaboom", str(error))
        self.assertIn("boom.py:2)", str(error))
        self.assertIsInstance(error.__cause__, RuntimeError)

    def test_import_missing_dependency(self) -> None:
        """
        When the module exists but imports a module that does not, then
        L{LoadError} reports the import error, not a missing module.
        """
        dependency = "novasvc_absent_" + uuid.uuid4().hex
        package = _make_package(self, {"needy": f"import {dependency}\n"})
        error = self.assertRaises(LoadError, load_object, f"{package}.needy:Thing")
        self.assertIn(f"importing '{package}.needy' raised ModuleNotFoundError", str(error))
        self.assertIn(dependency, str(error))

    def test_syntax_error(self) -> None:
        """
        When the module has a syntax error, then L{LoadError} says so with
        the file and line.
        """
        package = _make_package(self, {"bad": "def (:\n"})
        error = self.assertRaises(LoadError, load_object, f"{package}.bad")
        self.assertIn("raised SyntaxError", str(error))
        self.assertIn("bad.py, line 1", str(error))

    def test_malformed(self) -> None:
        """
        When the path is not a dotted path, then L{LoadError} says what
        forms are expected, and nothing is imported.
        """
        for path in ["", ".relative", "a..b", "a.b:", ":X", "a b", "a-b.c", "a:b:c", None]:
            error = self.assertRaises(LoadError, load_object, path)
            self.assertIn("not a dotted path", str(error))

    def test_is_dotted_path(self) -> None:
        """
        When asked about a string, then L{is_dotted_path} accepts the forms
        L{load_object} takes and refuses anything else.
        """
        for good in ["a", "a.b.C", "a.b:C", "a.b:C.D", "_x.y2"]:
            self.assertTrue(is_dotted_path(good), good)
        for bad in ["", "a.", "1a", "a:b:c", "a b", 3, None]:
            self.assertFalse(is_dotted_path(bad), bad)


class LoadDriverTests(SynchronousTestCase):
    """
    Tests for L{load_driver}.
    """

    def setUp(self) -> None:
        self.package = _make_package(self, {"drivers": GOOD_DRIVERS})
        self.module = importlib.import_module(f"{self.package}.drivers")

    def test_class(self) -> None:
        """
        When the path names a class, then it is instantiated with the given
        arguments and the instance is returned.
        """
        driver = load_driver(f"{self.package}.drivers.Greeter", IGreeter, "hey", punctuation="!")
        self.assertIsInstance(driver, self.module.Greeter)
        self.assertEqual(driver.greet("bob"), "hey! bob")

    def test_factory(self) -> None:
        """
        When the path names a factory function, then its result is the
        driver.
        """
        driver = load_driver(f"{self.package}.drivers:make_greeter", IGreeter, "yo")
        self.assertEqual(driver.greet("al"), "yo al")

    def test_module(self) -> None:
        """
        When the path names a module that provides the interface, then the
        module is the driver.
        """
        self.assertIs(load_driver(f"{self.package}.drivers", IGreeter), self.module)

    def test_instance(self) -> None:
        """
        When the path names an object that is not callable, then it is the
        driver as it is.
        """
        self.assertIs(load_driver(f"{self.package}.drivers.shared", IGreeter), self.module.shared)

    def test_factory_raises(self) -> None:
        """
        When calling the factory raises, then L{LoadError} names the path and
        the exception, which is chained.
        """
        error = self.assertRaises(LoadError, load_driver,
                                  f"{self.package}.drivers.broken_factory", IGreeter)
        self.assertIn("broken_factory': calling function ", str(error))
        self.assertIn("broken_factory() raised RuntimeError: no greeter today", str(error))
        self.assertIsInstance(error.__cause__, RuntimeError)

    def test_missing_attribute(self) -> None:
        """
        When the driver lacks an attribute of the interface, then
        L{LoadError} names the attribute and the interface.
        """
        error = self.assertRaises(LoadError, load_driver, f"{self.package}.drivers.NoAttribute", IGreeter)
        self.assertEqual(
            str(error),
            f"driver '{self.package}.drivers.NoAttribute' does not provide "
            f"tests.test_config_loader.IGreeter: missing attribute 'greeting'",
        )

    def test_wrong_signature(self) -> None:
        """
        When a method's signature does not match the interface, then
        L{LoadError} names the method.
        """
        error = self.assertRaises(LoadError, load_driver,
                                  f"{self.package}.drivers.WrongSignature", IGreeter)
        self.assertIn("does not provide tests.test_config_loader.IGreeter: method 'greet': ", str(error))

    def test_undeclared(self) -> None:
        """
        When the driver has the methods but does not declare the interface,
        then L{LoadError} says how to declare it.
        """
        error = self.assertRaises(LoadError, load_driver, f"{self.package}.drivers.Undeclared", IGreeter)
        self.assertIn("it does not declare IGreeter (add @implementer(IGreeter)", str(error))

    def test_several_problems(self) -> None:
        """
        When several members are missing, then L{LoadError} lists each one.
        """
        error = self.assertRaises(LoadError, load_driver, f"{self.package}.drivers.Empty", IGreeter)
        self.assertIn("missing method 'greet'", str(error))
        self.assertIn("missing attribute 'greeting'", str(error))

    def test_other_interface(self) -> None:
        """
        When the driver provides another interface, then L{LoadError} names
        the interface asked for and its missing method.
        """
        error = self.assertRaises(LoadError, load_driver, f"{self.package}.drivers.Greeter", ICounter)
        self.assertIn("does not provide tests.test_config_loader.ICounter", str(error))
        self.assertIn("missing method 'count'", str(error))

    def test_load_error(self) -> None:
        """
        When the path cannot be loaded, then L{load_object}'s L{LoadError}
        propagates.
        """
        error = self.assertRaises(LoadError, load_driver, f"{self.package}.drivers.Nope", IGreeter)
        self.assertIn("has no attribute 'Nope'", str(error))


def _make_package(case: SynchronousTestCase, modules: dict) -> str:
    """
    Write a uniquely named package into a temporary directory on
    C{sys.path}, removed (with its modules) when the test ends.

    @param modules: module name (or relative file path with C{.py}
        omitted) -> source text.
    @return: the package name.
    """
    root = case.mktemp()
    package = "novasvc_loader_test_" + uuid.uuid4().hex[:12]
    os.makedirs(os.path.join(root, package))
    files = {"__init__.py": "", **{name if name.endswith(".py") else name + ".py": source
                                   for name, source in modules.items()}}
    for name, source in files.items():
        path = os.path.join(root, package, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
    sys.path.insert(0, root)
    importlib.invalidate_caches()

    def clean() -> None:
        sys.path.remove(root)
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]

    case.addCleanup(clean)
    return package


class DriverAliasTests(SynchronousTestCase):
    """
    Tests for L{driver_aliases}, L{resolve_driver} and L{load_driver} with
    an entry point group.
    """

    group = "novasvc_tests.greeters"

    def setUp(self) -> None:
        install_entry_points(self, {self.group: {
            "loud": "tests.test_config_loader:LoudGreeter",
            "quiet": "tests.test_config_loader:QuietGreeter",
        }})

    def test_aliases(self) -> None:
        """
        When a package registers drivers in a group, then L{driver_aliases}
        gives each alias and its value, sorted; an unknown group gives none.
        """
        self.assertEqual(driver_aliases(self.group), {
            "loud": "tests.test_config_loader:LoudGreeter", "quiet": "tests.test_config_loader:QuietGreeter"})
        self.assertEqual(driver_aliases("novasvc_tests.nothing"), {})
        self.assertEqual(driver_aliases(None), {})

    def test_resolve(self) -> None:
        """
        When the value is an alias, then it resolves to the entry point's
        value; a dotted path is kept as it is.
        """
        self.assertEqual(resolve_driver("loud", self.group), "tests.test_config_loader:LoudGreeter")
        self.assertEqual(resolve_driver("tests.test_config_loader.QuietGreeter", self.group),
                         "tests.test_config_loader.QuietGreeter")

    def test_unknown_alias(self) -> None:
        """
        When a plain name is no alias of the group, then L{LoadError} offers
        the close aliases and lists the installed ones.
        """
        error = self.assertRaises(LoadError, resolve_driver, "lowd", self.group)
        self.assertEqual(str(error), "no driver named 'lowd' in entry point group "
                                     "'novasvc_tests.greeters' (did you mean 'loud'? installed: "
                                     "loud, quiet; or give a dotted path such as "
                                     "mypackage.drivers.FileDriver)")

    def test_load_by_alias(self) -> None:
        """
        When L{load_driver} is given an alias and its group, then it builds
        that driver, offering only the arguments the factory accepts.
        """
        driver = load_driver("loud", IGreeter, group=self.group,
                             offer={"config": "c", "db": "d", "host": "h"})
        self.assertIsInstance(driver, LoudGreeter)
        self.assertEqual(driver.db, "d")
        quiet = load_driver("quiet", IGreeter, group=self.group, offer={"db": "d"})
        self.assertIsInstance(quiet, QuietGreeter)


@implementer(IGreeter)
class LoudGreeter:
    """
    A driver whose factory takes C{db} only.
    """

    greeting = "HELLO"

    def __init__(self, db):
        self.db = db

    def greet(self, name):
        return f"{self.greeting} {name}"


@implementer(IGreeter)
class QuietGreeter:
    """
    A driver whose factory takes no argument.
    """

    greeting = "hi"

    def greet(self, name):
        return f"{self.greeting} {name}"
