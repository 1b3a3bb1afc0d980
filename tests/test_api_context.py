"""
Tests for L{novasvc.api.context}.
"""

from typing import List

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from novasvc.api.context import APIContext, Principal, request_context, request_info
from novasvc.config import Config
from novasvc.db.memory import MemoryServiceStore
from novasvc.transport.memory import MemoryTransport


def _request() -> Request:
    channel = DummyChannel()
    channel.site = type("Site", (), {"_parsePOSTFormSubmission": False})()
    return Request(channel)


class APIContextTests(SynchronousTestCase):
    """
    L{APIContext}.
    """

    def make(self, **config) -> APIContext:
        clock = task.Clock()
        return APIContext.create(Config(**config), MemoryServiceStore(),
                                 MemoryTransport(clock=clock), clock)

    def test_service_down_time(self) -> None:
        """
        When the context is made from a configuration, then its service down
        time is the one a service uses (Nova's 2.5 x report_interval when
        too short).
        """
        self.assertEqual(self.make(service_down_time=90).service_down_time, 90)
        self.assertEqual(self.make(report_interval=40, service_down_time=30).service_down_time, 100)

    def test_stoppers(self) -> None:
        """
        When the context stops, then the stoppers run, the last given first,
        a failing one is logged and the others still run, and each runs
        once.
        """
        context = self.make()
        ran: List[str] = []
        context.on_stop(lambda: ran.append("first"))
        context.on_stop(lambda: 1 / 0)
        context.on_stop(lambda: defer.succeed(ran.append("third")))
        self.assertIsNone(self.successResultOf(context.stop()))
        self.assertEqual(ran, ["third", "first"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.successResultOf(context.stop())
        self.assertEqual(ran, ["third", "first"])


class RequestContextTests(SynchronousTestCase):
    """
    L{request_info} and L{request_context}.
    """

    def test_info_made_once(self) -> None:
        """
        When a request's info is asked for, then it is made once with a
        C{req-} id and no principal.
        """
        request = _request()
        info = request_info(request)
        self.assertTrue(info.request_id.startswith("req-"))
        self.assertIsNone(info.principal)
        self.assertIs(request_info(request), info)

    def test_context(self) -> None:
        """
        When the RPC context of a request is made, then it carries the
        request id, the principal's name, role and admin flag, and the
        client's address.
        """
        request = _request()
        info = request_info(request)
        info.request_id = "req-1"
        info.principal = Principal("ops", "admin")
        context = request_context(request)
        self.assertEqual((context.request_id, context.user_id, context.is_admin, context.roles,
                          context.remote_address), ("req-1", "ops", True, ["admin"], "192.168.1.1"))
        info.principal = Principal("dash", "reader")
        context = request_context(request)
        self.assertEqual((context.user_id, context.is_admin, context.roles),
                         ("dash", False, ["reader"]))
        info.principal = None
        context = request_context(request)
        self.assertEqual((context.user_id, context.is_admin, context.roles), (None, False, []))
