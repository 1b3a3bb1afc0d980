"""
Tests for L{novasvc.process.workers._relay}.
"""

import io
import json
from typing import Any, Dict, List

from twisted.logger import LogLevel, Logger, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from novasvc.process.log import file_observer
from novasvc.process.workers._relay import ERROR_LIMIT, OutputRelay


def _json_lines(emit) -> bytes:
    """
    @param emit: called with a L{Logger} writing to a JSON observer.
    @return: the lines written, as a worker writes them.
    """
    out = io.StringIO()
    emit(Logger(namespace="novasvc.core.service", observer=file_observer(out, "json")))
    return out.getvalue().encode("utf-8")


class RelayTests(SynchronousTestCase):
    """
    L{OutputRelay} turns a worker's lines into events naming the worker.
    """

    def setUp(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.relay = OutputRelay(2, self.events.append)
        self.relay.pid = 4242

    def test_json_event(self) -> None:
        """
        When the worker writes a JSON log event, then the parent's event
        has its level, namespace, time and text, and a system naming the
        worker.
        """
        data = _json_lines(lambda log: log.warn("disk {name} full", name="sda"))
        self.relay.feed(1, data)
        [event] = self.events
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual(event["log_namespace"], "novasvc.core.service")
        self.assertEqual(event["log_system"], "worker-2 novasvc.core.service#warn")
        self.assertEqual(formatEvent(event), "disk sda full")
        self.assertEqual((event["worker"], event["worker_pid"]), (2, 4242))
        self.assertEqual(event["log_time"], json.loads(data)["log_time"])
        self.assertIsNone(self.relay.last_error)

    def test_pieces(self) -> None:
        """
        When a line arrives in pieces, then it is logged once, whole, when
        its newline arrives.
        """
        data = _json_lines(lambda log: log.info("ready"))
        self.relay.feed(1, data[:10])
        self.assertEqual(self.events, [])
        self.relay.feed(1, data[10:])
        self.assertEqual([formatEvent(e) for e in self.events], ["ready"])

    def test_text_lines(self) -> None:
        """
        When the worker writes lines that are not events, then each is
        logged as text: standard output at info, standard error at warn,
        the system saying which.
        """
        self.relay.feed(1, b"plain\n{not json\n")
        self.relay.feed(2, b"Traceback (most recent call last):\n")
        self.assertEqual([(formatEvent(e), e["log_level"], e["log_system"]) for e in self.events], [
            ("plain", LogLevel.info, "worker-2 stdout"),
            ("{not json", LogLevel.info, "worker-2 stdout"),
            ("Traceback (most recent call last):", LogLevel.warn, "worker-2 stderr"),
        ])

    def test_last_error_from_stderr(self) -> None:
        """
        When the worker's last words are on standard error (twistd's
        message for a start-up error), then they are its last error.
        """
        self.relay.feed(2, b"novasvc: error: cannot import 'no.such.Manager'\n")
        self.assertEqual(self.relay.last_error, "novasvc: error: cannot import 'no.such.Manager'")

    def test_last_error_from_event(self) -> None:
        """
        When the worker logs an error with a traceback, then its last error
        is the first line of that event's text.
        """
        def emit(log: Logger) -> None:
            try:
                1 / 0
            except ZeroDivisionError:
                log.failure("The service failed to start", Failure())

        self.relay.feed(1, _json_lines(emit))
        self.assertEqual(self.relay.last_error, "The service failed to start")
        self.assertIn("ZeroDivisionError", formatEvent(self.events[0]))

    def test_long_error_clipped(self) -> None:
        """
        When the last error is long, then it is kept clipped.
        """
        self.relay.feed(2, b"x" * 1000 + b"\n")
        self.assertEqual(self.relay.last_error, "x" * ERROR_LIMIT + "... (1000 characters)")

    def test_flush(self) -> None:
        """
        When the worker ends without a final newline, then L{flush} logs
        what is left.
        """
        self.relay.feed(2, b"Killed")
        self.assertEqual(self.events, [])
        self.relay.flush()
        self.assertEqual([formatEvent(e) for e in self.events], ["Killed"])

    def test_overlong_line_cut(self) -> None:
        """
        When a line is longer than the limit, then it is logged in pieces,
        and the buffer stays bounded.
        """
        relay = OutputRelay(1, self.events.append, limit=10)
        relay.feed(1, b"a" * 25)
        self.assertEqual([formatEvent(e) for e in self.events], ["a" * 10, "a" * 10])
        relay.flush()
        self.assertEqual(formatEvent(self.events[-1]), "a" * 5)

    def test_blank_and_odd(self) -> None:
        """
        When the worker writes blank lines, bytes that are not UTF-8, or a
        JSON event with strange fields, then nothing breaks: blank lines
        are dropped, bad bytes replaced, missing fields defaulted.
        """
        self.relay.feed(1, b"\n  \n\xff\xfeok\n")
        self.relay.feed(1, json.dumps({"log_level": {"name": "nonsense"}, "log_namespace": 3,
                                       "log_time": "x", "log_format": "hi"}).encode() + b"\n")
        texts = [formatEvent(e) for e in self.events]
        self.assertEqual(texts[0], "\ufffd\ufffdok")
        self.assertEqual(texts[1], "hi")
        self.assertEqual(self.events[1]["log_level"], LogLevel.info)
        self.assertEqual(self.events[1]["log_namespace"], "novasvc.process.workers")


class ParentFormatTests(SynchronousTestCase):
    """
    The relayed events are written in the parent's own format.
    """

    def test_json_parent(self) -> None:
        """
        When the parent logs JSON, then a worker's line is one JSON object
        with the worker's text, namespace and index.
        """
        out = io.StringIO()
        relay = OutputRelay(3, file_observer(out, "json"))
        relay.feed(1, _json_lines(lambda log: log.info("ready on {host}", host="h1")))
        line = json.loads(out.getvalue())
        self.assertEqual((line["log_text"], line["log_namespace"], line["worker"]), ("ready on h1", "novasvc.core.service", 3))

    def test_text_parent(self) -> None:
        """
        When the parent logs text, then a worker's line names the worker.
        """
        out = io.StringIO()
        relay = OutputRelay(3, file_observer(out, "text"))
        relay.feed(1, _json_lines(lambda log: log.info("ready")))
        self.assertTrue(out.getvalue().endswith(" [worker-3 novasvc.core.service#info] ready\n"), out.getvalue())
