"""
Tests for L{novasvc.rpc._reporting}: how an RPC server logs the requests
that failed, over the in-memory transport with a L{task.Clock}.
"""

import json

from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc import wire
from tests.test_rpc_server import Manager, _Harness, _raise


class RequestTooLarge(Exception):
    """
    An application error that is not a builtin.
    """


class ErrorTests(_Harness, SynchronousTestCase):
    """
    Exceptions in methods.
    """

    def test_cast_exception_logged(self) -> None:
        """
        When a cast raises, then the exception is logged with the request
        id of its context, the message is acknowledged and the server goes
        on.
        """
        _, _, transport = self.make_server()
        self.successResultOf(self.client.cast(RequestContext(request_id="req-cast"), "fail"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        [error] = self.events(LogLevel.error)
        self.assertEqual(formatEvent(error), "Exception during message handling: cast 'fail' from routing key "
                                             "'svc' (request req-cast)")
        self.assertEqual(self.unacked(transport, "svc"), 0)
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value=1))["value"], 1)

    def test_call_exception_replied(self) -> None:
        """
        When a call raises, then the caller gets the error and nothing is
        logged as an error.
        """
        self.make_server()
        failure = self.failureResultOf(self.client.call({}, "fail"), ValueError)
        self.assertTrue(str(failure.value).startswith("it failed"))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_call_failure_logged_once(self) -> None:
        """
        When a called method raises, then one WARNING names the method, the
        error class and message, the msg_id and the request id, the
        traceback is logged at DEBUG only, and nothing counts as an error.
        """
        self.make_server()
        self.failureResultOf(self.client.call({"request_id": "req-42"}, "fail"), ValueError)
        [warning] = self.events(LogLevel.warn)
        text = formatEvent(warning)
        self.assertRegex(text, r"^RPC call 'fail' failed with ValueError: it failed \(msg_id [0-9a-f]{32}, "
                               r"request req-42\)$")
        [debug] = self.events(LogLevel.debug)
        self.assertIn("Traceback", formatEvent(debug))
        self.assertIn("it failed", formatEvent(debug))
        self.assertEqual(self.events(LogLevel.error) + self.events(LogLevel.info), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_call_failure_request_context(self) -> None:
        """
        When a method called with a L{RequestContext} raises, then the
        WARNING line gives that context's request id.
        """
        self.make_server()
        ctxt = RequestContext("u", "p")
        self.failureResultOf(self.client.call(ctxt, "fail"), ValueError)
        [warning] = self.events(LogLevel.warn)
        self.assertTrue(formatEvent(warning).endswith(f"request {ctxt.request_id})"), formatEvent(warning))

    def test_call_failure_class_path(self) -> None:
        """
        When a called method raises an exception that is not a builtin,
        then the warning gives its module and class name.
        """
        manager = Manager("host1")
        manager.fail = lambda ctxt: _raise(RequestTooLarge("no room"))  # type: ignore[method-assign]
        self.make_server(manager=manager)
        self.failureResultOf(self.client.call({}, "fail"))
        [warning] = self.events(LogLevel.warn)
        self.assertIn("failed with tests.test_rpc_reporting.RequestTooLarge: no room", formatEvent(warning))

    def test_client_values_clipped(self) -> None:
        """
        When a call names a method of 100,000 characters and a request id of
        as many, then the warning shows 200 of each and says how long they
        were, and the DEBUG traceback stays short too.
        """
        self.make_server()
        huge = "m" * 100_000
        self.failureResultOf(self.client.call({"request_id": "r" * 100_000}, huge))
        [warning] = self.events(LogLevel.warn)
        text = formatEvent(warning)
        self.assertLess(len(text), 1000)
        self.assertIn("m" * 200 + "... (100000 characters)", text)
        self.assertIn("r" * 200 + "... (100000 characters)", text)
        self.assertNotIn("m" * 201, text)
        [debug] = self.events(LogLevel.debug)
        self.assertLess(len(formatEvent(debug)), 5000)

    def test_refused_cast(self) -> None:
        """
        When a cast names a missing method of 100,000 characters, then one
        WARNING line without a traceback names the error, with the name cut
        to 200 characters, and nothing is logged as an error.
        """
        self.make_server()
        self.successResultOf(self.client.cast({"request_id": "req-refused"}, "c" * 100_000))
        [warning] = self.events(LogLevel.warn)
        text = formatEvent(warning)
        self.assertNotIn("log_failure", warning)
        self.assertTrue(text.endswith("(request req-refused)"), text)
        self.assertIn("c" * 200 + "... (100000 characters)", text)
        self.assertIn("refused: novasvc.rpc.errors.NoSuchMethod", text)
        self.assertLess(len(text), 1000)
        self.assertEqual(self.events(LogLevel.error) + self.events(LogLevel.debug), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_refused_cast_kinds(self) -> None:
        """
        When casts name a private method, a lifecycle hook or an unsupported
        version, then each is one WARNING line without a traceback.
        """
        self.make_server()
        self.successResultOf(self.client.cast({}, "_private"))
        self.successResultOf(self.client.cast({}, "init_host"))
        self.successResultOf(self.client.prepare(version="9.0").cast({}, "note", value=1))
        warnings = self.events(LogLevel.warn)
        self.assertEqual(len(warnings), 3)
        self.assertIn("UnsupportedVersion", formatEvent(warnings[2]))
        self.assertFalse(any("log_failure" in event for event in warnings))
        self.assertEqual(self.events(LogLevel.error), [])

    def test_refused_call_reply_short(self) -> None:
        """
        When a call names a missing method of a megabyte, then its error
        reply and its WARNING line stay short (under 4 KiB and 1,000
        characters).
        """
        self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_request("m" * 1_000_000, {"v" * 1_000_000: 1}, {}, msg_id="m1",
                                         reply_q="reply_test"))
        [reply] = replies
        self.assertEqual(json.loads(reply.failure)["class"], "NoSuchMethod")
        self.assertLess(len(reply.failure), 4096)
        [warning] = self.events(LogLevel.warn)
        self.assertLess(len(formatEvent(warning)), 1000)

    def test_success_not_logged(self) -> None:
        """
        When calls and casts succeed, then the server logs nothing at all.
        """
        self.make_server()
        self.successResultOf(self.client.call({}, "echo", value=1))
        self.successResultOf(self.client.cast({}, "note", value=2))
        self.assertEqual([e for e in self.log if e.get("log_namespace", "").startswith("novasvc.rpc")], [])

    def test_ignore_errors(self) -> None:
        """
        When a cast names a missing method ending in _ignore_errors, then
        nothing is logged as an error.
        """
        self.make_server()
        self.successResultOf(self.client.cast({}, "missing_ignore_errors"))
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.events(LogLevel.error), [])

    def test_unencodable_result(self) -> None:
        """
        When a call's result cannot be encoded, then the caller gets a
        TypeError.
        """
        server, _, _ = self.make_server()
        failure = self.failureResultOf(self.client.call({}, "unencodable"), TypeError)
        self.assertIn("not JSON serializable", str(failure.value))
        self.assertEqual(server.inflight, 0)
