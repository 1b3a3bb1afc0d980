# -*- test-case-name: tests.test_transport_pika_internals -*-
"""
What L{novasvc.transport.AMQPTransport} relies on in pika beyond its
documented API, and the one check, made once per process, that decides
whether the transport may take its B{fast path}: write the frames of
C{basic.publish} and C{basic.ack} itself and read those of C{basic.deliver}
and of publisher confirms itself (L{novasvc.transport.amqp._frames}), or
use pika's C{basic_publish}, C{basic_ack} and its decoding of every frame
(the B{public path}).

What is used, and why:

  - C{TwistedProtocolConnection._impl}, the pika C{Connection} under pika's
    Twisted protocol (there is no public accessor): channels are opened on it
    and its public callbacks (C{add_on_open_error_callback},
    C{add_on_close_callback}) are registered on it. Both paths need it;
    L{connection_of} is the one place it is read, and a pika without it is
    refused at start-up with L{TransportError}.
  - C{Connection.callbacks} (a public attribute pika does not document): a
    callback on channel 0 for C{connection.close} keeps the broker's reason
    (e.g. C{403 ACCESS_REFUSED}), which pika's Twisted adapter replaces with
    Twisted's C{ConnectionDone}. Both paths use it when it is there (see
    L{novasvc.transport.pika._connect.AMQPProtocol}).
  - the fast path: frames written to the Twisted transport (public Twisted
    API) next to pika's, counted in pika's public C{bytes_sent} and
    C{frames_sent}, split at the negotiated C{params.frame_max}. What it
    assumes of pika cannot be seen from outside: that C{Channel.basic_publish}
    and C{basic_ack} keep no state per message (so frames pika did not make
    leave it consistent), and that pika writes synchronously to the same
    transport (so frames keep their order). Reading, it takes the bytes
    before pika's public C{Connection.data_received}, hands only whole frames
    on to it in the order received, and counts what it reads itself in
    pika's public C{bytes_received} and C{frames_received} (its heartbeat
    checker reads the first); it assumes that pika keeps no state per
    delivery or confirm (C{Channel._on_deliver} calls the consumer's
    callback; confirm callbacks are plain callbacks). That is why it is
    pinned to the pika releases it was verified with (L{VERIFIED}).

Replaced by public API (no cost: the same calls, one level less):
C{Connection._adapter_emit_data} (the Twisted transport's C{write}),
C{Connection._body_max_length} (C{params.frame_max} less the 8 bytes of frame
head and end), and the override of C{Connection._adapter_disconnect_stream}
(a guard on the Twisted transport, see
L{novasvc.transport.pika._connect.GuardedTransport}).

The fast path is off, for the whole process, when
C{NOVASVC_PIKA_FAST_PATH=0} (L{ENVIRONMENT_VARIABLE}), when pika's version is
outside L{VERIFIED}, or when pika's connection does not have the shape the
fast path needs (or the frames it would write differ from pika's own); then
one warning names the reason (an INFO line for the environment variable).
"""

import os
import re
from typing import Any, FrozenSet, Mapping, Optional, Tuple

import attrs
import pika
from pika import frame, spec
from twisted.logger import Logger

from novasvc.exceptions import TransportError
from novasvc._text import clip
from novasvc.transport.amqp._frames import FrameReader, FrameWriter

_log = Logger()

#: The environment variable that turns the fast path off (C{0}) for the
#: process.
ENVIRONMENT_VARIABLE = "NOVASVC_PIKA_FAST_PATH"

#: The pika releases the transport was verified with: (oldest, first one
#: after the newest), as in setup.py's pin, less L{BROKEN}.
VERIFIED: Tuple[Tuple[int, int, int], Tuple[int, int, int]] = ((1, 3, 0), (1, 4, 5))

#: Releases in that range left out: pika 1.4.0's C{Channel.close} changes
#: the dict of consumers it walks (C{RuntimeError}), so a consumer's channel
#: does not close (fixed in 1.4.1).
BROKEN: FrozenSet[Tuple[int, int, int]] = frozenset({(1, 4, 0)})

#: L{VERIFIED} and L{BROKEN} as a requirement specifier.
PIN = ">={}.{}.{},{},<{}.{}.{}".format(*VERIFIED[0], ",".join("!={}.{}.{}".format(*v) for v in sorted(BROKEN)),
                                      *VERIFIED[1])

_OFF = ("0", "false", "no", "off")
_ON = ("", "1", "true", "yes", "on")


def connection_of(protocol: Any) -> Any:
    """
    The pika C{Connection} under pika's Twisted protocol.

    @param protocol: a C{TwistedProtocolConnection}.
    @return: its C{_impl}.
    @raise TransportError: when it has none (a pika release that
        L{novasvc.transport.AMQPTransport} cannot use at all).
    """
    connection = getattr(protocol, "_impl", None)
    if not isinstance(connection, pika.connection.Connection):
        raise TransportError(
            f"pika {pika.__version__}: TwistedProtocolConnection has no _impl connection; "
            f"novasvc's AMQP transport needs pika{PIN}"
        )
    return connection


def check(protocol: Any = None, version: Optional[str] = None,
          environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """
    Decide whether the fast path may be used.

    @param protocol: a pika C{TwistedProtocolConnection} to look at; by
        default one made for the purpose (never connected).
    @param version: pika's version; by default C{pika.__version__}.
    @param environ: the environment; by default C{os.environ}.
    @return: C{None} when the fast path may be used, else why not (one
        line).
    @raise TransportError: when C{protocol} has no pika connection (see
        L{connection_of}).
    """
    reason = environment_reason(os.environ if environ is None else environ)
    if reason is not None:
        return reason
    version = pika.__version__ if version is None else version
    release = _release(version)
    if release is None or not VERIFIED[0] <= release < VERIFIED[1] or release in BROKEN:
        return f"pika {clip(version)} is not a release the fast path was verified with ({PIN})"
    connection = connection_of(_probe() if protocol is None else protocol)
    for name in ("bytes_sent", "frames_sent", "bytes_received", "frames_received"):
        if type(getattr(connection, name, None)) is not int:
            return f"pika's Connection has no integer {name} counter"
    if type(getattr(getattr(connection, "params", None), "frame_max", None)) is not int:
        return "pika's Connection has no integer params.frame_max"
    if not callable(getattr(connection, "data_received", None)):
        return "pika's Connection has no data_received"
    return _compare_frames() or _compare_reading()


def environment_reason(environ: Mapping[str, str]) -> Optional[str]:
    """
    @param environ: the environment.
    @return: why L{ENVIRONMENT_VARIABLE} turns the fast path off (C{0},
        C{false}, C{no}, C{off}, or a value that is none of those nor C{1},
        C{true}, C{yes}, C{on}, empty), else C{None}.
    """
    value = environ.get(ENVIRONMENT_VARIABLE)
    if value is None or value.strip().lower() in _ON:
        return None
    if value.strip().lower() in _OFF:
        return f"{ENVIRONMENT_VARIABLE}={clip(value)}"
    return f"{ENVIRONMENT_VARIABLE}={clip(value)} is neither 0 nor 1"


@attrs.frozen
class Verdict:
    """
    The check's outcome for this process.

    @ivar fast_path: C{True} when frames are written directly.
    @ivar reason: why not, when not.
    @ivar version: pika's version.
    """

    fast_path: bool
    reason: Optional[str]
    version: str

    def describe(self) -> str:
        """
        @return: e.g. C{"pika 1.4.4, fast path"}, or C{"pika 1.4.4, public
            API: NOVASVC_PIKA_FAST_PATH=0"}.
        """
        if self.fast_path:
            return f"pika {self.version}, fast path"
        return f"pika {self.version}, public API: {self.reason}"


_verdict: Optional[Verdict] = None


def verdict() -> Verdict:
    """
    L{check} once per process; the first call logs the outcome when the
    fast path is off: one WARNING naming the reason, or one INFO line when
    L{ENVIRONMENT_VARIABLE} asked for it.

    @return: the process's L{Verdict}.
    @raise TransportError: for a pika the transport cannot use (see
        L{connection_of}); not remembered, so every transport made says so.
    """
    global _verdict
    if _verdict is None:
        reason = check()
        _verdict = Verdict(reason is None, reason, pika.__version__)
        if reason is not None:
            if reason.startswith(ENVIRONMENT_VARIABLE + "="):
                _log.info("AMQP transport: {why}: pika's public API (basic_publish, basic_ack)", why=reason)
            else:
                _log.warn("AMQP transport: {why}; falling back to pika's public API "
                          "(basic_publish, basic_ack) for this process", why=reason)
    return _verdict


def _release(version: str) -> Optional[Tuple[int, int, int]]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def _probe() -> Any:
    # Never connected: only its pika connection's attributes are looked at.
    from pika.adapters.twisted_connection import TwistedProtocolConnection
    from twisted.internet.task import Clock

    return TwistedProtocolConnection(pika.ConnectionParameters(), custom_reactor=Clock())


class _Sink:
    """
    A connection and transport for L{_compare_frames}.
    """

    def __init__(self, frame_max: int) -> None:
        self.params = pika.ConnectionParameters(frame_max=frame_max)
        self.bytes_sent = self.bytes_received = 0
        self.frames_sent = self.frames_received = 0
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


def _compare_frames() -> Optional[str]:
    """
    @return: C{None} when L{FrameWriter} writes what pika's frame classes
        make for a message over several frames and for two acks, else what
        differs.
    """
    from novasvc.transport.amqp._publish import message_properties

    # The properties the transport sends, encoded once by the publisher
    # (message_properties) and here again by pika from scratch.
    oslo = spec.BasicProperties(content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                                expiration="1000")
    sink = _Sink(frame_max=4096)
    writer = FrameWriter(sink, 5, sink.write)
    body = bytes(range(256)) * 40
    properties = message_properties("application/json", 1000)
    writer.write("exchange", "routing.key", body, properties, True)
    step = 4096 - spec.FRAME_HEADER_SIZE - spec.FRAME_END_SIZE
    expected = [frame.Method(5, spec.Basic.Publish(exchange="exchange", routing_key="routing.key",
                                                   mandatory=True)).marshal(),
                frame.Header(5, len(body), oslo).marshal()]
    expected += [frame.Body(5, body[start:start + step]).marshal() for start in range(0, len(body), step)]
    if sink.written != b"".join(expected) or sink.frames_sent != len(expected):
        return f"the frames of basic.publish differ from pika {pika.__version__}'s own"
    sink.written = b""
    writer.acks([7, 2 ** 40], True)
    if sink.written != b"".join(frame.Method(5, spec.Basic.Ack(delivery_tag=tag, multiple=True)).marshal()
                                for tag in (7, 2 ** 40)):
        return f"the frames of basic.ack differ from pika {pika.__version__}'s own"
    return None


def _compare_reading() -> Optional[str]:
    """
    @return: C{None} when L{FrameReader} reads from pika's own frames (a
        delivery over several body frames, with a non-UTF-8 routing key, a
        C{basic.ack} and a C{basic.nack}) what pika's decoder reads, and
        passes on the rest (a C{basic.return} with its content, a heartbeat)
        unchanged, else what differs.
    """
    body = bytes(range(256)) * 3
    properties = spec.BasicProperties(content_type="application/json", delivery_mode=2)
    deliver = spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=2 ** 40 + 1, redelivered=True,
                                 exchange="openstack", routing_key=b"topic.\xff")
    ours = [frame.Method(5, deliver).marshal(), frame.Header(5, len(body), properties).marshal()]
    ours += [frame.Body(5, body[start:start + 300]).marshal() for start in range(0, len(body), 300)]
    theirs = [frame.Method(5, spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="openstack",
                                                routing_key="nowhere")).marshal(),
              frame.Header(5, 2, properties).marshal(), frame.Body(5, b"{}").marshal(),
              frame.Heartbeat().marshal()]
    confirms = [frame.Method(5, spec.Basic.Ack(delivery_tag=9, multiple=True)).marshal(),
                frame.Method(5, spec.Basic.Nack(delivery_tag=10, multiple=False)).marshal()]
    data = b"".join(theirs[:3] + ours + confirms[:1] + theirs[3:] + confirms[1:])
    expected = [_pika_delivery(b"".join(ours))]
    expected += [("confirm", frame.decode_frame(c)[1].method.delivery_tag, frame.decode_frame(c)[1].method.multiple,
                  frame.decode_frame(c)[1].method.NAME == "Basic.Ack") for c in confirms]
    seen: list = []
    passed: list = []
    sink = _Sink(frame_max=4096)
    reader = FrameReader(sink, passed.append)
    reader.consume(5, "ctag", lambda *delivery: seen.append(delivery))
    reader.confirm(5, lambda *confirm: seen.append(("confirm",) + confirm))
    for start in range(0, len(data), 97):
        reader.data_received(data[start:start + 97])
    if seen != expected:
        return f"deliveries or confirms read differ from pika {pika.__version__}'s decoding"
    if b"".join(passed) != b"".join(theirs) or sink.bytes_received != len(data) - len(b"".join(theirs)):
        return f"the frames passed to pika {pika.__version__} differ from those it should read"
    return None


def _pika_delivery(data: bytes) -> tuple:
    # What pika's decoder reads from a delivery's frames, as FrameReader
    # hands it out.
    decoded = []
    while data:
        used, decoded_frame = frame.decode_frame(data)
        decoded.append(decoded_frame)
        data = data[used:]
    method, header = decoded[0].method, decoded[1].properties
    return (method.delivery_tag, b"".join(f.fragment for f in decoded[2:]), header.content_type, method.exchange,
            method.routing_key, method.redelivered)
