"""
The README's guide "Write your own service in 10 minutes", run as a reader
would: every file it shows is written to a temporary directory outside the
checkout, and every command it shows is run there with the Python
environment running the tests (under tox, novasvc installed from its
wheel), in order, on the local RabbitMQ.

The guide's conventions, which L{parse_guide} reads: a paragraph ending
with C{``path``::} introduces a literal block holding that file; a literal
block whose first line starts with C{$ } holds commands, each followed by
the lines it prints (C{...} stands for anything, C{myhost} for this host's
name) and, after C{# exit N}, the exit status it ends with (default 0). A
C{twistd} command runs in the background until the test ends, and its
printed line is awaited in its log.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional, Tuple

import attrs
from twisted.trial.unittest import SynchronousTestCase

from tests._services import in_ci, require_service

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.rst")
TITLE = "Write your own service in 10 minutes"
#: Seconds one command may take (pip builds the package in an isolated env).
COMMAND_TIMEOUT = 180
#: Seconds twistd may take to print its line.
START_TIMEOUT = 60


@attrs.frozen
class File:
    """
    A file the guide shows: its path in the project and its text.
    """

    path: str
    text: str


@attrs.frozen
class Command:
    """
    A command the guide shows, what it prints and its exit status.
    """

    line: str
    expected: Tuple[str, ...]
    status: int


def _section(readme: str) -> str:
    start = readme.index(TITLE + "\n" + "-" * len(TITLE) + "\n")
    end = re.compile(r"\n\n[^\n]+\n-{3,}\n").search(readme, start + len(TITLE) * 2 + 2)
    return readme[start:end.start() if end else len(readme)]


def _literal_blocks(text: str) -> List[Tuple[str, List[str]]]:
    """
    @return: (the paragraph introducing it, its dedented lines) for each
        literal block of C{text}.
    """
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip():
            intro = lines[i].rstrip()
            j = i + 1
            body: List[str] = []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith("    ")):
                body.append(lines[j][4:])
                j += 1
            while body and not body[-1].strip():
                body.pop()
            while body and not body[0].strip():
                body.pop(0)
            blocks.append((intro, body))
            i = j
        else:
            i += 1
    return blocks


def parse_guide(readme: str) -> Tuple[List[File], List[Command]]:
    """
    @return: the files and the commands of the guide, in order.
    """
    files: List[File] = []
    commands: List[Command] = []
    for intro, body in _literal_blocks(_section(readme)):
        named = re.search(r"``([\w./-]+)``::$", intro)
        if named:
            files.append(File(named.group(1), "\n".join(body) + "\n"))
        elif body and body[0].startswith("$ "):
            current: Optional[List[str]] = None
            for line in body:
                if line.startswith("$ "):
                    if current is not None:
                        commands.append(_command(current))
                    current = [line[2:]]
                elif current is not None:
                    current.append(line)
            if current is not None:
                commands.append(_command(current))
    return files, commands


def _command(lines: List[str]) -> Command:
    line, status = lines[0], 0
    comment = re.search(r"\s+#\s*exit (\d+)\s*$", line)
    if comment:
        line, status = line[:comment.start()], int(comment.group(1))
    return Command(line.strip(), tuple(x.strip() for x in lines[1:] if x.strip()), status)


def _pattern(expected: str) -> "re.Pattern[str]":
    expected = expected.replace("myhost", "\0")
    parts = [re.escape(part).replace("\0", re.escape(socket.gethostname()))
             for part in expected.split("...")]
    return re.compile(".*".join(parts))


class GuideParsingTests(SynchronousTestCase):
    """
    L{parse_guide} finds what the guide asks a reader to write and run.
    """

    def test_guide(self) -> None:
        """
        When the README is parsed, then the guide gives the package, its
        manager, interface, drivers, client, configuration and tests, and
        the commands to install, test, run and call it.
        """
        with open(README, encoding="utf-8") as f:
            files, commands = parse_guide(f.read())
        self.assertEqual([f.path for f in files], [
            "pyproject.toml", "inventory/__init__.py", "inventory/exceptions.py",
            "inventory/interfaces.py", "inventory/drivers.py", "inventory/manager.py",
            "inventory/rpcapi.py", "etc/inventory.yaml", "inventory/tests/__init__.py",
            "inventory/tests/test_drivers.py", "inventory/tests/test_manager.py", "call_it.py"])
        self.assertEqual([c.line.split()[0] for c in commands],
                         ["pip", "python", "twistd", "novasvc-rpc", "novasvc-rpc", "python"])
        self.assertEqual(commands[4].status, 1)
        self.assertIn("--pidfile=", commands[2].line)


class GuideRunTests(SynchronousTestCase):
    """
    The guide, run from a directory outside the checkout.
    """

    def setUp(self) -> None:
        require_service("RabbitMQ", "127.0.0.1", 5672)
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.project = os.path.join(os.path.abspath(self.mktemp()), "inventory-project")
        os.makedirs(self.project)
        bin_dir = os.path.dirname(sys.executable)
        self.env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        for name in ("PYTHONPATH", "NOVASVC_TRANSPORT_URL"):
            self.env.pop(name, None)
        if in_ci():
            # CI installs novasvc as a user would: the guide's commands, run
            # outside the checkout, must not find it in the checkout (the
            # test process itself runs from the checkout, where it would).
            found = subprocess.run([sys.executable, "-c", "import os, novasvc; print(os.path.abspath(novasvc.__file__))"],
                                   cwd=self.project, env=self.env, capture_output=True, text=True,
                                   timeout=COMMAND_TIMEOUT).stdout.strip()
            # (tox's environment may live inside the checkout: .tox/...)
            self.assertFalse(found.startswith(os.path.join(checkout, "novasvc") + os.sep),
                             f"novasvc is imported from the checkout: {found}")
        self.background: List[subprocess.Popen] = []
        self.addCleanup(self._stop_background)

    def _stop_background(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def _uninstall(self) -> None:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "inventory"],
                       env=self.env, cwd=self.project, capture_output=True, timeout=COMMAND_TIMEOUT)

    def run_command(self, command: Command) -> str:
        """
        Run one command in the project directory, check its status and
        printed lines.

        @return: what it printed (stdout and stderr).
        """
        started = time.monotonic()
        result = subprocess.run(["bash", "-c", command.line], cwd=self.project, env=self.env,
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, command.status,
                         f"$ {command.line}\nexited {result.returncode}:\n{output}")
        self.check_output(command, output)
        print(f"{command.line}: {time.monotonic() - started:.1f} s")
        return output

    def check_output(self, command: Command, output: str) -> None:
        for expected in command.expected:
            if expected == "...":
                continue
            self.assertTrue(_pattern(expected).search(output),
                            f"$ {command.line}\ndid not print {expected!r}:\n{output}")

    def start_background(self, command: Command) -> None:
        """
        Start a long-running command (twistd) and wait for its line.
        """
        log_path = os.path.join(self.project, f"background-{len(self.background)}.log")
        log = open(log_path, "w")
        self.addCleanup(log.close)
        process = subprocess.Popen(shlex.split(command.line), cwd=self.project, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.background.append(process)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                output = f.read()
            if all(expected == "..." or _pattern(expected).search(output)
                   for expected in command.expected):
                return
            if process.poll() is not None or time.monotonic() > deadline:
                self.fail(f"$ {command.line}\nexited {process.poll()} or is not ready after "
                          f"{START_TIMEOUT} s:\n{output}")
            time.sleep(0.1)

    def test_guide(self) -> None:
        """
        When the guide's files are written and its commands run, as the
        README says, outside the checkout, then each command exits as shown
        and prints what is shown: the package installs, its trial tests
        pass, twistd serves it, novasvc-rpc and oslo.messaging call it; and
        SIGTERM stops it with status 0.
        """
        with open(README, encoding="utf-8") as f:
            files, commands = parse_guide(f.read())
        for file in files:
            path = os.path.join(self.project, file.path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(file.text)
        self.addCleanup(self._uninstall)
        for command in commands:
            if command.line.startswith("twistd "):
                self.start_background(command)
            else:
                self.run_command(command)
        for process in self.background:
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(30), 0)
