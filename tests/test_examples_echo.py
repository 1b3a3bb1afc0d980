"""
Tests for L{novasvc.examples.echo}.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import Config
from novasvc.examples.echo import EchoError, EchoManager
from novasvc.testing import ServiceHarness


class EchoManagerTests(SynchronousTestCase):
    """
    The echo example, called as a remote caller would.
    """

    def setUp(self) -> None:
        config = Config(host="h", periodic_fuzzy_delay=0,
                        allowed_remote_exmods=("novasvc.examples.echo",))
        self.harness = ServiceHarness(EchoManager, config=config)
        self.successResultOf(self.harness.start())

    def test_sleep(self) -> None:
        """
        When C{sleep} is called, then the reply comes after that many seconds
        of the service's clock.
        """
        d = self.harness.call("sleep", seconds=3)
        self.harness.advance(2)
        self.assertNoResult(d)
        self.harness.advance(1)
        self.assertEqual(self.successResultOf(d), 3)

    def test_pid(self) -> None:
        """
        When C{pid} is called, then the reply is the id of the process that
        answered.
        """
        self.assertEqual(self.successResultOf(self.harness.call("pid")), os.getpid())

    def test_fail(self) -> None:
        """
        When C{fail} is called by a caller allowing the module, then it gets
        L{EchoError} back with its code.
        """
        failure = self.failureResultOf(self.harness.call("fail", message="no", code=7), EchoError)
        self.assertEqual(failure.value.code, 7)
        self.assertTrue(str(failure.value).startswith("no\n"))  # then the remote traceback, as oslo
