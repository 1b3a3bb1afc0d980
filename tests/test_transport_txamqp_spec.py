"""
Tests for novasvc's AMQP 0-9-1 machine description (C{amqp0-9-1.xml}) and
the frame codec of L{novasvc.transport.txamqp._codec}, checked against
pika's own: class and method ids and names, which methods are synchronous
and which carry content, the order, names and types of every field (by
encoding the same values with both and comparing the bytes), the message
properties, and field tables of every type.
"""

import datetime
import decimal
import inspect
from typing import Any, Dict, List

from pika import data as pika_data
from pika import spec as pika_spec
from twisted.trial import unittest

from novasvc.transport.txamqp._codec import (
    FrameReader,
    ProtocolError,
    content_frames,
    decode_header,
    decode_method,
    decode_table,
    encode_method,
    encode_properties,
    encode_table,
    encode_value,
    frame,
    load_spec,
)
from txamqp.spec import pythonize

#: pika's classes that the spec describes in full.
CLASSES = ("Connection", "Channel", "Exchange", "Queue", "Basic", "Confirm")
#: pika's methods that the spec leaves out on purpose.
LEFT_OUT = {"Connection.UpdateSecret", "Connection.UpdateSecretOk"}

#: A value per field type, as pika takes it.
SAMPLES: Dict[str, Any] = {
    "octet": 7,
    "short": 513,
    "long": 70000,
    "longlong": 2 ** 40 + 3,
    "timestamp": 1700000000,
    "shortstr": "nom-été",
    "longstr": "long-ü",
    "table": {"a": 1, "b": True, "c": {"d": "e"}},
}


def _pika_methods(class_name: str) -> List[Any]:
    klass = getattr(pika_spec, class_name)
    return [m for _, m in sorted(vars(klass).items()) if inspect.isclass(m) and hasattr(m, "INDEX")
            and f"{class_name}.{m.__name__}" not in LEFT_OUT]


def _pika_name(method: Any) -> str:
    # "basic.get-ok" -> "Basic.GetOk"
    words = method.name.split("-")
    return f"{method.klass.name.capitalize()}.{''.join(w.capitalize() for w in words)}"


def _values(method: Any) -> List[Any]:
    # Bits alternate, so that their packing order shows.
    bits = 0
    values = []
    for field in method.fields:
        if field.type == "bit":
            values.append(bits % 2 == 0)
            bits += 1
        else:
            values.append(SAMPLES[field.type])
    return values


class SpecAgainstPikaTests(unittest.SynchronousTestCase):
    """
    C{amqp0-9-1.xml} says what pika's spec says.
    """

    def setUp(self) -> None:
        self.spec = load_spec()

    def test_class_ids_and_names(self) -> None:
        """
        When the spec is loaded, then its classes are pika's six classes
        (connection, channel, exchange, queue, basic, confirm) with pika's
        ids.
        """
        ours = {klass.name.capitalize(): klass.id for klass in self.spec.classes}
        self.assertEqual(ours, {name: getattr(pika_spec, name).INDEX for name in CLASSES})

    def test_method_ids_and_names(self) -> None:
        """
        When the spec's methods are compared with pika's, then every pika
        method of those classes (but connection.update-secret) is there,
        with the same class and method id, and no other.
        """
        ours = {_pika_name(m): (m.klass.id << 16) | m.id for klass in self.spec.classes for m in klass.methods}
        pikas = {m.NAME: m.INDEX for name in CLASSES for m in _pika_methods(name)}
        self.assertEqual(ours, pikas)

    def test_synchronous_and_content(self) -> None:
        """
        When a method is synchronous for pika, then the spec names its
        replies (and not otherwise), and a method carries content in the
        spec exactly when it does in pika.
        """
        for klass in self.spec.classes:
            for method in klass.methods:
                pika_method = getattr(getattr(pika_spec, klass.name.capitalize()),
                                      _pika_name(method).split(".")[1])
                self.assertEqual(bool(method.responses), pika_method().synchronous, _pika_name(method))
                self.assertEqual(bool(method.content), pika_spec.has_content(pika_method.INDEX),
                                 _pika_name(method))

    def test_replies_are_pikas(self) -> None:
        """
        When a synchronous method names its replies, then they are the
        methods pika waits for after it.
        """
        replies = {
            "Queue.Declare": {"Queue.DeclareOk"},
            "Basic.Get": {"Basic.GetOk", "Basic.GetEmpty"},
            "Basic.Consume": {"Basic.ConsumeOk"},
            "Confirm.Select": {"Confirm.SelectOk"},
            "Connection.Close": {"Connection.CloseOk"},
        }
        for klass in self.spec.classes:
            for method in klass.methods:
                if _pika_name(method) in replies:
                    self.assertEqual({_pika_name(r) for r in method.responses}, replies[_pika_name(method)])
                for reply in method.responses:
                    self.assertTrue(reply.response and reply.klass is klass)

    def test_fields_names_order_and_types(self) -> None:
        """
        When each method is encoded with the same values by pika and by
        novasvc's codec, then the bytes are the same (field order, types
        and bit packing), the field names are pika's argument names, and
        decoding pika's bytes gives the values back.
        """
        for klass in self.spec.classes:
            for method in klass.methods:
                name = _pika_name(method)
                pika_method = getattr(getattr(pika_spec, klass.name.capitalize()), name.split(".")[1])
                names = [pythonize(f.name) for f in method.fields]
                self.assertEqual(names, list(inspect.signature(pika_method.__init__).parameters)[1:], name)
                values = _values(method)
                ours = encode_method(method, values)
                theirs = b"".join(pika_method(**dict(zip(names, values))).encode())
                self.assertEqual(ours[4:], theirs, name)
                self.assertEqual(int.from_bytes(ours[:4], "big"), pika_method.INDEX, name)
                decoded = decode_method(self.spec, ours[:4] + theirs)
                self.assertEqual(list(decoded.args), values, name)

    def test_message_properties(self) -> None:
        """
        When message properties are encoded by pika and by novasvc's codec,
        then the bytes are the same, and decoding gives them back by the
        spec's names.
        """
        basic = self.spec.classes.byname["basic"]
        given = {"content_type": "application/json", "content_encoding": "utf-8", "headers": {"x": 1},
                 "delivery_mode": 2, "priority": 3, "correlation_id": "c", "reply_to": "r", "expiration": "60000",
                 "message_id": "m", "timestamp": 1700000000, "type": "t", "user_id": "u", "app_id": "a",
                 "cluster_id": "cl"}
        self.assertEqual([pythonize(f.name) for f in basic.fields], list(given))
        for chosen in (given, {"content_type": "text/plain", "delivery_mode": 2}, {}):
            ours = encode_properties(basic, {f.name: chosen.get(pythonize(f.name)) for f in basic.fields})
            theirs = b"".join(pika_spec.BasicProperties(**chosen).encode())
            self.assertEqual(ours, theirs)
            header = decode_header(self.spec, b"\x00\x3c\x00\x00" + (5).to_bytes(8, "big") + ours)
            self.assertEqual({pythonize(k): v for k, v in header.properties.items()}, chosen)
            self.assertEqual(header.size, 5)


class FieldTableTests(unittest.SynchronousTestCase):
    """
    Field tables as RabbitMQ and pika write them.
    """

    def test_same_bytes_as_pika(self) -> None:
        """
        When a table of every type novasvc encodes (bool, small and large
        int, float, str, bytes, Decimal, datetime, nested table, list,
        None) is encoded, then the bytes are pika's, and decoding them gives
        the table back.
        """
        table = {"t": True, "f": False, "i": -5, "l": 2 ** 40, "s": "é", "x": b"\x00\xff",
                 "d": decimal.Decimal("1.25"), "D": decimal.Decimal(3),
                 "T": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc),
                 "F": {"nested": {"deep": 1}}, "A": [1, "two", [3], {"four": 4}], "V": None}
        pieces: List[bytes] = []
        pika_data.encode_table(pieces, table)
        self.assertEqual(encode_table(table), b"".join(pieces))
        decoded, offset = decode_table(b"".join(pieces), 0)
        self.assertEqual((decoded, offset), (table, len(b"".join(pieces))))

    def test_float(self) -> None:
        """
        When a float is encoded (which pika refuses), then it is a double,
        C{d}, and decodes back.
        """
        self.assertEqual(encode_value(1.5), b"d" + bytes.fromhex("3ff8000000000000"))
        self.assertEqual(decode_table(encode_table({"f": 1.5}), 0)[0], {"f": 1.5})

    def test_types_rabbitmq_sends(self) -> None:
        """
        When a table holds the types RabbitMQ may send but novasvc does not
        write (signed and unsigned octets and shorts, unsigned long, 'L'),
        then they are decoded.
        """
        raw = (b"\x01bb\xff" + b"\x01BB\xff" + b"\x01ss\xff\xfe" + b"\x01uu\xff\xfe" + b"\x01ii\xff\xff\xff\xff"
               + b"\x01LL" + (2 ** 40).to_bytes(8, "big"))
        table, _ = decode_table(len(raw).to_bytes(4, "big") + raw, 0)
        self.assertEqual(table, {"b": -1, "B": 255, "s": -2, "u": 65534, "i": 2 ** 32 - 1, "L": 2 ** 40})

    def test_unknown_type(self) -> None:
        """
        When a table holds an unknown type octet, then ProtocolError.
        """
        raw = b"\x01kZ"
        self.assertRaises(ProtocolError, decode_table, len(raw).to_bytes(4, "big") + raw, 0)

    def test_unsupported_value(self) -> None:
        """
        When a value of a type a table cannot hold is given, then TypeError.
        """
        self.assertRaises(TypeError, encode_table, {"o": object()})


class FrameTests(unittest.SynchronousTestCase):
    """
    Frames made and read by L{novasvc.transport.txamqp._codec}.
    """

    def test_content_frames_split_at_frame_max(self) -> None:
        """
        When a 250-byte body is sent with a frame size of 108, then it goes
        in one header frame and three body frames of at most 100 bytes, and
        the reader gives them back, fed one byte at a time.
        """
        spec = load_spec()
        basic = spec.classes.byname["basic"]
        properties = encode_properties(basic, {"content-type": "application/json"})
        body = bytes(range(250))
        data = content_frames(5, basic.id, properties, body, 108)
        reader = FrameReader(spec)
        frames = [item for i in range(len(data)) for item in reader.feed(data[i:i + 1])]
        self.assertEqual([f.channel for f in frames], [5] * 4)
        self.assertEqual(frames[0].payload.size, 250)
        self.assertEqual(b"".join(f.payload.content for f in frames[1:]), body)
        self.assertEqual([len(f.payload.content) for f in frames[1:]], [100, 100, 50])

    def test_empty_body(self) -> None:
        """
        When the body is empty, then only the header frame is sent.
        """
        spec = load_spec()
        data = content_frames(1, 60, b"\x00\x00", b"", 131072)
        self.assertEqual(len(FrameReader(spec).feed(data)), 1)

    def test_long_short_string(self) -> None:
        """
        When a routing key is longer than 255 bytes in UTF-8 (though
        shorter in characters), then ValueError and nothing is made.
        """
        method = load_spec().classes.byname["basic"].methods.byname["publish"]
        self.assertRaises(ValueError, encode_method, method, (0, "", "é" * 128, False, False))

    def test_unknown_method(self) -> None:
        """
        When a method frame names an unknown class, then ProtocolError.
        """
        self.assertRaises(ProtocolError, FrameReader(load_spec()).feed, frame(1, 0, b"\x00\x63\x00\x01"))
