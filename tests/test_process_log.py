"""
Tests for L{novasvc.process.log}.
"""

import io
import json
import logging
import os
import signal
import sys
from typing import Any, Callable, Dict, List

from twisted.application.service import Application
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.python import syslog
from twisted.python.failure import Failure
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from novasvc import config
from novasvc.process.log import LEVELS, LogControl, file_observer

Event = Dict[str, Any]


def _emit_all(observer: ILogObserver, namespace: str = "novasvc.somewhere") -> None:
    """
    Send one event of each level to C{observer} from C{namespace}.
    """
    log = Logger(namespace=namespace, observer=observer)
    for level in LogLevel.iterconstants():
        log.emit(level, "at {name}", name=level.name)


def _levels(events: List[Event]) -> List[str]:
    return [event["log_level"].name for event in events]


class _Reactor:
    """
    Keeps C{callFromThread} calls until L{run}.
    """

    def __init__(self) -> None:
        self.calls: List[Callable[[], Any]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.calls.append(lambda: f(*args))

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for call in calls:
            call()


class LevelTests(SynchronousTestCase):
    """
    L{LogControl}'s level filter.
    """

    def test_names(self) -> None:
        """
        When the config's level names are looked up, then each has a
        L{LogLevel}, C{warning} being Twisted's C{warn}.
        """
        self.assertEqual(tuple(LEVELS), config.LOG_LEVELS)
        self.assertIs(LEVELS["warning"], LogLevel.warn)

    def test_filter(self) -> None:
        """
        When the level is C{warning}, then the filter passes warn, error and
        critical events only; after C{set_level("debug")} the same filter
        passes every level.
        """
        control = LogControl("warning")
        events: List[Event] = []
        observer = control.filter(events.append)
        _emit_all(observer)
        self.assertEqual(_levels(events), ["warn", "error", "critical"])
        self.assertEqual(control.level, "warning")
        del events[:]
        control.set_level("debug")
        _emit_all(observer)
        self.assertEqual(_levels(events), ["debug", "info", "warn", "error", "critical"])

    def test_bad_names(self) -> None:
        """
        When a level or a format is not one of the names, then
        C{ValueError} says which names are taken.
        """
        error = self.assertRaises(ValueError, LogControl, "warn")
        self.assertIn("debug, info, warning, error, critical", str(error))
        self.assertRaises(ValueError, LogControl("info").set_level, "loud")
        self.assertRaises(ValueError, LogControl, "info", "xml")

    def test_echoes_only_at_debug(self) -> None:
        """
        When the level is C{info}, then pika's and C{ClientService}'s info
        lines are dropped but their warnings pass; at C{debug} everything
        passes.
        """
        control = LogControl("info")
        events: List[Event] = []
        observer = control.filter(events.append)
        for namespace in ["pika.connection", "twisted.application._client_service.ClientService"]:
            _emit_all(observer, namespace)
            self.assertEqual(_levels(events), ["warn", "error", "critical"], namespace)
            del events[:]
        control.set_level("debug")
        _emit_all(observer, "pika.connection")
        self.assertEqual(len(events), 5)

    def test_own_line_at_any_level(self) -> None:
        """
        When the level is C{critical}, then this module's own info lines
        still pass (the "log level now" line), its debug lines do not.
        """
        control = LogControl("critical")
        events: List[Event] = []
        _emit_all(control.filter(events.append), "novasvc.process.log")
        self.assertEqual(_levels(events), ["info", "warn", "error", "critical"])


class FileObserverTests(SynchronousTestCase):
    """
    L{file_observer}.
    """

    def test_text(self) -> None:
        """
        When the format is C{text}, then each event is one line with its
        namespace, level and message.
        """
        out = io.StringIO()
        Logger(namespace="ns", observer=file_observer(out, "text")).warn("hello {who}", who="you")
        self.assertRegex(out.getvalue(), r"^\S+ \[ns#warn\] hello you\n$")

    def test_json(self) -> None:
        """
        When the format is C{json}, then each event is one line holding one
        JSON object, with Twisted's fields and C{log_text}; a failure's
        traceback is in C{log_text}, still on one line.
        """
        out = io.StringIO()
        log = Logger(namespace="ns", observer=file_observer(out, "json"))
        log.info("hello {who}", who="you")
        try:
            1 / 0
        except ZeroDivisionError:
            log.failure("it broke", Failure(), level=LogLevel.warn)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first, second = (json.loads(line) for line in lines)
        self.assertEqual((first["log_namespace"], first["log_level"]["name"], first["who"], first["log_text"]),
                         ("ns", "info", "you", "hello you"))
        self.assertIsInstance(first["log_time"], float)
        self.assertTrue(second["log_text"].startswith("it broke\n"))
        self.assertIn("ZeroDivisionError", second["log_text"])

    def test_bad_format(self) -> None:
        """
        When the format is neither C{text} nor C{json}, then C{ValueError}.
        """
        self.assertRaises(ValueError, file_observer, io.StringIO(), "xml")


class InstallTests(SynchronousTestCase):
    """
    L{LogControl.install} under twistd.
    """

    def setUp(self) -> None:
        self.addCleanup(signal.signal, signal.SIGUSR1, signal.getsignal(signal.SIGUSR1))
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        self.application = Application("test")
        self.reactor = _Reactor()

    def twistd(self, **values: Any) -> ServerOptions:
        options = ServerOptions()
        options.update(values)
        return options

    def installed(self, options: ServerOptions, level: str = "warning", log_format: str = "text") -> ILogObserver:
        control = LogControl(level, log_format, twistd_options=options, reactor=self.reactor)
        self.assertTrue(control.install(self.application))
        observer = self.application.getComponent(ILogObserver)
        self.assertIsNotNone(observer)
        return observer

    def test_logfile(self) -> None:
        """
        When twistd is given C{--logfile}, then the application's log
        observer writes there, at the level only; SIGUSR1 rotates the file
        in the reactor thread.
        """
        path = os.path.abspath(self.mktemp())
        observer = self.installed(self.twistd(logfile=path))
        _emit_all(observer)
        with open(path) as f:
            self.assertEqual([line.split(" ", 1)[1] for line in f.read().splitlines()],
                             ["[novasvc.somewhere#warn] at warn", "[novasvc.somewhere#error] at error",
                              "[novasvc.somewhere#critical] at critical"])
        signal.raise_signal(signal.SIGUSR1)
        self.assertFalse(os.path.exists(path + ".1"))
        self.reactor.run()
        self.assertTrue(os.path.exists(path + ".1"))

    def test_daemon_default_file(self) -> None:
        """
        When twistd runs as a daemon without C{--logfile}, then the log goes
        to C{twistd.log} in the working directory, as twistd's own.
        """
        where = os.path.abspath(self.mktemp())
        os.makedirs(where)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(where)
        _emit_all(self.installed(self.twistd(nodaemon=False)))
        with open(os.path.join(where, "twistd.log")) as f:
            self.assertEqual(len(f.read().splitlines()), 3)

    def test_nodaemon_stdout_json(self) -> None:
        """
        When twistd runs with C{-n} and no C{--logfile} and the format is
        C{json}, then the log goes to standard output, one JSON object per
        line.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        _emit_all(self.installed(self.twistd(nodaemon=True), "error", "json"))
        self.assertEqual([json.loads(line)["log_text"] for line in out.getvalue().splitlines()],
                         ["at error", "at critical"])

    def test_daemon_stdout_refused(self) -> None:
        """
        When a daemon is told to log to C{-}, then it exits, as twistd does.
        """
        control = LogControl(twistd_options=self.twistd(logfile="-", nodaemon=False))
        self.assertRaises(SystemExit, control.install, self.application)

    def test_syslog(self) -> None:
        """
        When twistd is given C{--syslog}, then events at the level go to a
        syslog observer with twistd's C{--prefix}.
        """
        prefixes: List[str] = []
        events: List[Event] = []

        class FakeSyslog:
            def __init__(self, prefix: str) -> None:
                prefixes.append(prefix)
                self.emit = events.append

        self.patch(syslog, "SyslogObserver", FakeSyslog)
        _emit_all(self.installed(self.twistd(syslog=True, prefix="nova")))
        self.assertEqual((prefixes, len(events)), (["nova"], 3))

    def test_logger_option_wins(self) -> None:
        """
        When twistd is given C{--logger}, then no observer is set (twistd
        uses that one) and this is logged.
        """
        log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        control = LogControl(twistd_options=self.twistd(logger="my.observer"))
        self.assertFalse(control.install(self.application))
        self.assertIsNone(self.application.getComponent(ILogObserver))
        self.assertIn("--logger", formatEvent(log[0]))

    def test_not_twistd(self) -> None:
        """
        When there are no twistd options (C{twist}, tests), or the parent is
        not an application, then nothing is set.
        """
        self.assertFalse(LogControl().install(self.application))
        self.assertFalse(LogControl(twistd_options=self.twistd()).install(object()))
        self.assertIsNone(self.application.getComponent(ILogObserver))


class RereadTests(SynchronousTestCase):
    """
    L{LogControl.reread}, what SIGHUP does.
    """

    def setUp(self) -> None:
        self.path = self.mktemp()
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def test_new_level(self) -> None:
        """
        When the file's C{log_level} changed, then the level is the new one
        and one info line says so.
        """
        self.write("log_level: info\n")
        control = LogControl("info", config_path=self.path)
        self.write("log_level: error\n")
        control.reread()
        self.assertEqual(control.level, "error")
        self.assertEqual([(e["log_level"], formatEvent(e)) for e in self.log],
                         [(LogLevel.info, "log level now error")])

    def test_command_line_wins(self) -> None:
        """
        When the level was given on the command line, then the file's does
        not replace it.
        """
        self.write("log_level: error\n")
        control = LogControl("debug", config_path=self.path, fixed_level="debug")
        control.reread()
        self.assertEqual(control.level, "debug")

    def test_refused_file(self) -> None:
        """
        When the file is now refused, then the level stays and a warning
        gives the reason.
        """
        self.write("log_level: warning\n")
        control = LogControl("warning", config_path=self.path)
        self.write("log_level: chatty\n")
        control.reread()
        self.assertEqual(control.level, "warning")
        [event] = self.log
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertIn("log_level: expected one of", formatEvent(event))

    def test_no_file(self) -> None:
        """
        When no configuration file was given, then nothing changes and
        nothing is logged.
        """
        control = LogControl("warning")
        control.reread()
        self.assertEqual((control.level, len(self.log)), ("warning", 0))


class StdlibTests(SynchronousTestCase):
    """
    L{LogControl.start}: the standard library's records in Twisted's log.
    """

    def setUp(self) -> None:
        self.root, self.pika = logging.getLogger(), logging.getLogger("pika")
        self.levels = (self.root.level, self.pika.level)
        self.handlers = list(self.root.handlers)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        self.control = LogControl("info")
        self.control.start()
        self.addCleanup(self.control.stop)

    def test_forwarded(self) -> None:
        """
        When a standard-library logger logs at or above the level, then the
        record arrives as an event in the logger's namespace, with the
        nearest level and the formatted message; below the level nothing
        arrives.
        """
        mine = logging.getLogger("novasvc_test.mine")
        mine.debug("hidden")
        mine.info("a {brace} and %s", "args")
        mine.warning("careful")
        mine.critical("gone")
        self.assertEqual([(e["log_namespace"], e["log_level"], formatEvent(e)) for e in self.log], [
            ("novasvc_test.mine", LogLevel.info, "a {brace} and args"),
            ("novasvc_test.mine", LogLevel.warn, "careful"),
            ("novasvc_test.mine", LogLevel.critical, "gone"),
        ])

    def test_exception(self) -> None:
        """
        When a record carries an exception, then the event carries it as
        its failure.
        """
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("novasvc_test").warning("lookup failed", exc_info=True)
        [event] = self.log
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertIsInstance(event["log_failure"].value, KeyError)
        self.flushLoggedErrors(KeyError)

    def test_pika_follows_level(self) -> None:
        """
        When the level is C{info}, then pika's info records are dropped at
        the source and its warnings pass; at C{debug} its debug records
        pass; at C{error} its warnings are dropped.
        """
        pika = logging.getLogger("pika.connection")
        pika.info("Closing connection")
        pika.warning("heartbeat missed")
        self.assertEqual([formatEvent(e) for e in self.log], ["heartbeat missed"])
        self.control.set_level("debug")
        pika.debug("frame")
        self.assertEqual(formatEvent(self.log[-1]), "frame")
        self.control.set_level("error")
        pika.warning("ignored")
        self.assertEqual(len(self.log), 2)
        self.assertEqual(self.root.level, logging.ERROR)

    def test_stop_restores(self) -> None:
        """
        When stopped (twice), then the handler is gone and the root's and
        pika's levels are back; L{LogControl.stop} passes its argument
        through.
        """
        self.assertEqual(len(self.root.handlers), len(self.handlers) + 1)
        self.assertEqual(self.control.stop("result"), "result")
        self.control.stop()
        self.assertEqual(self.root.handlers, self.handlers)
        self.assertEqual((self.root.level, self.pika.level), self.levels)
