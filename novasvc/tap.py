# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd novasvc} (and C{twist novasvc}) command line: L{Options} and
L{makeService}, used by the plugin in C{twisted/plugins/novasvc_plugin.py}.

Settings come from L{novasvc.config.Config}'s defaults, overridden by the
C{--config} YAML file, overridden by the options given here: an option that
is not given is C{None} and leaves the file's value alone.
"""

import os
import signal
import sys
from typing import Any, Callable, Dict, Optional

from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python import usage

from novasvc.config import Config, load_config
from novasvc.exceptions import ConfigError, LoadError
from novasvc.loader import is_dotted_path
from novasvc.log import LogControl

__all__ = ["Options", "makeService", "HangupService"]

_log = Logger()


def _seconds(option: str) -> Callable[[str], float]:
    """
    @param option: the option's name, for the message.
    @return: the parser of a duration option, which raises C{ValueError}
        (shown by L{usage.Options}) if the text is not a number.
    """
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"--{option}: expected a number of seconds, got {text!r}") from None

    return parse


class Options(usage.Options):
    """
    Options of C{twistd novasvc}.

    After parsing, L{settings} holds the loaded L{Config}. No option has a
    default of its own: C{None} means "not given", so the file's value (or
    the built-in default) applies.

    @ivar settings: the L{Config} built by L{postOptions}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run one Nova-style service: a Manager served over RPC, with periodic tasks and "
        "a row in the services table. Settings not given here come from --config, then "
        "from the built-in defaults. SIGHUP calls the service's reset()."
    )
    optParameters = [
        ["config", "c", None, "YAML configuration file (every key: etc/novasvc.yaml)."],
        ["manager", "m", None,
         "Dotted path of the Manager class, e.g. novasvc.examples.echo.EchoManager "
         "(default: the config's <topic>_manager)."],
        ["topic", "t", None,
         "RPC topic (default: from --binary, else the manager's 'topic' attribute)."],
        ["host", None, None, "Host name of this service (default: config 'host', else this machine's)."],
        ["binary", None, None, "Binary name recorded in the services table (default: novasvc-<topic>)."],
        ["transport-url", None, None, "Broker URL, e.g. rabbit://user:password@host:5672/vhost."],
        ["control-exchange", None, None, "AMQP exchange for RPC (config default: openstack)."],
        ["database-connection", None, None, "SQLAlchemy URL of the services table's database."],
        ["report-interval", None, None, "Seconds between two report_state runs.",
         _seconds("report-interval")],
        ["periodic-fuzzy-delay", None, None,
         "Upper bound, in seconds, of the random delay before the first periodic run.",
         _seconds("periodic-fuzzy-delay")],
        ["periodic-interval-max", None, None,
         "Most seconds the periodic timer idles between runs.",
         _seconds("periodic-interval-max")],
        ["log-level", None, None,
         "Lowest level logged: debug, info, warning, error or critical (config default: info)."],
    ]
    optFlags = [
        ["no-periodic", None, "Do not run periodic tasks."],
        ["traceback", None,
         "Show the traceback of a start-up error (default: one line naming the cause)."],
    ]

    settings: Config

    def overrides(self) -> Dict[str, Any]:
        """
        @return: the options that map to L{Config} fields, keyed as
            L{load_config} expects (C{None}: not given).
        """
        return {
            "host": self["host"],
            "transport_url": self["transport-url"],
            "control_exchange": self["control-exchange"],
            "database_connection": self["database-connection"],
            "report_interval": self["report-interval"],
            "periodic_enable": False if self["no-periodic"] else None,
            "periodic_fuzzy_delay": self["periodic-fuzzy-delay"],
            "periodic_interval_max": self["periodic-interval-max"],
            "log_level": self["log-level"],
        }

    def postOptions(self) -> None:
        """
        Load the configuration into L{settings}.

        @raise usage.UsageError: with L{ConfigError}'s message, which twistd
            prints without a traceback; also for a C{--manager} that is not
            a dotted path.
        """
        if self["manager"] is not None and not is_dotted_path(self["manager"]):
            raise usage.UsageError(
                f"--manager: expected a dotted path such as "
                f"novasvc.examples.echo.EchoManager, got {self['manager']!r}")
        try:
            self.settings = load_config(self["config"], self.overrides())
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options, reactor: Optional[Any] = None) -> IService:
    """
    Build the service for C{twistd novasvc}: a
    L{novasvc.service.Service} from C{Service.create()}, inside a
    L{HangupService} that turns SIGHUP into C{service.reset()} and logs
    through a L{LogControl} (C{log_level}, C{log_format}).

    This is the only function that touches the global reactor.

    @param options: parsed L{Options}.
    @param reactor: the reactor (default: the global one).
    @return: the service to run.
    @raise SystemExit: with a one-line message when C{Service.create} raises
        L{ConfigError} or L{LoadError} (e.g. the manager cannot be imported,
        built or served), so that twistd prints the message and exits with
        status 1 instead of showing a traceback; with C{--traceback} the
        error itself propagates.
    """
    if reactor is None:
        from twisted.internet import reactor
    from novasvc.service import Service as NovaService

    try:
        service = NovaService.create(
            host=options["host"],
            binary=options["binary"],
            topic=options["topic"],
            manager=options["manager"],
            report_interval=options["report-interval"],
            periodic_enable=False if options["no-periodic"] else None,
            periodic_fuzzy_delay=options["periodic-fuzzy-delay"],
            periodic_interval_max=options["periodic-interval-max"],
            config=options.settings,
            clock=reactor,
        )
    except (ConfigError, LoadError) as e:
        if options["traceback"]:
            raise
        raise SystemExit(f"novasvc: error: {e}") from None
    return HangupService(service, reactor, LogControl.from_options(options, reactor))


class HangupService(MultiService):
    """
    The parent of one service: it tells systemd (C{Type=notify}) when the
    service is ready and when it stops; while running, SIGHUP calls that service's
    C{reset()} (as oslo.service's "mutate" restart method does) in the
    reactor thread, and SIGTERM stops the reactor, which stops the service
    gracefully; the process then exits with status 0 (twistd's own handler
    would re-raise the signal and end with -15). Stopping puts the previous
    handlers back.

    Unlike a plain C{MultiService}, starting and stopping return the child's
    own C{Deferred}, so an asynchronous start or a failed stop is not lost.

    @ivar service: the child service, which has a C{reset()} method returning
        a value or a C{Deferred}.
    @ivar logs: the L{LogControl} or C{None}: given twistd's application
        as parent, it becomes twistd's log observer; it forwards standard
        library logging while running; SIGHUP re-reads its level.
    """

    def __init__(self, service: IService, reactor: IReactorFromThreads,
                 logs: Optional[LogControl] = None, notifier: Optional[Any] = None) -> None:
        """
        @param service: the child; it is added with C{setServiceParent}.
        @param reactor: where the reset runs, via C{callFromThread} (safe to
            call from a signal handler).
        @param logs: see L{logs}.
        @param notifier: told C{ready()} once the child has started and
            C{stopping()} when it stops (default: a
            L{novasvc.systemd.Notifier} on C{$NOTIFY_SOCKET}, which does
            nothing outside systemd).
        """
        MultiService.__init__(self)
        self.service = service
        self.logs = logs
        self._reactor = reactor
        if notifier is None:
            from novasvc.systemd import Notifier

            notifier = Notifier()
        self._notifier = notifier
        self._previous: Dict[int, Any] = {}
        service.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        if self.logs is not None:
            self.logs.install(parent)
        MultiService.setServiceParent(self, parent)

    def startService(self) -> defer.Deferred:
        """
        Start the child and install the SIGHUP handler; once the reactor
        runs (after it installed its own handlers), install the SIGTERM one.

        @return: a C{Deferred} firing with the child's start result. If the
            start fails, the failure is logged and the process exits with
            status 1 once the reactor has stopped (as oslo.service's launcher
            does when a service cannot start).
        """
        Service.startService(self)
        if self.logs is not None:
            self.logs.start()
        d = defer.maybeDeferred(self.service.startService)
        d.addCallbacks(self._started, self._start_failed)
        self._install(getattr(signal, "SIGHUP", None), self._on_hangup)
        self._reactor.callWhenRunning(self._install, signal.SIGTERM, self._on_terminate)
        return d

    def _install(self, signum: Optional[int], handler: Callable[[int, Any], None]) -> None:
        if signum is None or not self.running:
            return  # not on this platform, or already stopped
        try:
            previous = signal.signal(signum, handler)
        except ValueError:
            _log.warn("Not in the main thread: signal {signum} is not handled", signum=signum)
            return
        self._previous[signum] = signal.SIG_DFL if previous is None else previous

    def _started(self, result: Any) -> Any:
        self._notifier.ready()
        return result

    def _start_failed(self, failure: Any) -> None:
        _log.failure("The service failed to start; exiting", failure)
        self._reactor.addSystemEventTrigger("after", "shutdown", _exit, 1)
        self._reactor.callLater(0, self._reactor.stop)

    def stopService(self) -> defer.Deferred:
        """
        Put the previous signal handlers back, then stop the child.

        @return: a C{Deferred} firing with the child's stop result.
        """
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self._notifier.stopping()
        Service.stopService(self)
        d = defer.maybeDeferred(self.service.stopService)
        if self.logs is not None:
            d.addBoth(self.logs.stop)
        return d

    def _on_terminate(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._terminate)

    def _terminate(self) -> None:
        _log.info("SIGTERM received: stopping gracefully")
        self._reactor.stop()

    def _on_hangup(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._reset)

    def _reset(self) -> defer.Deferred:
        _log.info("SIGHUP received: resetting the service")
        if self.logs is not None:
            self.logs.reread()
        d = defer.maybeDeferred(self.service.reset)  # type: ignore[attr-defined]
        d.addErrback(lambda f: _log.failure("Error while resetting the service", f))
        return d


def _exit(code: int) -> None:
    """
    End the process with C{code} after the reactor stopped (twistd itself
    always exits 0 after a plain C{reactor.stop()}).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
