"""
Tests for L{novasvc.manager}.
"""

import socket

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from novasvc.manager import Manager
from novasvc.periodic import DEFAULT_INTERVAL, PeriodicTasks, periodic_task

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
