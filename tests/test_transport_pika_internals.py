"""
Tests for L{novasvc.transport.pika._internals}: the check deciding between
the fast path and pika's public API, and what the transport makes of it
(what the path changes on a real broker is in L{tests.test_transport_amqp}).
"""

import configparser
import os
import re
from typing import Any, List
from unittest import mock

import pika
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest

from novasvc.exceptions import TransportError
from novasvc.transport.pika import _internals as _pika_internals
from novasvc.transport.amqp._frames import FrameReader, FrameWriter
from novasvc.transport.pika._internals import (
    ENVIRONMENT_VARIABLE,
    PIN,
    Verdict,
    _probe,
    check,
    connection_of,
    verdict,
)
from novasvc.transport import AMQPTransport
from novasvc.transport.url import TransportURL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL = TransportURL.parse("rabbit://guest:guest@127.0.0.1:5672/")


def protocol_without(name: str) -> Any:
    """
    @return: pika's Twisted protocol (never connected) whose connection
        lacks C{name} (an attribute, or a method set to C{None}).
    """
    protocol = _probe()
    connection = connection_of(protocol)
    if name in vars(connection):
        delattr(connection, name)
    else:
        setattr(connection, name, None)
    return protocol


class CheckTests(unittest.SynchronousTestCase):
    """
    L{check} says why the fast path may not be used, or C{None}.
    """

    def test_installed_pika(self) -> None:
        """
        When the installed pika is checked with no environment variable,
        then the fast path may be used (the installed pika is in the pin, and
        its frames are the writer's).
        """
        self.assertIsNone(check(environ={}))

    def test_environment_variable(self) -> None:
        """
        When NOVASVC_PIKA_FAST_PATH is 0 (or false, no, off, in any case),
        then the reason names it; when it is 1, true, yes, on or empty, then
        there is none; any other value is a reason too, shown clipped.
        """
        for value in ("0", "false", " OFF ", "no"):
            self.assertEqual(check(environ={ENVIRONMENT_VARIABLE: value}), f"{ENVIRONMENT_VARIABLE}={value}")
        for value in ("1", "TRUE", "yes", "on", ""):
            self.assertIsNone(check(environ={ENVIRONMENT_VARIABLE: value}), value)
        reason = check(environ={ENVIRONMENT_VARIABLE: "maybe" * 100})
        self.assertIn("is neither 0 nor 1", reason)
        self.assertIn("(500 characters)", reason)

    def test_version_outside_pin(self) -> None:
        """
        When pika's version is before 1.3.0, 1.4.0, from 1.4.5 on, or not a
        plain release, then the reason gives the version and the pin; the
        ends of the verified range pass.
        """
        for version in ("1.2.1", "1.4.0", "1.4.5", "2.0.0", "1.4.4b1", "1.4.4.post1", "unknown"):
            self.assertEqual(check(version=version, environ={}),
                             f"pika {version} is not a release the fast path was verified with ({PIN})")
        for version in ("1.3.0", "1.3.2", "1.4.1", "1.4.4"):
            self.assertIsNone(check(version=version, environ={}), version)
        self.assertEqual(PIN, ">=1.3.0,!=1.4.0,<1.4.5")

    def test_setup_pins_the_same(self) -> None:
        """
        When setup.py is read, then its pika requirement is the check's pin,
        so pip installs only releases the fast path takes.
        """
        with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
            requirements = re.findall(r'"pika([^"]*)"', f.read())
        self.assertEqual(requirements, [PIN])

    def test_tox_runs_the_public_path(self) -> None:
        """
        When tox.ini is read, then plain C{tox} (CI) runs the pika-fallback
        environment, which sets NOVASVC_PIKA_FAST_PATH=0 and runs the AMQP
        transport's contract and the RPC suites that publish and ack
        through pika against the broker.
        """
        tox = configparser.ConfigParser(interpolation=None)
        tox.read(os.path.join(ROOT, "tox.ini"), encoding="utf-8")
        self.assertIn("pika-fallback", [env.strip() for env in tox["tox"]["envlist"].split(",")])
        section = tox["testenv:pika-fallback"]
        self.assertIn(f"{ENVIRONMENT_VARIABLE} = 0", section["setenv"].splitlines())
        for module in ("tests.test_transport_amqp", "tests.test_rpc_interop", "tests.test_rpc_reply_waiter"):
            self.assertIn(module, section["commands"])

    def test_missing_internal(self) -> None:
        """
        When pika's connection lacks a counter or its parameters' frame size,
        then the reason names what is missing.
        """
        self.assertEqual(check(protocol_without("bytes_sent"), environ={}),
                         "pika's Connection has no integer bytes_sent counter")
        self.assertEqual(check(protocol_without("frames_sent"), environ={}),
                         "pika's Connection has no integer frames_sent counter")
        self.assertEqual(check(protocol_without("params"), environ={}),
                         "pika's Connection has no integer params.frame_max")
        self.assertEqual(check(protocol_without("bytes_received"), environ={}),
                         "pika's Connection has no integer bytes_received counter")
        self.assertEqual(check(protocol_without("data_received"), environ={}),
                         "pika's Connection has no data_received")
        self.assertIsNone(check(_probe(), environ={}))

    def test_frames_differ(self) -> None:
        """
        When the writer's frames are not pika's (for a publish, or for acks),
        then the reason says which.
        """

        class PublishDiffers(FrameWriter):
            def frames(self, *args: Any) -> Any:
                data, count = super().frames(*args)
                return data + b"\0", count

        class AckDiffers(FrameWriter):
            def acks(self, delivery_tags: Any, multiple: bool = False) -> None:
                super().acks(delivery_tags, not multiple)

        self.patch(_pika_internals, "FrameWriter", PublishDiffers)
        self.assertEqual(check(environ={}), f"the frames of basic.publish differ from pika {pika.__version__}'s own")
        self.patch(_pika_internals, "FrameWriter", AckDiffers)
        self.assertEqual(check(environ={}), f"the frames of basic.ack differ from pika {pika.__version__}'s own")

    def test_reading_differs(self) -> None:
        """
        When the reader hands out other deliveries or confirms than pika's
        decoder reads, or passes pika other frames than those it does not
        handle, then the reason says which.
        """

        class DeliveryDiffers(FrameReader):
            def consume(self, channel_number: int, consumer_tag: str, handle: Any) -> None:
                super().consume(channel_number, consumer_tag, lambda tag, *rest: handle(tag + 1, *rest))

        class PassesTooMuch(FrameReader):
            def confirm(self, channel_number: int, handle: Any) -> None:
                pass

        self.patch(_pika_internals, "FrameReader", DeliveryDiffers)
        self.assertEqual(check(environ={}),
                         f"deliveries or confirms read differ from pika {pika.__version__}'s decoding")
        self.patch(_pika_internals, "FrameReader", PassesTooMuch)
        self.assertEqual(check(environ={}),
                         f"deliveries or confirms read differ from pika {pika.__version__}'s decoding")

        class PassesOtherBytes(FrameReader):
            def __init__(self, connection: Any, pass_on: Any) -> None:
                super().__init__(connection, lambda data: pass_on(data + b"\0"))

        self.patch(_pika_internals, "FrameReader", PassesOtherBytes)
        self.assertEqual(check(environ={}),
                         f"the frames passed to pika {pika.__version__} differ from those it should read")

    def test_no_connection(self) -> None:
        """
        When pika's Twisted protocol has no connection under it, then
        TransportError names the pin: neither path can work.
        """
        error = self.assertRaises(TransportError, check, object(), environ={})
        self.assertIn(f"needs pika{PIN}", str(error))


class VerdictTests(unittest.SynchronousTestCase):
    """
    L{verdict} checks once per process and logs once; the transport shows
    the outcome.
    """

    def setUp(self) -> None:
        self.patch(_pika_internals, "_verdict", None)
        self.events: List[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def logged(self) -> List[tuple]:
        return [(event["log_level"], formatEvent(event)) for event in self.events
                if event.get("log_namespace") == _pika_internals.__name__]

    def test_fast_path(self) -> None:
        """
        When the check passes, then the transport's fast_path is true and
        nothing is logged.
        """
        with mock.patch.dict(os.environ, {ENVIRONMENT_VARIABLE: "1"}):
            transport = AMQPTransport(URL)
        self.assertTrue(transport.fast_path)
        self.assertEqual(verdict(), Verdict(True, None, pika.__version__))
        self.assertEqual(verdict().describe(), f"pika {pika.__version__}, fast path")
        self.assertEqual(self.logged(), [])

    def test_missing_internal_warns_once(self) -> None:
        """
        When pika's connection lacks an internal, then every transport of the
        process takes the public path and one warning names the reason.
        """
        self.patch(_pika_internals, "_probe", lambda: protocol_without("frames_sent"))
        with mock.patch.dict(os.environ, {ENVIRONMENT_VARIABLE: "1"}):
            transports = [AMQPTransport(URL), AMQPTransport(URL)]
        self.assertEqual([t.fast_path for t in transports], [False, False])
        self.assertEqual(self.logged(), [(
            LogLevel.warn,
            "AMQP transport: pika's Connection has no integer frames_sent counter; falling back to pika's "
            "public API (basic_publish, basic_ack) for this process",
        )])
        self.assertEqual(verdict().describe(),
                         f"pika {pika.__version__}, public API: pika's Connection has no integer frames_sent counter")

    def test_version_outside_pin_warns(self) -> None:
        """
        When pika's version is outside the pin, then the transport takes the
        public path and the warning gives the version.
        """
        self.patch(pika, "__version__", "1.5.0")
        with mock.patch.dict(os.environ, {ENVIRONMENT_VARIABLE: "1"}):
            transport = AMQPTransport(URL)
        self.assertFalse(transport.fast_path)
        [(level, text)] = self.logged()
        self.assertEqual(level, LogLevel.warn)
        self.assertIn(f"pika 1.5.0 is not a release the fast path was verified with ({PIN})", text)

    def test_environment_variable_informs(self) -> None:
        """
        When NOVASVC_PIKA_FAST_PATH=0, then the transport takes the public
        path and one INFO line (not a warning) says why.
        """
        with mock.patch.dict(os.environ, {ENVIRONMENT_VARIABLE: "0"}):
            transports = [AMQPTransport(URL), AMQPTransport(URL)]
        self.assertEqual([t.fast_path for t in transports], [False, False])
        self.assertEqual(self.logged(), [(
            LogLevel.info,
            "AMQP transport: NOVASVC_PIKA_FAST_PATH=0: pika's public API (basic_publish, basic_ack)",
        )])

    def test_unusable_pika_refused(self) -> None:
        """
        When pika's Twisted protocol has no connection under it, then making
        a transport fails with TransportError, every time.
        """
        self.patch(_pika_internals, "_probe", object)
        with mock.patch.dict(os.environ, {ENVIRONMENT_VARIABLE: "1"}):
            self.assertRaises(TransportError, AMQPTransport, URL)
            self.assertRaises(TransportError, AMQPTransport, URL)
