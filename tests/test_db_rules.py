"""
Tests for L{novasvc.db.rules}.
"""

import datetime

from twisted.trial.unittest import SynchronousTestCase

from novasvc.db import rules


class CheckTests(SynchronousTestCase):
    """
    L{rules.check_create}, L{rules.check_update} and their helpers.
    """

    def test_check_create(self) -> None:
        """
        When the arguments are good, then the column values come back.
        """
        self.assertEqual(
            rules.check_create("h", "b", None, 2, True, "why"),
            {"host": "h", "binary": "b", "topic": None, "version": 2,
             "disabled": True, "disabled_reason": "why"},
        )

    def test_check_create_max_length(self) -> None:
        """
        When a string has exactly 255 characters, then it is accepted; 256
        is refused with a message giving the length and the limit.
        """
        rules.check_create("h" * 255, "b", "t")
        with self.assertRaises(ValueError) as raised:
            rules.check_create("h" * 256, "b", "t")
        self.assertIn("256", str(raised.exception))
        self.assertIn("255", str(raised.exception))

    def test_check_update_lists_accepted(self) -> None:
        """
        When an update names an unknown key, then the error names it and
        lists the accepted keys.
        """
        with self.assertRaises(ValueError) as raised:
            rules.check_update({"host": "x"})
        message = str(raised.exception)
        self.assertIn("host", message)
        for key in rules.UPDATABLE_COLUMNS:
            self.assertIn(key, message)

    def test_bool_is_not_an_int(self) -> None:
        """
        When a bool is given where an int is expected, then it is refused.
        """
        self.assertRaises(TypeError, rules.check_update, {"version": True})
        self.assertRaises(TypeError, rules.check_service_id, True)

    def test_naive_utc(self) -> None:
        """
        When a time is aware, then it becomes naive UTC; a naive one is kept;
        anything else is refused.
        """
        minus_two = datetime.timezone(datetime.timedelta(hours=-2))
        aware = datetime.datetime(2026, 1, 1, 1, 30, tzinfo=minus_two)
        self.assertEqual(rules.naive_utc(aware), datetime.datetime(2026, 1, 1, 3, 30))
        naive = datetime.datetime(2026, 1, 1)
        self.assertIs(rules.naive_utc(naive), naive)
        self.assertRaises(TypeError, rules.naive_utc, "2026-01-01")

    def test_default_utcnow(self) -> None:
        """
        When the default clock is read, then it is naive and matches the
        current UTC time.
        """
        now = rules.default_utcnow()
        self.assertIsNone(now.tzinfo)
        utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.assertLess(abs((utc - now).total_seconds()), 5)
