"""
Tests for L{novasvc.notify.message}: the notification wire format. What
oslo.messaging itself writes and reads is checked against live peers in
C{tests.test_notify_interop}.
"""

import datetime
import json
import re

from twisted.trial.unittest import SynchronousTestCase

from novasvc.notify import PRIORITIES, Notification
from novasvc.notify.message import decode_notification, encode_notification, routing_key, utc_timestamp
from novasvc.rpc.errors import MalformedMessage

_UUID_WITH_DASHES = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _inner(body: bytes) -> dict:
    outer = json.loads(body)
    return json.loads(outer["oslo.message"]) if "oslo.message" in outer else outer


class PrioritiesTests(SynchronousTestCase):
    """
    L{PRIORITIES} and L{routing_key}.
    """

    def test_priorities(self) -> None:
        """
        When the priorities are read, then they are oslo's seven, lower
        case, in oslo's order.
        """
        self.assertEqual(PRIORITIES, ("audit", "debug", "info", "warn", "error", "critical", "sample"))

    def test_routing_key(self) -> None:
        """
        When a routing key is made, then it is C{<topic>.<priority>} with
        the priority in lower case.
        """
        self.assertEqual(routing_key("notifications", "INFO"), "notifications.info")
        self.assertEqual(routing_key("versioned_notifications", "warn"), "versioned_notifications.warn")


class TimestampTests(SynchronousTestCase):
    """
    L{utc_timestamp}.
    """

    def test_format(self) -> None:
        """
        When a time is given, then it is written as C{str()} of a naive UTC
        datetime (oslo's C{str(timeutils.utcnow())}): a space between date
        and time, microseconds only when not zero, no zone.
        """
        self.assertEqual(utc_timestamp(datetime.datetime(2026, 5, 1, 12, 30, 5, 42)), "2026-05-01 12:30:05.000042")
        self.assertEqual(utc_timestamp(datetime.datetime(2026, 5, 1, 12, 30, 5)), "2026-05-01 12:30:05")

    def test_now(self) -> None:
        """
        When no time is given, then it is now, in UTC.
        """
        before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        stamp = utc_timestamp()
        after = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        parsed = datetime.datetime.fromisoformat(stamp)
        self.assertTrue(before <= parsed <= after, (before, stamp, after))
        self.assertRegex(stamp, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")


class EncodeTests(SynchronousTestCase):
    """
    L{encode_notification}.
    """

    def test_envelope_keys(self) -> None:
        """
        When a notification is encoded with the envelope, then the body is
        the 2.0 envelope whose message has exactly oslo's keys in oslo's
        order: message_id (uuid4 with dashes), publisher_id, event_type,
        priority upper case, payload, timestamp, _unique_id (uuid4 hex),
        then the context entries under _context_.
        """
        body = encode_notification("volume.h1", "volume.create.end", "info", {"size": 1},
                                   {"user_id": "u1", "request_id": "req-1"})
        outer = json.loads(body)
        self.assertEqual(sorted(outer), ["oslo.message", "oslo.version"])
        self.assertEqual(outer["oslo.version"], "2.0")
        self.assertIsInstance(outer["oslo.message"], str)
        inner = json.loads(outer["oslo.message"])
        self.assertEqual(list(inner), ["message_id", "publisher_id", "event_type", "priority", "payload",
                                       "timestamp", "_unique_id", "_context_user_id", "_context_request_id"])
        self.assertRegex(inner["message_id"], _UUID_WITH_DASHES)
        self.assertRegex(inner["_unique_id"], r"^[0-9a-f]{32}$")
        self.assertEqual((inner["publisher_id"], inner["event_type"], inner["priority"], inner["payload"]),
                         ("volume.h1", "volume.create.end", "INFO", {"size": 1}))
        self.assertEqual((inner["_context_user_id"], inner["_context_request_id"]), ("u1", "req-1"))

    def test_bare(self) -> None:
        """
        When a notification is encoded without the envelope (driver
        C{messaging}), then the body is the message itself.
        """
        body = encode_notification("p", "e", "WARN", [1], {}, envelope=False)
        message = json.loads(body)
        self.assertNotIn("oslo.message", message)
        self.assertEqual((message["priority"], message["payload"]), ("WARN", [1]))

    def test_given_ids(self) -> None:
        """
        When a message_id and a timestamp are given, then they are written;
        each encoding has a new _unique_id.
        """
        first = _inner(encode_notification("p", "e", "info", None, {}, message_id="m-1", timestamp="t-1"))
        second = _inner(encode_notification("p", "e", "info", None, {}, message_id="m-1", timestamp="t-1"))
        self.assertEqual((first["message_id"], first["timestamp"]), ("m-1", "t-1"))
        self.assertNotEqual(first["_unique_id"], second["_unique_id"])

    def test_no_publisher(self) -> None:
        """
        When there is no publisher id, then publisher_id is null, as oslo
        writes it.
        """
        self.assertIsNone(_inner(encode_notification(None, "e", "info", {}, {}))["publisher_id"])

    def test_not_encodable(self) -> None:
        """
        When the payload cannot be encoded, then TypeError.
        """
        self.assertRaises(TypeError, encode_notification, "p", "e", "info", object(), {})


class DecodeTests(SynchronousTestCase):
    """
    L{decode_notification}.
    """

    def test_round_trip(self) -> None:
        """
        When an encoded notification is decoded (envelope or bare), then
        every field comes back, the priority lower case, the context
        without its prefix plus client_timeout None (as oslo's listener
        hands it over), metadata with message_id and timestamp.
        """
        for envelope in (True, False):
            body = encode_notification("volume.h1", "volume.delete.start", "ERROR", {"id": 3}, {"user_id": "u"},
                                       envelope=envelope, message_id="m-7", timestamp="2026-01-02 03:04:05")
            notification = decode_notification(body)
            self.assertEqual(notification, Notification(
                publisher_id="volume.h1", event_type="volume.delete.start", priority="error", payload={"id": 3},
                context={"user_id": "u", "client_timeout": None},
                metadata={"message_id": "m-7", "timestamp": "2026-01-02 03:04:05"},
                unique_id=_inner(body)["_unique_id"]))

    def test_client_timeout_from_timeout(self) -> None:
        """
        When the message carries C{_timeout}, then the context's
        client_timeout is its value (oslo's unpack_context), even over a
        C{_context_client_timeout} entry.
        """
        body = json.dumps({"priority": "INFO", "event_type": "e", "publisher_id": "p", "payload": 1,
                           "_timeout": 5, "_context_client_timeout": 9})
        self.assertEqual(decode_notification(body).context, {"client_timeout": 5})

    def test_null_publisher(self) -> None:
        """
        When publisher_id is null, then it decodes as None.
        """
        body = encode_notification(None, "e", "sample", 1, {})
        self.assertIsNone(decode_notification(body).publisher_id)

    def test_refused(self) -> None:
        """
        When the content type is not JSON, the body is not a JSON object,
        the priority is unknown or missing, the event type is not a string,
        or the publisher id is neither a string nor null, then
        MalformedMessage, whose reason quotes a long value cut short.
        """
        good = {"priority": "INFO", "event_type": "e", "publisher_id": "p", "payload": {}}
        self.assertRaises(MalformedMessage, decode_notification, json.dumps(good), "text/plain")
        self.assertRaises(MalformedMessage, decode_notification, json.dumps(good), None)
        self.assertRaises(MalformedMessage, decode_notification, b"[1, 2]")
        self.assertRaises(MalformedMessage, decode_notification, b"not json")
        for change in ({"priority": "LOUD"}, {"priority": None}, {"event_type": 3}, {"publisher_id": ["x"]}):
            self.assertRaises(MalformedMessage, decode_notification, json.dumps({**good, **change}))
        error = self.assertRaises(MalformedMessage, decode_notification, json.dumps({**good, "priority": "x" * 5000}))
        self.assertLess(len(str(error)), 600)

    def test_content_type_parameters(self) -> None:
        """
        When the content type has parameters or another case, then it is
        still JSON.
        """
        body = encode_notification("p", "e", "audit", {}, {})
        self.assertEqual(decode_notification(body, "Application/JSON; charset=utf-8").priority, "audit")
