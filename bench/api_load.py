"""
RPC latency under API load, in one process (issue #21): a ``twistd
novasvc`` echo service with its API on, RPC echo p50/p99 measured from
another process while idle, then while a load generator drives the same
process's API as hard as it can (GET /v1/services listing 300 services, 64
connections), in the same run.

    python bench/api_load.py [--calls 2000] [--connections 64] [--services 300]

Prints a Markdown table and writes it to bench/API_LOAD.md. Needs RabbitMQ
(``--transport-url``, default the local one).
"""

import argparse
import datetime
import json
import os
import re
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


def _measure(transport_url: str, exchange: str, calls: int) -> List[float]:
    """
    @return: the latencies, in B{seconds}, of C{calls} sequential echo calls.
    """
    from twisted.internet import defer, task

    from novasvc.rpc.client import RPCClient
    from novasvc.rpc.target import Target
    from novasvc.transport import get_transport

    latencies: List[float] = []

    async def run(reactor: Any) -> None:
        transport = get_transport(transport_url, reactor=reactor)
        transport.start()
        client = RPCClient(transport, Target(topic="echo", exchange=exchange), clock=reactor)
        for _ in range(100):  # warm-up
            await client.call({}, "echo", value=1)
        for _ in range(calls):
            started = time.perf_counter()
            await client.call({}, "echo", value="x" * 100)
            latencies.append(time.perf_counter() - started)
        await transport.stop()
        print(json.dumps(latencies), flush=True)

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    return latencies  # (react exits first: the latencies are printed)


def _client(transport_url: str, exchange: str, calls: int) -> Dict[str, float]:
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import api_load; "
            f"api_load._measure({transport_url!r}, {exchange!r}, {calls})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=600)
    if done.returncode:
        raise SystemExit(done.stderr.decode("utf-8", "replace")[-3000:])
    out = done.stdout
    latencies = json.loads(out.splitlines()[-1])
    return {"p50": _percentile(latencies, 0.50) * 1e6, "p99": _percentile(latencies, 0.99) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--transport-url", default="rabbit://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--output", default=os.path.join(HERE, "API_LOAD.md"))
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        process, port, config = _start_service(workdir, args.transport_url, args.services)
        exchange = re.search(r"control_exchange: (\S+)", open(config).read()).group(1)
        try:
            idle = _client(args.transport_url, exchange, args.calls)
            loader = subprocess.Popen([sys.executable, "-c", _LOADER, str(port), str(args.connections),
                                       "/v1/services"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            time.sleep(2)
            loaded = _client(args.transport_url, exchange, args.calls)
            out, _ = loader.communicate(b"\n", timeout=60)
            load = json.loads(out)
        finally:
            process.terminate()
            process.wait(30)
    counts = {int(k): v for k, v in load["counts"].items()}
    rate = sum(counts.values()) / load["seconds"]
    ratio = loaded["p99"] / idle["p99"]
    table = "\n".join([
        "# RPC latency under API load, one process",
        "",
        f"Produced by `python bench/api_load.py` on {datetime.date.today()} in "
        f"{time.monotonic() - started:.0f} s: a `twistd novasvc` echo service with its API on, "
        f"{args.services} services in its table; {args.calls} sequential echo calls from another "
        f"process, idle then while {args.connections} connections drive `GET /v1/services` at the "
        "same process's API.",
        "",
        "| metric | idle | under API load |",
        "|---|---:|---:|",
        f"| echo call p50, µs | {idle['p50']:,.0f} | {loaded['p50']:,.0f} |",
        f"| echo call p99, µs | {idle['p99']:,.0f} | {loaded['p99']:,.0f} |",
        "",
        f"- p99 under load ÷ idle p99: **{ratio:.2f}×** (the issue's target: within 2×)",
        f"- API load: {rate:,.0f} answers/s; by status: "
        + ", ".join(f"{code}: {count:,}" for code, count in sorted(counts.items())),
        "",
    ])
    print(table)
    with open(args.output, "w") as f:
        f.write(table)


if __name__ == "__main__":
    main()
