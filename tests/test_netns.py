"""
The network namespaces of a test's own (L{tests._netns}), which the
partition tests rely on: they connect, they are cut off and joined again,
and nothing of them is left behind, also when making them fails or a run
died before removing them.
"""

import os
import socket
import subprocess
import sys
import uuid

from twisted.trial import unittest

from tests import _netns

_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as e:
    print(e)
    sys.exit(1)
"""


class NetworkTests(unittest.TestCase):
    """
    A network of two namespaces on a bridge.
    """

    def setUp(self) -> None:
        self.network = _netns.start_network(self, 2)
        self.listener = socket.socket()
        self.listener.bind((self.network.gateway, 0))
        self.listener.listen(8)
        self.addCleanup(self.listener.close)

    def connects(self, index: int, timeout: float = 5.0) -> bool:
        """
        @return: whether a process in namespace C{index} connects to the
            listener in the root namespace within C{timeout} seconds.
        """
        argv = self.network.command(index, sys.executable, "-c", _CONNECT, self.network.gateway,
                                    str(self.listener.getsockname()[1]), str(timeout))
        return subprocess.run(argv, capture_output=True, timeout=timeout + 20).returncode == 0

    def test_cut_and_heal(self) -> None:
        """
        When a namespace is cut off, then its connections to the root
        namespace fail while the other namespace's go through;
        when it is joined again, then they go through again.
        """
        self.assertTrue(self.connects(0))
        self.network.cut(0)
        self.assertFalse(self.connects(0, timeout=1.0))
        self.assertTrue(self.connects(1))
        self.network.heal(0)
        self.assertTrue(self.connects(0))

    def test_remove(self) -> None:
        """
        When the network is removed, then no namespace, link or process in
        a namespace of it is left, and removing it again does nothing.
        """
        process = subprocess.Popen(self.network.command(0, sys.executable, "-c", "import time; time.sleep(300)"))
        self.addCleanup(process.wait)
        self.network.remove()
        self.assertEqual(process.wait(timeout=20), -9)
        self.assertEqual(list(self.network.leftovers()), [])
        self.network.remove()


class MakingTests(unittest.TestCase):
    """
    Failures while making a network, and what earlier runs left.
    """

    def setUp(self) -> None:
        _netns.check_available()

    def test_failure_midway(self) -> None:
        """
        When making the network fails midway (a namespace of that name
        exists), then L{NetworkError} says which command failed, and
        removing the network leaves nothing of it.
        """
        network = _netns.Network(2)
        self.addCleanup(network.remove)
        subprocess.run(["ip", "netns", "add", network.namespaces[1]], check=True)
        error = self.assertRaises(_netns.NetworkError, network.make)
        self.assertIn(f"ip netns add {network.namespaces[1]}", str(error))
        network.remove()
        self.assertEqual(list(network.leftovers()), [])

    def test_stale(self) -> None:
        """
        When a namespace of a run whose process is gone is left, then the
        next network's making removes it, and leaves a live run's alone.
        """
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        tag = uuid.uuid4().hex[:8]
        stale, live = f"novasvc-{gone.pid}-{tag}-0", f"novasvc-{os.getpid()}-{tag}-9"
        for name in (stale, live):
            subprocess.run(["ip", "netns", "add", name], check=True)
            self.addCleanup(subprocess.run, ["ip", "netns", "delete", name], capture_output=True)
        _netns.start_network(self, 1)
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        self.assertNotIn(stale, names)
        self.assertIn(live, names)
