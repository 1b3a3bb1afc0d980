# -*- test-case-name: tests.test_bench -*-
"""
The floor's server: the same RPC pattern as novasvc's written by hand on
pika's Twisted adapter, the least any framework on this client can cost.

One request queue (the topic), consumed with manual acks and a prefetch of
64 (novasvc's default in-flight bound) through a direct callback; the body
is JSON C{{"method", "args"}}; a request with a C{reply_to} is a call,
answered with JSON C{{"result"}} on the default exchange with the request's
C{correlation_id}; each request is acked once handled (after its reply is
written), like novasvc's late ack but without publisher confirms.

    python bench/_server_floor.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{arm} (optional, as novasvc's server).
Commands: C{arm} (C{n}), C{profile}, C{exit}.
"""

import json
from typing import Any, Dict

import pika
from twisted.internet import defer

from _child import DispatchClock, read_settings
from _floor import connect
from _twisted_child import Commands, run

#: The consumer's prefetch: novasvc's default C{rpc_max_inflight}.
PREFETCH = 64


class Endpoint:
    """
    What the floor serves: C{echo}, ticking the dispatch clock.
    """

    def __init__(self, clock: DispatchClock) -> None:
        """
        @param clock: ticked by each C{echo}.
        """
        self._clock = clock

    def echo(self, value: Any) -> Any:
        """
        @return: C{value}, after ticking the dispatch clock.
        """
        self._clock.hit()
        return value


@defer.inlineCallbacks
def setup(reactor: Any, commands: Commands) -> Any:
    """
    Connect, declare the request queue and consume it.
    """
    settings = read_settings()
    clock = DispatchClock(commands.emit)
    if settings.get("arm"):
        clock.arm(settings["arm"])
    endpoint = Endpoint(clock)
    connection, wrapped, channel = yield connect(reactor, settings["url"])
    queue = settings["topic"]
    yield wrapped.queue_declare(queue=queue, durable=False, exclusive=False, auto_delete=False)
    yield wrapped.basic_qos(prefetch_count=PREFETCH)
    json_type = "application/json"

    def on_request(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        request = json.loads(body)
        result = getattr(endpoint, request["method"])(**request["args"])
        if properties.reply_to:
            channel.basic_publish(
                "", properties.reply_to, json.dumps({"result": result}).encode(),
                pika.BasicProperties(content_type=json_type, correlation_id=properties.correlation_id),
            )
        channel.basic_ack(method.delivery_tag)

    consumed: defer.Deferred = defer.Deferred()
    channel.basic_consume(queue, on_request, auto_ack=False, callback=consumed.callback)
    yield consumed

    def arm(command: Dict[str, Any]) -> None:
        clock.arm(command["n"])

    def stop(_: Any) -> Any:
        return connection.close()

    commands.handle("arm", arm)
    commands.handle("exit", stop)


if __name__ == "__main__":
    run(setup)
