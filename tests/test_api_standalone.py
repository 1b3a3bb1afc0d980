"""
Tests for L{novasvc.api.standalone}: the API with a services table and a
broker connection of its own, in process.
"""

from typing import Any, List

import treq
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from novasvc.api.context import APIContext
from novasvc.api.service import APIService
from novasvc.api.standalone import StandaloneAPI
from novasvc.config import Config
from novasvc.db.memory import MemoryServiceStore
from novasvc.exceptions import ConfigError
from novasvc.transport.memory import MemoryTransport
from tests._api import capture_log


class _FlakyStore(MemoryServiceStore):
    """
    A memory store whose first starts fail.
    """

    def __init__(self, failures: List[Exception]) -> None:
        MemoryServiceStore.__init__(self)
        self.failures = failures

    def start(self) -> defer.Deferred:
        if self.failures:
            return defer.fail(self.failures.pop(0))
        return MemoryServiceStore.start(self)


class StandaloneTests(unittest.TestCase):
    """
    L{StandaloneAPI} in process.
    """

    async def start(self, store: Any, clock: Any) -> StandaloneAPI:
        transport = MemoryTransport(clock=reactor)
        context = APIContext.create(Config(), store, transport, reactor)
        api = APIService(context, listen="tcp:0:interface=127.0.0.1", reactor=reactor)
        standalone = StandaloneAPI(store, transport, api, clock)
        await standalone.startService()
        self.addCleanup(lambda: standalone.running and standalone.stopService())
        self.url = api.url
        return standalone

    async def health(self) -> Any:
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(self.url + "/healthz", pool=pool)
        return response.code, (await response.json())["checks"]["database"]

    async def test_database_later(self) -> None:
        """
        When the database cannot be opened at start-up, then the API serves
        anyway, /healthz says the database is down, and opening it is
        retried (1 s, then 2 s later) until it works.
        """
        log = capture_log(self)
        clock = task.Clock()
        store = _FlakyStore([OSError("refused"), OSError("refused again")])
        await self.start(store, clock)
        self.assertEqual(await self.health(),
                         (503, {"ok": False, "error": "the services table is not open"}))
        self.assertTrue([line for line in log if "Could not open the services table (attempt 1): "
                         "refused; retrying in 1 s" in line], log)
        clock.advance(1)
        self.assertEqual((await self.health())[0], 503)
        clock.advance(2)
        self.assertEqual(await self.health(), (200, {"ok": True}))
        self.assertIn("Recovered: opened the services table at attempt 3", log)

    async def test_permanent_error(self) -> None:
        """
        When the database is refused for good at start-up, then the start
        fails with that error.
        """
        store = _FlakyStore([ConfigError("database x cannot be used")])
        with self.assertRaises(ConfigError):
            await self.start(store, task.Clock())

    async def test_stop(self) -> None:
        """
        When the standalone API stops, then it stops listening and closes
        the store.
        """
        store = MemoryServiceStore()
        standalone = await self.start(store, task.Clock())
        await standalone.stopService()
        self.assertIsNone(standalone.api.port)
        with self.assertRaises(RuntimeError):
            await store.ping()
