# -*- test-case-name: tests.test_bench -*-
"""
The benchmark's oslo.messaging client: C{get_rpc_client} on the rabbit
driver, sending C{echo(value)} with the same context entries as novasvc's
client, in the same shape as novasvc's and the floors' clients: one process,
many messages in flight. Its calls and casts block (a cast until its
publisher confirm), so both the 64-in-flight calls and the casts run on one
pool of 64 threads (oslo's send-connection pool, C{rpc_conn_pool_size} 30,
caps how many publish at once): up to 64 calls or casts in flight, as the
other clients keep 64 calls in flight on their one connection and publish a
whole batch of casts before waiting for its confirms.

Earlier runs sent the casts one after the other from one thread (one in
flight). Measured on the loaded 2-core machine (4,000 casts, two runs each),
that published 710-890 msg/s, against 1,170-1,330 with the 64 threads (and
1,630-1,830 with 8 threads, 960-1,670 with 16): the pool is also the faster
of the two shapes there (an idle machine gave the opposite order before:
about 1,650 msg/s alone against 740 with 64 threads).

    python bench/_client_oslo.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{exchange}, C{payload}. Commands: C{seq}
(C{n}), C{inflight} (C{n}, C{window}), C{cast} (C{n}), C{exit}.
"""

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Dict

import oslo_messaging

from novasvc.context import RequestContext

from _child import latency_summary, make_payload, read_settings
from _oslo import CommandLoop, get_transport

#: Calls made (and not timed) before the first measured phase.
WARMUP_CALLS = 50
#: Threads for the in-flight calls and the casts (oslo's own executor size,
#: and the bench's C{--window}).
POOL_SIZE = 64


def main() -> None:
    """
    Connect, warm up, then answer commands until told to exit.
    """
    settings = read_settings()
    commands = CommandLoop()
    transport = get_transport(settings["url"], settings["exchange"])
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=settings["topic"]), timeout=120)
    ctxt = RequestContext(user_id="bench-user", project_id="bench-project", roles=["member", "reader"]).to_dict()
    value = make_payload(settings["payload"])
    pool = ThreadPoolExecutor(max_workers=POOL_SIZE)

    def call() -> Any:
        return client.call(ctxt, "echo", value=value)

    def cast() -> None:
        client.cast(ctxt, "echo", value=value)

    def seq(command: Dict[str, Any]) -> Dict[str, Any]:
        latencies = []
        clock = time.perf_counter
        for _ in range(command["n"]):
            started = clock()
            call()
            latencies.append(clock() - started)
        return latency_summary(latencies)

    def on_pool(function: Any, n: int) -> None:
        futures = [pool.submit(function) for _ in range(n)]
        wait(futures)
        for future in futures:
            future.result()

    def inflight(command: Dict[str, Any]) -> Dict[str, Any]:
        if command["window"] != POOL_SIZE:
            raise ValueError(f"the oslo client keeps {POOL_SIZE} calls in flight, not {command['window']}")
        start = time.perf_counter()
        on_pool(call, command["n"])
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "rate": command["n"] / seconds}

    def cast_all(command: Dict[str, Any]) -> Dict[str, Any]:
        first = time.monotonic()
        on_pool(cast, command["n"])
        last = time.monotonic()
        return {"first": first, "last": last, "rate": command["n"] / (last - first)}

    def stop(_: Dict[str, Any]) -> None:
        pool.shutdown()
        transport.cleanup()

    for _ in range(WARMUP_CALLS):
        call()
    commands.handle("seq", seq)
    commands.handle("inflight", inflight)
    commands.handle("cast", cast_all)
    commands.handle("exit", stop)
    commands.emit({"event": "ready"})
    commands.run()


if __name__ == "__main__":
    main()
