"""
Tests for L{novasvc.rpc._jsoncodec}.
"""

import datetime
import json
import uuid

from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc._jsoncodec import dumps


class JSONTests(SynchronousTestCase):
    """
    The JSON fallback for types oslo's to_primitive handles.
    """

    def test_fallbacks(self) -> None:
        """
        When values JSON cannot hold are encoded, then they become their
        primitive forms.
        """
        value = {
            "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
            "date": datetime.date(2024, 1, 2),
            "set": {3},
            "frozen": frozenset(["a"]),
            "uuid": uuid.UUID(int=1),
            "bytes": b"abc",
            "ctxt": RequestContext("u1"),
        }
        decoded = json.loads(dumps(value))
        self.assertEqual(decoded["dt"], "2024-01-02T03:04:05.000006")
        self.assertEqual(decoded["date"], "2024-01-02")
        self.assertEqual(decoded["set"], [3])
        self.assertEqual(decoded["frozen"], ["a"])
        self.assertEqual(decoded["uuid"], "00000000-0000-0000-0000-000000000001")
        self.assertEqual(decoded["bytes"], "abc")
        self.assertEqual(decoded["ctxt"]["user_id"], "u1")

    def test_unencodable(self) -> None:
        """
        When a value has no primitive form, then TypeError is raised.
        """
        self.assertRaises(TypeError, dumps, {"x": object()})
