# -*- test-case-name: tests.test_cli_services -*-
"""
C{novasvc-manage service}: the commands on the C{services} table, as Nova's
C{nova service-list}, C{service-disable}, C{service-enable},
C{service-force-down} and C{service-delete}. Each works on the live rows
(C{deleted = 0}) of a schema at the newest revision, and remembers in its
L{Context} the changes the service notifications tell.
"""

import argparse
import datetime
import json
from typing import IO, Any, Dict, Optional

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from novasvc.cli._database import Context, Refused
from novasvc.cli._table import escape, format_table
from novasvc.core.service_status import DELETE, UPDATE, status_changed
from novasvc.core.servicegroup import effective_service_down_time, is_up
from novasvc.db import rules, schema
from novasvc.db.record import ServiceRecord
from novasvc.db.store import record_from_row
from novasvc.exceptions import ServiceNotFound
from novasvc._text import quote

__all__ = ["LIST_COLUMNS", "service_delete", "service_disable", "service_enable", "service_force_down",
           "service_list"]

#: The columns of C{service list}, as C{nova service-list} (the topic in
#: the place of Nova's zone).
LIST_COLUMNS = ("Id", "Binary", "Host", "Topic", "Status", "State", "Last Seen Up",
                "Disabled Reason")

_services = schema.services


def service_list(args: argparse.Namespace, out: IO[str], context: Context) -> None:
    """
    C{service list [--host H] [--binary B] [--json]}: the live services,
    as a table (L{LIST_COLUMNS}) or a JSON list, each up or down as the
    servicegroup tells.
    """
    with context.engine.connect() as connection:
        rows = context.checked(connection).execute(_live(args.host, args.binary)).mappings()
        records = [record_from_row(row) for row in rows]
    settings = context.settings
    down_time = effective_service_down_time(settings.report_interval, settings.service_down_time)
    now = context.utcnow()
    states = ["up" if is_up(record, now, down_time) else "down" for record in records]
    if args.json:
        json.dump([_as_json(record, state) for record, state in zip(records, states)], out,
                  indent=2)
        out.write("\n")
        return
    table = [[str(record.id), record.binary, record.host, record.topic,
              "disabled" if record.disabled else "enabled", state,
              _timestamp(record.last_seen_up),
              record.disabled_reason] for record, state in zip(records, states)]
    out.write(format_table(LIST_COLUMNS, table))


def service_disable(args: argparse.Namespace, out: IO[str], context: Context) -> None:
    """
    C{service disable HOST BINARY [--reason TEXT]}.
    """
    _set_disabled(args, out, context, True, args.reason)


def service_enable(args: argparse.Namespace, out: IO[str], context: Context) -> None:
    """
    C{service enable HOST BINARY}; the reason is cleared.
    """
    _set_disabled(args, out, context, False, None)


def service_force_down(args: argparse.Namespace, out: IO[str], context: Context) -> None:
    """
    C{service force-down HOST BINARY [--unset]}: set (or clear) Nova's
    C{forced_down}.
    """
    record = _change(context, args, {"forced_down": not args.unset})
    out.write(format_table(("Host", "Binary", "Forced Down"), [[
        record.host, record.binary, "true" if record.forced_down else "false"]]))


def service_delete(args: argparse.Namespace, out: IO[str], context: Context) -> None:
    """
    C{service delete HOST BINARY [--force]}: soft delete the row, as the
    store's C{destroy()}.

    @raise Refused: when the service is up and C{--force} is not given.
    """
    now = rules.naive_utc(context.utcnow())
    settings = context.settings
    down_time = effective_service_down_time(settings.report_interval, settings.service_down_time)
    with context.engine.begin() as connection:
        record = _find(context.checked(connection), args.host, args.binary)
        if not args.force and is_up(record, now, down_time):
            raise Refused(f"service {record.id} ({escape(record.binary)} on "
                          f"{escape(record.host)}) is up: stop it first, or delete it anyway "
                          "with --force (a running service registers again)")
        # Soft delete, as the store's destroy(): deleted = id frees the
        # (host, binary) pair for a new live row.
        connection.execute(sa.update(_services)
                           .where(_services.c.id == record.id, _services.c.deleted == 0)
                           .values(deleted=_services.c.id, deleted_at=now))
    context.changes.append((DELETE, record))
    print(f"Deleted service {record.id} ({escape(record.binary)} on {escape(record.host)}).",
          file=out)


def _live(host: Optional[str] = None, binary: Optional[str] = None) -> Any:
    query = sa.select(_services).where(_services.c.deleted == 0).order_by(_services.c.id)
    if host is not None:
        query = query.where(_services.c.host == host)
    if binary is not None:
        query = query.where(_services.c.binary == binary)
    return query


def _find(connection: Connection, host: str, binary: str) -> ServiceRecord:
    row = connection.execute(_live(host, binary)).mappings().first()
    if row is None:
        raise ServiceNotFound(f"no live service with host {quote(host)} and binary "
                              f"{quote(binary)}")
    return record_from_row(row)


def _timestamp(when: Optional[datetime.datetime]) -> Optional[str]:
    return None if when is None else when.isoformat(timespec="microseconds")


def _as_json(record: ServiceRecord, state: str) -> Dict[str, Any]:
    return {
        "id": record.id,
        "uuid": record.uuid,
        "binary": record.binary,
        "host": record.host,
        "topic": record.topic,
        "status": "disabled" if record.disabled else "enabled",
        "state": state,
        "updated_at": _timestamp(record.updated_at),
        "disabled_reason": record.disabled_reason,
        "forced_down": record.forced_down,
        "last_seen_up": _timestamp(record.last_seen_up),
        "report_count": record.report_count,
        "version": record.version,
        "created_at": _timestamp(record.created_at),
    }


def _set_disabled(args: argparse.Namespace, out: IO[str], context: Context,
                  disabled: bool, reason: Optional[str]) -> None:
    # Enabling clears the reason, as Nova's os-services API does.
    record = _change(context, args, {"disabled": disabled, "disabled_reason": reason})
    out.write(format_table(("Host", "Binary", "Status", "Disabled Reason"), [[
        record.host, record.binary, "disabled" if disabled else "enabled", record.disabled_reason]]))


def _change(context: Context, args: argparse.Namespace, values: Dict[str, Any]) -> ServiceRecord:
    """
    Update the live row of C{args.host} and C{args.binary} with C{values}
    (checked by L{rules.check_update}) and C{updated_at} now, and remember
    a C{service.update} when its status changed.

    @return: the record as it is now.
    """
    changes = rules.check_update(values)
    changes["updated_at"] = rules.naive_utc(context.utcnow())
    with context.engine.begin() as connection:
        before = _find(context.checked(connection), args.host, args.binary)
        connection.execute(sa.update(_services).where(_services.c.id == before.id)
                           .values(**changes))
        record = attrs.evolve(before, **changes)
    if status_changed(before, record):
        context.changes.append((UPDATE, record))
    return record
