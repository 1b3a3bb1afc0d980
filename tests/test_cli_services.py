"""
Tests for L{novasvc.cli._services}: C{novasvc-manage service list},
C{disable}, C{enable}, C{force-down} and C{delete} through
L{novasvc.cli.manage.main} against a seeded SQLite file, and the changes
they hand to the notification sender.
"""

import datetime
import io
import json
from typing import Any, List, Tuple

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from novasvc.cli import manage
from novasvc.cli._table import width
from tests._manage import NOW, SEEDED_TABLE, _insert, _SQLiteSeeded


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
