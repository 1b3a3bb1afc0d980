"""
A RabbitMQ node of a test's own, for tests that stop, restart or reconfigure
the broker: it never touches the shared node (C{rabbit@localhost} on 5672).

    node = yield start_node(self)                # stopped at cleanup, always
    transport = AMQPTransport(TransportURL.parse(node.url), ...)
    yield node.stop_app()                        # the broker goes away...
    yield node.start_app()                       # ...and comes back, empty

Each node gets its own name (C{novasvc-test-<pid>-<hex>@localhost}), free
ports (AMQP, Erlang distribution, and a range for its C{rabbitmqctl}), and a
temporary directory (database, logs, PID file, configuration, enabled
plugins, environment file) owned by the C{rabbitmq} user when the tests run
as root, since the packaged C{rabbitmq-server} and C{rabbitmqctl} then run
as that user. Extra configuration goes in before L{RabbitMQNode.start}:
lines of C{rabbitmq.conf} (L{RabbitMQNode.add_config}), files such as
certificates in the node's directory (L{RabbitMQNode.write_file}), ports
from L{free_ports} for extra listeners, plugins to enable, environment
variables::

    node = RabbitMQNode(plugins=["rabbitmq_auth_mechanism_ssl"])
    tls_port, = free_ports(1)
    node.add_config(f"listeners.ssl.default = 127.0.0.1:{tls_port}")
    node.add_config(f"ssl_options.certfile = {node.write_file('server.pem', pem)}")
    case.addCleanup(node.stop)
    yield node.start()

A node can also run in a network namespace of the test's own
(L{tests._netns}), on that namespace's address, so that a test can cut it
off the network: C{RabbitMQNode(host=network.hosts[0],
namespace=network.namespaces[0])}.

Outside CI a machine without RabbitMQ's scripts (or whose user may not run
them) skips the test; in CI (C{CI=true}) it fails it, as L{tests._services}
does for a missing service. Every wait has a deadline; nothing sleeps.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from twisted.internet import defer, reactor as global_reactor, utils
from twisted.trial.unittest import SkipTest

from tests._services import in_ci, poll, process_alive

__all__ = ["RabbitMQNode", "free_ports", "start_node", "NodeError"]

#: Seconds a node may take to accept AMQP connections after it is started
#: (a first boot makes its database; a loaded machine is slow).
START_DEADLINE = 90.0
#: Seconds C{rabbitmqctl stop_app}, C{start_app} or C{stop} may take.
COMMAND_DEADLINE = 60.0
#: Seconds the node's process may take to exit after C{rabbitmqctl stop}
#: before it is killed.
EXIT_DEADLINE = 30.0

#: Port ranges of the shared node and its CLI tools, never handed out.
_RESERVED = [(5672, 5672), (25672, 25682), (35672, 35682)]
_USER = "rabbitmq"


class NodeError(Exception):
    """
    The node could not be started, stopped or commanded; the message ends
    with the tail of its log.
    """


def free_ports(count: int, consecutive: bool = False) -> List[int]:
    """
    Ports on 127.0.0.1 that nothing listens on now (the shared node's ranges
    excluded).

    @param count: how many.
    @param consecutive: whether they must follow each other (a
        C{RABBITMQ_CTL_DIST_PORT_MIN}..C{MAX} range).
    @return: the port numbers.
    @raise NodeError: when none can be found after many tries.
    """
    for _ in range(200):
        first = _bindable(0)
        if first is None:
            continue
        ports = [first]
        for _ in range(count - 1):
            port = _bindable(ports[-1] + 1 if consecutive else 0)
            if port is None or port in ports:
                break
            ports.append(port)
        if len(ports) == count and not any(low <= p <= high for p in ports for low, high in _RESERVED):
            return ports
    raise NodeError(f"cannot find {count} free ports")


def _bindable(port: int) -> Optional[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
        return s.getsockname()[1]


def _unavailable(message: str) -> None:
    if in_ci():
        raise AssertionError(message)
    raise SkipTest(message)


def check_available() -> None:
    """
    Check that this machine can run a node of its own.

    @raise SkipTest: when it cannot, outside CI.
    @raise AssertionError: when it cannot, in CI.
    """
    for script in ("rabbitmq-server", "rabbitmqctl"):
        if shutil.which(script) is None:
            _unavailable(f"{script} is not on PATH: cannot start a RabbitMQ node for this test")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_USER)
        except KeyError:
            _unavailable(f"running as root without a {_USER!r} user to run a RabbitMQ node as")


class RabbitMQNode:
    """
    One RabbitMQ node: see the module docstring.

    @ivar name: the node name, C{<name>@localhost} (C{<name>@<host>} in a
        network namespace).
    @ivar host: the address it listens on, C{127.0.0.1} by default.
    @ivar namespace: the network namespace it runs in, or C{None}.
    @ivar port: its AMQP port on C{host}.
    @ivar dist_port: its Erlang distribution port.
    @ivar ctl_ports: the C{(min, max)} distribution ports of its
        C{rabbitmqctl}.
    @ivar directory: its temporary directory.
    @ivar url: C{rabbit://guest:guest@<host>:<port>/}.
    """

    def __init__(self, *, name: Optional[str] = None, config: Sequence[str] = (), plugins: Sequence[str] = (),
                 environment: Optional[Mapping[str, str]] = None, reactor: Any = None,
                 host: str = "127.0.0.1", namespace: Optional[str] = None) -> None:
        """
        @param name: the part before C{@localhost}; unique by default.
        @param host: the IPv4 address the node listens on (AMQP, Erlang
            distribution, its C{epmd}).
        @param namespace: a network namespace (L{tests._netns}) to run the
            node and its C{rabbitmqctl} in (C{ip netns exec}); the node is
            then C{<name>@<host>}, a long name, and starts the namespace's
            own C{epmd} on C{host}. C{host} must be the namespace's address.
        @param config: lines of C{rabbitmq.conf} (new-style), e.g.
            C{"listeners.ssl.default = 127.0.0.1:5671"}.
        @param plugins: plugins to enable (none by default: a faster boot).
        @param environment: more environment variables for the node and its
            C{rabbitmqctl} (they win over the fixture's).
        @param reactor: provides C{IReactorProcess} and C{IReactorTime}; the
            global reactor when C{None}.
        @raise NodeError: when no free ports are found.
        """
        self.host = host
        self.namespace = namespace
        self.name = (f"{name or f'novasvc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}'}"
                     f"@{host if namespace else 'localhost'}")
        if self.name == "rabbit@localhost":
            raise ValueError("rabbit@localhost is the shared node")
        self.port, self.dist_port = free_ports(2)
        ctl = free_ports(4, consecutive=True)
        self.ctl_ports: Tuple[int, int] = (ctl[0], ctl[-1])
        self.url = f"rabbit://guest:guest@{host}:{self.port}/"
        self._reactor = reactor or global_reactor
        self._config = list(config)
        self._plugins = list(plugins)
        self._extra = dict(environment or {})
        self._owner = self._rabbitmq_user()
        self.directory = tempfile.mkdtemp(prefix="novasvc-rabbitmq-")
        self._chown(self.directory)
        for sub in ("mnesia", "log"):
            self._chown(os.path.join(self.directory, sub), make=True)
        self._started = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"<RabbitMQNode {self.name} on {self.host}:{self.port}>"

    # -- preparing ----------------------------------------------------------

    def path(self, name: str) -> str:
        """
        @return: the path of C{name} in the node's directory.
        """
        return os.path.join(self.directory, name)

    def write_file(self, name: str, data: bytes, mode: int = 0o600) -> str:
        """
        Write a file the node can read (a certificate, a definitions file).

        @return: its path.
        """
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        self._chown(path)
        return path

    def add_config(self, line: str) -> None:
        """
        Add a line to C{rabbitmq.conf}; only before L{start}.
        """
        if self._started:
            raise RuntimeError("the node is started: its configuration is read at start only")
        self._config.append(line)

    def environment(self) -> Dict[str, str]:
        """
        @return: the environment C{rabbitmq-server} and C{rabbitmqctl} run
            with for this node: this process's, without its C{RABBITMQ_*}
            variables, plus the node's.
        """
        env = {key: value for key, value in os.environ.items() if not key.startswith("RABBITMQ_")}
        env.update(
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CTL_DIST_PORT_MIN=str(self.ctl_ports[0]),
            RABBITMQ_CTL_DIST_PORT_MAX=str(self.ctl_ports[1]),
            RABBITMQ_MNESIA_BASE=self.path("mnesia"),
            RABBITMQ_LOG_BASE=self.path("log"),
            RABBITMQ_PID_FILE=self.path("rabbitmq.pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=self.path("enabled_plugins"),
            RABBITMQ_CONFIG_FILE=self.path("rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=self.path("rabbitmq-env.conf"),
        )
        if self.namespace:
            env["RABBITMQ_USE_LONGNAME"] = "true"
        env.update(self._extra)
        return env

    # -- running ------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write the configuration, run C{rabbitmq-server -detached} and wait
        (at most L{START_DEADLINE} seconds) until the node accepts AMQP
        connections.

        @return: a C{Deferred} firing with this node.
        @raise NodeError: (as the failure) when it does not come up.
        """
        self._started = True
        config = list(self._config)
        if self.host != "127.0.0.1":
            # guest may log in from elsewhere than loopback: the test's
            # processes reach a node in a namespace over the bridge.
            config.insert(0, "loopback_users = none")
        self.write_file("rabbitmq.conf", "".join(f"{line}\n" for line in config).encode(), 0o644)
        self.write_file("enabled_plugins", f"[{','.join(self._plugins)}].\n".encode(), 0o644)
        self.write_file("rabbitmq-env.conf", f'ERL_EPMD_ADDRESS={self.host}\n'
                        f'export ERL_FLAGS="-kernel inet_dist_use_interface {{{self.host.replace(".", ",")}}}"\n'
                        .encode(), 0o644)
        out, err, code = yield self._run("rabbitmq-server", "-detached")
        if code != 0:
            raise NodeError(self._explain(f"rabbitmq-server -detached exited with {code}: {(err or out).strip()}"))
        yield self._wait_until_up("the node started")
        return self

    def rabbitmqctl(self, *args: str) -> defer.Deferred:
        """
        Run C{rabbitmqctl -n <node> ARGS} for this node without blocking the
        reactor.

        @return: a C{Deferred} firing with C{(stdout, stderr, exit code)}.
        """
        return self._run("rabbitmqctl", "-n", self.name, *args)

    @defer.inlineCallbacks
    def stop_app(self) -> Any:
        """
        Stop the broker application (clients are disconnected; transient
        queues, exchanges and their messages are gone), keeping the node.

        @raise NodeError: (as the failure) when C{rabbitmqctl} fails.
        """
        yield self._command("stop_app")

    @defer.inlineCallbacks
    def start_app(self) -> Any:
        """
        Start the broker application again and wait until it accepts AMQP
        connections.

        @raise NodeError: (as the failure) when it does not come back.
        """
        yield self._command("start_app")
        yield self._wait_until_up("the application started again")

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """
        Stop the node and remove its directory. Safe to call at any time and
        more than once (cleanups call it even when the test failed): a node
        that does not exit within L{EXIT_DEADLINE} seconds is killed by its
        PID.

        @return: a C{Deferred} firing with C{None}.
        """
        if self._stopped:
            return
        self._stopped = True
        try:
            pid = self._pid()
            if pid is not None and process_alive(pid):
                # A node a test paused (SIGSTOP) must run to stop.
                os.kill(pid, signal.SIGCONT)
            if self._started:
                stopping = self.rabbitmqctl("stop")
                stopping.addTimeout(COMMAND_DEADLINE, self._reactor)
                yield stopping.addErrback(lambda _: None)
            if pid is not None:
                try:
                    yield poll(lambda: not process_alive(pid), f"{self.name} (pid {pid}) exited", EXIT_DEADLINE, 0.1)
                except AssertionError:
                    os.kill(pid, signal.SIGKILL)
                    yield poll(lambda: not process_alive(pid), f"{self.name} (pid {pid}) killed", EXIT_DEADLINE, 0.1)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def stop_now(self) -> None:
        """
        Stop the node without the reactor (at the process's exit, when it is
        gone): C{rabbitmqctl stop}, waited for at most L{EXIT_DEADLINE}
        seconds, then C{SIGKILL}; and remove its directory.
        """
        if self._stopped:
            return
        self._stopped = True
        pid = self._pid()
        try:
            if self.alive():
                os.kill(pid, signal.SIGCONT)  # type: ignore[arg-type]
                subprocess.run(self._argv(shutil.which("rabbitmqctl") or "rabbitmqctl", "-n", self.name, "stop"),
                               env=self.environment(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=EXIT_DEADLINE)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if pid is not None and self.alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.directory, ignore_errors=True)

    def alive(self) -> bool:
        """
        @return: whether the node's Erlang VM runs (stopped or not).
        """
        pid = self._pid()
        return pid is not None and process_alive(pid)

    def accepts(self) -> bool:
        """
        @return: whether its AMQP port accepts connections now.
        """
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def signal(self, number: int) -> None:
        """
        Send signal C{number} to the node's Erlang VM: C{SIGKILL} kills it
        at once, C{SIGSTOP} hangs it (TCP connections stay open, nothing
        answers) until C{SIGCONT}.

        @raise NodeError: when the node has no process.
        """
        pid = self._pid()
        if pid is None or not process_alive(pid):
            raise NodeError(f"{self.name} has no process to signal")
        os.kill(pid, number)

    def log_tail(self, lines: int = 20) -> str:
        """
        @return: the last C{lines} lines of the node's log, or C{""}.
        """
        path = self.path(os.path.join("log", f"{self.name}.log"))
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- helpers ----------------------------------------------------------

    def _run(self, script: str, *args: str) -> defer.Deferred:
        path = shutil.which(script)
        if path is None:
            return defer.fail(NodeError(f"{script} is not on PATH"))
        argv = self._argv(path, *args)
        d = utils.getProcessOutputAndValue(argv[0], argv[1:], env=self.environment(), reactor=self._reactor)
        return d.addErrback(lambda f: (f.value[0], f.value[1], f.value[2]) if isinstance(f.value, tuple)
                            else f)

    def _argv(self, path: str, *args: str) -> List[str]:
        if self.namespace is None:
            return [path, *args]
        return [shutil.which("ip") or "ip", "netns", "exec", self.namespace, path, *args]

    @defer.inlineCallbacks
    def _command(self, command: str) -> Any:
        d = self.rabbitmqctl(command)
        d.addTimeout(COMMAND_DEADLINE, self._reactor)
        out, err, code = yield d
        if code != 0:
            raise NodeError(self._explain(f"rabbitmqctl {command} exited with {code}: {(err or out).strip()}"))

    def _wait_until_up(self, what: str) -> defer.Deferred:
        def up() -> bool:
            pid = self._pid()
            if pid is not None and not process_alive(pid):
                raise NodeError(self._explain(f"{self.name} exited while starting"))
            return self.accepts()

        def late(failure: Any) -> Any:
            if failure.check(AssertionError):
                raise NodeError(self._explain(f"{self.name}: {failure.getErrorMessage()}"))
            return failure

        return poll(up, f"{what} (port {self.port})", START_DEADLINE, 0.1).addErrback(late)

    def _pid(self) -> Optional[int]:
        try:
            with open(self.path("rabbitmq.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _explain(self, message: str) -> str:
        tail = self.log_tail()
        return f"{message}\n--- {self.name} log (last lines) ---\n{tail}" if tail else message

    @staticmethod
    def _rabbitmq_user() -> Optional[Tuple[int, int]]:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(_USER)
        except KeyError:
            return None
        return entry.pw_uid, entry.pw_gid

    def _chown(self, path: str, make: bool = False) -> None:
        if make:
            os.makedirs(path, exist_ok=True)
        if self._owner is not None:
            os.chown(path, *self._owner)


def start_node(case: Any, **options: Any) -> defer.Deferred:
    """
    Start a node for C{case}, stopped at its cleanup (also when the test or
    the start fails).

    @param options: for L{RabbitMQNode}.
    @return: a C{Deferred} firing with the started L{RabbitMQNode}.
    @raise SkipTest: outside CI, when no node can be run here.
    @raise AssertionError: in CI, when no node can be run here.
    """
    check_available()
    node = RabbitMQNode(**options)
    case.addCleanup(node.stop)
    return node.start()
