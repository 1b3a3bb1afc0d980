# -*- test-case-name: tests.test_process_api_tap -*-
"""
C{twistd novasvc-api}: the API on its own, without a manager
(L{novasvc.api.standalone}): L{Options} and L{makeService}, used by the
plugin in C{twisted/plugins/novasvc_plugin.py} and by C{twistd novasvc
--api-only}.

Signals, systemd and the exit status are L{novasvc.process.launcher.HangupService}'s,
as for C{twistd novasvc}. With C{api.workers} above 1 the process is the
supervising parent of that many API worker processes
(L{novasvc.process.api_workers}).
"""

from typing import Any, Optional

import attrs
from twisted.application.service import IService
from twisted.python import usage

from novasvc.process._argv import ArgvOptions, count
from novasvc.config.api import check_listen, check_workers
from novasvc.config import Config, load_config
from novasvc.exceptions import ConfigError

__all__ = ["Options", "makeService", "serve"]


class Options(ArgvOptions):
    """
    Options of C{twistd novasvc-api}.

    @ivar settings: the L{Config} built by L{postOptions}, with C{--listen}
        applied to C{api.listen}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve the novasvc HTTP API (services table, health, metrics, RPC gateway) without "
        "running a manager. Settings come from --config (its api: section), then the built-in "
        "defaults; api.enabled is not needed."
    )
    optParameters = [
        ["config", "c", None, "YAML configuration file (every key: etc/novasvc.yaml)."],
        ["listen", "l", None,
         "Twisted endpoint to listen on, e.g. tcp:8774:interface=127.0.0.1 or tcp:0 "
         "(default: the config's api.listen)."],
        ["transport-url", None, None, "Broker URL, e.g. rabbit://user:password@host:5672/vhost."],
        ["database-connection", None, None, "SQLAlchemy URL of the services table's database."],
        ["log-level", None, None,
         "Lowest level logged: debug, info, warning, error or critical (config default: info)."],
        ["worker-index", None, None,
         "Internal: run as API worker K of the supervising parent that passes it.",
         count("worker-index")],
    ]

    settings: Config

    def postOptions(self) -> None:
        """
        Load the configuration into L{settings}.

        @raise usage.UsageError: with the configuration's or C{--listen}'s
            error, which twistd prints without a traceback.
        """
        try:
            settings = load_config(self["config"], {
                "transport_url": self["transport-url"],
                "database_connection": self["database-connection"],
                "log_level": self["log-level"],
            })
            if self["listen"] is not None:
                try:
                    check_listen(self["listen"])
                except ConfigError as e:
                    raise ConfigError(f"command line option --listen: {e}") from None
                settings = settings.replace(api=attrs.evolve(settings.api, listen=self["listen"]))
                try:
                    check_workers(settings.api)
                except ConfigError as e:
                    raise ConfigError(f"command line option --listen: {e}") from None
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        self.settings = settings


def makeService(options: Options, reactor: Optional[Any] = None) -> IService:
    """
    Build the service for C{twistd novasvc-api}: L{serve}.

    This and L{novasvc.process.tap.makeService} are the only functions that touch
    the global reactor.

    @raise SystemExit: with a one-line message for a configuration error.
    """
    if reactor is None:
        from twisted.internet import reactor
    return serve(options, reactor, "novasvc-api")


def serve(options: Any, reactor: Any, plugin: str) -> IService:
    """
    The standalone API for parsed options (of C{twistd novasvc-api}, or of
    C{twistd novasvc --api-only}):

      - with C{api.workers} above 1 (and no C{--worker-index}), the
        supervising parent of that many workers, each running C{plugin}
        with the same options (L{novasvc.process.api_workers.make_api_supervisor});
      - with C{--worker-index}, one of those workers
        (L{novasvc.process.api_workers.make_api_worker});
      - otherwise L{novasvc.api.standalone.make_api_service} inside a
        L{novasvc.process.launcher.HangupService} (signals, exit status, systemd,
        logging).

    @param options: the parsed options: C{settings}, C{argv}, C{config},
        C{log-level}, C{worker-index}.
    @param plugin: the twistd plugin the workers run.
    @raise SystemExit: with a one-line message (C{<plugin>: error: ...})
        for a configuration error.
    """
    try:
        if options["worker-index"] is not None:
            from novasvc.process.api_workers import make_api_worker

            return make_api_worker(options, reactor)
        if options.settings.api.workers > 1:
            from novasvc.process.api_workers import make_api_supervisor

            return make_api_supervisor(options, reactor, plugin)
        from novasvc.api.standalone import make_api_service

        service = make_api_service(options.settings, reactor)
    except ConfigError as e:
        raise SystemExit(f"{plugin}: error: {e}") from None
    from novasvc.process.launcher import HangupService
    from novasvc.process.log import LogControl

    return HangupService(service, reactor, LogControl.from_options(options, reactor),
                         daemon=getattr(options, "parent", None))
