# -*- test-case-name: tests.test_bench -*-
"""
The benchmark's novasvc client: L{novasvc.rpc.client.RPCClient} on an
L{AMQPTransport} (or L{novasvc.transport.TxAMQPTransport} with
C{amqp_client} C{txamqp}), sending C{echo(value)} with a Nova-style
L{RequestContext} (user, project, request id, roles) to the topic.

    python bench/_client_novasvc.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{exchange}, C{payload} (the value's size),
C{amqp_client} (optional: C{pika} or C{txamqp}).
Commands (see L{_twisted_child}): C{seq} (C{n}), C{inflight} (C{n},
C{window}), C{cast} (C{n}), C{profile}, C{exit}.
"""

import time
from typing import Any, Dict

from twisted.internet import defer

from novasvc.context import RequestContext
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.transport import get_transport

from _child import make_payload, read_settings
from _twisted_child import Commands, run, sequential_calls, when_all, windowed_calls

#: Calls made (and not timed) before the first measured phase.
WARMUP_CALLS = 50


def setup(reactor: Any, commands: Commands) -> defer.Deferred:
    """
    Connect, make the warm-up calls (which also create the reply queue);
    fires once they all came back.
    """
    settings = read_settings()
    value = make_payload(settings["payload"])
    ctxt = RequestContext(user_id="bench-user", project_id="bench-project", roles=["member", "reader"])
    transport = get_transport(settings["url"], reactor=reactor, client=settings.get("amqp_client", "pika"))
    transport.start()
    client = RPCClient(transport, Target(topic=settings["topic"]), control_exchange=settings["exchange"],
                       timeout=120, transient_queues_ttl=120, clock=reactor)

    def call() -> defer.Deferred:
        return client.call(ctxt, "echo", value=value)

    def cast_all(command: Dict[str, Any]) -> defer.Deferred:
        n = command["n"]
        done, confirmed, failed = when_all(n)
        first = time.monotonic()
        for _ in range(n):
            client.cast(ctxt, "echo", value=value).addCallbacks(confirmed, failed)
        return done.addCallback(lambda last: {"first": first, "last": last, "rate": n / (last - first)})

    commands.handle("seq", lambda command: sequential_calls(call, command["n"]))
    commands.handle("inflight", lambda command: windowed_calls(call, command["n"], command["window"]))
    commands.handle("cast", cast_all)
    commands.handle("exit", lambda _: transport.stop())
    return sequential_calls(call, WARMUP_CALLS)


if __name__ == "__main__":
    run(setup)
