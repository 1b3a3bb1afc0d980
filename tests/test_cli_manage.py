"""
Tests for L{novasvc.cli.manage}, the C{novasvc-manage} console script: each
command through L{main} against a seeded SQLite file (and PostgreSQL),
one through C{python -m}, and what the README says about it.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from typing import List, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from novasvc.cli import manage
from novasvc.db import migration, schema
from tests import test_db_store as _store_tests
from tests._manage import SEEDED_TABLE, _ManageTestCase, _seed, _SQLiteSeeded
from tests._services import require_service

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.rst")


class ConfigurationTests(_ManageTestCase):
    """
    C{--config} and C{--database-connection}, read as C{twistd novasvc}
    reads them, and usage errors.
    """

    def setUp(self) -> None:
        self.url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"

    def test_option_beats_file(self) -> None:
        """
        When both the file and C{--database-connection} name a database,
        then the option wins.
        """
        config = self.config_for("sqlite:///" + os.path.abspath(self.mktemp()) + ".other")
        self.ok("-c", config, "--database-connection", self.url, "db", "sync")
        self.assertEqual(migration.current(self.url), migration.HEAD_REVISION)

    def test_environment_in_file(self) -> None:
        """
        When the file refers to an environment variable, then it is
        substituted, as for twistd.
        """
        config = self.write_config("database:\n  connection: ${DB_URL}\n")
        self.ok("-c", config, "db", "sync", environ={"DB_URL": self.url})
        self.assertEqual(migration.current(self.url), migration.HEAD_REVISION)

    def test_manager_sections_not_validated(self) -> None:
        """
        When the file has a manager's section, then it is accepted unread.
        """
        config = self.config_for(self.url, "volume_manager: a.B\nvolume:\n  anything: 1\n")
        self.ok("-c", config, "db", "sync")

    def test_bad_config(self) -> None:
        """
        When the file is missing or has a bad value, then the tool exits 64
        with the loader's one-line message.
        """
        missing = os.path.abspath(self.mktemp())
        self.assertEqual(self.failed(64, "-c", missing, "db", "version"),
                         f"novasvc-manage: error: {missing}: cannot read the configuration "
                         "file: No such file or directory")
        bad = self.write_config("database:\n  auto_sync: maybe\n")
        self.assertIn("database.auto_sync: expected true or false",
                      self.failed(64, "-c", bad, "db", "version"))

    def test_bad_url_hides_password(self) -> None:
        """
        When the URL names a database without its driver, then the tool
        exits 64 and the message hides the password.
        """
        error = self.failed(64, "--database-connection", "nosuchdb://u:s3cret@h/db", "db", "sync")
        self.assertNotIn("s3cret", error)

    def test_usage_errors(self) -> None:
        """
        When the arguments are wrong, then the tool exits 64 (not
        argparse's 2) and prints the usage.
        """
        for argv in ([], ["db"], ["db", "upgrade"], ["service", "disable", "h"],
                     ["service", "list", "--bogus"], ["token", "new"],
                     ["token", "new", "--role", "root"]):
            code, out, err = self.run_manage(*argv)
            self.assertEqual(code, 64, (argv, err))
            self.assertIn("usage: novasvc-manage", err)

    def test_help(self) -> None:
        """
        When C{--help} is given, then the tool exits 0.
        """
        self.assertEqual(self.run_manage("--help")[0], 0)


class PostgreSQLTests(_ManageTestCase):
    """
    The service commands on PostgreSQL, in a database of the test's own.
    """

    def setUp(self) -> None:
        require_service("PostgreSQL", "127.0.0.1", 5432)
        name = f"novasvc_test_{uuid.uuid4().hex}"
        server = _store_tests.PG_SERVER
        _store_tests._admin(server, f'CREATE DATABASE "{name}"')
        self.addCleanup(_store_tests._admin, server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.url = server + name
        _seed(self.url)

    def test_list_disable_delete(self) -> None:
        """
        When the services are listed, one disabled and one deleted, then
        PostgreSQL gives the same table and rows as SQLite.
        """
        self.assertEqual(self.ok("--database-connection", self.url, "service", "list"),
                         SEEDED_TABLE)
        self.ok("--database-connection", self.url, "service", "disable", "compute-2",
                "novasvc-volume", "--reason", "disk")
        self.ok("--database-connection", self.url, "service", "delete", "compute-3",
                "novasvc-echo")
        listed = json.loads(self.ok("--database-connection", self.url, "service", "list",
                                    "--json"))
        self.assertEqual([(s["id"], s["status"], s["disabled_reason"]) for s in listed],
                         [(1, "enabled", None), (2, "disabled", "disk"),
                          (3, "disabled", "kernel upgrade")])


class ConsoleScriptTests(_SQLiteSeeded):
    """
    The real program: C{python -m novasvc.cli.manage}, and the console
    script entry point.
    """

    def test_python_m(self) -> None:
        """
        When the module runs as a program, then C{service list --json}
        prints the services and exits 0, and a missing service exits 1.
        """
        env = {**os.environ, "PYTHONPATH": ROOT}
        done = subprocess.run([sys.executable, "-m", "novasvc.cli.manage", "--config", self.config,
                               "service", "list", "--json"], capture_output=True, text=True,
                              cwd=ROOT, env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([s["host"] for s in json.loads(done.stdout)],
                         ["compute-1", "compute-2", "compute-1", "compute-3"])
        done = subprocess.run([sys.executable, "-m", "novasvc.cli.manage", "--config", self.config,
                               "service", "enable", "nowhere", "novasvc-x"],
                              capture_output=True, text=True, cwd=ROOT, env=env)
        self.assertEqual((done.returncode, done.stdout), (1, ""))
        self.assertEqual(done.stderr, "novasvc-manage: error: no live service with host "
                                      "'nowhere' and binary 'novasvc-x'\n")

    def test_entry_point(self) -> None:
        """
        When setup.py is read, then C{novasvc-manage} is a console script
        calling L{manage.main}, whose return value is the exit status.
        """
        with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
            self.assertIn('"novasvc-manage = novasvc.cli.manage:main"', f.read())


def _readme_section() -> str:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start = text.index("Operator tools: novasvc-manage\n")
    end = re.search(r"\n\n[^\n]+\n-{4,}\n", text[start + 40:])
    return text[start:start + 40 + end.start()] if end else text[start:]


def _readme_examples() -> List[Tuple[List[str], str]]:
    """
    @return: each C{$ novasvc-manage ...} line of the README's section, as
        arguments, with the lines of the literal block shown after it (up
        to the next command or the end of the block).
    """
    examples: List[Tuple[List[str], List[str]]] = []
    current: Optional[List[str]] = None
    for line in _readme_section().splitlines():
        if line.startswith("    $ novasvc-manage "):
            current = []
            examples.append((shlex.split(line[len("    $ novasvc-manage "):]), current))
        elif current is not None and (line.startswith("    ") or not line.strip()):
            current.append(line[4:])
        else:
            current = None
    return [(argv, "\n".join(shown).strip("\n") + "\n") for argv, shown in examples]


class ReadmeTests(_SQLiteSeeded):
    """
    The README's section on C{novasvc-manage}: its commands run as shown.
    """

    def test_commands_parse(self) -> None:
        """
        When each example command line of the README is parsed, then the
        parser accepts it, and every command has an example.
        """
        seen = set()
        for argv, _ in _readme_examples():
            args = manage.parse_arguments(argv)
            seen.add((args.group, getattr(args, "command", None)))
        self.assertEqual(seen, {("db", "sync"), ("db", "version"), ("service", "list"),
                                ("service", "disable"), ("service", "enable"),
                                ("service", "delete"), ("service", "force-down"), ("token", "new"),
                                ("drivers", None)})

    def test_examples_run_as_shown(self) -> None:
        """
        When the README's examples run in turn, the C{db} ones on a database
        made before migrations and the C{service} ones on the seeded
        database, then each prints what the README shows (those whose
        output the README elides with C{...} aside).
        """
        old_url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        engine = sa.create_engine(old_url, poolclass=NullPool)
        schema.metadata.create_all(engine)
        engine.dispose()
        configs = {"db": self.config_for(old_url), "service": self.config}
        checked = 0
        for argv, shown in _readme_examples():
            if argv[0] in ("token", "drivers"):
                continue
            self.assertEqual(argv[:2], ["-c", "/etc/novasvc/novasvc.yaml"])
            out = self.ok("-c", configs[argv[2]], *argv[2:])
            if "..." not in shown:
                self.assertEqual(out, shown, argv)
                checked += 1
        self.assertEqual(checked, 9)

    def test_drivers_example(self) -> None:
        """
        When the README's drivers example runs on the checkout's
        etc/volume.yaml, then it prints what the README shows.
        """
        [(argv, shown)] = [(argv, shown) for argv, shown in _readme_examples()
                           if argv[0] == "drivers"]
        self.assertEqual(argv, ["drivers", "-c", "etc/volume.yaml"])
        self.assertEqual(self.ok("drivers", "-c", os.path.join(ROOT, "etc", "volume.yaml")), shown)

    def test_token_example(self) -> None:
        """
        When the README's token example runs, then its output has the
        README's lines, the token and its hash aside.
        """
        [(argv, shown)] = [(argv, shown) for argv, shown in _readme_examples()
                           if argv[0] == "token"]
        out = self.ok(*argv).splitlines()
        shown_lines = shown.splitlines()
        self.assertEqual(len(out), len(shown_lines))
        for got, expected in zip(out, shown_lines):
            if "..." in expected:
                self.assertRegex(got, r"^[A-Za-z0-9_-]{43}$|^    sha256: [0-9a-f]{64}$")
            else:
                self.assertEqual(got, expected)

    def test_auto_sync_documented(self) -> None:
        """
        When the README's configuration list is read, then it has
        C{database.auto_sync}.
        """
        with open(README, encoding="utf-8") as f:
            self.assertTrue("``database.auto_sync`` (default ``false``)" in f.read(),
                            "database.auto_sync is not in the README's Configuration list")
