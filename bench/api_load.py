"""
RPC latency under API load, in one process (issue #21): a ``twistd
novasvc`` echo service with its API on, RPC echo p50/p99 measured from
another process while idle and while a load generator drives the same
process's API as hard as it can (GET /v1/services listing 300 services, 64
connections), in the same run.

    python bench/api_load.py [--calls 2000] [--rounds 5] [--connections 64] [--services 300]

The calls are made in ``--rounds`` pairs of segments, idle then loaded
(the load generator is stopped with SIGSTOP for the idle ones and goes on
with SIGCONT), so that what else the machine does weighs on both sides
alike; the percentiles pool each side's ``--calls`` calls. ``--rounds 1``
is one idle segment, then one loaded, as the first version of this bench.

Prints a Markdown table and writes it to bench/API_LOAD.md. Needs RabbitMQ
(``--transport-url``, default the local one).
"""

import argparse
import datetime
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))

_LOADER = textwrap.dedent("""\
    import asyncio, json, sys, time
    port, connections, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
    request = b"GET " + path + b" HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    counts = {}
    stop = False

    async def one():
        while not stop:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                while not stop:
                    writer.write(request)
                    status = int((await reader.readline()).split()[1])
                    length = 0
                    while True:
                        line = await reader.readline()
                        if line in (b"\\r\\n", b""):
                            break
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    counts[status] = counts.get(status, 0) + 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                await asyncio.sleep(0.01)

    async def main():
        global stop
        tasks = [asyncio.ensure_future(one()) for _ in range(connections)]
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stop = True
        elapsed = time.monotonic() - started
        for task in tasks:
            task.cancel()
        print(json.dumps({"counts": counts, "seconds": elapsed}), flush=True)

    asyncio.run(main())
""")


def _percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))]


def _seed(url: str, count: int) -> None:
    import sqlalchemy as sa

    from novasvc.db import migration, schema

    migration.sync(url)
    engine = sa.create_engine(url)
    now = datetime.datetime.utcnow()
    with engine.begin() as connection:
        connection.execute(sa.insert(schema.services), [dict(
            uuid=str(uuid.uuid4()), host=f"compute-{n}", binary="novasvc-volume", topic="volume",
            report_count=1, disabled=n % 7 == 0, disabled_reason="maintenance" if n % 7 == 0 else None,
            forced_down=False, version=1, deleted=0, created_at=now, updated_at=now,
            last_seen_up=now) for n in range(count)])
    engine.dispose()


def _start_service(workdir: str, transport_url: str, services: int) -> Any:
    database = f"sqlite:///{workdir}/services.sqlite"
    _seed(database, services)
    config = os.path.join(workdir, "novasvc.yaml")
    with open(config, "w") as f:
        f.write(f"transport_url: {transport_url}\ncontrol_exchange: bench-api-{uuid.uuid4().hex[:8]}\n"
                f"host: bench-api\ndatabase:\n  connection: {database}\n"
                "api:\n  enabled: true\n  listen: tcp:0:interface=127.0.0.1\n")
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    process = subprocess.Popen([twistd, "-n", "--pidfile=", "novasvc", "--config", config,
                                "--manager=novasvc.examples.echo.EchoManager"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=workdir)
    deadline = time.monotonic() + 60
    port = None
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode("utf-8", "replace")
        if not line:
            break
        found = re.search(r"API listening on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
        if port and "ready" in line.lower():
            break
        if port and "started" in line.lower():
            break
    if port is None:
        process.kill()
        raise SystemExit("the service did not start its API")
    # Keep reading its log, so that it never blocks writing it.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, port, config


def _measure(transport_url: str, exchange: str, calls: int, segments: int) -> None:
    """
    Make C{segments} segments of C{calls} sequential echo calls; before
    each, say C{ready} on stdout and wait for a line on stdin. Prints the
    latencies in B{seconds}, a JSON list per segment, as the last line.
    """
    from twisted.internet import defer, task

    from novasvc.rpc.client import RPCClient
    from novasvc.rpc.target import Target
    from novasvc.transport import get_transport

    latencies: List[List[float]] = []

    async def run(reactor: Any) -> None:
        transport = get_transport(transport_url, reactor=reactor)
        transport.start()
        client = RPCClient(transport, Target(topic="echo", exchange=exchange), clock=reactor)
        for _ in range(100):  # warm-up
            await client.call({}, "echo", value=1)
        for _ in range(segments):
            print("ready", flush=True)
            sys.stdin.readline()
            segment: List[float] = []
            for _ in range(calls):
                started = time.perf_counter()
                await client.call({}, "echo", value="x" * 100)
                segment.append(time.perf_counter() - started)
            latencies.append(segment)
        await transport.stop()
        print(json.dumps(latencies), flush=True)

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


def _summary(latencies: List[float]) -> Dict[str, float]:
    return {"p50": _percentile(latencies, 0.50) * 1e6, "p99": _percentile(latencies, 0.99) * 1e6}


def _run(transport_url: str, exchange: str, port: int, calls: int, rounds: int,
         connections: int) -> Dict[str, Any]:
    """
    Alternate idle and loaded segments of calls (see the module docstring).

    @return: C{idle} and C{loaded} (the pooled latencies in B{seconds}),
        C{rounds} (per round, the p99 of each side in B{µs}) and C{load}
        (the load generator's answers by status, and the B{seconds} it ran
        unstopped).
    """
    per_segment = max(1, calls // rounds)
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import api_load; "
            f"api_load._measure({transport_url!r}, {exchange!r}, {per_segment}, {2 * rounds})")
    client = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    loader = None
    loaded_seconds = 0.0
    resumed = 0.0
    try:
        assert client.stdin is not None and client.stdout is not None
        for segment in range(2 * rounds):
            line = client.stdout.readline()
            if line.strip() != b"ready":
                client.kill()
                raise SystemExit(client.communicate(timeout=60)[1].decode("utf-8", "replace")[-3000:])
            if segment % 2:  # loaded
                if loader is None:
                    resumed = time.monotonic()
                    loader = subprocess.Popen([sys.executable, "-c", _LOADER, str(port),
                                               str(connections), "/v1/services"],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                    time.sleep(2)  # its connections made, the API's queue full
                else:
                    resumed = time.monotonic()
                    loader.send_signal(signal.SIGCONT)
                    time.sleep(0.5)
            elif loader is not None:
                loaded_seconds += time.monotonic() - resumed
                loader.send_signal(signal.SIGSTOP)
                time.sleep(0.5)  # the requests it sent are answered
            client.stdin.write(b"go\n")
            client.stdin.flush()
        out, err = client.communicate(timeout=600)
        if client.returncode:
            raise SystemExit(err.decode("utf-8", "replace")[-3000:])
        if loader is not None:
            loaded_seconds += time.monotonic() - resumed
    finally:
        if client.poll() is None:
            client.kill()
        if loader is not None:
            loader.send_signal(signal.SIGCONT)
    assert loader is not None
    load_out, _ = loader.communicate(b"\n", timeout=60)
    segments = json.loads(out.splitlines()[-1])
    load = json.loads(load_out)
    return {
        "idle": [x for s in segments[0::2] for x in s],
        "loaded": [x for s in segments[1::2] for x in s],
        "rounds": [(_summary(i)["p99"], _summary(l)["p99"])
                   for i, l in zip(segments[0::2], segments[1::2])],
        # The time it ran unstopped, which its answers count over.
        "load": {"counts": load["counts"], "seconds": loaded_seconds or load["seconds"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--calls", type=int, default=2000, help="echo calls on each side")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of idle and loaded segments")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--transport-url", default="rabbit://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--output", default=os.path.join(HERE, "API_LOAD.md"))
    args = parser.parse_args()
    rounds = max(1, args.rounds)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        process, port, config = _start_service(workdir, args.transport_url, args.services)
        exchange = re.search(r"control_exchange: (\S+)", open(config).read()).group(1)
        try:
            result = _run(args.transport_url, exchange, port, args.calls, rounds, args.connections)
        finally:
            process.terminate()
            process.wait(30)
    idle, loaded = _summary(result["idle"]), _summary(result["loaded"])
    load = result["load"]
    counts = {int(k): v for k, v in load["counts"].items()}
    rate = sum(counts.values()) / load["seconds"]
    ratio = loaded["p99"] / idle["p99"]
    ratios = sorted(l / i for i, l in result["rounds"])
    table = "\n".join([
        "# RPC latency under API load, one process",
        "",
        f"Produced by `python bench/api_load.py --calls {args.calls} --rounds {rounds}` on "
        f"{datetime.date.today()} in {time.monotonic() - started:.0f} s: a `twistd novasvc` echo "
        f"service with its API on, {args.services} services in its table; {args.calls} sequential "
        f"echo calls from another process on each side, in {rounds} round(s) of an idle segment "
        f"then one while {args.connections} connections drive `GET /v1/services` at the same "
        "process's API.",
        "",
        "| metric | idle | under API load |",
        "|---|---:|---:|",
        f"| echo call p50, µs | {idle['p50']:,.0f} | {loaded['p50']:,.0f} |",
        f"| echo call p99, µs | {idle['p99']:,.0f} | {loaded['p99']:,.0f} |",
        "",
        f"- p99 under load ÷ idle p99: **{ratio:.2f}×** (the issue's target: within 2×)",
        "- the same, round by round: " + ", ".join(f"{r:.2f}×" for r in ratios)
        + f" (median {statistics.median(ratios):.2f}×)",
        f"- API load: {rate:,.0f} answers/s while loaded; by status: "
        + ", ".join(f"{code}: {count:,}" for code, count in sorted(counts.items())),
        "",
    ])
    print(table)
    with open(args.output, "w") as f:
        f.write(table)


if __name__ == "__main__":
    main()
