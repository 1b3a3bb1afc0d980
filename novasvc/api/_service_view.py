# -*- test-case-name: tests.test_api_app -*-
"""
How the API shows the services table: one row (L{service_view}) and the
encoded answer of C{GET /v1/services} (L{encode_listing}), made in the
reactor's thread pool when it is large.
"""

import datetime
from typing import Any, Dict, List, Optional

from twisted.internet import threads
from twisted.internet.interfaces import IReactorThreads

from novasvc.api.errors import json_body
from novasvc.core.servicegroup import is_up
from novasvc.db.record import ServiceRecord

__all__ = ["LARGE_LISTING", "encode_listing", "iso_time", "service_view"]

#: Listings of at least this many services are encoded to JSON off the
#: reactor thread.
LARGE_LISTING = 100


def iso_time(when: Optional[datetime.datetime]) -> Optional[str]:
    """
    @param when: naive UTC, or C{None}.
    @return: C{when} as ISO 8601 UTC with C{Z}, or C{None}.
    """
    if when is None:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def service_view(record: ServiceRecord, now: datetime.datetime,
                 service_down_time: float) -> Dict[str, Any]:
    """
    A services row as the API shows it.

    @param now: the current time, naive UTC.
    @param service_down_time: B{seconds}, for L{is_up}.
    @return: C{id}, C{host}, C{binary}, C{topic}, C{status}
        (C{"enabled"}/C{"disabled"}), C{state} (C{"up"}/C{"down"} by
        L{is_up}: C{forced_down} is down), C{updated_at} (the last
        heartbeat, C{last_seen_up}, as ISO 8601 UTC with C{Z}, or C{None}
        before the first report: an operator's change such as disabling does
        not make a dead service look fresh), C{disabled_reason} and
        C{forced_down}.
    """
    return {
        "id": record.id,
        "host": record.host,
        "binary": record.binary,
        "topic": record.topic,
        "status": "disabled" if record.disabled else "enabled",
        "state": "up" if is_up(record, now, service_down_time) else "down",
        "updated_at": iso_time(record.last_seen_up),
        "disabled_reason": record.disabled_reason,
        "forced_down": record.forced_down,
    }


async def encode_listing(records: List[ServiceRecord], now: datetime.datetime,
                         service_down_time: float, reactor: Any) -> bytes:
    """
    @param reactor: the API's clock; a listing of L{LARGE_LISTING} rows or
        more is made and encoded in its thread pool when it has one, so that
        RPC in the same process keeps the reactor.
    @return: the encoded C{GET /v1/services} answer of C{records}.
    """
    if len(records) < LARGE_LISTING or not IReactorThreads.providedBy(reactor):
        return _listing_body(records, now, service_down_time)
    body: bytes = await threads.deferToThreadPool(reactor, reactor.getThreadPool(), _listing_body,
                                                  records, now, service_down_time)
    return body


def _listing_body(records: List[ServiceRecord], now: datetime.datetime,
                  service_down_time: float) -> bytes:
    return json_body({"services": [service_view(r, now, service_down_time) for r in records]})
