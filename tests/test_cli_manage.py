"""
Tests for L{novasvc.cli.manage}, the C{novasvc-manage} console script: each
command through L{main} against a seeded SQLite file (and PostgreSQL),
one through C{python -m}, and what the README says about it.
"""

import datetime
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa
import yaml
from sqlalchemy.pool import NullPool
from twisted.trial.unittest import SynchronousTestCase

from novasvc.cli import manage
from novasvc.cli._table import width
from novasvc.db import migration, schema
from tests import test_db_store as _store_tests
from tests._services import require_service

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.rst")

#: The "now" of the seeded rows.
NOW = datetime.datetime(2026, 3, 4, 12, 0, 0)


def _ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


#: The seeded services: (host, binary, topic, seconds since the last
#: report, disabled reason or None for enabled, forced_down).
SEEDED = [
    ("compute-1", "novasvc-volume", "volume", 8, None, False),
    ("compute-2", "novasvc-volume", "volume", 300, None, False),
    ("compute-1", "novasvc-echo", "echo", 4, "kernel upgrade", False),
    ("compute-3", "novasvc-echo", "echo", 2, None, True),
]

#: What C{service list} prints for L{SEEDED} at L{NOW} (the README shows it).
SEEDED_TABLE = """\
+----+----------------+-----------+--------+----------+-------+----------------------------+-----------------+
| Id | Binary         | Host      | Topic  | Status   | State | Last Seen Up               | Disabled Reason |
+----+----------------+-----------+--------+----------+-------+----------------------------+-----------------+
| 1  | novasvc-volume | compute-1 | volume | enabled  | up    | 2026-03-04T11:59:52.000000 | -               |
| 2  | novasvc-volume | compute-2 | volume | enabled  | down  | 2026-03-04T11:55:00.000000 | -               |
| 3  | novasvc-echo   | compute-1 | echo   | disabled | up    | 2026-03-04T11:59:56.000000 | kernel upgrade  |
| 4  | novasvc-echo   | compute-3 | echo   | enabled  | down  | 2026-03-04T11:59:58.000000 | -               |
+----+----------------+-----------+--------+----------+-------+----------------------------+-----------------+
"""


def _insert(engine: sa.engine.Engine, host: str, binary: str, topic: Optional[str],
            age: Optional[float], reason: Optional[str] = None, forced_down: bool = False,
            deleted: bool = False) -> None:
    seen = None if age is None else _ago(age)
    with engine.begin() as connection:
        result = connection.execute(sa.insert(schema.services).values(
            uuid=str(uuid.uuid4()), host=host, binary=binary, topic=topic, report_count=3,
            disabled=reason is not None, disabled_reason=reason, forced_down=forced_down,
            version=1, deleted=0, created_at=_ago(3600), updated_at=seen, last_seen_up=seen))
        if deleted:
            service_id = result.inserted_primary_key[0]
            connection.execute(sa.update(schema.services).where(schema.services.c.id == service_id)
                               .values(deleted=service_id, deleted_at=_ago(60)))


def _seed(url: str) -> None:
    migration.sync(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        for row in SEEDED:
            _insert(engine, *row)
        _insert(engine, "compute-9", "novasvc-volume", "volume", 10, deleted=True)
    finally:
        engine.dispose()


class _ManageTestCase(SynchronousTestCase):
    """
    Runs L{manage.main} on a database given by C{self.url}, with a config
    file naming it.
    """

    url: str

    def write_config(self, text: str) -> str:
        path = os.path.abspath(self.mktemp()) + ".yaml"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def config_for(self, url: str, extra: str = "") -> str:
        return self.write_config(f"database:\n  connection: {url}\n{extra}")

    def run_manage(self, *argv: str, now: datetime.datetime = NOW,
                   environ: Optional[Dict[str, str]] = None) -> Tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(list(argv), stdout=out, stderr=err, environ=environ or {},
                           utcnow=lambda: now)
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv: str, **kwargs: Any) -> str:
        code, out, err = self.run_manage(*argv, **kwargs)
        self.assertEqual((code, err), (0, ""), out)
        return out

    def failed(self, expected_code: int, *argv: str, **kwargs: Any) -> str:
        code, out, err = self.run_manage(*argv, **kwargs)
        self.assertEqual((code, out), (expected_code, ""), err)
        self.assertEqual(err.count("\n"), 1, err)
        return err.strip()

    def rows(self, url: Optional[str] = None) -> List[Dict[str, Any]]:
        engine = sa.create_engine(url or self.url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return [dict(row) for row in connection.execute(
                    sa.select(schema.services).order_by(schema.services.c.id)).mappings()]
        finally:
            engine.dispose()


class _SQLiteSeeded(_ManageTestCase):
    def setUp(self) -> None:
        self.url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        _seed(self.url)
        self.config = self.config_for(self.url)


class ServiceListTests(_SQLiteSeeded):
    """
    C{service list}.
    """

    def test_table(self) -> None:
        """
        When the services are listed, then the table has Nova's columns,
        live rows only, State up or down by C{is_up} (C{forced_down} is
        down) and Status enabled or disabled.
        """
        self.assertEqual(self.ok("--config", self.config, "service", "list"), SEEDED_TABLE)

    def test_json(self) -> None:
        """
        When C{--json} is given, then the output is a JSON list with the
        same services, states and timestamps.
        """
        listed = json.loads(self.ok("service", "list", "--json", "-c", self.config))
        self.assertEqual([(s["id"], s["host"], s["binary"], s["topic"], s["status"], s["state"],
                           s["disabled_reason"], s["forced_down"]) for s in listed], [
            (1, "compute-1", "novasvc-volume", "volume", "enabled", "up", None, False),
            (2, "compute-2", "novasvc-volume", "volume", "enabled", "down", None, False),
            (3, "compute-1", "novasvc-echo", "echo", "disabled", "up", "kernel upgrade", False),
            (4, "compute-3", "novasvc-echo", "echo", "enabled", "down", None, True),
        ])
        self.assertEqual(listed[0]["updated_at"], "2026-03-04T11:59:52.000000")
        self.assertEqual(listed[0]["last_seen_up"], "2026-03-04T11:59:52.000000")
        self.assertEqual(listed[0]["report_count"], 3)

    def test_filters(self) -> None:
        """
        When C{--host} or C{--binary} is given, then only matching services
        are listed.
        """
        by_host = json.loads(self.ok("-c", self.config, "service", "list", "--json",
                                     "--host", "compute-1"))
        self.assertEqual([s["id"] for s in by_host], [1, 3])
        both = json.loads(self.ok("-c", self.config, "service", "list", "--json",
                                  "--host", "compute-1", "--binary", "novasvc-echo"))
        self.assertEqual([s["id"] for s in both], [3])
        self.assertEqual(json.loads(self.ok("-c", self.config, "service", "list", "--json",
                                            "--binary", "nothing")), [])

    def test_service_down_time_from_config(self) -> None:
        """
        When the config's C{service_down_time} is not longer than its
        C{report_interval}, then the service's rule applies
        (C{report_interval * 2.5}): a service 300 seconds silent is up with
        C{report_interval: 150}, and down with C{service_down_time: 299}.
        """
        relaxed = self.config_for(self.url, "report_interval: 150\nservice_down_time: 100\n")
        listed = json.loads(self.ok("-c", relaxed, "service", "list", "--json", "--host",
                                    "compute-2"))
        self.assertEqual(listed[0]["state"], "up")
        strict = self.config_for(self.url, "service_down_time: 299\n")
        listed = json.loads(self.ok("-c", strict, "service", "list", "--json", "--host",
                                    "compute-2"))
        self.assertEqual(listed[0]["state"], "down")

    def test_now(self) -> None:
        """
        When time passes, then a service that stopped reporting turns down.
        """
        later = NOW + datetime.timedelta(seconds=61)
        listed = json.loads(self.ok("-c", self.config, "service", "list", "--json", now=later))
        self.assertEqual([s["state"] for s in listed], ["down"] * 4)

    def test_control_characters(self) -> None:
        """
        When a host holds terminal control characters, then the table shows
        them escaped, the text whole (not cut), and the borders stay
        aligned.
        """
        engine = sa.create_engine(self.url, poolclass=NullPool)
        host = "evil\x1b[2J\u202e" + "x" * 200
        _insert(engine, host, "novasvc-x", "x", 1, reason="line\nbreak")
        engine.dispose()
        out = self.ok("-c", self.config, "service", "list", "--host", host)
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\u202e", out)
        self.assertIn("evil\\x1b[2J\\u202e" + "x" * 200, out)
        self.assertIn("line\\x0abreak", out)
        lines = out.splitlines()
        self.assertEqual(len(lines), 5)
        self.assertEqual(len({len(line) for line in lines}), 1, out)

    def test_wide_characters(self) -> None:
        """
        When a value has East Asian wide characters, then the columns stay
        aligned on a terminal (each takes two columns).
        """
        engine = sa.create_engine(self.url, poolclass=NullPool)
        _insert(engine, "ホスト", "novasvc-x", "x", 1)
        engine.dispose()
        lines = self.ok("-c", self.config, "service", "list", "--host", "ホスト").splitlines()
        self.assertIn("| ホスト |", lines[3])
        self.assertEqual({width(line) for line in lines}, {len(lines[0])})

    def test_json_escapes(self) -> None:
        """
        When C{--json} shows client text with control characters, then the
        JSON escapes them and decodes to the text itself.
        """
        engine = sa.create_engine(self.url, poolclass=NullPool)
        _insert(engine, "h\x1b\u202e", "novasvc-x", "x", 1)
        engine.dispose()
        out = self.ok("-c", self.config, "service", "list", "--json", "--binary", "novasvc-x")
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\u202e", out)
        self.assertEqual(json.loads(out)[0]["host"], "h\x1b\u202e")


class ServiceChangeTests(_SQLiteSeeded):
    """
    C{service disable}, C{enable} and C{delete}.
    """

    def test_disable(self) -> None:
        """
        When a service is disabled with a reason, then its row is disabled
        with that reason and C{updated_at} now, and the tool prints Nova's
        small table.
        """
        out = self.ok("-c", self.config, "service", "disable", "compute-2", "novasvc-volume",
                      "--reason", "disk replacement")
        self.assertEqual(out, (
            "+-----------+----------------+----------+------------------+\n"
            "| Host      | Binary         | Status   | Disabled Reason  |\n"
            "+-----------+----------------+----------+------------------+\n"
            "| compute-2 | novasvc-volume | disabled | disk replacement |\n"
            "+-----------+----------------+----------+------------------+\n"))
        row = self.rows()[1]
        self.assertEqual((row["disabled"], row["disabled_reason"], row["updated_at"]),
                         (True, "disk replacement", NOW))

    def test_disable_without_reason(self) -> None:
        """
        When a service is disabled without C{--reason}, then its reason is
        empty.
        """
        self.ok("-c", self.config, "service", "disable", "compute-1", "novasvc-volume")
        self.assertEqual((self.rows()[0]["disabled"], self.rows()[0]["disabled_reason"]),
                         (True, None))

    def test_enable(self) -> None:
        """
        When a disabled service is enabled, then it is enabled and its
        reason cleared, as Nova's os-services API does.
        """
        out = self.ok("service", "enable", "compute-1", "novasvc-echo", "--config", self.config)
        self.assertIn("| compute-1 | novasvc-echo | enabled | -               |", out)
        row = self.rows()[2]
        self.assertEqual((row["disabled"], row["disabled_reason"]), (False, None))

    def test_delete(self) -> None:
        """
        When a service is deleted, then its row is soft-deleted (C{deleted}
        set to its id, C{deleted_at} now), it leaves the list, and a second
        delete finds nothing.
        """
        out = self.ok("-c", self.config, "service", "delete", "compute-2", "novasvc-volume")
        self.assertEqual(out, "Deleted service 2 (novasvc-volume on compute-2).\n")
        row = self.rows()[1]
        self.assertEqual((row["deleted"], row["deleted_at"]), (2, NOW))
        listed = json.loads(self.ok("-c", self.config, "service", "list", "--json"))
        self.assertEqual([s["id"] for s in listed], [1, 3, 4])
        engine = sa.create_engine(self.url, poolclass=NullPool)
        _insert(engine, "compute-2", "novasvc-volume", "volume", 1)  # registers again
        engine.dispose()
        self.ok("-c", self.config, "service", "delete", "compute-2", "novasvc-volume", "--force")
        self.assertEqual(self.failed(1, "-c", self.config, "service", "delete", "compute-2",
                                     "novasvc-volume"),
                         "novasvc-manage: error: no live service with host 'compute-2' and "
                         "binary 'novasvc-volume'")

    def test_delete_up_needs_force(self) -> None:
        """
        When the service to delete is up, then exit 1 with one line naming
        it and --force, the row stays and nothing is notified; with --force
        it is deleted.
        """
        before = self.rows()
        error = self.failed(1, "-c", self.config, "service", "delete", "compute-1",
                            "novasvc-volume")
        self.assertEqual(error, "novasvc-manage: error: service 1 (novasvc-volume on "
                         "compute-1) is up: stop it first, or delete it anyway with --force "
                         "(a running service registers again)")
        self.assertEqual(self.rows(), before)
        out = self.ok("-c", self.config, "service", "delete", "compute-1", "novasvc-volume",
                      "--force")
        self.assertEqual(out, "Deleted service 1 (novasvc-volume on compute-1).\n")

    def test_disable_keeps_freshness(self) -> None:
        """
        When a dead service is disabled, then the list still shows its last
        report, not the time of the change, and it stays down.
        """
        self.ok("-c", self.config, "service", "disable", "compute-2", "novasvc-volume")
        out = self.ok("-c", self.config, "service", "list", "--host", "compute-2")
        self.assertIn("| down  | 2026-03-04T11:55:00.000000 |", out)

    def test_missing_service(self) -> None:
        """
        When no live service matches, then disable, enable and delete exit
        1 with one line, the client's text quoted and shortened, and change
        nothing.
        """
        before = self.rows()
        for command in ("disable", "enable", "delete"):
            error = self.failed(1, "-c", self.config, "service", command, "compute-9",
                                "novasvc-volume")
            self.assertIn("no live service with host 'compute-9'", error)
        error = self.failed(1, "-c", self.config, "service", "disable", "h\n" + "y" * 500, "b")
        self.assertIn("'h\\nyyy", error)
        self.assertIn("(502 characters)", error)
        self.assertEqual(self.rows(), before)

    def test_reason_too_long(self) -> None:
        """
        When the reason is longer than the column, then the tool exits 64
        saying the limit.
        """
        error = self.failed(64, "-c", self.config, "service", "disable", "compute-1",
                            "novasvc-volume", "--reason", "r" * 256)
        self.assertIn("disabled_reason is 256 characters long; the most is 255", error)
        self.assertFalse(self.rows()[0]["disabled"])


class ServiceNotificationTests(_SQLiteSeeded):
    """
    The versioned notifications of C{service disable}, C{enable} and
    C{delete}: what the tool hands to its sender (the sending itself is
    tested with a real broker in C{tests.test_core_service_notifications}).
    """

    def changes(self, *argv: str) -> List[Tuple[str, Any]]:
        sent: List[Tuple[str, Any]] = []
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(["-c", self.config, *argv], stdout=out, stderr=err, environ={},
                           utcnow=lambda: NOW,
                           notify=lambda config, changes, stream: sent.extend(changes))
        self.assertEqual((code, err.getvalue()), (0, ""), out.getvalue())
        return sent

    def test_disable(self) -> None:
        """
        When an enabled service is disabled, then one service.update is
        sent with the record as it is now.
        """
        [(action, record)] = self.changes("service", "disable", "compute-2", "novasvc-volume",
                                          "--reason", "disk")
        self.assertEqual((action, record.host, record.binary, record.disabled,
                          record.disabled_reason, record.id), ("update", "compute-2",
                                                              "novasvc-volume", True, "disk", 2))

    def test_reason_changed(self) -> None:
        """
        When a disabled service is disabled again with another reason, then
        one service.update is sent; with the same reason, none.
        """
        self.assertEqual(len(self.changes("service", "disable", "compute-1", "novasvc-echo",
                                          "--reason", "other")), 1)
        self.assertEqual(self.changes("service", "disable", "compute-1", "novasvc-echo",
                                      "--reason", "other"), [])

    def test_enable(self) -> None:
        """
        When a disabled service is enabled, then one service.update is
        sent; enabling an enabled one sends none.
        """
        [(action, record)] = self.changes("service", "enable", "compute-1", "novasvc-echo")
        self.assertEqual((action, record.disabled, record.disabled_reason), ("update", False, None))
        self.assertEqual(self.changes("service", "enable", "compute-1", "novasvc-volume"), [])

    def test_force_down(self) -> None:
        """
        When a service is forced down, then its row says so and one
        service.update is sent; C{--unset} clears it and sends another;
        clearing a clear mark sends none.
        """
        [(action, record)] = self.changes("service", "force-down", "compute-1", "novasvc-volume")
        self.assertEqual((action, record.forced_down), ("update", True))
        self.assertTrue(self.rows()[0]["forced_down"])
        [(action, record)] = self.changes("service", "force-down", "compute-1", "novasvc-volume",
                                          "--unset")
        self.assertEqual((action, record.forced_down), ("update", False))
        self.assertFalse(self.rows()[0]["forced_down"])
        self.assertEqual(self.changes("service", "force-down", "compute-1", "novasvc-volume",
                                      "--unset"), [])

    def test_delete(self) -> None:
        """
        When a service is deleted, then one service.delete is sent with the
        record as it was.
        """
        [(action, record)] = self.changes("service", "delete", "compute-2", "novasvc-volume")
        self.assertEqual((action, record.id, record.host), ("delete", 2, "compute-2"))

    def test_nothing_changed(self) -> None:
        """
        When a command fails or only reads, then nothing is sent.
        """
        sent: List[Any] = []
        for argv in (("service", "list"), ("service", "delete", "compute-9", "novasvc-volume")):
            manage.main(["-c", self.config, *argv], stdout=io.StringIO(), stderr=io.StringIO(),
                        environ={}, utcnow=lambda: NOW,
                        notify=lambda config, changes, stream: sent.append(changes))
        self.assertEqual(sent, [])


class DatabaseCommandTests(_ManageTestCase):
    """
    C{db sync} and C{db version}, and the schema check of the service
    commands.
    """

    def setUp(self) -> None:
        self.url = "sqlite:///" + os.path.abspath(self.mktemp()) + ".sqlite"
        self.config = self.config_for(self.url)

    def test_sync_from_empty(self) -> None:
        """
        When C{db sync} runs on an empty database, then it upgrades it to
        the head; a second run does nothing; C{db version} shows it.
        """
        self.assertEqual(self.ok("-c", self.config, "db", "version"),
                         f"current: none (empty database)\nhead: {migration.HEAD_REVISION}\n")
        self.assertEqual(self.ok("-c", self.config, "db", "sync"),
                         "Upgraded the database from schema revision none (empty database) to "
                         f"{migration.HEAD_REVISION}.\n")
        self.assertEqual(self.ok("-c", self.config, "db", "sync"),
                         f"The database is at schema revision {migration.HEAD_REVISION}, the "
                         "newest: nothing to do.\n")
        self.assertEqual(self.ok("db", "version", "-c", self.config),
                         f"current: {migration.HEAD_REVISION}\nhead: {migration.HEAD_REVISION}\n")

    def make_before_migrations(self) -> None:
        engine = sa.create_engine(self.url, poolclass=NullPool)
        try:
            schema.metadata.create_all(engine)
        finally:
            engine.dispose()

    def test_sync_from_before_migrations(self) -> None:
        """
        When C{db sync} runs on a database made before migrations, then it
        says so and upgrades it; until then the service commands refuse it
        with the same message a service gives.
        """
        self.make_before_migrations()
        error = self.failed(1, "-c", self.config, "service", "list")
        self.assertEqual(error, f"novasvc-manage: error: database {self.url} is at schema "
                                "revision none (a services table from before migrations), this "
                                f"novasvc needs {migration.HEAD_REVISION}; run: novasvc-manage "
                                "db sync --config <file>")
        self.assertEqual(self.ok("-c", self.config, "db", "sync"),
                         "Upgraded the database from schema revision none (a services table "
                         f"from before migrations) to {migration.HEAD_REVISION}.\n")
        self.assertEqual(json.loads(self.ok("-c", self.config, "service", "list", "--json")), [])

    def test_service_commands_on_empty(self) -> None:
        """
        When a service command runs on an empty database, then it exits 1
        saying to run C{db sync}, and creates nothing.
        """
        for argv in (["service", "list"], ["service", "delete", "h", "b"]):
            self.assertIn("is at schema revision none (empty database)",
                          self.failed(1, "-c", self.config, *argv))
        self.assertEqual(migration.current(self.url), None)
        self.assertFalse(migration.read_state(self.url_engine()).has_services)

    def url_engine(self) -> sa.engine.Engine:
        engine = sa.create_engine(self.url, poolclass=NullPool)
        self.addCleanup(engine.dispose)
        return engine

    def test_unknown_revision(self) -> None:
        """
        When the database is at a revision this novasvc does not know, then
        C{db version} says so and C{db sync} and the service commands exit
        1 saying to upgrade novasvc.
        """
        self.ok("-c", self.config, "db", "sync")
        with self.url_engine().begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0042'"))
        self.assertEqual(self.ok("-c", self.config, "db", "version"),
                         f"current: 0042 (newer than this novasvc)\nhead: {migration.HEAD_REVISION}\n")
        for argv in (["db", "sync"], ["service", "list"]):
            self.assertIn("newer than this novasvc", self.failed(1, "-c", self.config, *argv))

    def test_database_error(self) -> None:
        """
        When the database cannot be opened, then the tool exits 1 with one
        line naming it and the driver's reason.
        """
        missing = os.path.abspath(self.mktemp())
        url = f"sqlite:///{missing}/services.sqlite"
        error = self.failed(1, "--database-connection", url, "db", "sync")
        self.assertEqual(error, f"novasvc-manage: error: database {url} failed: unable to open "
                                "database file")


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


class TokenTests(_ManageTestCase):
    """
    C{token new}.
    """

    def new(self, *argv: str) -> Tuple[str, Dict[str, Any]]:
        out = self.ok("token", "new", *argv)
        token = out.splitlines()[1]
        snippet = out[out.index("api:"):]
        return token, yaml.safe_load(snippet)

    def test_new(self) -> None:
        """
        When a token is made, then the tool prints a random URL-safe token
        of 32 bytes and the configuration snippet holding its SHA-256 and
        role, no database needed.
        """
        token, config = self.new("--role", "reader", "--name", "grafana")
        self.assertRegex(token, r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(config, {"api": {"tokens": [{
            "name": "grafana", "role": "reader",
            "sha256": hashlib.sha256(token.encode()).hexdigest()}]}})
        self.assertNotEqual(self.new("--role", "reader")[0], token)

    def test_default_name(self) -> None:
        """
        When no name is given, then it is C{token-} and the first 8 hex
        digits of the hash.
        """
        token, config = self.new("--role", "admin")
        [entry] = config["api"]["tokens"]
        self.assertEqual((entry["role"], entry["name"]), ("admin", "token-" + entry["sha256"][:8]))

    def test_name_quoted(self) -> None:
        """
        When the name has YAML syntax or control characters, then the
        snippet still reads back as that name.
        """
        name = "ops: {team}\n# x\x1b"
        _, config = self.new("--role", "admin", "--name", name)
        self.assertEqual(config["api"]["tokens"][0]["name"], name)


class DriversTests(_ManageTestCase):
    """
    C{drivers}: the choices of each C{DriverOpt}.
    """

    def test_volume(self) -> None:
        """
        When the volume example's file is given, then each installed driver
        of its entry point group is listed with its path and section, the
        chosen one marked.
        """
        path = self.write_config("volume_manager: novasvc.examples.volume.manager.VolumeManager\n"
                                 "volume:\n  driver: file\n"
                                 "file_volume:\n  volumes_dir: /srv/volumes\n")
        out = self.ok("drivers", "-c", path)
        lines = [" ".join(line.split()) for line in out.splitlines()]
        self.assertIn("| Option | Name | Driver | Section | Chosen |", lines)
        self.assertIn("| volume.driver | fake | novasvc.examples.volume.drivers.fake:"
                      "FakeVolumeDriver | fake_volume | |", lines)
        self.assertIn("| volume.driver | file | novasvc.examples.volume.drivers.file:"
                      "FileVolumeDriver | file_volume | yes |", lines)

    def test_manager_option_and_dotted_path(self) -> None:
        """
        When --manager names the manager and the default driver is a dotted
        path, then that path is listed as chosen, without a name.
        """
        out = self.ok("drivers", "--manager", "novasvc.examples.volume.manager.VolumeManager")
        lines = [" ".join(line.split()) for line in out.splitlines()]
        self.assertIn("| volume.driver | - | novasvc.examples.volume.drivers.FakeVolumeDriver "
                      "| fake_volume | yes |", lines)

    def test_no_manager(self) -> None:
        """
        When neither a file nor --manager names a manager, then one line
        says so and the exit status is 64.
        """
        self.assertEqual(self.failed(64, "drivers"), "novasvc-manage: error: no manager: give "
                                                     "--manager DOTTED.PATH or a configuration "
                                                     "file with a <topic>_manager key")


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
