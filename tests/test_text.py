"""
Tests for L{novasvc._text}.
"""

from twisted.trial.unittest import SynchronousTestCase

from novasvc._text import QUOTE_LIMIT, ClippedTraceback, clip, quote, show_value
from novasvc.rpc.errors import MalformedMessage


class QuoteTests(SynchronousTestCase):
    """
    L{clip} and L{quote} cut a client's values.
    """

    def test_clip(self) -> None:
        """
        When a string is longer than QUOTE_LIMIT, then clip keeps the first
        200 characters and says how long it was; shorter strings and None
        are kept, other values are quoted.
        """
        self.assertEqual(QUOTE_LIMIT, 200)
        self.assertEqual(clip("a" * 1000), "a" * 200 + "... (1000 characters)")
        self.assertEqual(clip("short"), "short")
        self.assertIsNone(clip(None))
        self.assertEqual(clip(5), "5")

    def test_quote(self) -> None:
        """
        When a value is quoted, then a string is its repr cut to 200
        characters, and a container shows a few items of a few levels,
        whatever its size and depth.
        """
        self.assertEqual(quote("x"), "'x'")
        self.assertEqual(quote("x" * 1000), repr("x" * 200) + "... (1000 characters)")
        deep: list = []
        for _ in range(100_000):
            deep = [deep]
        self.assertEqual(quote(deep), "[[[[...]]]]")
        self.assertLess(len(quote({"k" * 10_000: list(range(10_000))})), 600)

    def test_quote_bad_repr(self) -> None:
        """
        When a value's repr raises, then quote still returns text.
        """

        class Bad:
            def __repr__(self) -> str:
                raise RuntimeError("no")

        self.assertIn("Bad", quote(Bad()))

    def test_clipped_traceback(self) -> None:
        """
        When a failure is shown through ClippedTraceback, then it reads as a
        traceback whose last line names the error's class and its message
        cut to 200 characters.
        """
        from twisted.python.failure import Failure

        try:
            raise KeyError("k" * 1000)
        except KeyError:
            failure = Failure()
        text = str(ClippedTraceback(failure))
        self.assertTrue(text.startswith("Traceback (most recent call last):\n"))
        self.assertIn("test_text.py", text)
        last = text.splitlines()[-1]
        self.assertTrue(last.startswith("KeyError: "), last)
        self.assertIn("(1002 characters)", last)
        self.assertLess(len(last), 300)
        try:
            raise MalformedMessage("bad")
        except MalformedMessage:
            failure = Failure()
        self.assertIn("novasvc.rpc.errors.MalformedMessage: ", str(ClippedTraceback(failure)))


class ShowValueTests(SynchronousTestCase):
    """
    L{show_value} describes a refused configuration value.
    """

    def test_scalars(self) -> None:
        """
        When a value is a scalar, then it is shown as YAML spells it or as its
        repr, a long string cut to 60 characters.
        """
        self.assertEqual(show_value(None), "null")
        self.assertEqual(show_value(True), "true")
        self.assertEqual(show_value(1.5), "1.5")
        self.assertEqual(show_value("x" * 100), repr("x" * 57 + "..."))

    def test_containers(self) -> None:
        """
        When a value is a list, a mapping or another object, then only its
        kind is shown.
        """
        self.assertEqual(show_value([1]), "a list")
        self.assertEqual(show_value({"a": 1}), "a mapping")
        self.assertEqual(show_value(object()), "a object")
