# -*- test-case-name: tests.test_process_log -*-
"""
Log levels and log observers for C{twistd novasvc}: L{LogControl}.

twistd makes its log observer after the plugin has made the service, and
uses the application's L{ILogObserver} component instead when it has one
(and no C{--logger} was given). L{LogControl.install} sets that component:
an observer writing where twistd itself would (C{--logfile}, C{--syslog},
standard output under C{-n}, C{twistd.log} for a daemon), as C{text} or
C{json} lines, behind a level filter that L{LogControl.set_level} changes
while the process runs (on SIGHUP, through L{LogControl.reread}).

L{LogControl.start} forwards the standard library's C{logging} records
(pika's among them) into C{twisted.logger}, under the same level. Two
sources repeat at C{info} what novasvc already reports about the broker
connection: pika, and Twisted's C{ClientService} ("Scheduling retry...").
Below C{warning} they show only when the level is C{debug}.
"""

import logging
import signal
import sys
from typing import IO, Any, Dict, Optional, Tuple

from twisted.application.app import ServerOptions
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    eventAsJSON,
    eventAsText,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile

from novasvc.config import LOG_LEVELS, load_config
from novasvc.exceptions import ConfigError

__all__ = ["LEVELS", "LogControl", "file_observer"]

_log = Logger()

#: The C{log_level} names and the L{LogLevel} each stands for.
LEVELS: Dict[str, LogLevel] = dict(zip(LOG_LEVELS, [
    LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical]))

_STDLIB_LEVELS: Dict[str, int] = dict(zip(LOG_LEVELS, [
    logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]))

#: Namespaces (and standard-library logger names) whose records below
#: warning repeat what novasvc reports itself: shown only at debug.
_ECHOES = ("pika", "twisted.application._client_service")


def file_observer(out: IO[Any], log_format: str) -> ILogObserver:
    """
    @param out: the (text) file to write to.
    @param log_format: C{"text"}, twistd's lines, or C{"json"}: one JSON
        object per line, Twisted's event fields (as
        L{twisted.logger.eventAsJSON} writes them) plus C{log_text}, the
        formatted message followed by the traceback if there is one.
    @return: an observer writing every event it gets to C{out}.
    @raise ValueError: for another C{log_format}.
    """
    if log_format == "text":
        return textFileLogObserver(out)
    if log_format == "json":
        return FileLogObserver(out, _json_line)
    raise ValueError(f"log_format must be 'text' or 'json', not {log_format!r}")


def _json_line(event: Dict[str, Any]) -> str:
    fields = dict(event)
    fields["log_text"] = eventAsText(event, includeTimestamp=False, includeSystem=False)
    return eventAsJSON(fields) + "\n"


class LogControl:
    """
    The process's log level and log format.

    @ivar log_format: C{"text"} or C{"json"}.
    """

    def __init__(self, level: str = "info", log_format: str = "text", *,
                 config_path: Optional[str] = None, fixed_level: Optional[str] = None,
                 twistd_options: Optional[ServerOptions] = None, reactor: Any = None) -> None:
        """
        @param level: the first level, one of L{LEVELS}.
        @param log_format: C{"text"} or C{"json"}.
        @param config_path: the YAML file L{reread} reads C{log_level} from,
            or C{None}.
        @param fixed_level: a level given on the command line, which wins
            over the file's on L{reread} as at start-up, or C{None}.
        @param twistd_options: twistd's own options (C{--logfile},
            C{--syslog}, C{--nodaemon}...) when running under twistd,
            else C{None}, and L{install} does nothing.
        @param reactor: where a log file is rotated on SIGUSR1 (through
            C{callFromThread}); the global reactor when C{None}.
        @raise ValueError: for an unknown C{level} or C{log_format}.
        """
        if log_format not in ("text", "json"):
            raise ValueError(f"log_format must be 'text' or 'json', not {log_format!r}")
        self.log_format = log_format
        self._config_path = config_path
        self._fixed_level = fixed_level
        self._twistd = twistd_options
        self._reactor = reactor
        self._forward: Optional[_Forward] = None
        self._saved_levels: Tuple[int, int] = (logging.NOTSET, logging.NOTSET)
        self.set_level(level)

    @classmethod
    def from_options(cls, options: Any, reactor: Any = None,
                     log_format: Optional[str] = None) -> "LogControl":
        """
        @param options: parsed L{novasvc.process.tap.Options}: its C{settings}, its
            C{config} and C{log-level} options, and its C{parent} (twistd's
            options, when twistd parsed them).
        @param reactor: see L{__init__}.
        @param log_format: a format that wins over the configuration's
            (a worker process logs C{json} for its parent to read), or
            C{None}.
        @return: the L{LogControl} for those options.
        """
        parent = getattr(options, "parent", None)
        return cls(options.settings.log_level, log_format or options.settings.log_format,
                   config_path=options["config"], fixed_level=options["log-level"],
                   twistd_options=parent if isinstance(parent, ServerOptions) else None,
                   reactor=reactor)

    @property
    def level(self) -> str:
        """
        The current level's name, one of L{LEVELS}.
        """
        return self._level

    def set_level(self, level: str) -> None:
        """
        From now on, let through the events at C{level} or above, in the
        observer made by L{filter} and for the standard library's records.

        @param level: one of L{LEVELS}.
        @raise ValueError: for another name.
        """
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
        threshold = LEVELS[level]
        predicate = LogLevelFilterPredicate(threshold)
        for namespace in _ECHOES:
            predicate.setLogLevelForNamespace(
                namespace, threshold if level == "debug" else max(threshold, LogLevel.warn))
        # The "log level now ..." line shows whatever the level.
        predicate.setLogLevelForNamespace(_log.namespace, min(threshold, LogLevel.info))
        self._predicate = predicate
        self._level = level
        if self._forward is not None:
            self._set_stdlib_levels()

    def filter(self, observer: ILogObserver) -> ILogObserver:
        """
        @param observer: where the events go.
        @return: an observer passing to C{observer} the events at or above
            the current level (it follows later L{set_level} calls).
            Events without a level or a namespace are dropped.
        """
        return FilteringLogObserver(observer, [self._check])

    def _check(self, event: Dict[str, Any]) -> Any:
        return self._predicate(event)

    # -- twistd -----------------------------------------------------------

    def install(self, application: Any) -> bool:
        """
        Make twistd log through this L{LogControl}: set C{application}'s
        L{ILogObserver} component, which twistd's C{AppLogger} uses when no
        C{--logger} is given.

        Call it before twistd starts logging, that is while the plugin's
        service is given its parent; the observer's file is opened now.

        @param application: twistd's application, a C{Componentized}.
        @return: C{True} when the component was set; C{False} when not
            running under twistd or when twistd was given C{--logger} (the
            latter is logged).
        @raise SystemExit: for C{--logfile=-} without C{--nodaemon}, as
            twistd itself.
        """
        server = self._twistd
        if server is None or not hasattr(application, "setComponent"):
            return False
        if server.get("logger"):
            _log.info("twistd --logger given: log_level and log_format do not apply")
            return False
        application.setComponent(ILogObserver, self.filter(self._destination(server)))
        return True

    def _destination(self, server: ServerOptions) -> ILogObserver:
        # The choice twistd's own (Unix) AppLogger makes.
        if server.get("syslog"):
            from twisted.python.syslog import SyslogObserver

            return LegacyLogObserverWrapper(SyslogObserver(server.get("prefix") or "twisted").emit)
        name = server.get("logfile") or ""
        if name == "-" and not server.get("nodaemon"):
            sys.exit("Daemons cannot log to stdout, exiting!")
        if name == "-" or (not name and server.get("nodaemon")):
            return file_observer(sys.stdout, self.log_format)
        log_file = LogFile.fromFullPath(name or "twistd.log")
        if hasattr(signal, "SIGUSR1") and not signal.getsignal(signal.SIGUSR1):
            signal.signal(signal.SIGUSR1, lambda signum, frame: self._event_loop.callFromThread(log_file.rotate))
        return file_observer(log_file, self.log_format)

    @property
    def _event_loop(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def reread(self) -> None:
        """
        Read C{log_level} again from the configuration file (as SIGHUP
        does), keeping a command-line level first, and apply it; log
        C{"log level now <name>"} at info (shown whatever the level). A file
        that is now refused is logged and changes nothing. Without a file,
        nothing happens.
        """
        if self._config_path is None:
            return
        try:
            level = load_config(self._config_path, {"log_level": self._fixed_level}).log_level
        except ConfigError as e:
            _log.warn("Log level left at {name}: {error}", name=self._level, error=str(e))
            return
        self.set_level(level)
        _log.info("log level now {name}", name=level)

    # -- the standard library's logging -------------------------------------

    def start(self) -> None:
        """
        Forward the standard library's records into C{twisted.logger}: a
        handler on the root logger, whose level (and pika's) follows this
        L{LogControl}'s. Starting twice does nothing.
        """
        if self._forward is not None:
            return
        root, pika = logging.getLogger(), logging.getLogger("pika")
        self._saved_levels = (root.level, pika.level)
        self._forward = _Forward()
        root.addHandler(self._forward)
        self._set_stdlib_levels()

    def stop(self, result: Any = None) -> Any:
        """
        Remove the handler L{start} added and put the levels back.

        @param result: returned as is, so that C{stop} can be a C{Deferred}
            callback.
        @return: C{result}.
        """
        if self._forward is None:
            return result
        root, pika = logging.getLogger(), logging.getLogger("pika")
        root.removeHandler(self._forward)
        root.setLevel(self._saved_levels[0])
        pika.setLevel(self._saved_levels[1])
        self._forward = None
        return result

    def _set_stdlib_levels(self) -> None:
        level = _STDLIB_LEVELS[self._level]
        logging.getLogger().setLevel(level)
        for name in _ECHOES:
            logging.getLogger(name).setLevel(level if level == logging.DEBUG else max(level, logging.WARNING))


def _level_of(record: logging.LogRecord) -> LogLevel:
    number = record.levelno
    if number >= logging.CRITICAL:
        return LogLevel.critical
    if number >= logging.ERROR:
        return LogLevel.error
    if number >= logging.WARNING:
        return LogLevel.warn
    if number >= logging.INFO:
        return LogLevel.info
    return LogLevel.debug


class _Forward(logging.Handler):
    """
    Emit each standard-library record as a C{twisted.logger} event: the
    namespace is the logger's name, the level the nearest L{LogLevel}, the
    text C{record.getMessage()} (in the field C{stdlib_text}), and an
    exception becomes the event's failure.
    """

    def __init__(self, observer: Optional[ILogObserver] = None) -> None:
        """
        @param observer: where events go; the global log publisher when
            C{None}.
        """
        logging.Handler.__init__(self)
        self._observer = observer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = Logger(namespace=record.name, observer=self._observer)
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                failure = Failure(record.exc_info[1], record.exc_info[0], record.exc_info[2])
                log.failure("{stdlib_text}", failure, level=_level_of(record), stdlib_text=text)
            else:
                log.emit(_level_of(record), "{stdlib_text}", stdlib_text=text)
        except Exception:
            self.handleError(record)
