# -*- test-case-name: tests.test_bench -*-
"""
What pika's fast path buys, per message, in the process that sends: the CPU
time of publishing a message and of acking deliveries through novasvc's
L{FrameWriter} (the fast path) and through pika's C{basic_publish} and
C{basic_ack} (the public API, C{NOVASVC_PIKA_FAST_PATH=0}), on a pika
connection opened over a transport that drops what is written (no broker,
no socket: only the framing is timed).

    python bench/pika_path.py             # 20,000 messages, best of 5
    python bench/pika_path.py --n 2000 --reps 3

bench/run.py (systems C{novasvc} and C{novasvc-public}) shows what the
difference becomes end to end.
"""

import argparse
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import pika
from pika import frame, spec
from twisted.internet.task import Clock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from novasvc.transport._amqp_connect import AMQPProtocol  # noqa: E402
from novasvc.transport._amqp_publish import message_properties  # noqa: E402


class _Sink:
    """
    A Twisted transport that drops what is written.
    """

    disconnecting = False

    def write(self, data: bytes) -> None:
        pass

    def writeSequence(self, data: List[bytes]) -> None:
        pass

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.disconnecting = True


class _Owner:
    def protocol_connected(self, protocol: Any) -> None:
        pass

    def protocol_lost(self, protocol: Any, reason: Any) -> None:
        pass


def open_channel() -> Any:
    """
    @return: C{(protocol, raw channel)}: a pika connection taken through the
        handshake by feeding it the broker's frames, and a channel on it.
    """
    protocol = AMQPProtocol(pika.ConnectionParameters(heartbeat=0), Clock(), _Owner(), fast_path=True)
    protocol.makeConnection(_Sink())
    for method in (spec.Connection.Start(server_properties={}, mechanisms="PLAIN", locales="en_US"),
                   spec.Connection.Tune(channel_max=16, frame_max=131072, heartbeat=0),
                   spec.Connection.OpenOk()):
        protocol.dataReceived(frame.Method(0, method).marshal())
    raw = protocol.connection.channel(on_open_callback=lambda _: None)
    protocol.dataReceived(frame.Method(raw.channel_number, spec.Channel.OpenOk()).marshal())
    return protocol, raw


def _best(action: Callable[[], None], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.process_time()
        action()
        times.append(time.process_time() - started)
    return min(times)


def measure(n: int = 20000, reps: int = 5, payload: int = 400) -> Dict[str, float]:
    """
    @param n: messages (and acks) per repetition.
    @param payload: the body's size in bytes (an oslo envelope of a small
        call is about 400).
    @return: CPU microseconds per message: C{publish_fast},
        C{publish_public}, C{ack_fast}, C{ack_public}.
    """
    protocol, raw = open_channel()
    writer = protocol.frame_writer(raw)
    assert writer is not None
    properties = message_properties("application/json", None)
    body = b"x" * payload
    tags = range(1, n + 1)

    def publish_fast() -> None:
        write = writer.write
        for _ in tags:
            write("", "topic.host", body, properties, False)

    def publish_public() -> None:
        publish = raw.basic_publish
        for _ in tags:
            publish("", "topic.host", body, properties, False)

    def ack_fast() -> None:
        acks = writer.acks
        for tag in tags:
            acks((tag,), False)

    def ack_public() -> None:
        ack = raw.basic_ack
        for tag in tags:
            ack(tag, False)

    return {name: _best(action, reps) * 1e6 / n for name, action in
            (("publish_fast", publish_fast), ("publish_public", publish_public),
             ("ack_fast", ack_fast), ("ack_public", ack_public))}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="CPU per message of pika's fast path and public API.")
    parser.add_argument("--n", type=int, default=20000, help="messages per repetition (default 20000)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions, the best counts (default 5)")
    parser.add_argument("--payload", type=int, default=400, help="body bytes (default 400)")
    args = parser.parse_args(argv)
    result = measure(args.n, args.reps, args.payload)
    print(f"pika {pika.__version__}, {args.payload}-byte bodies, best of {args.reps} x {args.n}: CPU µs per message")
    print("| | fast path | pika's public API | public ÷ fast |")
    print("|---|---:|---:|---:|")
    for what in ("publish", "ack"):
        fast, public = result[f"{what}_fast"], result[f"{what}_public"]
        print(f"| {what} | {fast:.2f} | {public:.2f} | {public / fast:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
