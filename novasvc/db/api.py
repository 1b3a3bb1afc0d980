# -*- test-case-name: tests.test_db_api -*-
"""
L{Database}: the database API a manager gets as C{self.db} (the default
C{db_driver}), as Nova's managers get C{nova.db.api}: "managers should be
responsible for most of the db access".

A manager keeps its own tables with SQLAlchemy Core::

    volumes = sa.Table("volumes", metadata, sa.Column("id", sa.String(36), primary_key=True), ...)

    def init_host(self, service_ref):
        return self.db.create_tables(metadata)

    def create_volume(self, ctxt, size):
        return self.db.run(lambda conn: conn.execute(volumes.insert().values(...)))

Every statement runs in a bounded thread pool, never on the reactor thread.
On the service's SQL store the pool and the connections are the store's own;
otherwise (a service on the memory store, a test) the database named by
C{database.connection} is opened on first use.
"""

import sys
from typing import Any, Callable, List, Optional, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from novasvc.interfaces import IDatabaseAPI

__all__ = ["Database"]

_T = TypeVar("_T")


@implementer(IDatabaseAPI)
class Database:
    """
    The service's SQL database, for a manager's own tables.

    @ivar connection: the SQLAlchemy URL (C{str}) when this API opens its own
        connections, else C{None}.
    """

    def __init__(self, config: Optional[Any] = None, store: Optional[Any] = None,
                 reactor: Optional[Any] = None, connection: Optional[str] = None) -> None:
        """
        @param config: the service's L{novasvc.config.Config}; its
            C{database} section is used when there is no SQL C{store}.
        @param store: the service's store; when it is a
            L{novasvc.db.store.SQLServiceStore} its thread pool and
            connections are shared (and its owner starts and stops it).
        @param reactor: the reactor for the thread pool (default: the
            global one, when first needed).
        @param connection: an SQLAlchemy URL overriding the configuration's.
        """
        # Not imported for a memory store: it would load SQLAlchemy, which
        # is loaded on first use instead.
        store_module = sys.modules.get("novasvc.db.store")
        shares = store_module is not None and isinstance(store, store_module.SQLServiceStore)
        self._owned = not shares or connection is not None
        self.connection: Optional[str] = None
        self._store: Optional[Any] = None if self._owned else store
        self._reactor = reactor
        self._pool_size = 10
        if self._owned:
            database = getattr(config, "database", None)
            self.connection = connection or (database.connection if database else "sqlite://")
            if database is not None:
                self._pool_size = database.thread_pool_size
        self._started = not self._owned
        self._waiters: List[Deferred] = []

    def __repr__(self) -> str:
        if self._owned:
            from sqlalchemy.engine import make_url

            shown = make_url(self.connection).render_as_string(hide_password=True)
            return f"<Database {shown}>"
        return f"<Database sharing {self._store!r}>"

    def start(self) -> Deferred:
        """
        See L{IDatabaseAPI.start}: open the connections now rather than on
        first use (a shared store is started by its owner).

        @return: a C{Deferred} firing with C{None}, or failing with the
            database error.
        """
        if not self._owned:
            return succeed(None)
        if self._started:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._waiters.append(waiter)
        if self._store is None:
            from novasvc.db.store import SQLServiceStore

            self._store = SQLServiceStore(self.connection, reactor=self._reactor,
                                          thread_pool_size=self._pool_size)
            self._store.start().addBoth(self._start_done)
        return waiter

    def _start_done(self, result: Any) -> None:
        if isinstance(result, Failure):
            self._store = None  # the next call tries again
        else:
            self._started = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(result)

    def stop(self) -> Deferred:
        """
        See L{IDatabaseAPI.stop}.
        """
        if not self._owned or self._store is None:
            return succeed(None)
        store, self._store, self._started = self._store, None, False
        return store.stop()

    def run(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> "Deferred[_T]":
        """
        See L{IDatabaseAPI.run}.
        """
        d = self.start()
        d.addCallback(lambda _: self._store.run(_in_transaction, self._store.engine,
                                                work, args, kwargs))
        return d

    def create_tables(self, metadata: Any) -> Deferred:
        """
        See L{IDatabaseAPI.create_tables}.

        @param metadata: an SQLAlchemy C{MetaData}.
        """
        return self.run(lambda connection: metadata.create_all(connection))


def _in_transaction(engine: Any, work: Callable[..., _T], args: Any, kwargs: Any) -> _T:
    with engine.begin() as connection:
        return work(connection, *args, **kwargs)
