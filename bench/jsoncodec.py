# -*- test-case-name: tests.test_bench -*-
"""
The JSON codec (L{novasvc.rpc._jsoncodec}: orjson, with the standard
library for what orjson does not handle as oslo does) timed on the bodies
novasvc sends: a call request with a 26-key context and a C{--payload}-byte
argument, and its reply; the inner JSON alone, and the whole wire step
(request or reply encoded into its 2.0 envelope and decoded back, double
JSON included).

    python bench/jsoncodec.py                # 3 runs, markdown table
    python bench/jsoncodec.py --runs 1 --number 2000

Each run is a process of its own, C{--runs} of them one after the other;
each figure is the best of C{--repeat} repeats of C{--number} operations,
timed in B{CPU} seconds of the process (C{time.process_time}: other
processes on the machine change it less than wall time), and the table
shows the median over the runs, in microseconds per operation.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: (key, label) of each timed operation, in the table's order.
OPERATIONS = (
    ("request_encode", "encode request (inner JSON)"),
    ("request_decode", "decode request (inner JSON)"),
    ("reply_encode", "encode reply (inner JSON)"),
    ("reply_decode", "decode reply (inner JSON)"),
    ("request_wire", "request: wire.encode_request + decode_request"),
    ("reply_wire", "reply: wire.encode_reply + decode_reply"),
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time the JSON codec on novasvc's bodies.")
    parser.add_argument("--runs", type=int, default=3, help="processes, one after the other (default 3)")
    parser.add_argument("--number", type=int, default=20000, help="operations per repeat (default 20000)")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the best counts (default 7)")
    parser.add_argument("--payload", type=int, default=100, help="bytes of the echoed value (default 100)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(number: int, repeat: int, payload: int) -> Dict[str, Any]:
    """
    Time the operations in this process.

    @return: C{sizes} (bytes of each body) and each operation's CPU
        microseconds.
    """
    from novasvc.context import RequestContext
    from novasvc.rpc import _jsoncodec, wire

    from _child import make_payload

    value = make_payload(payload)
    context = RequestContext(user_id="bench-user", project_id="bench-project", roles=["member", "reader"]).to_dict()
    request_body = wire.encode_request("echo", {"value": value}, context, version="1.3", msg_id=wire.new_id(),
                                       reply_q="reply_" + wire.new_id(), timeout=None)
    reply_body = wire.encode_reply(wire.new_id(), value)
    request = wire.decode_body(request_body)
    reply = wire.decode_body(reply_body)
    request_text, reply_text = _jsoncodec.encode(request), _jsoncodec.encode(reply)
    if _jsoncodec.decode(request_text) != request or _jsoncodec.decode(reply_text) != reply:
        raise AssertionError("the codec does not read back what it wrote")

    def request_wire() -> None:
        wire.decode_request(wire.encode_request("echo", {"value": value}, context, version="1.3",
                                                msg_id="0123456789abcdef0123456789abcdef", reply_q="reply_q"))

    def reply_wire() -> None:
        wire.decode_reply(wire.encode_reply("0123456789abcdef0123456789abcdef", value))

    operations: Dict[str, Callable[[], Any]] = {
        "request_encode": lambda: _jsoncodec.encode(request),
        "request_decode": lambda: _jsoncodec.decode(request_text),
        "reply_encode": lambda: _jsoncodec.encode(reply),
        "reply_decode": lambda: _jsoncodec.decode(reply_text),
        "request_wire": request_wire,
        "reply_wire": reply_wire,
    }
    result: Dict[str, Any] = {"sizes": {"request": len(request_body), "reply": len(reply_body)}}
    for key, operation in operations.items():
        best = min(timeit.repeat(operation, number=number, repeat=repeat, timer=time.process_time))
        result[key] = best / number * 1e6
    return result


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.number, args.repeat, args.payload)))
        return 0
    results: List[Dict[str, Any]] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    for _ in range(args.runs):
        output = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", "--number", str(args.number),
             "--repeat", str(args.repeat), "--payload", str(args.payload)],
            cwd=HERE, env=env, check=True, capture_output=True, text=True,
        ).stdout
        results.append(json.loads(output))
    sizes = results[0]["sizes"]
    print(f"JSON codec, CPU µs per operation (median of {args.runs} run(s), best of {args.repeat} x "
          f"{args.number:,}); request envelope {sizes['request']:,} bytes, reply {sizes['reply']:,} bytes\n")
    print("| operation | µs |")
    print("|---|---:|")
    for key, label in OPERATIONS:
        print(f"| {label} | {statistics.median(r[key] for r in results):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
