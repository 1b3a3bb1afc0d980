# -*- test-case-name: tests.test_bench -*-
"""
What pika's fast path buys, per message: the CPU time of publishing a
message and of acking deliveries through novasvc's L{FrameWriter} (the fast
path) and through pika's C{basic_publish} and C{basic_ack} (the public API,
C{NOVASVC_PIKA_FAST_PATH=0}), and of reading a delivery and a publisher
confirm through novasvc's L{FrameReader} and through pika's decoding, on a
pika connection opened over a transport that drops what is written and fed
the broker's frames by hand (no broker, no socket: only the framing is
timed; deliveries and confirms arrive 64 to a read).

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

from novasvc.transport.pika._connect import AMQPProtocol  # noqa: E402
from novasvc.transport.amqp._publish import message_properties  # noqa: E402


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


def open_channel(fast_path: bool = True) -> Any:
    """
    @param fast_path: see L{AMQPProtocol}.
    @return: C{(protocol, raw channel)}: a pika connection taken through the
        handshake by feeding it the broker's frames, and a channel on it.
    """
    protocol = AMQPProtocol(pika.ConnectionParameters(heartbeat=0), Clock(), _Owner(), fast_path=fast_path)
    protocol.makeConnection(_Sink())
    for method in (spec.Connection.Start(server_properties={"capabilities": {"publisher_confirms": True, "basic.nack": True}},
                                         mechanisms="PLAIN", locales="en_US"),
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
        C{publish_public}, C{ack_fast}, C{ack_public}, C{deliver_fast},
        C{deliver_public}, C{confirm_fast}, C{confirm_public}.
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

    result = {name: _best(action, reps) * 1e6 / n for name, action in
              (("publish_fast", publish_fast), ("publish_public", publish_public),
               ("ack_fast", ack_fast), ("ack_public", ack_public))}
    for fast_path, suffix in ((True, "fast"), (False, "public")):
        deliver, confirm = _readers(fast_path, body, n)
        result[f"deliver_{suffix}"] = _best(deliver, reps) * 1e6 / n
        result[f"confirm_{suffix}"] = _best(confirm, reps) * 1e6 / n
    return result


def _readers(fast_path: bool, body: bytes, n: int) -> Any:
    # Two actions reading n deliveries of body, and n confirms, 64 frames
    # (or deliveries) to a read, on a connection of that path.
    protocol, raw = open_channel(fast_path)
    number = raw.channel_number
    received: List[Any] = []
    if fast_path:
        protocol.frame_reader.consume(number, "ctag", lambda *delivery: received.append(delivery))
        protocol.frame_reader.confirm(number, lambda *confirm: received.append(confirm))
    else:
        raw.basic_consume("q", lambda *delivery: received.append(delivery), consumer_tag="ctag")
        protocol.dataReceived(frame.Method(number, spec.Basic.ConsumeOk(consumer_tag="ctag")).marshal())
        raw.confirm_delivery(lambda confirm: received.append(confirm), callback=lambda _: None)
        protocol.dataReceived(frame.Method(number, spec.Confirm.SelectOk()).marshal())
    properties = spec.BasicProperties(content_type="application/json", content_encoding="utf-8", delivery_mode=2)
    batch = 64
    deliveries = [b"".join(frame.Method(number, spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=tag,
                                                                   exchange="", routing_key="reply_q")).marshal()
                           + frame.Header(number, len(body), properties).marshal()
                           + frame.Body(number, body).marshal() for tag in range(1, batch + 1))]
    confirms = [b"".join(frame.Method(number, spec.Basic.Ack(delivery_tag=tag)).marshal()
                         for tag in range(1, batch + 1))]
    reads = range(max(1, n // batch))

    def read(chunks: List[bytes]) -> Callable[[], None]:
        def action() -> None:
            received.clear()
            data_received = protocol.dataReceived
            for _ in reads:
                data_received(chunks[0])
            assert len(received) == batch * len(reads), len(received)
        return action

    return read(deliveries), read(confirms)


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
    for what in ("publish", "ack", "deliver", "confirm"):
        fast, public = result[f"{what}_fast"], result[f"{what}_public"]
        print(f"| {what} | {fast:.2f} | {public:.2f} | {public / fast:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
