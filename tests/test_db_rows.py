"""
Tests for L{novasvc.db._rows}: the blocking statements of the C{services}
table, run here directly on an in-memory SQLite database. (The whole
L{IServiceStore} contract, through the store's thread pool and on every
database, is in C{tests.test_db_store}.)
"""

import datetime
from typing import Any, Dict

import sqlalchemy as sa
from twisted.trial.unittest import SynchronousTestCase

from novasvc.db import _rows, schema
from novasvc.db._engine import make_engine
from novasvc.db.record import ServiceRecord
from novasvc.exceptions import ServiceExists, ServiceNotFound

_NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, 250000)


def _values(host: str = "h", binary: str = "novasvc-x", topic: str = "x") -> Dict[str, Any]:
    return dict(host=host, binary=binary, topic=topic, uuid=f"{host}-{binary}", version=0,
                disabled=False, disabled_reason=None, created_at=_NOW, report_count=0,
                forced_down=False, deleted=0)


class RowsTests(SynchronousTestCase):
    """
    The statements behind each store method, on one connection's database.
    """

    def setUp(self) -> None:
        self.engine = make_engine("sqlite://", 1, 10, 60)
        self.addCleanup(self.engine.dispose)
        schema.metadata.create_all(self.engine)

    def test_record_from_row(self) -> None:
        """
        When a row stores its booleans as integers and C{deleted} as NULL,
        then its record has C{bool}s and C{deleted} 0.
        """
        row = {field: None for field in _values()}
        row.update(id=1, host="h", binary="b", topic="t", uuid="u", report_count=0, version=0,
                   disabled=1, forced_down=0, last_seen_up=None, updated_at=None,
                   deleted_at=None, deleted=None)
        record = _rows.record_from_row(row)
        self.assertEqual((record.disabled, record.forced_down, record.deleted), (True, False, 0))
        self.assertIsInstance(record, ServiceRecord)

    def test_create_and_read(self) -> None:
        """
        When a row is created, then it reads back by id and by host and
        binary, and a second live row with the same host and binary is
        refused with L{ServiceExists}.
        """
        record = _rows.create(self.engine, _values())
        self.assertEqual((record.host, record.binary, record.created_at), ("h", "novasvc-x", _NOW))
        self.assertEqual(_rows.get(self.engine, record.id), record)
        self.assertEqual(_rows.get_by_host_and_binary(self.engine, "h", "novasvc-x"), record)
        self.assertIsNone(_rows.get_by_host_and_binary(self.engine, "h", "novasvc-y"))
        self.assertRaises(ServiceExists, _rows.create, self.engine, _values(topic="y"))

    def test_changes(self) -> None:
        """
        When a row is updated and reports, then each statement returns the
        row as changed; after it is destroyed, it is listed only with
        C{include_deleted}, and each statement on it raises
        L{ServiceNotFound}.
        """
        record = _rows.create(self.engine, _values())
        updated = _rows.update(self.engine, record.id, {"disabled": True, "updated_at": _NOW})
        self.assertEqual((updated.disabled, updated.updated_at), (True, _NOW))
        later = _NOW + datetime.timedelta(seconds=10)
        reported = _rows.report_state(self.engine, record.id, later)
        self.assertEqual((reported.report_count, reported.last_seen_up), (1, later))
        _rows.destroy(self.engine, record.id, later)
        self.assertEqual(_rows.list_services(self.engine, {}, False), [])
        [deleted] = _rows.list_services(self.engine, {"host": "h"}, True)
        self.assertEqual((deleted.deleted, deleted.deleted_at), (record.id, later))
        self.assertRaises(ServiceNotFound, _rows.get, self.engine, record.id)
        self.assertRaises(ServiceNotFound, _rows.update, self.engine, record.id, {"topic": "z"})
        self.assertRaises(ServiceNotFound, _rows.report_state, self.engine, record.id, later)
        self.assertRaises(ServiceNotFound, _rows.destroy, self.engine, record.id, later)

    def test_update_onto_a_topic(self) -> None:
        """
        When a row's topic is changed to that of another live row on the
        same host, then L{ServiceExists} is raised and the row is unchanged.
        """
        first = _rows.create(self.engine, _values(binary="a", topic="a"))
        _rows.create(self.engine, _values(binary="b", topic="b"))
        self.assertRaises(ServiceExists, _rows.update, self.engine, first.id, {"topic": "b"})
        self.assertEqual(_rows.get(self.engine, first.id).topic, "a")

    def test_list_filters(self) -> None:
        """
        When rows are listed with filters, then only the rows matching
        every filter come, by id.
        """
        records = [_rows.create(self.engine, _values(host=host, binary=binary, topic=binary))
                   for host in ("h1", "h2") for binary in ("a", "b")]
        self.assertEqual(_rows.list_services(self.engine, {}, False), records)
        self.assertEqual(_rows.list_services(self.engine, {"host": "h2"}, False), records[2:])
        self.assertEqual(_rows.list_services(self.engine, {"host": "h1", "binary": "b"}, False),
                         records[1:2])

    def test_ping(self) -> None:
        """
        When the database answers, then ping returns C{None}, whether the
        C{services} table is there or not (it reads no table).
        """
        self.assertIsNone(_rows.ping(self.engine))
        schema.metadata.drop_all(self.engine)
        with self.engine.connect() as conn:
            self.assertFalse(sa.inspect(conn).has_table("services"))
        self.assertIsNone(_rows.ping(self.engine))
