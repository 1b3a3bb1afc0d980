# -*- test-case-name: tests.test_bench -*-
"""
The driver's side of the benchmark: child processes spoken to over the line
protocol of L{_child}, what the driver reads of a process from C{/proc}
(CPU seconds, RSS), and the broker chores (a private vhost through
C{rabbitmqctl}, the broker's version, deleting what a run declared).

Blocking code (threads for the children's stdout); the driver itself uses no
reactor.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["BenchError", "Child", "cpu_seconds", "rss_mib", "Broker", "local_broker_pid"]

HERE = os.path.dirname(os.path.abspath(__file__))


class BenchError(Exception):
    """
    A child failed, answered with an error, or did not answer in time.
    """


class Child:
    """
    One child process (a server or a client of one system).

    @ivar name: what the child is, for messages (e.g. C{"novasvc server"}).
    @ivar log_path: where its stderr goes.
    """

    def __init__(self, name: str, script: str, settings: Dict[str, Any], log_dir: str,
                 env: Optional[Dict[str, str]] = None) -> None:
        """
        Start C{python bench/<script> SETTINGS_JSON}.

        @param script: the file name in C{bench/}.
        @param settings: passed as the one JSON argument.
        @param log_dir: a directory for the child's stderr log.
        @param env: the environment; the driver's when C{None}.
        """
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name.replace(' ', '-')}-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")
        self._events: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self._stash: List[Dict[str, Any]] = []
        self._ended = False
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, script), json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=HERE, env=env,
        )
        threading.Thread(target=self._read, name=f"{name} stdout", daemon=True).start()

    @property
    def pid(self) -> int:
        """
        The child's process id.
        """
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._events.put(json.loads(line))
            except ValueError:
                self._events.put({"event": "error", "cmd": None, "error": f"not JSON on stdout: {line[:200]!r}"})
        self._events.put(None)

    def send(self, cmd: str, **fields: Any) -> None:
        """
        Write the command C{cmd} with C{fields}.

        @raise BenchError: when the child is gone.
        """
        line = json.dumps(dict(fields, cmd=cmd)) + "\n"
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(line.encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise self._error(f"cannot send {cmd!r}: {e}") from None

    def request(self, cmd: str, timeout: float, **fields: Any) -> Dict[str, Any]:
        """
        Send C{cmd} and wait for its reply.

        @param timeout: B{seconds} to wait.
        @return: the reply event.
        @raise BenchError: on an error reply, the child's exit, or timeout.
        """
        self.send(cmd, **fields)
        return self.wait_event(cmd, timeout)

    def wait_event(self, name: str, timeout: float) -> Dict[str, Any]:
        """
        Wait for the event C{name}; other events that come meanwhile are kept
        for later calls.

        @param timeout: B{seconds} to wait.
        @raise BenchError: on an error event, the child's exit, or timeout.
        """
        for i, event in enumerate(self._stash):
            if event["event"] == name:
                return self._stash.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self._ended:
                why = "exited" if self._ended else f"did not send {name!r} within {timeout:.0f} s"
                raise self._error(why)
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                self._ended = True
                continue
            if event.get("event") == "error":
                raise self._error(f"{event.get('cmd')}: {event.get('error')}")
            if event.get("event") == name:
                return event
            self._stash.append(event)

    def _error(self, why: str) -> BenchError:
        return BenchError(f"{self.name} (pid {self.pid}) {why}\n--- last lines of {self.log_path}:\n"
                          f"{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        """
        @return: the last C{lines} lines of the child's stderr.
        """
        self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self, timeout: float = 30.0) -> Optional[int]:
        """
        Ask the child to exit (C{exit}, then end of stdin), wait up to
        C{timeout} B{seconds}, then kill it.

        @return: its exit status.
        """
        if self.process.poll() is None:
            try:
                self.send("exit")
                assert self.process.stdin is not None
                self.process.stdin.close()
            except (BenchError, OSError):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """
        Kill the child if it still runs.
        """
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self._log.closed:
            self._log.close()


def cpu_seconds(pid: int) -> float:
    """
    @return: the user plus system CPU time used so far by process C{pid}
        (all its threads), in B{seconds}, from C{/proc/<pid>/stat} (or
        psutil off Linux).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_broker_pid(port: int = 5672) -> Optional[int]:
    """
    @param port: the broker's AMQP port.
    @return: the process id of the RabbitMQ on this machine that listens on
        C{port} (its Erlang VM, C{beam.smp}, with C{rabbit} on its command
        line), or C{None} when there is none (a remote broker: its CPU is
        then not measured). Other RabbitMQ nodes on this machine (a fault
        test's own, on other ports) are never taken for it.
    """
    import psutil

    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            name = process.info["name"] or ""
            cmdline = " ".join(process.info["cmdline"] or ())
            if not (name.startswith("beam") and "rabbit" in cmdline):
                continue
            listening = {c.laddr.port for c in process.net_connections("tcp")
                         if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
        if port in listening:
            return int(process.pid)
    return None


def rss_mib(pid: int) -> float:
    """
    @return: the resident set size of process C{pid} in B{MiB}.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except FileNotFoundError:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    return kib / 1024.0


class Broker:
    """
    The RabbitMQ the benchmark runs on.

    @ivar url: the base C{rabbit://} URL given by the user.
    @ivar vhost: the private vhost made by L{make_vhost}, else C{None}.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.vhost: Optional[str] = None

    @property
    def run_url(self) -> str:
        """
        The URL the children use: the private vhost's when there is one.
        """
        if self.vhost is None:
            return self.url
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + quote(self.vhost, safe="")))

    def make_vhost(self, name: str) -> bool:
        """
        Create vhost C{name} with full rights for the URL's user, through
        C{rabbitmqctl} (needs the broker's Erlang cookie, usually root).

        @return: C{True} when it was made; C{False} (nothing changed) when
            C{rabbitmqctl} is missing or refused.
        """
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            return False
        user = unquote(urlsplit(self.url).username or "guest")
        try:
            _ctl(ctl, "add_vhost", name)
        except BenchError:
            return False
        self.vhost = name
        try:
            _ctl(ctl, "set_permissions", "-p", name, user, ".*", ".*", ".*")
        except BenchError:
            self.drop_vhost()
            return False
        return True

    def drop_vhost(self) -> None:
        """
        Delete the private vhost (and so everything declared in it).
        """
        ctl = shutil.which("rabbitmqctl")
        if self.vhost is not None and ctl is not None:
            try:
                _ctl(ctl, "delete_vhost", self.vhost)
            except BenchError as e:
                print(f"warning: could not delete vhost {self.vhost}: {e}", file=sys.stderr)
        self.vhost = None

    def _connect(self) -> Any:
        import pika

        parts = urlsplit(self.run_url)
        return pika.BlockingConnection(pika.ConnectionParameters(
            host=parts.hostname or "localhost", port=parts.port or 5672,
            virtual_host=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
            credentials=pika.PlainCredentials(unquote(parts.username or "guest"), unquote(parts.password or "guest")),
        ))

    def server_version(self) -> str:
        """
        @return: the broker's product and version from the connection's
            server properties, e.g. C{"RabbitMQ 3.10.8"}.
        """
        connection = self._connect()
        try:
            properties = connection._impl.server_properties
        finally:
            connection.close()

        def text(value: Any) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)

        return f"{text(properties.get('product', '?'))} {text(properties.get('version', '?'))}"

    def delete(self, queues: Iterable[str], exchanges: Iterable[str]) -> None:
        """
        Delete C{queues} and C{exchanges} (unconditionally; missing ones are
        skipped). Errors are printed, not raised.
        """
        import pika.exceptions

        try:
            connection = self._connect()
        except Exception as e:
            print(f"warning: cannot connect to clean up: {e}", file=sys.stderr)
            return
        try:
            channel = connection.channel()
            for kind, names in (("queue", queues), ("exchange", exchanges)):
                for name in names:
                    try:
                        if kind == "queue":
                            channel.queue_delete(name)
                        else:
                            channel.exchange_delete(name)
                    except pika.exceptions.ChannelClosedByBroker:
                        channel = connection.channel()
        finally:
            connection.close()


def _ctl(ctl: str, *args: str) -> None:
    try:
        subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        raise BenchError(f"rabbitmqctl {' '.join(args)}: {e}") from None


def child_env(extra_path: Sequence[str] = ()) -> Dict[str, str]:
    """
    @param extra_path: directories to put before C{PYTHONPATH}.
    @return: the driver's environment for the children.
    """
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([*extra_path, *filter(None, [env.get("PYTHONPATH")])])
    return env
