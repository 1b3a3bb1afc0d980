# -*- test-case-name: tests.test_process_tap -*-
"""
The C{twistd novasvc} (and C{twist novasvc}) command line: L{Options} and
L{makeService}, used by the plugin in C{twisted/plugins/novasvc_plugin.py}.
What the running process does with signals, systemd and its exit status is
L{novasvc.process.launcher.HangupService}'s.

Settings come from L{novasvc.config.Config}'s defaults, overridden by the
C{--config} YAML file, overridden by the options given here: an option that
is not given is C{None} and leaves the file's value alone.
"""

import os
import sys
from typing import Any, Callable, Dict, Optional

from twisted.application.service import IService
from twisted.python import usage

from novasvc.process._argv import ArgvOptions, count
from novasvc.config.api import embedded_refusal
from novasvc.config import Config, load_config
from novasvc.config.loader import is_dotted_path
from novasvc.exceptions import ConfigError, LoadError
from novasvc.process.launcher import HangupService
from novasvc.process.log import LogControl

__all__ = ["Options", "makeService"]


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


class Options(ArgvOptions):
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
        ["workers", None, None,
         "Processes running the service (config default: 1); above 1, this process supervises "
         "that many workers.", count("workers")],
        ["worker-index", None, None,
         "Internal: run as worker K of the supervising parent that passes it.",
         count("worker-index")],
    ]
    optFlags = [
        ["no-periodic", None, "Do not run periodic tasks."],
        ["traceback", None,
         "Show the traceback of a start-up error (default: one line naming the cause)."],
        ["api-only", None,
         "Serve only the HTTP API (api: section), without a manager: as twistd novasvc-api."],
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
            "workers": self["workers"],
        }

    def postOptions(self) -> None:
        """
        Load the configuration into L{settings}.

        The working directory is appended to C{sys.path} (last, so that it
        shadows no installed package), so that C{--manager} and the
        configuration may name a package in the directory twistd is run
        from, as C{python -m} allows.

        @raise SystemExit: with L{ConfigError}'s message as one line
            (C{novasvc: error: FILE, line N: ...}; status 1), not twistd's
            usage text: the options were right, the file is not.
        @raise usage.UsageError: for a C{--manager} that is not a dotted
            path.
        """
        if self["manager"] is not None and not is_dotted_path(self["manager"]):
            raise usage.UsageError(
                f"--manager: expected a dotted path such as "
                f"novasvc.examples.echo.EchoManager, got {self['manager']!r}")
        _append_working_directory()
        try:
            self.settings = load_config(self["config"], self.overrides())
        except ConfigError as e:
            raise SystemExit(f"novasvc: error: {e}") from None


def _append_working_directory() -> None:
    """
    Put the working directory at the end of C{sys.path}, once: twistd's
    console script starts with its own C{bin/} directory there instead.
    """
    here = os.getcwd()
    if here not in sys.path and os.curdir not in sys.path and "" not in sys.path:
        sys.path.append(here)


def makeService(options: Options, reactor: Optional[Any] = None) -> IService:
    """
    Build the service for C{twistd novasvc}: a
    L{novasvc.core.service.Service} from C{Service.create()}, serving the HTTP
    API as its last step when C{api.enabled} (L{novasvc.api.service.embed}),
    inside a
    L{HangupService} that turns SIGHUP into C{service.reset()} and logs
    through a L{LogControl} (C{log_level}, C{log_format}).

    With C{workers} above 1 (and no C{--worker-index}), it is instead the
    supervising parent of that many worker processes, each running this
    function again with C{--worker-index K} (see L{novasvc.process.workers.twistd}).
    With C{--api-only} it is the standalone API
    (L{novasvc.process.api_tap.serve}: C{api.workers}, not C{workers}, sets its
    processes). C{api.enabled} with C{api.workers} or C{workers} above 1
    is refused (L{novasvc.config.api.embedded_refusal}).

    This is the only function that touches the global reactor.

    @param options: parsed L{Options}.
    @param reactor: the reactor (default: the global one).
    @return: the service to run.
    @raise SystemExit: with a one-line message when C{Service.create} (or
        the API) raises L{ConfigError} or L{LoadError} (e.g. the manager
        cannot be imported, built or served), so that twistd prints the
        message and exits with status 1 instead of showing a traceback;
        with C{--traceback} the error itself propagates.
    """
    if reactor is None:
        from twisted.internet import reactor
    if options["api-only"]:
        from novasvc.process.api_tap import serve

        return serve(options, reactor, "novasvc")
    refusal = embedded_refusal(options.settings.api, options.settings.workers)
    if refusal is not None:
        raise SystemExit(f"novasvc: error: {refusal}")
    if options["worker-index"] is None and options.settings.workers > 1:
        from novasvc.process.workers.twistd import make_supervisor

        return make_supervisor(options, reactor)
    from novasvc.core.service import Service as NovaService

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
        if options.settings.api.enabled:
            from novasvc.api.service import embed  # twisted.web and klein, only when on

            embed(service)
    except (ConfigError, LoadError) as e:
        if options["traceback"]:
            raise
        raise SystemExit(f"novasvc: error: {e}") from None
    if options["worker-index"] is not None:
        from novasvc.process.workers.twistd import make_worker

        return make_worker(service, options, reactor)
    # twistd's own options (the plugin's parent) hold its daemon status pipe.
    return HangupService(service, reactor, LogControl.from_options(options, reactor),
                         daemon=getattr(options, "parent", None),
                         traceback=bool(options["traceback"]))
