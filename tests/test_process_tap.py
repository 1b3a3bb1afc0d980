"""
Tests for L{novasvc.process.tap}.
"""

import sys
import types
from typing import Any, Dict, List

from twisted.application.service import Application, IService, Service
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from novasvc.config import load_config
from novasvc.exceptions import ConfigError, LoadError
from novasvc.process.log import LogControl
from novasvc.process.launcher import HangupService
from novasvc.process.tap import Options, makeService
from tests.test_process_launcher import _ResettableService, _ThreadCalls


class OptionsTests(SynchronousTestCase):
    """
    Tests for L{Options}.
    """

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def config_file(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_nothing_given(self) -> None:
        """
        When no option is given, then every option is C{None} (not a default
        of its own) and the settings are L{load_config}'s defaults.
        """
        options = self.parse()
        for name in ["config", "manager", "topic", "host", "binary", "transport-url",
                     "control-exchange", "database-connection", "report-interval",
                     "periodic-fuzzy-delay", "periodic-interval-max", "log-level"]:
            self.assertIsNone(options[name], name)
        self.assertFalse(options["no-periodic"])
        self.assertEqual(set(options.overrides().values()), {None})
        self.assertEqual(options.settings, load_config(None))

    def test_all_options(self) -> None:
        """
        When every option is given, then the settings take them, durations as
        floats, and C{--no-periodic} turns periodic tasks off.
        """
        options = self.parse(
            "--manager=pkg.mod.Manager", "--topic=volume", "--host=node-2",
            "--binary=novasvc-volume", "--transport-url=memory://t",
            "--control-exchange=nova", "--database-connection=sqlite://",
            "--report-interval=2.5", "--periodic-fuzzy-delay=0",
            "--periodic-interval-max=30", "--no-periodic", "--log-level=error",
        )
        settings = options.settings
        self.assertEqual((options["manager"], options["topic"], options["binary"]),
                         ("pkg.mod.Manager", "volume", "novasvc-volume"))
        self.assertEqual(settings.host, "node-2")
        self.assertEqual(settings.transport_url, "memory://t")
        self.assertEqual(settings.control_exchange, "nova")
        self.assertEqual(settings.database.connection, "sqlite://")
        self.assertEqual(settings.report_interval, 2.5)
        self.assertEqual(settings.periodic_fuzzy_delay, 0.0)
        self.assertEqual(settings.periodic_interval_max, 30.0)
        self.assertFalse(settings.periodic_enable)
        self.assertEqual(settings.log_level, "error")

    def test_short_options(self) -> None:
        """
        When C{-c}, C{-m} and C{-t} are given, then they set the config file,
        the manager and the topic.
        """
        path = self.config_file("control_exchange: from-file\n")
        options = self.parse("-c", path, "-m", "a.B", "-t", "volume")
        self.assertEqual((options["config"], options["manager"], options["topic"]),
                         (path, "a.B", "volume"))
        self.assertEqual(options.settings.control_exchange, "from-file")

    def test_precedence(self) -> None:
        """
        When a key is in the file and on the command line, then the command
        line wins; a key only in the file keeps the file's value.
        """
        path = self.config_file("report_interval: 5\nperiodic_fuzzy_delay: 7\n"
                                "periodic_enable: true\n")
        options = self.parse("--config", path, "--report-interval=3")
        self.assertEqual(options.settings.report_interval, 3.0)
        self.assertEqual(options.settings.periodic_fuzzy_delay, 7.0)
        self.assertTrue(options.settings.periodic_enable)
        options = self.parse("--config", path, "--no-periodic")
        self.assertFalse(options.settings.periodic_enable)

    def test_bad_config_file(self) -> None:
        """
        When the config file is refused or missing, then parsing raises
        L{SystemExit} with one line, the L{ConfigError} message (no usage
        text).
        """
        path = self.config_file("report_intervall: 5\n")
        error = self.assertRaises(SystemExit, self.parse, "--config", path)
        self.assertEqual(str(error), f"novasvc: error: {path}, line 1: report_intervall: "
                                     "unknown key (did you mean 'report_interval'?)")
        missing = self.mktemp()
        error = self.assertRaises(SystemExit, self.parse, "--config", missing)
        self.assertIn(f"{missing}: cannot read the configuration file", str(error))
        self.assertNotIn("\n", str(error))

    def test_bad_value(self) -> None:
        """
        When a duration is not a number or out of range, or a log level is
        not one of the names, then parsing raises L{usage.UsageError} naming
        the option.
        """
        error = self.assertRaises(usage.UsageError, self.parse, "--report-interval=soon")
        self.assertIn("--report-interval: expected a number of seconds, got 'soon'", str(error))
        error = self.assertRaises(SystemExit, self.parse, "--report-interval=-1")
        self.assertEqual(str(error), "novasvc: error: command line option --report-interval: "
                                     "expected a number of seconds >= 0, got -1.0")
        error = self.assertRaises(SystemExit, self.parse, "--transport-url=http://u:pw@h/")
        self.assertNotIn(":pw@", str(error))
        error = self.assertRaises(SystemExit, self.parse, "--log-level=verbose")
        self.assertEqual(str(error), "novasvc: error: command line option --log-level: expected "
                                     "one of 'debug', 'info', 'warning', 'error', 'critical', "
                                     "got 'verbose'")

    def test_bad_manager(self) -> None:
        """
        When C{--manager} is not a dotted path, then parsing raises
        L{usage.UsageError}.
        """
        error = self.assertRaises(usage.UsageError, self.parse, "--manager=my manager")
        self.assertEqual(str(error), "--manager: expected a dotted path such as "
                                     "novasvc.examples.echo.EchoManager, got 'my manager'")

    def test_help(self) -> None:
        """
        When the usage text is built, then it lists every option.
        """
        text = str(Options())
        for name in ["--config", "--manager", "--topic", "--host", "--binary",
                     "--transport-url", "--control-exchange", "--database-connection",
                     "--report-interval", "--periodic-fuzzy-delay",
                     "--periodic-interval-max", "--no-periodic", "--log-level"]:
            self.assertIn(name, text)


class _FakeCreate:
    """
    Stands in for C{Service.create}: records its keyword arguments and
    returns a L{_ResettableService}, or raises C{error}.
    """

    def __init__(self, error: Exception = None) -> None:
        self.calls: List[Dict[str, Any]] = []
        self.error = error

    def __call__(self, **kwargs: Any) -> Service:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return _ResettableService()


def _patch_create(case: SynchronousTestCase, fake: _FakeCreate) -> None:
    """
    Replace C{novasvc.core.service.Service.create} by C{fake} for one test.
    """
    try:
        from novasvc.core.service import Service as NovaService
    except ImportError:
        # novasvc.core.service, or a module it needs, is not importable in this
        # checkout yet: stand in for the module for this test only.
        stub = types.ModuleType("novasvc.core.service")
        stub.Service = type("Service", (), {"create": None})  # type: ignore[attr-defined]
        saved = sys.modules.get("novasvc.core.service")
        sys.modules["novasvc.core.service"] = stub

        def restore() -> None:
            if saved is None:
                sys.modules.pop("novasvc.core.service", None)
            else:
                sys.modules["novasvc.core.service"] = saved

        case.addCleanup(restore)
        NovaService = stub.Service  # type: ignore[attr-defined]
    case.patch(NovaService, "create", fake)


class MakeServiceTests(SynchronousTestCase):
    """
    Tests for L{makeService}.
    """

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_create_arguments(self) -> None:
        """
        When options are given, then C{Service.create} gets them with the
        loaded config and the reactor, and the result is the created service
        inside a L{HangupService}.
        """
        fake = _FakeCreate()
        _patch_create(self, fake)
        reactor = _ThreadCalls()
        options = self.parse("--manager=pkg.mod.M", "--topic=volume", "--host=h1",
                             "--binary=novasvc-volume", "--report-interval=4",
                             "--periodic-fuzzy-delay=1", "--periodic-interval-max=9",
                             "--no-periodic")
        result = makeService(options, reactor)
        [call] = fake.calls
        self.assertEqual(call, dict(
            host="h1", binary="novasvc-volume", topic="volume", manager="pkg.mod.M",
            report_interval=4.0, periodic_enable=False, periodic_fuzzy_delay=1.0,
            periodic_interval_max=9.0, config=options.settings, clock=reactor,
        ))
        self.assertIsInstance(result, HangupService)
        self.assertTrue(verifyObject(IService, result))
        self.assertEqual(list(result), [result.service])
        self.assertIsInstance(result.service, _ResettableService)

    def test_log_control(self) -> None:
        """
        When the service is made, then its L{HangupService} has a
        L{LogControl} with the configured level and format, and no twistd
        options when the options have no twistd parent.
        """
        _patch_create(self, _FakeCreate())
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("log_format: json\n")
        result = makeService(self.parse("--config", path, "--log-level=error"), _ThreadCalls())
        self.assertIsInstance(result.logs, LogControl)
        self.assertEqual((result.logs.level, result.logs.log_format), ("error", "json"))
        self.assertFalse(result.logs.install(Application("x")))

    def test_nothing_given(self) -> None:
        """
        When no option is given, then every argument of C{Service.create}
        is C{None} (take it from the config), including C{periodic_enable}.
        """
        fake = _FakeCreate()
        _patch_create(self, fake)
        options = self.parse()
        makeService(options, _ThreadCalls())
        [call] = fake.calls
        self.assertIs(call.pop("config"), options.settings)
        call.pop("clock")
        self.assertEqual(set(call.values()), {None})

    def test_global_reactor(self) -> None:
        """
        When no reactor is passed, then the global reactor is given to
        C{Service.create}.
        """
        from twisted.internet import reactor

        fake = _FakeCreate()
        _patch_create(self, fake)
        makeService(self.parse())
        self.assertIs(fake.calls[0]["clock"], reactor)

    def test_config_error(self) -> None:
        """
        When C{Service.create} raises L{ConfigError}, then L{SystemExit}
        carries its message on one line.
        """
        _patch_create(self, _FakeCreate(ConfigError("no manager to run")))
        error = self.assertRaises(SystemExit, makeService, self.parse(), _ThreadCalls())
        self.assertEqual(error.code, "novasvc: error: no manager to run")

    def test_load_error(self) -> None:
        """
        When C{Service.create} raises L{LoadError}, then L{SystemExit}
        carries its message.
        """
        _patch_create(self, _FakeCreate(LoadError("cannot load 'x.Y': no module named 'x'")))
        error = self.assertRaises(SystemExit, makeService, self.parse("-m", "x.Y"), _ThreadCalls())
        self.assertEqual(error.code, "novasvc: error: cannot load 'x.Y': no module named 'x'")

    def test_traceback_option(self) -> None:
        """
        When C{--traceback} is given, then a start-up error propagates as
        itself, traceback and all.
        """
        _patch_create(self, _FakeCreate(LoadError("cannot load 'x.Y'")))
        self.assertRaises(LoadError, makeService, self.parse("-m", "x.Y", "--traceback"),
                          _ThreadCalls())

    def real(self, *argv: str) -> Any:
        return makeService(self.parse("--transport-url=memory://", "--database-connection=sqlite://",
                                      *argv), _ThreadCalls())

    def test_manager_cannot_be_called(self) -> None:
        """
        When C{--manager} names a callable that raises when called with a
        manager's arguments, then the exit message is one line naming the
        path, what it is and the cause.
        """
        error = self.assertRaises(SystemExit, self.real, "--manager=os.path.join", "--topic=x")
        self.assertTrue(error.code.startswith(
            "novasvc: error: cannot create manager 'os.path.join': calling function "
            "posixpath.join("), error.code)
        self.assertIn("raised TypeError", error.code)
        self.assertNotIn("\n", error.code)

    def test_manager_not_servable(self) -> None:
        """
        When C{--manager} names a value with nothing to call, then the exit
        message says so on one line.
        """
        error = self.assertRaises(SystemExit, self.real, "--manager=os.sep", "--topic=x")
        self.assertIn("cannot serve manager 'os.sep': it is a str instance", error.code)

    def test_module_manager(self) -> None:
        """
        When C{--manager} names a module with a C{topic}, then it is served.
        """
        service = self.real("--manager=tests._module_manager").service
        self.assertEqual(service.topic, "modular")

    def test_config_alone(self) -> None:
        """
        When only C{--config} is given and the file names exactly one
        C{<topic>_manager}, then that manager runs on that topic.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("echo_manager: novasvc.examples.echo.EchoManager\n")
        service = self.real("--config", path).service
        self.assertEqual((service.topic, type(service.manager).__name__), ("echo", "EchoManager"))

    def test_api_enabled(self) -> None:
        """
        When C{api.enabled} is set, then the service made serves the API as
        its last child (it starts last and stops first); a bad C{api.app}
        ends it with a one-line message.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("api:\n  enabled: true\n  listen: tcp:0:interface=127.0.0.1\n")
        service = self.real("--manager=novasvc.examples.echo.EchoManager", "--config", path).service
        self.assertIs(list(service)[-1], service.api)
        self.assertEqual(service.api.name, "api")
        with open(path, "a") as f:
            f.write("  app: no.such.app\n")
        error = self.assertRaises(SystemExit, self.real,
                                  "--manager=novasvc.examples.echo.EchoManager", "--config", path)
        self.assertTrue(error.code.startswith("novasvc: error: api.app: "), error.code)

    def test_other_error(self) -> None:
        """
        When C{Service.create} raises anything else, then it propagates (a
        bug shows its traceback).
        """
        _patch_create(self, _FakeCreate(RuntimeError("bug")))
        self.assertRaises(RuntimeError, makeService, self.parse(), _ThreadCalls())


class ImportCostTests(SynchronousTestCase):
    """
    C{twistd novasvc} imports only what its configuration uses (issue #12):
    each test builds and starts the service in a fresh interpreter and
    looks at C{sys.modules}.
    """

    def started_modules(self, *argv: str) -> List[str]:
        """
        @param argv: C{twistd novasvc} options, after a manager, a memory
            transport and a SQLite file in a temporary directory.
        @return: the names of the modules imported once the service built by
            L{makeService} from C{argv} has started (its store open, its RPC
            consumers active), sorted.
        """
        import os
        import subprocess

        url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        options = ["--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://",
                   f"--database-connection={url}", "--periodic-fuzzy-delay=0", *argv]
        code = "\n".join([
            "import sys",
            "from twisted.internet import defer, task",
            "from novasvc.process.tap import Options, makeService",
            "async def main(reactor):",
            "    options = Options()",
            f"    options.parseOptions({options!r})",
            "    service = makeService(options, reactor).service",
            "    await defer.maybeDeferred(service.startService)",
            "    print(' '.join(sorted(sys.modules)))",
            "    await defer.maybeDeferred(service.stopService)",
            "task.react(lambda reactor: defer.ensureDeferred(main(reactor)))",
        ])
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        return result.stdout.split()

    def test_one_process_without_workers(self) -> None:
        """
        When the service runs in one process (C{workers: 1}), then nothing of
        L{novasvc.process.workers} is imported, nor C{twisted.protocols.basic} that
        only the workers' pipes use.
        """
        modules = self.started_modules()
        self.assertIn("novasvc.core.service", modules)
        self.assertEqual([m for m in modules if m.startswith("novasvc.process.workers")], [])
        self.assertNotIn("twisted.protocols.basic", modules)

    def test_no_config_file_without_yaml(self) -> None:
        """
        When no C{--config} file is given, then PyYAML is not imported; with
        one, it is.
        """
        self.assertEqual([m for m in self.started_modules() if m.split(".")[0] == "yaml"], [])
        import os

        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("report_interval: 10\n")
        self.assertIn("yaml", self.started_modules(f"--config={path}"))

    def test_serving_leaves_out_other_configurations(self) -> None:
        """
        When the service serves on the SQLite store with the API, metrics
        and tracing off, then nothing that only other configurations use is
        imported: the RPC client (this service sends nothing) with
        L{novasvc.tracing} and OpenTelemetry, the HTTP API with klein and
        prometheus_client, txamqp, Alembic and SQLAlchemy's ORM.
        """
        modules = self.started_modules()
        self.assertIn("novasvc.rpc.server", modules)
        self.assertIn("novasvc.db.store", modules)
        unused = ("novasvc.rpc.client", "novasvc.rpc._resend", "novasvc.tracing", "novasvc.api.",
                  "novasvc.transport.txamqp", "opentelemetry", "klein", "prometheus_client",
                  "txamqp", "alembic", "sqlalchemy.orm")
        self.assertEqual([m for m in modules if m.startswith(unused)], [])
