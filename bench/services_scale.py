"""
The services table at scale, on the local PostgreSQL::

    python bench/services_scale.py [--services 5000] [--interval 10] [--duration 30]
                                   [--workers 1,2] [--wrk-duration 10] [--output FILE]

1. Reports. C{--services} services report every C{--interval} seconds into
   one database, simulated in this process through one
   L{novasvc.db.store.SQLServiceStore} (its thread pool is
   C{database.thread_pool_size}, 10): the rows are created, then each
   service's C{report_state} is scheduled at its own offset inside the
   interval, as a fleet's timers spread out, for C{--duration} seconds.
   Printed: the offered and the sustained report rate (reports finished
   per second), the p50/p99/max of one report (submit to commit, in ms) and
   how far the last report finished behind its schedule; then the
   capacity: every service's report submitted at once, reports/s.
2. The API. C{twistd -n novasvc-api} on the same database (5,000 rows), for
   each C{--workers} count: C{GET /v1/services} (all rows) timed one request
   at a time (p50/p99), then C{wrk} on loopback for C{--wrk-duration}
   seconds against C{GET /healthz}, C{GET /v1/services?host=...} and
   C{GET /v1/services}: requests/s and wrk's p50/p99. Needs C{wrk} on the
   PATH (Debian: C{apt-get install wrk}); without it that part is skipped.

The database is one of the benchmark's own (C{novasvc_scale_<random>}),
dropped at the end.
"""

import argparse
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet import defer, task  # noqa: E402

from novasvc.db.store import SQLServiceStore  # noqa: E402

SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
#: Seconds the API process has to answer /healthz.
READY_DEADLINE = 30.0


def percentile(values, fraction):
    """
    @return: the nearest-rank percentile of C{values} (C{fraction} in 0..1).
    """
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def admin(statement):
    """
    Run one statement with autocommit on the server's C{postgres} database.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(SERVER + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


@defer.inlineCallbacks
def seed(store, count, prefix):
    """
    Create C{count} services rows, a few at a time.

    @return: a C{Deferred} firing with their ids.
    """
    ids = []
    batch = 50
    for start in range(0, count, batch):
        records = yield defer.gatherResults([
            store.create(f"{prefix}-{i:05d}", "novasvc-scale", "scale")
            for i in range(start, min(count, start + batch))
        ], consumeErrors=True)
        ids.extend(record.id for record in records)
    return ids


def reports(reactor, store, ids, interval, duration):
    """
    Schedule each id's C{report_state} every C{interval} seconds, at its own
    offset, for C{duration} seconds.

    @return: a C{Deferred} firing with a dict of figures once every
        scheduled report has finished.
    """
    latencies = []
    lateness = []
    outstanding = []
    failures = []
    start = reactor.seconds() + 1.0
    end = start + duration
    slot = interval / len(ids)

    def report(service_id, due):
        submitted = reactor.seconds()

        def done(_):
            now = reactor.seconds()
            latencies.append(now - submitted)
            lateness.append(now - due)

        d = store.report_state(service_id)
        d.addCallbacks(done, failures.append)
        outstanding.append(d)
        if due + interval < end:
            reactor.callLater(max(0.0, due + interval - reactor.seconds()), report, service_id,
                              due + interval)

    for index, service_id in enumerate(ids):
        due = start + index * slot
        reactor.callLater(due - reactor.seconds(), report, service_id, due)

    finished = defer.Deferred()

    def wait_all():
        d = defer.DeferredList(list(outstanding))
        d.addCallback(lambda _: finished.callback({
            "offered_per_s": len(ids) / interval,
            "finished": len(latencies),
            "failed": len(failures),
            "sustained_per_s": len(latencies) / (reactor.seconds() - start),
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000,
            "last_behind_s": max(lateness) - percentile(latencies, 0.50),
        }))

    reactor.callLater(end - reactor.seconds() + 0.01, wait_all)
    return finished


def free_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def start_api(workdir, database_url, workers):
    """
    Start C{twistd -n novasvc-api} on the database with C{workers} processes.

    @return: the process and its base URL.
    """
    port = free_port()
    config = os.path.join(workdir, f"api-{workers}.yaml")
    with open(config, "w") as out:
        out.write(
            f"database:\n  connection: {database_url}\n"
            f"transport_url: memory://\n"
            f"api:\n  listen: tcp:{port}:interface=127.0.0.1\n  workers: {workers}\n"
        )
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    log = open(os.path.join(workdir, f"api-{workers}.log"), "wb")
    process = subprocess.Popen([twistd, "-n", "--pidfile=", "novasvc-api", "--config", config],
                               cwd=workdir, env={**os.environ, "PYTHONPATH": ROOT},
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_DEADLINE
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as answer:
                answer.read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"novasvc-api did not start; see {log.name}")
            time.sleep(0.1)
    return process, base


def timed_gets(url, count):
    """
    @return: C{count} sequential round trips of C{GET url}, in seconds.
    """
    times = []
    for _ in range(count):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as answer:
            answer.read()
        times.append(time.perf_counter() - began)
    return times


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url, seconds, connections=16, threads=2):
    """
    @return: requests/s, p50 and p99 in ms, from C{wrk --latency}.
    """
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(label):
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(found.group(1)) * _WRK_UNITS[found.group(2)]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": rate, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": int(errors.group(1)) if errors else 0}


def api_part(args, database_url, host_example, lines):
    if shutil.which("wrk") is None:
        lines.append("wrk is not on the PATH: the load-generator figures are skipped.")
    workdir = tempfile.mkdtemp(prefix="novasvc-scale-")
    try:
        lines.append("")
        lines.append("| API workers | GET /v1/services (all) p50 ms | p99 ms | wrk /healthz req/s "
                     "| wrk /v1/services?host= req/s (p99 ms) | wrk /v1/services (all) req/s (p99 ms) |")
        lines.append("|---:|---:|---:|---:|---:|---:|")
        for workers in args.workers:
            process, base = start_api(workdir, database_url, workers)
            try:
                timed_gets(base + "/v1/services", 3)
                times = timed_gets(base + "/v1/services", args.list_requests)
                row = [str(workers), f"{percentile(times, 0.5) * 1000:.1f}",
                       f"{percentile(times, 0.99) * 1000:.1f}"]
                if shutil.which("wrk"):
                    health = run_wrk(base + "/healthz", args.wrk_duration)
                    by_host = run_wrk(f"{base}/v1/services?host={host_example}", args.wrk_duration)
                    every = run_wrk(base + "/v1/services", args.wrk_duration, connections=4)
                    row += [f"{health['rate']:,.0f}",
                            f"{by_host['rate']:,.0f} ({by_host['p99_ms']:.1f})",
                            f"{every['rate']:,.1f} ({every['p99_ms']:.0f})"]
                    bad = health["non_2xx"] + by_host["non_2xx"] + every["non_2xx"]
                    if bad:
                        lines.append(f"(workers {workers}: {bad} non-2xx answers)")
                else:
                    row += ["", "", ""]
                lines.append("| " + " | ".join(row) + " |")
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between reports")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of reporting")
    parser.add_argument("--workers", default="1,2", help="API worker counts, comma-separated")
    parser.add_argument("--list-requests", type=int, default=50)
    parser.add_argument("--wrk-duration", type=int, default=10)
    parser.add_argument("--no-api", action="store_true", help="only the report part")
    parser.add_argument("--output", help="also write the report to this file")
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in args.workers.split(",") if n]
    return args


def main(reactor, args):
    name = f"novasvc_scale_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{name}"')
    url = SERVER + name
    store = SQLServiceStore(url)
    lines = [f"# The services table at scale ({args.services} services, PostgreSQL)", ""]

    @defer.inlineCallbacks
    def run():
        try:
            yield store.start()
            ids = yield seed(store, args.services, "scale-host")
            figures = yield reports(reactor, store, ids, args.interval, args.duration)
            began = reactor.seconds()
            yield defer.gatherResults([store.report_state(i) for i in ids], consumeErrors=True)
            burst = reactor.seconds() - began
            yield store.stop()
            lines.append(
                f"Reports: offered {figures['offered_per_s']:,.0f}/s, sustained "
                f"{figures['sustained_per_s']:,.0f}/s over {args.duration:g} s "
                f"({figures['finished']:,} finished, {figures['failed']} failed); one report "
                f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms, "
                f"max {figures['max_ms']:.1f} ms; the last finished "
                f"{figures['last_behind_s']:.2f} s behind its schedule. Capacity: all "
                f"{len(ids):,} reports submitted at once finished in {burst:.2f} s "
                f"({len(ids) / burst:,.0f}/s)."
            )
            if not args.no_api:
                yield task.deferLater(reactor, 0, lambda: None)
                api_part(args, url, "scale-host-02500", lines)
        finally:
            yield store.stop()
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        report = "\n".join(lines) + "\n"
        print(report)
        if args.output:
            with open(args.output, "w") as out:
                out.write(report)

    return run()


if __name__ == "__main__":
    task.react(main, [parse_args()])
