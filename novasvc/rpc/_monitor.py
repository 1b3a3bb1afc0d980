# -*- test-case-name: tests.test_rpc_monitor -*-
"""
oslo.messaging's call monitor, on the server's side (L{CallMonitors}): while
the method of a call that sent a C{_timeout} runs, an C{ending: false} reply
(a heartbeat) goes to its caller every C{int(_timeout) / 2} seconds, so that
the caller knows the call still runs (oslo-wire-protocol.md, the call
monitor).

A heartbeat is published as any reply (mandatory, to the default exchange),
but nothing waits for it: one that is not sent is a DEBUG line, the next
one is due anyway.
"""

from typing import Any, Optional, Set

from twisted.internet import task
from twisted.logger import Logger, LogLevel

from novasvc._text import clip, quote
from novasvc.interfaces import ITransport
from novasvc.rpc import wire
from novasvc.transport.topology import DEFAULT_EXCHANGE, is_direct_reply_to

__all__ = ["CallMonitors"]


class CallMonitors:
    """
    The heartbeats of the calls running now on one L{novasvc.rpc.server.RPCServer}.

    @ivar clock: the C{IReactorTime} that times the heartbeats (set by the
        server when it starts).
    """

    _log = Logger()

    def __init__(self, transport: ITransport) -> None:
        """
        @param transport: where heartbeats are published.
        """
        self._transport = transport
        self.clock: Any = None
        self._running: Set[task.LoopingCall] = set()

    def start(self, request: wire.Request) -> Optional[task.LoopingCall]:
        """
        Send heartbeats for C{request} until L{stop}. It never raises: a
        monitor that cannot start is logged.

        @param request: a call that sent a C{_timeout}.
        @return: the monitor, for L{stop}; C{None} when C{_timeout} gives no
            usable interval (logged once at WARNING) or the monitor could
            not start.
        """
        try:
            interval = int(request.timeout) / 2  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            interval = 0
        if interval < 1:
            self._log.warn("Call {method!r} ({msg_id}) sent an unusable call-monitor timeout {timeout!r}; "
                           "no heartbeats", method=clip(request.method), msg_id=clip(request.msg_id),
                           timeout=quote(request.timeout))
            return None
        try:
            loop = task.LoopingCall(self._heartbeat, request.reply_q, request.msg_id)
            loop.clock = self.clock
            loop.start(interval, now=False)
        except Exception:
            self._log.failure("Could not start the call monitor of {msg_id}", msg_id=clip(request.msg_id),
                              level=LogLevel.error)
            return None
        self._running.add(loop)
        return loop

    def stop(self, monitor: task.LoopingCall) -> None:
        """
        The call's method ended: no more heartbeats for it.

        @param monitor: what L{start} returned.
        """
        self._running.discard(monitor)
        if monitor.running:
            monitor.stop()

    def stop_all(self) -> None:
        """
        Stop every monitor (the server's C{wait} ended): no timer is left.
        """
        monitors, self._running = self._running, set()
        for monitor in monitors:
            if monitor.running:
                monitor.stop()

    def _heartbeat(self, reply_q: str, msg_id: str) -> None:
        try:
            d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, wire.encode_reply(msg_id, ending=False),
                                        mandatory=not is_direct_reply_to(reply_q))
            d.addErrback(lambda f: self._log.debug("Heartbeat for {msg_id} not sent: {error}", msg_id=clip(msg_id),
                                                   error=f.getErrorMessage()))
        except Exception:
            self._log.failure("Heartbeat for {msg_id} failed", msg_id=clip(msg_id), level=LogLevel.error)
