# -*- test-case-name: tests.test_bench -*-
"""
The RPC server's CPU per call with each kind of serializer
(L{novasvc.rpc.serializer}), beside the same server of another commit (the code
before serializers: C{--baseline}).

    python bench/serializer.py                       # baseline: main
    python bench/serializer.py --baseline 89c0c0b --runs 5
    python bench/serializer.py --runs 1 --number 200 --repeat 1   # smoke

The server is L{novasvc.rpc.server.RPCServer} with every default (late
acks, de-duplication, the dispatcher's checks, metrics), fed call requests
(C{echo(value)}, C{value} a string of C{--payload} bytes, a 26-key request
context, each with its own C{_unique_id} and C{_msg_id}) straight into its
consumer callback, over a transport whose publishes cost nothing: what is
timed is the server's work per call, from the delivery to its reply encoded
and its request acknowledged. The variants:

  - C{baseline}: the C{--baseline} commit's server (its C{novasvc} package
    taken with C{git archive}), no serializer;
  - C{none}: this checkout's, no serializer;
  - C{noop}: a L{NoOpSerializer} (skipped: the method gets the lazy
    L{novasvc.context.RequestContext}, as with none);
  - C{context}: L{RequestContextSerializer}C{()} (the context read into a
    C{RequestContext} for every call, entities unchanged);
  - C{mapping}: a serializer mapping each entity (arguments sent as
    C{{"v": value}}, unwrapped; the result wrapped), contexts unchanged.

Each variant runs in its own process, the variants alternating, C{--runs}
times; each figure is the best of C{--repeat} batches of C{--number} calls,
timed in B{CPU} seconds of the process (C{time.process_time}); the table
shows the median over the runs in microseconds per call, and the median
(and range) of each run's ratio to the baseline run beside it.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: (variant, label), in the table's order.
VARIANTS = (
    ("baseline", "baseline commit, no serializer"),
    ("none", "no serializer"),
    ("noop", "NoOpSerializer()"),
    ("context", "RequestContextSerializer()"),
    ("mapping", "entity-mapping serializer"),
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time the RPC server's CPU per call with each serializer.")
    parser.add_argument("--baseline", default="main", help="the git ref of the code to compare with (default main)")
    parser.add_argument("--runs", type=int, default=5, help="processes per variant, alternating (default 5)")
    parser.add_argument("--number", type=int, default=5000, help="calls per batch (default 5000)")
    parser.add_argument("--repeat", type=int, default=7, help="batches; the best counts (default 7)")
    parser.add_argument("--payload", type=int, default=100, help="bytes of the echoed value (default 100)")
    parser.add_argument("--child", choices=[name for name, _ in VARIANTS], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class _Mapping:
    """
    The C{mapping} variant's serializer: entities travel as C{{"v":
    value}}; contexts as they are.
    """

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return {"v": entity}

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity["v"]

    def serialize_context(self, ctxt: Any) -> Any:
        return ctxt

    def deserialize_context(self, ctxt: Any) -> Any:
        return ctxt


def measure(variant: str, number: int, repeat: int, payload: int) -> Dict[str, Any]:
    """
    Time the server this process imported.

    @return: C{module} (where C{novasvc} was imported from) and C{us} (CPU
        microseconds per call, the best batch).
    """
    from twisted.internet import task

    from novasvc.rpc.server import RPCServer
    from novasvc.rpc.target import Target

    from _child import make_payload

    from _null_transport import NullTransport as Transport, time_calls

    class Endpoint:
        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    kwargs: Dict[str, Any] = {}
    value: Any = make_payload(payload)
    if variant in ("noop", "context", "mapping"):
        from novasvc.rpc.serializer import NoOpSerializer, RequestContextSerializer

        kwargs["serializer"] = {"noop": NoOpSerializer, "context": RequestContextSerializer,
                                "mapping": _Mapping}[variant]()
        if variant == "mapping":
            value = {"v": value}
    server = RPCServer(Transport(), Target(topic="bench", server="h"), [Endpoint()], clock=task.Clock(), **kwargs)
    server.start()
    return time_calls(server, "echo", {"value": value}, number, repeat)


def _baseline_tree(ref: str, into: str) -> str:
    """
    Write the C{novasvc} package of C{ref} into C{into}.

    @return: the commit C{ref} names.
    """
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", ref], check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", commit, "novasvc"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.number, args.repeat, args.payload)))
        return 0
    results: Dict[str, List[float]] = {name: [] for name, _ in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="novasvc-baseline-") as baseline:
        commit = _baseline_tree(args.baseline, baseline)
        for _ in range(args.runs):
            for name, _ in VARIANTS:
                tree = baseline if name == "baseline" else ROOT
                env = dict(os.environ)
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, HERE, env.get("PYTHONPATH")]))
                output = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--child", name, "--number", str(args.number),
                     "--repeat", str(args.repeat), "--payload", str(args.payload)],
                    cwd=HERE, env=env, check=True, capture_output=True, text=True,
                ).stdout
                result = json.loads(output)
                if os.path.realpath(result["module"]) != os.path.realpath(os.path.join(tree, "novasvc")):
                    raise SystemExit(f"the {name} variant imported novasvc from {result['module']}, not {tree}")
                results[name].append(result["us"])
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    print(f"RPC server CPU µs per call (median of {args.runs} run(s), best of {args.repeat} x {args.number:,} "
          f"calls; {args.payload}-byte value, 26-key context); this checkout {head or '?'}, baseline "
          f"{args.baseline} = {commit}\n")
    print("| server | µs per call | ÷ baseline (min–max) |")
    print("|---|---:|---:|")
    for name, label in VARIANTS:
        # Each run's ratio to the baseline run beside it: the machine's
        # drift between runs cancels out.
        ratios = [us / base for us, base in zip(results[name], results["baseline"])]
        print(f"| {label} | {statistics.median(results[name]):.2f} | {statistics.median(ratios):.3f}× "
              f"({min(ratios):.3f}–{max(ratios):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
