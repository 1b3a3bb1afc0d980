# -*- test-case-name: tests.test_bench -*-
"""
The RPC server's CPU per call for a method that reads its request context
and one that does not, beside the same server of another commit
(C{--baseline}): how the request context is made (L{novasvc.context}) is
chosen by these figures.

    python bench/context.py                       # baseline: main
    python bench/context.py --baseline 89c0c0b --runs 5
    python bench/context.py --runs 1 --number 200 --repeat 1   # smoke

The server and its feeding are C{bench/serializer.py}'s (every default, a
26-key context, deliveries straight into the consumer callback, publishes
that cost nothing), without a serializer. The methods:

  - C{ignores}: C{ignores(ctxt, value)} returns C{value} and never looks
    at C{ctxt};
  - C{reads}: C{reads(ctxt, value)} looks at C{ctxt.user_id},
    C{ctxt.roles} and C{ctxt.request_id} first.

The trees: C{baseline} (the C{--baseline} commit), C{this} (this checkout)
and C{eager} (this checkout, each context read when the request arrives).

Each (tree, method) runs in its own process, alternating, C{--runs} times;
each figure is the best of C{--repeat} batches of C{--number} calls in
B{CPU} seconds of the process (C{time.process_time}); the table shows the
median over the runs in microseconds per call, and the median (and range)
of each run's ratio to the baseline run of the same method beside it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: (tree, method), in the table's order; C{eager} is this checkout with
#: each context read at once (C{RequestContext.from_dict}) instead of lazily.
VARIANTS = (("baseline", "ignores"), ("baseline", "reads"), ("this", "ignores"), ("this", "reads"),
            ("eager", "ignores"), ("eager", "reads"))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time the RPC server's CPU per call, context read or not.")
    parser.add_argument("--baseline", default="main", help="the git ref of the code to compare with (default main)")
    parser.add_argument("--runs", type=int, default=5, help="processes per variant, alternating (default 5)")
    parser.add_argument("--number", type=int, default=5000, help="calls per batch (default 5000)")
    parser.add_argument("--repeat", type=int, default=7, help="batches; the best counts (default 7)")
    parser.add_argument("--child", choices=["ignores", "reads"], help=argparse.SUPPRESS)
    parser.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(method: str, number: int, repeat: int, eager: bool = False) -> Dict[str, Any]:
    """
    Time the server this process imported, calling C{method}.

    @return: C{module} (where C{novasvc} was imported from) and C{us} (CPU
        microseconds per call, the best batch).
    """
    from twisted.internet import task

    from novasvc.context import RequestContext
    from novasvc.rpc.server import RPCServer
    from novasvc.rpc.target import Target

    from _null_transport import NullTransport as Transport, time_calls

    class Endpoint:
        def ignores(self, ctxt: Any, value: Any) -> Any:
            return value

        def reads(self, ctxt: Any, value: Any) -> Any:
            ctxt.user_id, ctxt.roles, ctxt.request_id
            return value

    if eager:
        from novasvc.rpc import server as server_module

        def read_now(values: Any, prefix: str, client_timeout: Any) -> Any:
            ctxt = RequestContext.from_dict(values, prefix)
            ctxt.client_timeout = client_timeout
            return ctxt

        server_module.context_from_message = read_now  # type: ignore[assignment]
    server = RPCServer(Transport(), Target(topic="bench", server="h"), [Endpoint()], clock=task.Clock())
    server.start()
    return time_calls(server, method, {"value": "x" * 100}, number, repeat)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.number, args.repeat, args.eager)))
        return 0
    sys.path.insert(0, HERE)
    from serializer import _baseline_tree

    results: Dict[Any, List[float]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="novasvc-baseline-") as baseline:
        commit = _baseline_tree(args.baseline, baseline)
        for _ in range(args.runs):
            for tree_name, method in VARIANTS:
                tree = baseline if tree_name == "baseline" else ROOT
                env = dict(os.environ)
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, HERE, env.get("PYTHONPATH")]))
                output = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--child", method, "--number", str(args.number),
                     "--repeat", str(args.repeat), *(["--eager"] if tree_name == "eager" else [])],
                    cwd=HERE, env=env, check=True, capture_output=True, text=True,
                ).stdout
                result = json.loads(output)
                if os.path.realpath(result["module"]) != os.path.realpath(os.path.join(tree, "novasvc")):
                    raise SystemExit(f"{tree_name} imported novasvc from {result['module']}, not {tree}")
                results[tree_name, method].append(result["us"])
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    print(f"RPC server CPU µs per call (median of {args.runs} run(s), best of {args.repeat} x {args.number:,} "
          f"calls; 26-key context); this checkout {head or '?'}, baseline {args.baseline} = {commit}\n")
    print("| server | method | µs per call | ÷ baseline (min–max) |")
    print("|---|---|---:|---:|")
    for tree_name, method in VARIANTS:
        ratios = [us / base for us, base in zip(results[tree_name, method], results["baseline", method])]
        print(f"| {tree_name} | {method} | {statistics.median(results[tree_name, method]):.2f} | "
              f"{statistics.median(ratios):.3f}× ({min(ratios):.3f}–{max(ratios):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
