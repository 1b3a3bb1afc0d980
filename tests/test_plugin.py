"""
Tests for the C{twistd novasvc} plugin (C{twisted/plugins/novasvc_plugin.py}):
found by Twisted's plugin search, and by the C{twistd} of the installed
environment (tox runs these after a regular and after an editable install).
"""

import os
import subprocess
import sys
from typing import List

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

#: Seconds a twistd subprocess may take before the test fails.
_TIMEOUT = 60


def _maker() -> IServiceMaker:
    makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "novasvc"]
    if len(makers) != 1:
        raise AssertionError(f"expected one 'novasvc' IServiceMaker plugin, found {len(makers)}")
    return makers[0]


def _twistd() -> List[str]:
    """
    @return: the command running the C{twistd} of this interpreter's
        environment: the C{twistd} script beside C{sys.executable}, else
        C{python -m twisted.scripts.twistd}.
    """
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "twisted.scripts.twistd"]


class PluginTests(SynchronousTestCase):
    """
    The plugin, seen from this process.
    """

    def test_found(self) -> None:
        """
        When plugins are searched, then exactly one L{IServiceMaker} has the
        tapname C{novasvc}, and it provides the interface.
        """
        maker = _maker()
        self.assertTrue(verifyObject(IServiceMaker, maker))
        self.assertTrue(maker.description)

    def test_options(self) -> None:
        """
        When the maker's options are built, then they are L{usage.Options}
        from L{novasvc.process.tap}.
        """
        from novasvc.process import tap

        options = _maker().options()
        self.assertIsInstance(options, usage.Options)
        self.assertIsInstance(options, tap.Options)


class InstalledPluginTests(SynchronousTestCase):
    """
    The plugin, seen by the installed C{twistd} from outside the checkout.
    """

    def run_twistd(self, *args: str) -> subprocess.CompletedProcess:
        """
        Run twistd in an empty directory without C{PYTHONPATH}, so only the
        installed package can be found.
        """
        cwd = self.mktemp()
        os.mkdir(cwd)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run(_twistd() + list(args), cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=_TIMEOUT)

    def test_listed(self) -> None:
        """
        When C{twistd --help} runs from the installed environment, then
        C{novasvc} is among its commands.
        """
        result = self.run_twistd("--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        commands = result.stdout.split("Commands:", 1)[-1]
        self.assertIn("\n    novasvc ", commands, result.stdout)

    def test_config_error(self) -> None:
        """
        When C{twistd novasvc} is given a missing config file, then it exits
        with status 1 and a message naming the file, without a traceback.
        """
        missing = os.path.abspath(self.mktemp())
        result = self.run_twistd("-n", "novasvc", "--config", missing)
        self.assertEqual(result.returncode, 1, result.stderr)
        output = result.stdout + result.stderr
        self.assertIn(f": {missing}: cannot read the configuration file: No such file", output)
        self.assertNotIn("Traceback", output)
