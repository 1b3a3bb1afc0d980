"""
Tests for L{novasvc.process._argv}: the options both twistd plugins share.
"""

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from novasvc.process._argv import ArgvOptions, count


class _Options(ArgvOptions):
    optParameters = [["workers", None, None, "How many.", count("workers")]]


class ArgvOptionsTests(SynchronousTestCase):
    """
    Tests for L{ArgvOptions}.
    """

    def test_keeps_argv(self) -> None:
        """
        When options are parsed, then C{argv} holds the arguments given,
        to pass them again to the workers.
        """
        options = _Options()
        options.parseOptions(["--workers", "3"])
        self.assertEqual((options.argv, options["workers"]), (["--workers", "3"], 3))

    def test_count_refuses(self) -> None:
        """
        When an option parsed by L{count} is not an integer >= 1, then
        parsing fails with a message naming the option and the value.
        """
        for text in ["0", "two"]:
            error = self.assertRaises(usage.UsageError, _Options().parseOptions, ["--workers", text])
            self.assertIn(f"--workers: expected an integer >= 1, got {text!r}", str(error))
