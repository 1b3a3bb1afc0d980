"""
An unmodified oslo.messaging notification peer, run as a subprocess by the
notification interop tests (either direction).

  python _oslo_notify_peer.py notifier URL EXCHANGE ACTIONS_JSON
      Sends each action with an oslo Notifier and prints one JSON line per
      action: {"ok": null} or {"error": class, "message": ...}. An action:
      {"priority" (default "info"), "event_type", "payload", "publisher_id",
      "driver" (default "messagingv2"), "topics" (default ["notifications"]),
      "retry", "ctxt" (a dict, sent as oslo sends a plain dict: dropped),
      "context" (a dict made into an oslo.context RequestContext with
      from_dict, whose redacted copy travels)}.

  python _oslo_notify_peer.py listener URL EXCHANGE SPEC_JSON
      Runs an oslo notification listener (threading executor), prints READY
      once consuming, then one JSON line per endpoint call: {"priority",
      "ctxt", "publisher_id", "event_type", "payload", "metadata",
      "result": "handled"|"requeue", "name"}, and stops when stdin closes.
      SPEC: {"topics" (default ["notifications"]), "pool" (default null),
      "allow_requeue" (default false), "requeue_once" (default false: the
      endpoint asks for a requeue the first time it sees a message_id),
      "filter" (default null: NotificationFilter keyword arguments:
      publisher_id, event_type, context, payload), "name" (echoed in every
      line)}.
"""

import json
import sys
import threading

import oslo_messaging as om

# The script's own folder is on sys.path: the RPC peer's oslo.config set-up.
from _oslo_peer import oslo_conf

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


def notifier(url, exchange, actions):
    transport = om.get_notification_transport(oslo_conf(exchange), url=url)
    try:
        for action in json.loads(actions):
            sender = om.Notifier(transport, publisher_id=action.get("publisher_id", "oslo.peer"),
                                 driver=action.get("driver", "messagingv2"),
                                 topics=action.get("topics", ["notifications"]), retry=action.get("retry"))
            if "context" in action:
                from oslo_context import context as oslo_context

                ctxt = oslo_context.RequestContext.from_dict(action["context"])
            else:
                ctxt = action.get("ctxt", {})
            try:
                send = getattr(sender, action.get("priority", "info"))
                send(ctxt, action.get("event_type", "peer.event"), action.get("payload", {}))
                out = {"ok": None}
            except Exception as e:
                out = {"error": type(e).__name__, "message": str(e)}
            print(json.dumps(out), flush=True)
    finally:
        transport.cleanup()


class _Endpoint:
    def __init__(self, spec, lock):
        self._lock = lock
        self._name = spec.get("name")
        self._requeue_once = spec.get("requeue_once", False)
        self._seen = set()
        if spec.get("filter") is not None:
            self.filter_rule = om.NotificationFilter(**spec["filter"])
        for priority in PRIORITIES:
            setattr(self, priority, self._handler(priority))

    def _handler(self, priority):
        def handle(ctxt, publisher_id, event_type, payload, metadata):
            result = "handled"
            with self._lock:
                message_id = metadata.get("message_id")
                if self._requeue_once and message_id not in self._seen:
                    self._seen.add(message_id)
                    result = "requeue"
                print(json.dumps({"priority": priority, "ctxt": ctxt, "publisher_id": publisher_id,
                                  "event_type": event_type, "payload": payload, "metadata": metadata,
                                  "result": result, "name": self._name}, default=str), flush=True)
            if result == "requeue":
                return om.NotificationResult.REQUEUE
            return om.NotificationResult.HANDLED

        return handle


def listener(url, exchange, spec):
    spec = json.loads(spec)
    transport = om.get_notification_transport(oslo_conf(exchange), url=url)
    targets = [om.Target(topic=topic) for topic in spec.get("topics", ["notifications"])]
    server = om.get_notification_listener(transport, targets, [_Endpoint(spec, threading.Lock())],
                                          executor="threading", pool=spec.get("pool"),
                                          allow_requeue=spec.get("allow_requeue", False))
    server.start()
    print("READY", flush=True)
    sys.stdin.read()
    server.stop()
    server.wait()
    transport.cleanup()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"notifier": notifier, "listener": listener}[mode](*args)
