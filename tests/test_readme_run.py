"""
The README's instructions for running your own package, as processes: a
package in the working directory is found by C{twistd novasvc} without
being installed; C{--pidfile=} lets two services run from one directory;
C{trial} runs a package's tests with C{PYTHONPATH=.}; the checkout's
C{bench/} scripts run from the checkout with the virtualenv's Python.
"""

import os
import subprocess
import sys
import textwrap
import time
from typing import List

from twisted.trial.unittest import SynchronousTestCase

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Seconds a twistd process may take to be ready.
READY_TIMEOUT = 60

_MANAGER = '''
from novasvc import Manager


class TallyManager(Manager):
    topic = "tally"

    def add(self, ctxt, a, b):
        return a + b
'''

_TEST = '''
from twisted.trial.unittest import SynchronousTestCase

from novasvc.testing import ServiceHarness
from tally.manager import TallyManager


class TallyTests(SynchronousTestCase):
    def test_add(self):
        """When add is called, then the sum comes back."""
        harness = ServiceHarness(TallyManager)
        self.successResultOf(harness.start())
        self.assertEqual(self.successResultOf(harness.call("add", a=1, b=2)), 3)
        self.successResultOf(harness.stop())
'''


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


class RunYourPackageTests(SynchronousTestCase):
    """
    A package that is not installed, in the directory commands run from.
    """

    def setUp(self) -> None:
        self.project = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.project, "tally", "tests"))
        for path, text in (("tally/__init__.py", ""), ("tally/manager.py", _MANAGER),
                           ("tally/tests/__init__.py", ""), ("tally/tests/test_tally.py", _TEST)):
            with open(os.path.join(self.project, path), "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(text))
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("PYTHONPATH", "NOVASVC_TRANSPORT_URL")}
        self.processes: List[subprocess.Popen] = []
        self.addCleanup(self._reap)

    def _reap(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def start_twistd(self, name: str) -> str:
        """
        Start C{twistd -n --pidfile= novasvc --manager=tally.manager.TallyManager}
        in the project directory, on the in-memory broker and an SQLite
        file of its own, and wait until it is ready.

        @return: its output.
        """
        log_path = os.path.join(self.project, f"{name}.log")
        log = open(log_path, "wb")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [_bin("twistd"), "-n", "--pidfile=", "novasvc", "--manager=tally.manager.TallyManager",
             "--transport-url=memory://", f"--database-connection=sqlite:///{name}.sqlite",
             f"--host={name}"],
            cwd=self.project, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            with open(log_path, "rb") as f:
                output = f.read().decode("utf-8", "replace")
            if "is ready" in output:
                return output
            if process.poll() is not None or time.monotonic() > deadline:
                self.fail(f"twistd exited {process.poll()} or was not ready:\n{output}")
            time.sleep(0.1)

    def test_twistd_finds_package_in_working_directory(self) -> None:
        """
        When twistd novasvc is run from the directory holding a package that
        is not installed, then it imports the manager from there; and with
        --pidfile= a second service starts from the same directory.
        """
        self.start_twistd("one")
        self.start_twistd("two")
        for process in self.processes:
            process.terminate()
            self.assertEqual(process.wait(30), 0)

    def test_trial_with_pythonpath(self) -> None:
        """
        When trial is run on the package's tests with PYTHONPATH=., then they
        are found and pass.
        """
        result = subprocess.run([_bin("trial"), "tally"], cwd=self.project,
                                env={**self.env, "PYTHONPATH": "."}, capture_output=True,
                                text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("PASSED (successes=1)", result.stdout)


class BenchFromCheckoutTests(SynchronousTestCase):
    """
    The checkout's benchmarks run with the virtualenv's Python.
    """

    def test_help(self) -> None:
        """
        When a bench script is run from the checkout, then it starts (its
        --help exits 0).
        """
        for script in ("run.py", "volume_calls.py"):
            result = subprocess.run([sys.executable, os.path.join("bench", script), "--help"],
                                    cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
