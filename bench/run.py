# -*- test-case-name: tests.test_bench -*-
"""
Benchmark novasvc's RPC against two floors and oslo.messaging, on the local
RabbitMQ: the floor (novasvc's RPC pattern by hand on pika's Twisted adapter,
no protocol around it) and the oslo-protocol floor (oslo.messaging's wire
protocol by hand on pika's Twisted public API, L{_oslo_protocol}).

    python bench/run.py                 # full run, writes bench/RESULTS.md
    python bench/run.py --quick         # short run (1 rep, small counts)
    python bench/run.py --systems novasvc,floor --profile /tmp/prof
    python bench/run.py --systems novasvc,floor,floor-oslo,oslo --quick --output /tmp/quick.md
    python bench/run.py --systems novasvc,novasvc-public,floor   # what pika's fast path buys
    python bench/run.py --systems novasvc,novasvc-2w,floor --quick --output /tmp/startup-quick.md
    python bench/run.py --systems novasvc,novasvc-txamqp,floor --quick   # pika beside txamqp

For each system, server and client are separate processes
(C{bench/_server_<system>.py}, C{bench/_client_<system>.py}, a C{-} in the
system's name written C{_}; or another system's scripts, with more
environment, server processes or settings, as L{CHILDREN} says) driven over
their stdin/stdout (see L{_child}); the systems are interleaved, A B C A B
C ..., one rep at a time. Each rep of a system measures, in order:

  - (a) C{--seq} sequential calls of C{echo(value)}, C{value} a string of
    C{--payload} bytes: p50 and p99 round trip and calls/s;
  - (b) C{--inflight} calls with C{--window} in flight from one client
    process: calls/s, and the server's CPU seconds for them;
  - (c) C{--casts} casts published at once: publish msg/s (until the broker
    has them all) and the server's dispatch msg/s (first to last dispatch),
    the server's CPU seconds for them and its RSS afterwards; then the
    server is stopped, C{--drain} casts are published into its queue, a new
    server is started and the drain msg/s timed (first to last dispatch).

C{novasvc-2w} is novasvc with 2 workers: two server processes on the same
topic (as C{workers: 2} runs them), whose CPU and RSS are added up; a
batch's dispatch runs from the first to the last cast either worker got.
Beside each phase the report gives the cores the server(s), the client and
the broker kept busy, and names the one that limits the rate.

Everything runs in a private vhost made with C{rabbitmqctl} and deleted at
the end (C{--vhost none}: in the URL's vhost, with unique names, deleted by
name at the end). C{twistd novasvc}'s start-up time and idle RSS come from
C{bench/startup.py}. The report (markdown) is printed and written to
C{--output}.
"""

import argparse
import datetime
import importlib.metadata
import math
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, List, NamedTuple, Optional, Sequence
from urllib.parse import urlsplit

from _child import combine_tallies
from _driver import BenchError, Broker, Child, child_env, cpu_seconds, local_broker_pid, rss_mib
from _report import Summary, describe_counts, render

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: key -> (title, profilable): the systems, in the order they run in a rep.
SYSTEMS: Dict[str, Any] = {
    "novasvc": ("novasvc (pika)", True),
    "novasvc-public": ("novasvc (pika's public API)", True),
    "novasvc-txamqp": ("novasvc (txamqp)", True),
    "novasvc-2w": ("novasvc (pika), 2 workers", False),
    "floor": ("floor (pika Twisted, by hand)", True),
    "floor-oslo": ("oslo-protocol floor (pika Twisted, by hand)", True),
    "oslo": ("oslo.messaging", False),
}


class Setup(NamedTuple):
    """
    How the driver runs one system's children.
    """

    #: The system whose C{_server_*}/C{_client_*} scripts run.
    scripts: str
    #: The environment they get on top of the driver's.
    env: Dict[str, str] = {}
    #: How many server processes share its queues: the worker processes of
    #: C{workers: N}, each consuming the same topic (the broker hands the
    #: messages round robin).
    workers: int = 1
    #: Settings they get on top of the run's (L{Run.settings}).
    settings: Dict[str, Any] = {}


#: key -> its L{Setup}, for the systems that are not simply their own
#: scripts: novasvc with pika's fast path forced on, with the public API
#: (C{NOVASVC_PIKA_FAST_PATH=0}; see novasvc/transport/pika/_internals.py),
#: on txamqp (C{amqp_client: txamqp}; see novasvc/transport/txamqp/_transport.py), and
#: with 2 workers (the fast path on).
CHILDREN: Dict[str, Setup] = {
    "novasvc": Setup("novasvc", {"NOVASVC_PIKA_FAST_PATH": "1"}),
    "novasvc-public": Setup("novasvc", {"NOVASVC_PIKA_FAST_PATH": "0"}),
    "novasvc-txamqp": Setup("novasvc", settings={"amqp_client": "txamqp"}),
    "novasvc-2w": Setup("novasvc", {"NOVASVC_PIKA_FAST_PATH": "1"}, workers=2),
}

#: How often, in B{seconds}, the driver asks the workers of a multi-worker
#: system how many casts of a batch they dispatched so far.
TALLY_INTERVAL = 0.05

FULL = {"seq": 2000, "inflight": 10000, "casts": 20000, "drain": 20000, "reps": 3, "startup_runs": 5}
QUICK = {"seq": 200, "inflight": 1000, "casts": 2000, "drain": 2000, "reps": 1, "startup_runs": 1}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """
    @return: the command line, with C{counts} filled in (a C{dict}).
    """
    parser = argparse.ArgumentParser(description="Benchmark novasvc's RPC against the floor and oslo.messaging.")
    parser.add_argument("--quick", action="store_true", help="1 rep, counts 200/1000/2000, 1 start-up run")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, among {', '.join(SYSTEMS)} (default: all)")
    parser.add_argument("--url", default="rabbit://guest:guest@127.0.0.1:5672/", help="the broker")
    parser.add_argument("--vhost", choices=("auto", "none"), default="auto",
                        help="auto: a private vhost through rabbitmqctl when it works; none: the URL's vhost")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--seq", type=int, help="(a) sequential calls (default 2000)")
    parser.add_argument("--inflight", type=int, help="(b) calls with --window in flight (default 10000)")
    parser.add_argument("--window", type=int, default=64, help="(b) calls in flight (default 64)")
    parser.add_argument("--casts", type=int, help="(c) casts (default 20000)")
    parser.add_argument("--drain", type=int, help="(c) casts pre-filled for the drain (default: --casts)")
    parser.add_argument("--payload", type=int, default=100, help="bytes of the echoed value (default 100)")
    parser.add_argument("--count-scale", type=float, default=1.0, help="multiply every count by this")
    parser.add_argument("--startup-runs", type=int, help="bench/startup.py runs (default 5, quick 1; 0 skips)")
    parser.add_argument("--startup-idle", type=float, default=3.0, help="seconds idle before reading RSS")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for one phase")
    parser.add_argument("--profile", metavar="DIR",
                        help="cProfile the novasvc and floor children during (b) and (c), .prof files in DIR")
    parser.add_argument("--output", help="the report file (default: bench/RESULTS.md, or RESULTS.md in the "
                        "--profile directory for a profiled run, whose rates cProfile distorts)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    counts: Dict[str, Any] = {}
    for key in ("seq", "inflight", "casts"):
        value = getattr(args, key)
        counts[key] = max(1, round((base[key] if value is None else value) * args.count_scale))
    counts["drain"] = max(1, round(args.drain * args.count_scale)) if args.drain else counts["casts"]
    counts["reps"] = args.reps or base["reps"]
    counts["window"] = args.window
    counts["payload"] = args.payload
    args.startup_runs = base["startup_runs"] if args.startup_runs is None else args.startup_runs
    if args.output is None:
        args.output = os.path.join(args.profile or HERE, "RESULTS.md")
    args.counts = counts
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        parser.error(f"unknown system(s) {unknown}; choose among {', '.join(SYSTEMS)}")
    args.systems = [s for s in SYSTEMS if s in systems]
    return args


class Run:
    """
    One benchmark run: the broker, the names, the children's environment,
    and the measurements so far.
    """

    def __init__(self, args: argparse.Namespace, broker: Broker, log_dir: str) -> None:
        self.args = args
        self.counts = args.counts
        self.broker = broker
        self.log_dir = log_dir
        self.run_id = uuid.uuid4().hex[:10]
        # The children run this checkout's novasvc, whatever is installed.
        self.env = child_env(_checkout())
        self.results: Dict[str, List[Dict[str, float]]] = {s: [] for s in args.systems}
        self.declared_queues: List[str] = []
        self.declared_exchanges: List[str] = []
        self.profiles: List[str] = []

    def settings(self, system: str, rep: int) -> Dict[str, Any]:
        """
        @return: the children's settings for C{system}'s rep C{rep}: unique
            topic, exchange and host names.
        """
        topic = f"bench-{self.run_id}-{system}-{rep}"
        settings = {"url": self.broker.run_url, "topic": topic, "exchange": f"bench-{self.run_id}-{system}",
                    "host": "benchhost", "payload": self.counts["payload"]}
        if system == "oslo":
            # Reply and fanout queues expire two minutes after their last use.
            settings["url"] += "?rabbit_transient_queues_ttl=120"
        self.declared_queues += [topic, f"{topic}.benchhost"]
        self.declared_exchanges.append(settings["exchange"])
        return settings

    def measure(self, system: str, rep: int) -> Dict[str, float]:
        """
        Run phases (a) to (d) for one system once.

        @return: the rep's measurements (the keys of L{_report.METRICS}).
        @raise BenchError: when a child fails.
        """
        counts, timeout = self.counts, self.args.timeout
        setup = child_setup(system, self.env)
        settings = dict(self.settings(system, rep), **setup.settings)
        children: List[Child] = []

        def spawn(role: str, name: str, **extra: Any) -> Child:
            script = f"_{role}_{setup.scripts.replace('-', '_')}.py"
            child = Child(f"{system} {name}", script, dict(settings, **extra), self.log_dir, setup.env)
            children.append(child)
            return child

        def start_servers(**extra: Any) -> List[Child]:
            # Every worker is spawned before any is waited for, as a
            # supervisor starts its workers.
            names = ["server"] if setup.workers == 1 else [f"server {k}" for k in range(1, setup.workers + 1)]
            servers = [spawn("server", name, **extra) for name in names]
            for server in servers:
                server.wait_event("ready", timeout)
            return servers

        try:
            servers = start_servers()
            client = spawn("client", "client")
            client.wait_event("ready", timeout)
            rss_idle = sum(rss_mib(server.pid) for server in servers)
            seq = client.request("seq", timeout, n=counts["seq"])

            pids = ([server.pid for server in servers], client.pid, self.broker_pid)
            cpu, started = _cpu(pids), time.monotonic()
            with self.profiling(system, rep, "inflight", servers[0], client):
                inflight = client.request("inflight", timeout, n=counts["inflight"], window=counts["window"])
            cpu_calls, wall_calls = _cpu_spent(pids, cpu), time.monotonic() - started

            for server in servers:
                server.request("arm", timeout, n=counts["casts"])
            cpu, started = _cpu(pids), time.monotonic()
            with self.profiling(system, rep, "cast", servers[0], client):
                cast = client.request("cast", timeout, n=counts["casts"])
                dispatched = _dispatched(servers, counts["casts"], timeout)
            cpu_casts, wall_casts = _cpu_spent(pids, cpu), time.monotonic() - started
            rss = sum(rss_mib(server.pid) for server in servers)
            for server in servers:
                _closed(server)

            client.request("cast", timeout, n=counts["drain"])
            drainers = start_servers(arm=counts["drain"])
            drained = _dispatched(drainers, counts["drain"], timeout)
            for drainer in drainers:
                _closed(drainer)
            _closed(client)
        finally:
            for child in children:
                child.kill()
        result = {
            "seq_p50_us": seq["p50_us"], "seq_p99_us": seq["p99_us"], "seq_rate": seq["rate"],
            "inflight_rate": inflight["rate"],
            "cast_publish_rate": cast["rate"],
            "cast_dispatch_rate": _rate(dispatched),
            "drain_rate": _rate(drained),
            "rss_idle_mib": rss_idle,
            "rss_mib": rss,
        }
        result.update(_cpu_metrics("calls", cpu_calls, counts["inflight"], wall_calls))
        result.update(_cpu_metrics("casts", cpu_casts, counts["casts"], wall_casts))
        return result

    @property
    def broker_pid(self) -> Optional[int]:
        """
        The local broker's process id (looked up once), or C{None}.
        """
        if not hasattr(self, "_broker_pid"):
            self._broker_pid = local_broker_pid(urlsplit(self.broker.url).port or 5672)
        return self._broker_pid

    def profiling(self, system: str, rep: int, phase: str, server: Child, client: Child) -> "_Profiling":
        """
        @return: a context manager profiling both children during a phase
            when C{--profile} was given and the system is profilable.
        """
        active = bool(self.args.profile) and SYSTEMS[system][1]
        paths = {child: os.path.join(self.args.profile, f"{system}-{role}-{phase}-rep{rep}.prof")
                 for child, role in ((server, "server"), (client, "client"))} if active else {}
        self.profiles += paths.values()
        return _Profiling(paths, self.args.timeout)

    def cleanup(self) -> None:
        """
        Delete what the run declared (when not in a private vhost, which
        goes as a whole).
        """
        if self.broker.vhost is None:
            self.broker.delete(self.declared_queues, self.declared_exchanges)


class _Profiling:
    def __init__(self, paths: Dict[Child, str], timeout: float) -> None:
        self._paths = paths
        self._timeout = timeout

    def __enter__(self) -> None:
        for child in self._paths:
            child.request("profile", self._timeout, action="start")

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            for child, path in self._paths.items():
                child.request("profile", self._timeout, action="stop", path=path)


def child_setup(system: str, env: Dict[str, str]) -> Setup:
    """
    @param env: the driver's environment for the children.
    @return: C{system}'s L{Setup} (L{CHILDREN}; a system not there runs its
        own scripts, one server, as they are), with C{env} under its
        environment.
    """
    setup = CHILDREN.get(system, Setup(system))
    return setup._replace(env=dict(env, **setup.env))


def _rate(dispatched: Dict[str, Any]) -> float:
    """
    @return: msg/s from the first to the last dispatch of a batch.
    """
    seconds = dispatched["last"] - dispatched["first"]
    return (dispatched["n"] - 1) / seconds if seconds > 0 else float("nan")


def _dispatched(servers: Sequence[Child], n: int, timeout: float) -> Dict[str, Any]:
    """
    Wait until the armed C{servers} dispatched a batch of C{n} casts.

    One server reports the batch itself (its C{dispatched} event); several
    workers sharing the queue each see part of it, so their C{tally}s are
    added up every L{TALLY_INTERVAL} until they make C{n}.

    @param timeout: B{seconds} allowed.
    @return: C{{"n", "first", "last"}}: the first and last dispatch of the
        batch, C{time.monotonic()} B{seconds}, over every server.
    @raise BenchError: when the batch is not dispatched within C{timeout}.
    """
    if len(servers) == 1:
        return servers[0].wait_event("dispatched", timeout)
    deadline = time.monotonic() + timeout
    while True:
        tallies = [server.request("tally", timeout) for server in servers]
        total = combine_tallies(tallies)
        if total["n"] >= n:
            return total
        if time.monotonic() > deadline:
            raise BenchError(f"{total['n']} of {n} casts dispatched by {len(servers)} workers "
                             f"within {timeout:.0f} s")
        time.sleep(TALLY_INTERVAL)


def _cpu(pids: Sequence[Any]) -> List[float]:
    """
    @param pids: process ids, C{None}, or lists of process ids (the
        workers of one system, whose CPU is added up).
    @return: the CPU seconds used so far by each entry (NaN for C{None}).
    """
    def one(pid: Any) -> float:
        if isinstance(pid, list):
            return sum(cpu_seconds(p) for p in pid)
        return cpu_seconds(pid) if pid is not None else math.nan

    return [one(pid) for pid in pids]


def _cpu_spent(pids: Sequence[Any], before: List[float]) -> List[float]:
    return [now - then for now, then in zip(_cpu(pids), before)]


def _cpu_metrics(phase: str, spent: Sequence[float], n: int, wall: float) -> Dict[str, float]:
    """
    @param phase: C{"calls"} (b) or C{"casts"} (c).
    @param spent: CPU B{seconds} of the server(s), the client and the broker
        during the phase.
    @param n: the messages of the phase.
    @param wall: the phase's B{seconds}.
    @return: CPU seconds per 10k messages of each process and of the three,
        and the cores each kept busy (CPU seconds per second of the phase).
    """
    server, client, broker = spent
    return {
        f"cpu_{phase}": server * 10000 / n,
        f"client_cpu_{phase}": client * 10000 / n,
        f"broker_cpu_{phase}": broker * 10000 / n,
        f"total_cpu_{phase}": sum(spent) * 10000 / n,
        f"server_cores_{phase}": server / wall if wall > 0 else math.nan,
        f"client_cores_{phase}": client / wall if wall > 0 else math.nan,
        f"broker_cores_{phase}": broker / wall if wall > 0 else math.nan,
    }


def _closed(child: Child) -> None:
    code = child.close()
    if code != 0:
        raise BenchError(f"{child.name} exited with status {code}\n{child.log_tail()}")


def _checkout() -> List[str]:
    """
    @return: C{[ROOT]} when this file is in a checkout of novasvc, so that
        the children run that checkout's code (not another copy installed,
        e.g. editable from another worktree); else nothing.
    """
    return [ROOT] if os.path.isfile(os.path.join(ROOT, "novasvc", "__init__.py")) else []


def measure_startup(url: str, runs: int, idle: float) -> Optional[Dict[str, Summary]]:
    """
    C{twistd novasvc} from exec to ready, and its idle RSS, with
    C{bench/startup.py}'s measurement.

    @return: C{ready_s} and C{idle_rss_mib} L{Summary}s, or C{None} for 0
        runs.
    """
    if runs <= 0:
        return None
    import startup

    readies, rsses = [], []
    for n in range(runs):
        ready, rss, code = startup.one_run(url, idle)
        if code != 0:
            raise BenchError(f"twistd novasvc exited with status {code} in start-up run {n + 1}")
        print(f"start-up run {n + 1}: ready in {ready:.3f} s, idle RSS {rss:.1f} MiB", flush=True)
        readies.append(ready)
        rsses.append(rss)
    return {"ready_s": Summary(readies), "idle_rss_mib": Summary(rsses)}


def environment(broker: Broker) -> List[str]:
    """
    @return: markdown lines naming the machine and the versions.
    """
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        cpu = platform.processor() or "?"
    try:
        rabbit = broker.server_version()
    except Exception as e:
        rabbit = f"unknown ({e})"
    return [
        f"- Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); broker: {rabbit}",
        "- Versions: " + ", ".join(f"{name} {version(name)}" for name in
                                   ("novasvc", "Twisted", "pika", "oslo.messaging", "kombu", "SQLAlchemy",
                                    "pyOpenSSL")),
    ]


def print_profiles(paths: List[str], top: int = 15) -> None:
    """
    Print the C{top} functions by own time of each novasvc profile.
    """
    for path in paths:
        if os.path.basename(path).startswith("novasvc-") and os.path.exists(path):
            print(f"\n#### {os.path.basename(path)} (top {top} by tottime)\n")
            stats = pstats.Stats(path, stream=sys.stdout)
            stats.strip_dirs().sort_stats("tottime").print_stats(top)


def main(argv: Optional[List[str]] = None) -> int:
    """
    Run the benchmark; print and write the report.

    @return: the exit status (0 when every phase ran).
    """
    args = parse_args(argv)
    counts = args.counts
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    broker = Broker(args.url)
    log_dir = tempfile.mkdtemp(prefix="novasvc-bench-logs-")
    if args.vhost == "auto" and not broker.make_vhost(f"novasvc-bench-{uuid.uuid4().hex[:10]}"):
        print("note: no private vhost (rabbitmqctl missing or refused); using unique names in the URL's vhost",
              file=sys.stderr)
    run = Run(args, broker, log_dir)
    started = time.monotonic()
    print(f"novasvc bench: {', '.join(args.systems)}; {describe_counts(counts)}; vhost "
          f"{broker.vhost or 'of the URL'}", flush=True)
    try:
        machine = environment(broker)
        for rep in range(1, counts["reps"] + 1):
            for system in args.systems:
                t0 = time.monotonic()
                result = run.measure(system, rep)
                run.results[system].append(result)
                print(f"rep {rep} {system}: seq p50 {result['seq_p50_us']:.0f} µs, "
                      f"in flight {result['inflight_rate']:.0f} calls/s, "
                      f"casts {result['cast_dispatch_rate']:.0f} msg/s, drain {result['drain_rate']:.0f} msg/s, "
                      f"CPU/10k {result['cpu_calls']:.2f}/{result['cpu_casts']:.2f} s "
                      f"({time.monotonic() - t0:.0f} s)", flush=True)
        startup = measure_startup(broker.run_url, args.startup_runs, args.startup_idle)
    except BenchError as e:
        print(f"error: {e}\n(child logs kept in {log_dir})", file=sys.stderr)
        return 1
    finally:
        run.cleanup()
        broker.drop_vhost()
    shutil.rmtree(log_dir, ignore_errors=True)

    titles = {key: SYSTEMS[key][0] for key in args.systems}
    tables = render(run.results, titles, startup)
    command = " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]).strip()
    report = "\n".join([
        "# novasvc RPC benchmark",
        "",
        f"Produced by `{command}` on {datetime.date.today().isoformat()} "
        f"in {time.monotonic() - started:.0f} s: {describe_counts(counts)}.",
        "",
        *machine,
        "",
        tables,
        _READING,
    ])
    print("\n" + report)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(report)
    if args.profile:
        print_profiles(run.profiles)
        print(f"\nprofiles: {args.profile}")
    return 0


_READING = """\
### How to read this

- **floor**: the same RPC pattern written by hand on pika's Twisted adapter (request queue,
  exclusive reply queue, correlation id, JSON body, manual acks, prefetch 64, direct callback on
  the channel, no publisher confirms): what any framework on this client adds to.
- **oslo-protocol floor**: oslo.messaging's wire protocol written by hand on pika's Twisted
  public API (`bench/_oslo_protocol.py`: topic exchange and the server's three queues, envelope
  2.0 with double JSON by the standard library, the 26 context entries as `_context_*` keys,
  `_msg_id`/`_reply_q`/`_unique_id`, replies with `ending`; every publish mandatory, persistent
  and confirmed; late acks, a call's after its reply is confirmed; prefetch 64); no context
  object, no de-duplication, no dispatcher rules, no call timer. Beside the floor: what the
  protocol costs; novasvc beside it: what the framework costs.
- **novasvc (pika)**: a whole `Service` (EchoManager, memory service store) on `AMQPTransport`
  (pika, its fast path on), called with `RPCClient`: oslo envelope, request context,
  de-duplication, dispatcher, late acks and publisher confirms all on. **novasvc (pika's public
  API)**: the same with `NOVASVC_PIKA_FAST_PATH=0` (pika's `basic_publish`/`basic_ack` and its
  decoding of deliveries and confirms instead of frames written and read by novasvc): what the
  fast path buys. **novasvc (txamqp)**: the same on
  `TxAMQPTransport` (`amqp_client: txamqp`), server and client. **oslo.messaging**: rabbit
  driver, threading executor, its `RPCClient`, in the same client shape as the others (one
  process, many messages in flight): its calls and casts block, so (b) and the casts of (c) run
  on one pool of 64 client threads (up to 64 in flight; earlier reports sent the casts from one
  thread, one in flight).
- Server and client are separate processes; systems are interleaved (A B C, A B C, ...) and
  each cell is the median (min–max) over the reps. Ratios are computed within a rep, then
  summarized. Dispatch and drain rates run from the first to the last cast reaching the
  endpoint; publish rates until the broker has every cast (confirms for novasvc, the
  oslo-protocol floor and oslo, a synchronous command after the batch for the floor). CPU is
  user + system time of the server process, the client process and the broker (RabbitMQ's
  Erlang VM, when it runs on this machine; the broker's other vhosts are idle) during (b) or
  (c), per 10,000 messages.
- **RSS** is that of the server process. `bench/startup.py` runs `twistd novasvc` (SQLite service
  store) from the environment the benchmark runs in (the Versions line above says whether
  pyOpenSSL is there: when it is, Twisted's TCP module loads it and `cryptography` at start-up,
  about 13 MiB more in every Twisted process). Of its idle RSS without pyOpenSSL, about 34 MiB
  is `twistd` itself with the endpoints and `ClientService`, 14 MiB SQLAlchemy and SQLite, 2 MiB
  pika and orjson (measured by importing only those under `twistd -y`); novasvc's own modules
  and the running service add the rest.
"""


if __name__ == "__main__":
    sys.exit(main())
