# -*- test-case-name: tests.test_bench -*-
"""
The oslo.messaging children's shared parts: a transport on a private
C{ConfigOpts} (oslo.messaging 18 registers its tracing and metrics option
groups on the global C{cfg.CONF} only, so they are registered here too), and
the driver's line protocol as a blocking loop on stdin in the main thread.
"""

import json
import logging
import sys
import threading
from typing import Any, Callable, Dict, Optional

import oslo_messaging
from oslo_config import cfg

from _child import encode_event

__all__ = ["CommandLoop", "get_transport"]

Handler = Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]


def get_transport(url: str, exchange: str, notification: bool = False) -> Any:
    """
    @param url: the AMQP URL (C{rabbit://...}); its query may carry
        C{[oslo_messaging_rabbit]} options, as oslo.messaging allows.
    @param exchange: the control exchange.
    @param notification: make a notification transport
        (C{get_notification_transport}) instead of an RPC one.
    @return: an oslo.messaging transport with every other option at its
        default.
    """
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    oslo_messaging.set_transport_defaults(control_exchange=exchange)
    conf = cfg.ConfigOpts()
    conf([], project="novasvc-bench")
    try:
        from oslo_messaging._metrics import client as metrics
        from oslo_messaging._tracing import client as tracing
    except ImportError:
        pass
    else:
        conf.register_opts(tracing.oslo_messaging_tracing, group="oslo_messaging_tracing")
        conf.register_opts(metrics.oslo_messaging_metrics, group="oslo_messaging_metrics")
    if notification:
        return oslo_messaging.get_notification_transport(conf, url=url)
    return oslo_messaging.get_rpc_transport(conf, url=url)


class CommandLoop:
    """
    Read commands from stdin and answer them, one at a time, in the calling
    thread; events may be written from any thread.
    """

    def __init__(self) -> None:
        self._handlers: Dict[str, Handler] = {}
        self._lock = threading.Lock()

    def handle(self, name: str, handler: Handler) -> None:
        """
        Register C{handler} for the command C{name}; it returns the reply
        C{dict} or C{None}. C{exit} ends L{run} after its handler ran.
        """
        self._handlers[name] = handler

    def emit(self, event: Dict[str, Any]) -> None:
        """
        Write one event line to stdout (thread-safe).
        """
        data = encode_event(event)
        with self._lock:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    def run(self) -> None:
        """
        Answer commands until C{exit} or the end of stdin.
        """
        for line in sys.stdin:
            try:
                command = json.loads(line)
                name = command["cmd"]
            except (ValueError, KeyError, TypeError) as e:
                self.emit({"event": "error", "cmd": None, "error": f"bad command line {line[:200]!r}: {e}"})
                continue
            if name == "exit":
                break
            handler = self._handlers.get(name)
            if handler is None:
                self.emit({"event": "error", "cmd": name, "error": f"unknown command {name!r}"})
                continue
            try:
                reply = dict(handler(command) or {})
            except Exception as e:
                logging.exception("command %s failed", name)
                self.emit({"event": "error", "cmd": name, "error": f"{type(e).__name__}: {e}"})
                continue
            reply["event"] = name
            self.emit(reply)
        handler = self._handlers.get("exit")
        if handler is not None:
            handler({})
