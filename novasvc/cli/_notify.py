# -*- test-case-name: tests.test_cli_services,tests.test_core_service_notifications -*-
"""
How C{novasvc-manage}, a synchronous tool, sends the versioned service
notifications of what it changed: it runs the reactor once, with a
transport to the file's broker, until the broker confirmed them or
C{rpc_response_timeout} seconds passed.
"""

from typing import IO, Any, List, Sequence, Tuple

from twisted.internet import defer

from novasvc.config import Config
from novasvc.core.service_status import notify_service

__all__ = ["send_service_notifications"]


def send_service_notifications(config: Config, changes: Sequence[Tuple[str, Any]], err: IO[str],
                               reactor: Any = None) -> None:
    """
    Send C{service.<action>} for each change, when C{config} asks for
    versioned notifications; nothing otherwise (no broker connection is
    made).

    @param config: the tool's configuration (C{transport_url},
        C{notifications}, C{rpc_response_timeout}).
    @param changes: C{(action, record)} pairs, in order.
    @param err: where a notification not confirmed in time is reported, one
        line each.
    @param reactor: the reactor to run (the global one when C{None}); it is
        run and stopped, so this can be called once per process.
    """
    from novasvc.notify.notifier import Notifier
    from novasvc.transport import TLSOptions, get_transport

    if reactor is None:
        from twisted.internet import reactor
    transport = get_transport(config.transport_url, reactor=reactor, client=config.amqp_client,
                              heartbeat=int(config.heartbeat_timeout_threshold),
                              tls=TLSOptions.from_config(config))
    notifier = Notifier.from_config(transport, config, versioned=True)
    if not notifier.is_enabled():
        return
    sent: List[bool] = []

    def send() -> defer.Deferred:
        transport.start()
        pending = [notify_service(notifier, action, record).addCallback(lambda _: sent.append(True))
                   for action, record in changes]
        finished: defer.Deferred = defer.Deferred()

        def finish(_: object = None) -> None:
            if not finished.called:
                finished.callback(None)

        timeout = reactor.callLater(config.rpc_response_timeout, finish)
        defer.DeferredList(pending, consumeErrors=True).addBoth(finish)
        finished.addCallback(lambda _: timeout.active() and timeout.cancel())
        finished.addCallback(lambda _: transport.stop())
        return finished.addErrback(lambda _: None)

    def run() -> None:
        send().addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run(installSignalHandlers=False)
    if len(sent) < len(changes):
        print(f"novasvc-manage: warning: {len(changes) - len(sent)} service notification(s) not "
              f"confirmed by the broker within {config.rpc_response_timeout:g} s", file=err)
