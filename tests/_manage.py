"""
What the tests of C{novasvc-manage} share: a services table seeded at a
fixed "now" (L{SEEDED}, and the table C{service list} prints of it), and
test cases that run L{novasvc.cli.manage.main} on it.
"""

import datetime
import io
import os
import uuid
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from twisted.trial.unittest import SynchronousTestCase

from novasvc.cli import manage
from novasvc.db import migration, schema


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
