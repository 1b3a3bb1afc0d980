"""
The README's "Testing your service" example, verbatim: README.rst quotes
this file from the class on, and L{ReadmeQuoteTests} checks the quote.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from novasvc.examples.echo import EchoManager
from novasvc.testing import ServiceHarness


class EchoManagerTests(SynchronousTestCase):
    def setUp(self):
        self.harness = ServiceHarness(EchoManager)
        self.successResultOf(self.harness.start())
        self.addCleanup(lambda: self.successResultOf(self.harness.stop()))

    def test_echo(self):
        """When echo is called, then the value comes back."""
        reply = self.successResultOf(self.harness.call("echo", value={"a": 1}))
        self.assertEqual(reply, {"a": 1})

    def test_heartbeat(self):
        """When 30 seconds pass, then the heartbeat task ran and the service is up."""
        self.harness.advance(30)
        self.assertEqual(self.harness.manager.heartbeats, 1)
        self.assertTrue(self.harness.is_up())
        [row] = self.harness.services()
        self.assertEqual(row.binary, "novasvc-echo")
# (end of the README quote)


class ReadmeQuoteTests(SynchronousTestCase):
    """
    The README shows the example above as it is.
    """

    def test_quoted(self) -> None:
        """
        When the README is read, then its "Testing your service" code block
        holds this module's example, line for line.
        """
        here = os.path.dirname(os.path.abspath(__file__))
        with open(__file__.replace(".pyc", ".py"), encoding="utf-8") as f:
            source = f.read()
        start = source.index("from twisted.trial.unittest import SynchronousTestCase\n")
        example = source[start:source.index("# (end of the README quote)")].rstrip()
        with open(os.path.join(os.path.dirname(here), "README.rst"), encoding="utf-8") as f:
            readme = f.read()
        indented = "\n".join(("    " + line) if line else "" for line in example.splitlines())
        self.assertIn(indented, readme)
