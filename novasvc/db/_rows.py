# -*- test-case-name: tests.test_db_rows -*-
"""
The statements of the C{services} table behind each L{IServiceStore}
method, run on an SQLAlchemy C{Engine}, blocking: the caller runs them in a
thread (L{novasvc.db.store.SQLServiceStore} in its own thread pool), never
on the reactor thread. Their arguments are checked already
(L{novasvc.db.rules}); a row comes back as a L{ServiceRecord}.
"""

import datetime
from typing import Any, Dict, List, Optional

import attrs
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, RowMapping

from novasvc.db import schema
from novasvc.db.record import ServiceRecord
from novasvc.exceptions import ServiceExists, ServiceNotFound

_services = schema.services
_FIELDS = [field.name for field in attrs.fields(ServiceRecord)]


def record_from_row(row: RowMapping) -> ServiceRecord:
    """
    @param row: a row of the C{services} table, as a mapping.
    @return: it as a L{ServiceRecord}, booleans as C{bool} whatever the
        database stores them as (for tools that query the table
        themselves too).
    """
    values = {name: row[name] for name in _FIELDS}
    values["disabled"] = bool(values["disabled"])
    values["forced_down"] = bool(values["forced_down"])
    values["deleted"] = values["deleted"] or 0
    return ServiceRecord(**values)


def _live(service_id: int) -> sa.ColumnElement[bool]:
    return sa.and_(_services.c.id == service_id, _services.c.deleted == 0)


def _select_live(conn: Connection, service_id: int) -> ServiceRecord:
    row = conn.execute(sa.select(_services).where(_live(service_id))).mappings().first()
    if row is None:
        raise ServiceNotFound(f"no live service with id {service_id}")
    return record_from_row(row)


def get_by_host_and_binary(engine: Engine, host: str, binary: str) -> Optional[ServiceRecord]:
    """
    @return: the live row with this C{host} and C{binary}, or C{None}.
    """
    query = sa.select(_services).where(
        _services.c.host == host, _services.c.binary == binary, _services.c.deleted == 0
    )
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else record_from_row(row)


def get(engine: Engine, service_id: int) -> ServiceRecord:
    """
    @return: the live row with this C{id}.
    @raise ServiceNotFound: when there is none.
    """
    with engine.connect() as conn:
        return _select_live(conn, service_id)


def create(engine: Engine, values: Dict[str, Any]) -> ServiceRecord:
    """
    Insert a row.

    @param values: every column but C{id}.
    @return: the new row, as read back.
    @raise ServiceExists: when a live row has the same (C{host},
        C{binary}) or (C{host}, C{topic}).
    """
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.insert(_services).values(**values))
            return _select_live(conn, result.inserted_primary_key[0])
    except sa_exc.IntegrityError:
        raise ServiceExists(
            f"a live service with host {values['host']!r} and binary "
            f"{values['binary']!r} or topic {values['topic']!r} exists"
        ) from None


def update(engine: Engine, service_id: int, changes: Dict[str, Any]) -> ServiceRecord:
    """
    Change columns of a live row.

    @return: the row after the change.
    @raise ServiceNotFound: when there is no live row with this C{id}.
    @raise ServiceExists: when the C{topic} changes to another live row's
        on the same host.
    """
    try:
        with engine.begin() as conn:
            statement = sa.update(_services).where(_live(service_id)).values(**changes)
            if conn.execute(statement).rowcount == 0:
                raise ServiceNotFound(f"no live service with id {service_id}")
            return _select_live(conn, service_id)
    except sa_exc.IntegrityError:
        raise ServiceExists(
            f"another live service on this host has topic {changes.get('topic')!r}"
        ) from None


def report_state(engine: Engine, service_id: int, now: datetime.datetime) -> ServiceRecord:
    """
    One C{UPDATE} setting C{report_count = report_count + 1} and
    C{last_seen_up} and C{updated_at} to C{now}.

    @return: the row after the change.
    @raise ServiceNotFound: when there is no live row with this C{id}.
    """
    statement = (
        sa.update(_services)
        .where(_live(service_id))
        .values(report_count=_services.c.report_count + 1, last_seen_up=now, updated_at=now)
    )
    with engine.begin() as conn:
        if conn.execute(statement).rowcount == 0:
            raise ServiceNotFound(f"no live service with id {service_id}")
        return _select_live(conn, service_id)


def destroy(engine: Engine, service_id: int, now: datetime.datetime) -> None:
    """
    Soft-delete a live row: C{deleted} becomes its C{id}, C{deleted_at}
    C{now}.

    @raise ServiceNotFound: when there is no live row with this C{id}.
    """
    statement = (
        sa.update(_services)
        .where(_live(service_id))
        .values(deleted=_services.c.id, deleted_at=now)
    )
    with engine.begin() as conn:
        if conn.execute(statement).rowcount == 0:
            raise ServiceNotFound(f"no live service with id {service_id}")


def list_services(
    engine: Engine, filters: Dict[str, str], include_deleted: bool
) -> List[ServiceRecord]:
    """
    @param filters: column names and the values they must equal.
    @param include_deleted: whether soft-deleted rows are listed too.
    @return: the rows, by C{id}.
    """
    query = sa.select(_services).order_by(_services.c.id)
    for name, value in filters.items():
        query = query.where(_services.c[name] == value)
    if not include_deleted:
        query = query.where(_services.c.deleted == 0)
    with engine.connect() as conn:
        return [record_from_row(row) for row in conn.execute(query).mappings()]


def ping(engine: Engine) -> None:
    """
    C{SELECT 1} (a connection is opened if the pool has none).
    """
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
