# -*- test-case-name: tests.test_db_memory -*-
"""
L{MemoryServiceStore}: the C{services} table kept in a C{dict}, the in-memory
twin of L{novasvc.db.store.SQLServiceStore}.

It follows the same contract (L{novasvc.testing.store_contract} runs against both):
the same unique constraints, soft deletes, errors and timestamps. Its
C{Deferred}s have already fired when returned, which makes it handy with
L{twisted.trial.unittest.SynchronousTestCase} and
L{twisted.internet.task.Clock}.
"""

import datetime
import uuid
from typing import Callable, Dict, List, Optional

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from novasvc.db import rules
from novasvc.db.record import ServiceRecord
from novasvc.exceptions import ServiceExists, ServiceNotFound
from novasvc.interfaces import IServiceStore


@implementer(IServiceStore)
class MemoryServiceStore:
    """
    The C{services} table in memory.

    Like the SQL store it must be started before use: until L{start} and
    after L{stop}, every other method fails with C{RuntimeError}. Rows
    survive a stop and a new start.
    """

    def __init__(self, utcnow: Optional[Callable[[], datetime.datetime]] = None) -> None:
        """
        @param utcnow: returns the current time, naive UTC or aware (it is
            converted); default: the system clock.
        """
        self._utcnow = utcnow if utcnow is not None else rules.default_utcnow
        self._rows: Dict[int, ServiceRecord] = {}
        self._last_id = 0
        self._running = False

    def _now(self) -> datetime.datetime:
        return rules.naive_utc(self._utcnow())

    def _run(self, operation: Callable[..., object], *args: object, **kwargs: object) -> Deferred:
        if not self._running:
            return fail(RuntimeError("the service store is not running; call start() first"))
        try:
            result = operation(*args, **kwargs)
        except Exception:
            return fail()
        return succeed(result)

    def start(self) -> Deferred:
        """
        See L{IServiceStore.start}.

        @return: a fired C{Deferred} (C{None}); it fails with C{RuntimeError}
            if the store is running already.
        """
        if self._running:
            return fail(RuntimeError("the service store is already running"))
        self._running = True
        return succeed(None)

    def stop(self) -> Deferred:
        """
        See L{IServiceStore.stop}. Stopping a stopped store does nothing.

        @return: a fired C{Deferred} (C{None}).
        """
        self._running = False
        return succeed(None)

    def _live(self, service_id: int) -> ServiceRecord:
        rules.check_service_id(service_id)
        record = self._rows.get(service_id)
        if record is None or record.deleted:
            raise ServiceNotFound(f"no live service with id {service_id}")
        return record

    def _check_unique(self, record: ServiceRecord) -> None:
        """
        Refuse C{record} where the SQL store's unique constraints would.
        """
        for other in self._rows.values():
            if (
                other.id == record.id
                or other.deleted != record.deleted
                or other.host != record.host
            ):
                continue
            if other.binary == record.binary:
                raise ServiceExists(
                    f"a service with host {record.host!r} and binary {record.binary!r} exists"
                )
            if record.topic is not None and other.topic == record.topic:
                raise ServiceExists(
                    f"a service with host {record.host!r} and topic {record.topic!r} exists"
                )

    def get_by_host_and_binary(self, host: str, binary: str) -> Deferred:
        """
        See L{IServiceStore.get_by_host_and_binary}.
        """

        def find() -> Optional[ServiceRecord]:
            rules.check_filters(host=host, binary=binary)
            for record in self._rows.values():
                if not record.deleted and record.host == host and record.binary == binary:
                    return record
            return None

        return self._run(find)

    def get(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.get}.
        """
        return self._run(self._live, service_id)

    def create(
        self,
        host: str,
        binary: str,
        topic: Optional[str],
        version: int = 0,
        disabled: bool = False,
        disabled_reason: Optional[str] = None,
    ) -> Deferred:
        """
        See L{IServiceStore.create}. Bad arguments fail the C{Deferred} with
        C{TypeError} or C{ValueError} (L{rules.check_create}).
        """

        def create() -> ServiceRecord:
            values = rules.check_create(host, binary, topic, version, disabled, disabled_reason)
            record = ServiceRecord(
                id=self._last_id + 1,
                uuid=str(uuid.uuid4()),
                created_at=self._now(),
                **values,
            )
            self._check_unique(record)
            self._last_id = record.id
            self._rows[record.id] = record
            return record

        return self._run(create)

    def update(self, service_id: int, **values: object) -> Deferred:
        """
        See L{IServiceStore.update}. Bad values fail the C{Deferred} with
        C{TypeError} or C{ValueError} (L{rules.check_update}); a change of
        C{topic} onto another live service's topic on the same host fails it
        with L{ServiceExists}.
        """

        def update() -> ServiceRecord:
            changes = rules.check_update(values)
            record = attrs.evolve(self._live(service_id), updated_at=self._now(), **changes)
            self._check_unique(record)
            self._rows[record.id] = record
            return record

        return self._run(update)

    def report_state(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.report_state}: C{report_count} + 1, and
        C{last_seen_up} and C{updated_at} set to now.
        """

        def report() -> ServiceRecord:
            record = self._live(service_id)
            now = self._now()
            record = attrs.evolve(
                record, report_count=record.report_count + 1, last_seen_up=now, updated_at=now
            )
            self._rows[record.id] = record
            return record

        return self._run(report)

    def destroy(self, service_id: int) -> Deferred:
        """
        See L{IServiceStore.destroy}. C{updated_at} is left as it was (as
        oslo.db's soft delete).
        """

        def destroy() -> None:
            record = self._live(service_id)
            self._rows[record.id] = attrs.evolve(record, deleted=record.id, deleted_at=self._now())

        return self._run(destroy)

    def list_services(
        self,
        host: Optional[str] = None,
        binary: Optional[str] = None,
        topic: Optional[str] = None,
        include_deleted: bool = False,
    ) -> Deferred:
        """
        See L{IServiceStore.list_services}.
        """

        def select() -> List[ServiceRecord]:
            wanted = rules.check_filters(host=host, binary=binary, topic=topic)
            return [
                record
                for _, record in sorted(self._rows.items())
                if (include_deleted or not record.deleted)
                and all(getattr(record, name) == value for name, value in wanted.items())
            ]

        return self._run(select)

    def ping(self) -> Deferred:
        """
        See L{IServiceStore.ping}: fires at once while running.
        """
        return self._run(lambda: None)
