"""
Tests for L{novasvc.core.manager}.
"""

import socket

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import attrs
from zope.interface import Interface, implementer

from novasvc.config import Config, load_config
from novasvc.config.options import DriverOpt, Opt, Section
from novasvc.exceptions import LoadError
from novasvc.core.manager import Manager, load_manager
from novasvc.periodic import DEFAULT_INTERVAL, PeriodicTasks, periodic_task
from tests import _module_manager

HOOKS = ("init_host", "pre_start_hook", "post_start_hook", "cleanup_host", "reset")


class ManagerTests(SynchronousTestCase):
    """
    Tests for L{Manager}.
    """

    def test_defaults(self) -> None:
        """
        When constructed without arguments, then host is the machine's host
        name, service_name is "undefined", there are no additional endpoints
        and no target.
        """
        manager = Manager()
        self.assertEqual(manager.host, socket.gethostname())
        self.assertEqual(manager.service_name, "undefined")
        self.assertEqual(manager.additional_endpoints, [])
        self.assertIsNone(manager.target)
        self.assertIsInstance(manager, PeriodicTasks)

    def test_arguments(self) -> None:
        """
        When host and service_name are given, then they are kept, and each
        instance has its own additional_endpoints list.
        """
        manager = Manager(host="node-1", service_name="volume")
        self.assertEqual((manager.host, manager.service_name), ("node-1", "volume"))
        manager.additional_endpoints.append(object())
        self.assertEqual(Manager().additional_endpoints, [])

    def test_extraArgumentsRefused(self) -> None:
        """
        When arguments are left over after the Manager took its own, then
        C{TypeError} is raised.
        """
        self.assertRaises(TypeError, Manager, "h", "s", "unexpected")
        self.assertRaises(TypeError, Manager, host="h", compute_driver="x")

    def test_subclassPassesArguments(self) -> None:
        """
        When a subclass takes its own arguments and passes the rest on, then
        host and service_name reach the base class.
        """

        class VolumeManager(Manager):
            def __init__(self, volume_driver=None, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.volume_driver = volume_driver

        manager = VolumeManager("lvm", host="h", service_name="volume")
        self.assertEqual((manager.volume_driver, manager.host), ("lvm", "h"))

    def test_hooksAreNoOps(self) -> None:
        """
        When each lifecycle hook is called, then it returns None and changes
        nothing on the manager.
        """
        manager = Manager(host="h")
        before = dict(vars(manager))
        self.assertIsNone(manager.init_host(None))
        self.assertIsNone(manager.pre_start_hook(object()))
        self.assertIsNone(manager.post_start_hook())
        self.assertIsNone(manager.cleanup_host())
        self.assertIsNone(manager.reset())
        self.assertEqual(vars(manager), before)

    def test_periodicTasksDelegates(self) -> None:
        """
        When periodic_tasks is called, then it calls run_periodic_tasks with
        the same context and raise_on_error and returns its idle time.
        """
        calls = []

        class M(Manager):
            def run_periodic_tasks(self, context, raise_on_error=False):
                calls.append((context, raise_on_error))
                return 12.5

        context = object()
        manager = M()
        self.assertEqual(manager.periodic_tasks(context), 12.5)
        self.assertEqual(manager.periodic_tasks(context, raise_on_error=True), 12.5)
        self.assertEqual(calls, [(context, False), (context, True)])

    def test_periodicTasksRunsTasks(self) -> None:
        """
        When a Manager subclass declares a periodic task, then periodic_tasks
        runs it on the manager's clock and returns the runner's idle time.
        """

        class M(Manager):
            @periodic_task(spacing=15, run_immediately=True)
            def poll(self, context):
                self.polled = (context, self.clock.seconds())

        manager = M()
        manager.clock = Clock()
        manager.clock.advance(3)
        self.assertEqual(manager.periodic_tasks("ctx"), 15)
        self.assertEqual(manager.polled, ("ctx", 3))
        self.assertEqual(Manager().periodic_tasks("ctx"), DEFAULT_INTERVAL)

    def test_rpcHiddenNamesCoverHooks(self) -> None:
        """
        When the RPC dispatcher checks rpc_hidden_names, then every hook and
        the periodic-task entry points are in it.
        """
        for name in HOOKS + (
            "periodic_tasks",
            "run_periodic_tasks",
            "add_periodic_task",
            "wait_for_periodic_tasks",
        ):
            self.assertIn(name, Manager.rpc_hidden_names)
        self.assertIsInstance(Manager.rpc_hidden_names, frozenset)

    def test_rpcHiddenNamesCoverEveryPublicName(self) -> None:
        """
        When a name of a Manager instance (class or instance attribute) does
        not start with "_", then it is in rpc_hidden_names, so a plain
        Manager exposes nothing over RPC.
        """
        manager = Manager(host="h")
        public = {name for name in dir(manager) if not name.startswith("_")}
        self.assertEqual(public - Manager.rpc_hidden_names, set())
        self.assertIn("host", public)
        self.assertIn("additional_endpoints", public)


class IWidget(Interface):
    """
    A driver interface for the tests.
    """

    def spin(speed):
        """
        Spin at C{speed}.
        """


@implementer(IWidget)
class GoodWidget:
    """
    Provides L{IWidget}; records the configuration it was offered.
    """

    def __init__(self, config=None):
        self.config = config

    def spin(self, speed):
        return speed


class BadWidget:
    """
    Declares nothing and lacks C{spin}.
    """


class WidgetManager(Manager):
    """
    A manager that chooses its widget driver by config.
    """

    topic = "widget"
    options = (DriverOpt("driver", IWidget, default="tests.test_core_manager.GoodWidget"),
               Opt("speed", int, default=3))

    def __init__(self, *args, **kwargs):
        Manager.__init__(self, *args, **kwargs)
        self.driver = self.load_driver()


class ConfiguredManagerTests(SynchronousTestCase):
    """
    A L{Manager} receives its validated configuration and loads drivers by it.
    """

    def test_defaultsWithoutConfig(self) -> None:
        """
        When a manager is built without a configuration, then it gets the
        defaults, its own section included.
        """
        manager = WidgetManager(host="h", service_name="widget")
        self.assertEqual(manager.config.host, Config().host)
        self.assertEqual(manager.section.speed, 3)
        self.assertIsNone(manager.db)

    def test_configGiven(self) -> None:
        """
        When a configuration is given, then the manager's section comes from
        it, and the driver is offered the same read-only configuration.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("widget:\n  speed: 9\n")
        config = load_config(path)
        manager = WidgetManager(host="h", service_name="widget", config=config, db="db")
        self.assertEqual(manager.section.speed, 9)
        self.assertIsInstance(manager.driver, GoodWidget)
        self.assertIs(manager.driver.config, manager.config)
        self.assertEqual(manager.db, "db")

    def test_driverMissingMethods(self) -> None:
        """
        When the configured driver does not provide the interface, then
        L{LoadError} names what is missing.
        """
        config = Config().bind([WidgetManager], default_section="widget")
        config = attrs.evolve(config, sections=(("widget", Section(
            "widget", {"driver": "tests.test_core_manager.BadWidget", "speed": 3})),))
        error = self.assertRaises(LoadError, WidgetManager, service_name="widget", config=config)
        self.assertIn("driver 'tests.test_core_manager.BadWidget' does not provide "
                      "tests.test_core_manager.IWidget", str(error))
        self.assertIn("missing method 'spin'", str(error))

    def test_unknownDriverOption(self) -> None:
        """
        When L{Manager.load_driver} names no declared L{DriverOpt}, then
        C{KeyError} is raised.
        """
        manager = WidgetManager(service_name="widget")
        self.assertRaises(KeyError, manager.load_driver, "speed")

    def test_configHidden(self) -> None:
        """
        When the RPC access policy is asked, then the configuration and
        database attributes and driver loading are hidden.
        """
        for name in ("config", "db", "section", "load_driver", "options", "config_section"):
            self.assertIn(name, Manager.rpc_hidden_names)


class LoadManagerTests(SynchronousTestCase):
    """
    L{load_manager} accepts classes, factories, modules and objects.
    """

    def test_class(self) -> None:
        """
        When the path names a L{Manager} class, then it is called with host,
        service name and the offered arguments it takes.
        """
        manager = load_manager("tests.test_core_manager.WidgetManager", host="h",
                               service_name="widget", offer={"config": Config(), "db": "db"})
        self.assertIsInstance(manager, WidgetManager)
        self.assertEqual((manager.host, manager.service_name, manager.db), ("h", "widget", "db"))

    def test_oldSignature(self) -> None:
        """
        When a manager's constructor takes only C{host} and C{service_name},
        then it is built without the offered arguments.
        """
        class Old(Manager):
            def __init__(self, host, service_name):
                Manager.__init__(self, host, service_name)

        manager = load_manager(Old, host="h", service_name="old", offer={"config": Config()})
        self.assertEqual(manager.host, "h")

    def test_factory(self) -> None:
        """
        When the path names a function returning a manager, then its result
        is the manager.
        """
        def factory(host, service_name):
            return Manager(host=host, service_name=service_name)

        manager = load_manager(factory, host="h", service_name="f")
        self.assertEqual(manager.service_name, "f")

    def test_module(self) -> None:
        """
        When the path names a module, then it is served as it is, with the
        service's hooks calling the module's own.
        """
        manager = load_manager("tests._module_manager", host="h", service_name="modular")
        self.assertIsInstance(manager, Manager)
        self.assertEqual(manager.additional_endpoints, [_module_manager])
        self.assertEqual(manager.target, _module_manager.target)
        del _module_manager.events[:]
        manager.init_host(None)
        manager.cleanup_host()  # the module has none: a no-op
        self.assertEqual(_module_manager.events, ["init_host"])

    def test_instance(self) -> None:
        """
        When the path names an object with methods, then it is served as it
        is.
        """
        manager = load_manager("tests._module_manager.GREETER", host="h", service_name="greeter")
        self.assertEqual(manager.additional_endpoints, [_module_manager.GREETER])

    def test_factoryRaises(self) -> None:
        """
        When calling the factory raises (e.g. C{os.path.join} called with a
        manager's arguments), then L{LoadError} is one line naming the path,
        what it is and the cause.
        """
        error = self.assertRaises(LoadError, load_manager, "os.path.join", host="h",
                                  service_name="x")
        message = str(error)
        self.assertTrue(message.startswith(
            "cannot create manager 'os.path.join': calling function posixpath.join("), message)
        self.assertIn("raised TypeError:", message)
        self.assertNotIn("\n", message)

    def test_nothingToServe(self) -> None:
        """
        When the path names a value with nothing callable (a string), then
        L{LoadError} says it cannot serve.
        """
        error = self.assertRaises(LoadError, load_manager, "os.sep", host="h", service_name="x")
        self.assertEqual(str(error), "cannot serve manager 'os.sep': it is a str instance with "
                                     "no public methods to call over RPC; expected a Manager "
                                     "class, a factory, a module or an object with methods")

    def test_factoryReturnsNothing(self) -> None:
        """
        When a factory returns a value with nothing to serve, then the
        message says what it returned.
        """
        error = self.assertRaises(LoadError, load_manager, lambda host, service_name: None,
                                  host="h", service_name="x")
        self.assertIn("returned a NoneType", str(error))


@implementer(IWidget)
class DatabaseWidget:
    """
    A driver that takes the manager's database API and host.
    """

    def __init__(self, db, host):
        self.db, self.host = db, host

    def spin(self, speed):
        return "spun"


@implementer(IWidget)
class BareWidget:
    """
    A driver whose constructor takes nothing.
    """

    def spin(self, speed):
        return "spun"


class DriverArgumentsTests(SynchronousTestCase):
    """
    L{Manager.load_driver} gives a driver the arguments its factory accepts.
    """

    def manager(self, driver: str) -> WidgetManager:
        config = Config().with_sections(widget={"driver": driver})
        return WidgetManager(host="h1", service_name="widget", config=config, db="the-db")

    def test_db(self) -> None:
        """
        When the driver's constructor takes C{db} and C{host}, then it gets
        the manager's database API and host.
        """
        driver = self.manager("tests.test_core_manager.DatabaseWidget").driver
        self.assertEqual((driver.db, driver.host), ("the-db", "h1"))

    def test_none(self) -> None:
        """
        When the driver's constructor takes none of the offered arguments,
        then it is called with none.
        """
        self.assertIsInstance(self.manager("tests.test_core_manager.BareWidget").driver, BareWidget)

    def test_explicit_wins(self) -> None:
        """
        When the manager passes an offered name itself, then its value is
        used.
        """
        manager = self.manager("tests.test_core_manager.DatabaseWidget")
        driver = manager.load_driver("driver", db="other")
        self.assertEqual((driver.db, driver.host), ("other", "h1"))


class ManagerFactoryArgumentsTests(SynchronousTestCase):
    """
    L{load_manager} calls a factory with the arguments it accepts.
    """

    def test_no_arguments(self) -> None:
        """
        When the factory takes no arguments, then it is called with none.
        """
        manager = load_manager(lambda: Manager(host="made", service_name="m"), host="h",
                               service_name="x")
        self.assertEqual(manager.host, "made")

    def test_module_without_functions(self) -> None:
        """
        When the path names a module that defines no public function (the
        class name was forgotten), then L{LoadError} is one line naming the
        manager classes it defines.
        """
        error = self.assertRaises(LoadError, load_manager, "tests._class_only_manager",
                                  host="h", service_name="x")
        self.assertEqual(str(error), "cannot serve manager 'tests._class_only_manager': module "
                                     "tests._class_only_manager defines no public function to "
                                     "call over RPC (did you mean "
                                     "tests._class_only_manager.StockManager?)")
