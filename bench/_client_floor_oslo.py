# -*- test-case-name: tests.test_bench -*-
"""
The oslo-protocol floor's client (L{_oslo_protocol.Client}): C{echo(value)}
calls and casts in oslo.messaging's format, with the 26 context entries of
novasvc's bench client, by hand on pika's Twisted public API; driven by the
same loops as novasvc's client (L{_twisted_child}).

    python bench/_client_floor_oslo.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{exchange}, C{payload}. Commands as novasvc's
client.
"""

import time
from typing import Any, Dict

from twisted.internet import defer

from _child import make_payload, read_settings
from _oslo_protocol import Client, connect, context_entries
from _twisted_child import Commands, run, sequential_calls, when_all, windowed_calls

#: Calls made (and not timed) before the first measured phase.
WARMUP_CALLS = 50


@defer.inlineCallbacks
def setup(reactor: Any, commands: Commands) -> Any:
    """
    Connect, consume the reply queue, make the warm-up calls.
    """
    settings = read_settings()
    value = make_payload(settings["payload"])
    connection, channel = yield connect(reactor, settings["url"])
    client = Client(channel, settings["exchange"], settings["topic"], context_entries())
    yield client.start()

    def call() -> defer.Deferred:
        return client.call("echo", value=value)

    def cast_all(command: Dict[str, Any]) -> defer.Deferred:
        n = command["n"]
        done, confirmed, failed = when_all(n)
        first = time.monotonic()
        for _ in range(n):
            client.cast("echo", value=value).addCallbacks(confirmed, failed)
        return done.addCallback(lambda last: {"first": first, "last": last, "rate": n / (last - first)})

    commands.handle("seq", lambda command: sequential_calls(call, command["n"]))
    commands.handle("inflight", lambda command: windowed_calls(call, command["n"], command["window"]))
    commands.handle("cast", cast_all)
    commands.handle("exit", lambda _: connection.close())
    yield sequential_calls(call, WARMUP_CALLS)


if __name__ == "__main__":
    run(setup)
