# -*- test-case-name: tests.test_db_store -*-
"""
L{ServiceRecord}: one row of the C{services} table, as an immutable value.
"""

import datetime
from typing import Optional

import attrs


@attrs.frozen
class ServiceRecord:
    """
    One row of the C{services} table, with Nova's columns.

    Timestamps are naive UTC C{datetime}s. C{deleted} is C{0} for a live row
    and the row's C{id} once soft-deleted.
    """

    id: int
    uuid: str
    host: str
    binary: str
    topic: Optional[str]
    report_count: int = 0
    disabled: bool = False
    disabled_reason: Optional[str] = None
    forced_down: bool = False
    last_seen_up: Optional[datetime.datetime] = None
    version: int = 0
    created_at: Optional[datetime.datetime] = None
    updated_at: Optional[datetime.datetime] = None
    deleted_at: Optional[datetime.datetime] = None
    deleted: int = 0
