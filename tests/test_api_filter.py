"""
Tests for L{novasvc.api.filter} and the filter chain L{build_site} makes
from C{api.filters} (paste-deploy's idea without paste).
"""

from typing import Any

from twisted.internet import task
from twisted.trial import unittest
from twisted.web.resource import Resource

from novasvc.api.context import APIContext
from novasvc.api.filter import FilterResource
from novasvc.api.site import build_site
from novasvc.config import Config
from novasvc.config.api import APIConfig
from novasvc.db.memory import MemoryServiceStore
from novasvc.exceptions import ConfigError
from novasvc.transport.memory import MemoryTransport
from tests._api import start_api


class _Mark(FilterResource):
    def __init__(self, wrapped: Any, mark: bytes) -> None:
        FilterResource.__init__(self, wrapped)
        self.mark = mark

    def filter(self, request: Any) -> Any:
        if request.getHeader(b"x-stop") == self.mark:
            request.setResponseCode(418)
            return b"stopped by " + self.mark
        seen = request.responseHeaders.getRawHeaders(b"x-order", [b""])[0]
        request.setHeader(b"X-Order", seen + self.mark)
        return self.pass_on(request)


def first_filter(resource: Any, context: APIContext) -> Any:
    return _Mark(resource, b"1")


def second_filter(resource: Any, context: APIContext) -> Any:
    return _Mark(resource, b"2")


class _Leaf(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"leaf " + b"/".join(request.prepath)


def tree_app(context: APIContext) -> Any:
    root = Resource()
    child = Resource()
    root.putChild(b"a", child)
    child.putChild(b"b", _Leaf())
    return root


def not_a_resource(*args: Any) -> Any:
    return 42


class ChainTests(unittest.TestCase):
    """
    Filters wrap the application in order.
    """

    async def live(self, filters: tuple):
        return await start_api(self, api=APIConfig(app=f"{__name__}.tree_app", filters=filters))

    async def test_order(self) -> None:
        """
        When two filters are configured, then the first listed sees the
        request first, and the application is reached by path through the
        resource tree behind them.
        """
        live = await self.live((f"{__name__}.first_filter", f"{__name__}.second_filter"))
        response = await live.request("GET", "/a/b")
        self.assertEqual((response.code, response.body, response.headers["x-order"]),
                         (200, b"leaf a/b", "12"))

    async def test_answer_itself(self) -> None:
        """
        When a filter answers the request itself, then the filters and the
        application behind it are not reached.
        """
        live = await self.live((f"{__name__}.first_filter", f"{__name__}.second_filter"))
        response = await live.request("GET", "/a/b", headers={"X-Stop": "2"})
        self.assertEqual((response.code, response.body, response.headers["x-order"]),
                         (418, b"stopped by 2", "1"))
        response = await live.request("GET", "/a/b", headers={"X-Stop": "1"})
        self.assertEqual((response.code, response.body), (418, b"stopped by 1"))
        self.assertNotIn("x-order", response.headers)

    async def test_no_filters(self) -> None:
        """
        When no filter is configured, then the application is served as it
        is.
        """
        live = await self.live(())
        self.assertEqual((await live.request("GET", "/a/b")).body, b"leaf a/b")


class BuildTests(unittest.SynchronousTestCase):
    """
    L{build_site} refuses what it cannot load.
    """

    def build(self, **api: Any):
        clock = task.Clock()
        config = Config(api=APIConfig(**api))
        return build_site(APIContext.create(config, MemoryServiceStore(),
                                            MemoryTransport(clock=clock), clock))

    def test_app_missing(self) -> None:
        """
        When the application cannot be imported, then C{ConfigError} names
        C{api.app} and the path.
        """
        error = self.assertRaises(ConfigError, self.build, app="no.such.module.app")
        self.assertTrue(str(error).startswith("api.app: "), str(error))
        self.assertIn("no.such.module", str(error))

    def test_filter_not_resource(self) -> None:
        """
        When a filter returns something that is not a resource, then
        C{ConfigError} names its place in C{api.filters}.
        """
        error = self.assertRaises(ConfigError, self.build,
                                  filters=("novasvc.api.auth.auth_filter",
                                           f"{__name__}.not_a_resource"))
        self.assertEqual(str(error), f"api.filters[1]: {__name__}.not_a_resource returned int, "
                                     "not an IResource")
