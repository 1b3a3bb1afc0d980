# -*- test-case-name: tests.test_bench -*-
"""
The floor's client, by hand on pika's Twisted adapter: a server-named
exclusive reply queue consumed with auto-ack through a direct callback; a
call is a JSON C{{"method", "args"}} published to the default exchange with
the topic as routing key, C{reply_to} and a C{correlation_id} (a counter),
matched to its C{Deferred} when the reply comes. A cast is the same without
C{reply_to}; a batch of casts counts as published when a synchronous method
sent after it on the same channel (C{queue.declare} passive) is answered:
the broker handles a channel's commands in order.

    python bench/_client_floor.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{payload}. Commands as novasvc's client.
"""

import itertools
import json
import time
from typing import Any, Dict

import pika
from twisted.internet import defer

from _child import make_payload, read_settings
from _floor import connect
from _twisted_child import Commands, run, sequential_calls, windowed_calls

#: Calls made (and not timed) before the first measured phase.
WARMUP_CALLS = 50


@defer.inlineCallbacks
def setup(reactor: Any, commands: Commands) -> Any:
    """
    Connect, declare and consume the reply queue, make the warm-up calls.
    """
    settings = read_settings()
    topic = settings["topic"]
    connection, wrapped, channel = yield connect(reactor, settings["url"])
    declared = yield wrapped.queue_declare(queue="", exclusive=True, auto_delete=True)
    reply_to = declared.method.queue
    pending: Dict[str, defer.Deferred] = {}
    ids = itertools.count()
    json_type = "application/json"
    value = make_payload(settings["payload"])

    def on_reply(_channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        d = pending.pop(properties.correlation_id, None)
        if d is not None:
            d.callback(json.loads(body)["result"])

    consumed: defer.Deferred = defer.Deferred()
    channel.basic_consume(reply_to, on_reply, auto_ack=True, callback=consumed.callback)
    yield consumed

    def call() -> defer.Deferred:
        correlation_id = str(next(ids))
        d = pending[correlation_id] = defer.Deferred()
        body = json.dumps({"method": "echo", "args": {"value": value}}).encode()
        channel.basic_publish("", topic, body,
                              pika.BasicProperties(content_type=json_type, reply_to=reply_to,
                                                   correlation_id=correlation_id))
        return d

    def cast_all(command: Dict[str, Any]) -> defer.Deferred:
        n = command["n"]
        properties = pika.BasicProperties(content_type=json_type)
        first = time.monotonic()
        for _ in range(n):
            body = json.dumps({"method": "echo", "args": {"value": value}}).encode()
            channel.basic_publish("", topic, body, properties)

        def published(_: Any) -> Dict[str, float]:
            last = time.monotonic()
            return {"first": first, "last": last, "rate": n / (last - first)}

        return wrapped.queue_declare(queue=topic, passive=True).addCallback(published)

    commands.handle("seq", lambda command: sequential_calls(call, command["n"]))
    commands.handle("inflight", lambda command: windowed_calls(call, command["n"], command["window"]))
    commands.handle("cast", cast_all)
    commands.handle("exit", lambda _: connection.close())
    yield sequential_calls(call, WARMUP_CALLS)


if __name__ == "__main__":
    run(setup)
