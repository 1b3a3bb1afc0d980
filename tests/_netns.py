"""
Network namespaces of a test's own, for tests that cut a process off the
network (a true partition: its TCP peers hear nothing, and it hears nothing
from them), with C{ip netns} and veth pairs::

    network = start_network(self, 3)           # removed at cleanup, always
    network.hosts[0]                           # "10.<a>.<b>.10", in network.namespaces[0]
    subprocess.run(network.command(0, "rabbitmqctl", "status"))   # runs inside namespace 0
    network.cut(0)                             # namespace 0 is cut off...
    network.heal(0)                            # ...and joined again

The test's process stays in the root namespace, on a bridge (with the
subnet's C{.1}); each namespace gets one veth pair whose other end is on the
bridge, its own address (C{.10}, C{.11}, ...) and its own loopback. Cutting
a namespace off sets its bridge end down: nothing goes in or out of it,
neither to the other namespaces nor to the test's process, and no error is
reported to anyone (TCP just retransmits).

Names are unique per run (the process id and a random tag), so parallel runs
never collide: namespaces C{novasvc-<pid>-<tag>-<i>}, links C{nvb<tag>} (the
bridge) and C{nvh<tag><i>}, and a random C{10.x.y.0/24} that no address of
the machine is in. L{Network.remove} kills every process still in a
namespace (such as the C{epmd} a RabbitMQ node starts), then deletes the
namespaces and the links; L{start_network} registers it as a cleanup before
anything is made, and at the process's exit too. Namespaces and links left
by a run whose process is gone are removed when the next one starts.

This needs root (C{CAP_NET_ADMIN}) and the C{ip} command: outside CI a
machine without them skips the test; in CI (C{CI=true}) it fails it.
"""

import atexit
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import uuid
from typing import Any, List, Sequence

from twisted.trial.unittest import SkipTest

from tests._services import in_ci, process_alive

__all__ = ["Network", "NetworkError", "start_network", "check_available"]

#: Seconds one C{ip} command may take.
IP_DEADLINE = 20.0

_PREFIX = "novasvc-"
_STALE = re.compile(r"^novasvc-(\d+)-([0-9a-f]{8})-\d+$")


class NetworkError(Exception):
    """
    An C{ip} command failed; the message says which and what it printed.
    """


def _ip(*args: str, check: bool = True) -> str:
    path = shutil.which("ip")
    if path is None:
        raise NetworkError("the ip command (iproute2) is not on PATH")
    try:
        done = subprocess.run([path, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=IP_DEADLINE)
    except subprocess.TimeoutExpired:
        raise NetworkError(f"ip {' '.join(args)} took more than {IP_DEADLINE:g} s") from None
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} exited with {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


def _unavailable(message: str) -> None:
    if in_ci():
        raise AssertionError(message)
    raise SkipTest(message)


def check_available() -> None:
    """
    Check that network namespaces can be made here: make one and delete it.

    @raise SkipTest: when they cannot, outside CI (the reason is the
        message).
    @raise AssertionError: when they cannot, in CI.
    """
    if shutil.which("ip") is None:
        _unavailable("the ip command (iproute2) is not on PATH: cannot make network namespaces")
    if os.geteuid() != 0:
        _unavailable("network namespaces need root (CAP_NET_ADMIN); these tests do not run as root")
    probe = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-probe"
    try:
        _ip("netns", "add", probe)
    except NetworkError as e:
        _unavailable(f"cannot make a network namespace: {e}")
    finally:
        _ip("netns", "delete", probe, check=False)


def _kill_all_in(namespace: str) -> None:
    for pid in _ip("netns", "pids", namespace, check=False).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _remove_stale() -> None:
    """
    Remove the namespaces (and links) of runs whose process is gone.
    """
    for line in _ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        match = _STALE.match(name)
        if match is None or process_alive(int(match.group(1))):
            continue
        _kill_all_in(name)
        _ip("netns", "delete", name, check=False)
        _ip("link", "delete", f"nvb{match.group(2)}", check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    taken = [ipaddress.ip_interface(word).network
             for word in re.findall(r"inet (\S+)", _ip("-o", "-4", "addr", "show"))]
    taken += [ipaddress.ip_network(word, strict=False)
              for word in re.findall(r"^(\d+\.\d+\.\d+\.\d+/\d+)", _ip("-4", "route", "show"), re.M)]
    for _ in range(100):
        subnet = ipaddress.ip_network(f"10.{random.randint(64, 254)}.{random.randint(0, 255)}.0/24")
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise NetworkError("no free 10.x.y.0/24 subnet")


class Network:
    """
    A bridge and C{size} namespaces on it; see the module docstring.

    @ivar namespaces: the namespaces' names.
    @ivar hosts: their addresses (dotted quads), in the same order.
    @ivar gateway: the bridge's address in the root namespace.
    """

    def __init__(self, size: int) -> None:
        tag = uuid.uuid4().hex[:8]
        self._tag = tag
        self._bridge = f"nvb{tag}"
        self._links = [f"nvh{tag}{i}" for i in range(size)]
        self.namespaces: List[str] = [f"{_PREFIX}{os.getpid()}-{tag}-{i}" for i in range(size)]
        self._subnet = _free_subnet()
        self.gateway = str(self._subnet.network_address + 1)
        self.hosts: List[str] = [str(self._subnet.network_address + 10 + i) for i in range(size)]
        self._made = False
        self._removed = False

    def __repr__(self) -> str:
        return f"<Network {self._bridge} {self._subnet} of {len(self.namespaces)} namespaces>"

    def make(self) -> "Network":
        """
        Make the bridge, the namespaces, and a veth pair for each, all up.

        @return: this network.
        @raise NetworkError: when an C{ip} command fails (what was made is
            removed by L{remove}).
        """
        self._made = True
        prefix = self._subnet.prefixlen
        _ip("link", "add", self._bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self._bridge)
        _ip("link", "set", self._bridge, "up")
        for namespace, link, host in zip(self.namespaces, self._links, self.hosts):
            _ip("netns", "add", namespace)
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", link, "master", self._bridge)
            _ip("link", "set", link, "up")
            _ip("-n", namespace, "addr", "add", f"{host}/{prefix}", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        return self

    def command(self, index: int, *argv: str) -> List[str]:
        """
        @return: the argument vector running C{argv} inside namespace
            C{index} (C{ip netns exec <namespace> ...}).
        """
        return [shutil.which("ip") or "ip", "netns", "exec", self.namespaces[index], *argv]

    def cut(self, index: int) -> None:
        """
        Cut namespace C{index} off: its end on the bridge goes down.

        @raise NetworkError: when C{ip} fails.
        """
        _ip("link", "set", self._links[index], "down")

    def heal(self, index: int) -> None:
        """
        Join namespace C{index} to the bridge again.

        @raise NetworkError: when C{ip} fails.
        """
        _ip("link", "set", self._links[index], "up")

    def remove(self) -> None:
        """
        Kill every process left in the namespaces, delete them and the
        links. Safe at any time and more than once; errors are ignored (what
        is not there is not removed).
        """
        if self._removed or not self._made:
            return
        self._removed = True
        for namespace in self.namespaces:
            _kill_all_in(namespace)
            _ip("netns", "delete", namespace, check=False)
        for link in [*self._links, self._bridge]:
            _ip("link", "delete", link, check=False)

    def leftovers(self) -> Sequence[str]:
        """
        @return: the namespaces and links of this network that still exist
            (none after L{remove}).
        """
        names = {line.split()[0] for line in _ip("netns", "list", check=False).splitlines() if line.split()}
        links = _ip("-o", "link", "show", check=False)
        return ([n for n in self.namespaces if n in names]
                + [link for link in [*self._links, self._bridge] if re.search(rf"\b{link}\b", links)])


def start_network(case: Any, size: int) -> Network:
    """
    Make a network of C{size} namespaces for C{case}, removed at its
    cleanup (also when the test or the making fails) and at the process's
    exit.

    @return: the made L{Network}.
    @raise SkipTest: outside CI, when namespaces cannot be made here.
    @raise AssertionError: in CI, when they cannot.
    @raise NetworkError: when making it fails midway.
    """
    check_available()
    _remove_stale()
    network = Network(size)
    atexit.register(network.remove)
    case.addCleanup(network.remove)
    return network.make()
