"""
Tests for L{novasvc.rpc.errors}.
"""

import pickle

from twisted.trial.unittest import SynchronousTestCase

from novasvc.exceptions import NovaSvcError
from novasvc.rpc import errors
from novasvc.rpc.errors import (
    InvalidTarget,
    MalformedMessage,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    RPCError,
    RPCVersionCapError,
    UnsupportedVersion,
)
from novasvc.rpc.target import Target

_SAMPLES = [
    MessagingTimeout(topic="compute", server="h1", method="echo", msg_id="abc", elapsed=1.5),
    RemoteError("ValueError", "bad", ["Traceback:\n", "ValueError: bad\n"]),
    NoSuchMethod("frob"),
    UnsupportedVersion("3.0", "frob"),
    InvalidTarget("a call needs a topic", Target()),
    RPCVersionCapError("2.6", "2.5"),
    MalformedMessage("args is a list"),
    RPCError("plain"),
]


class RPCErrorTests(SynchronousTestCase):
    """
    The errors share a base and rebuild from their C{kwargs}.
    """

    def test_hierarchy(self) -> None:
        """
        When any RPC error is checked, then it is an RPCError and a
        NovaSvcError; InvalidTarget is also a ValueError, as oslo's.
        """
        for error in _SAMPLES:
            self.assertIsInstance(error, RPCError)
            self.assertIsInstance(error, NovaSvcError)
        self.assertIsInstance(InvalidTarget("x"), ValueError)

    def test_rebuild_from_kwargs(self) -> None:
        """
        When an error is rebuilt as cls(**kwargs) (what a client does with an
        allowed remote exception), then it has the same text.
        """
        for error in _SAMPLES:
            rebuilt = type(error)(**error.kwargs)
            self.assertEqual(str(rebuilt), str(error))
            self.assertEqual(rebuilt.args, ())

    def test_pickle(self) -> None:
        """
        When an error is pickled and unpickled, then its class and text are
        kept.
        """
        for error in _SAMPLES:
            copy = pickle.loads(pickle.dumps(error))
            self.assertIs(type(copy), type(error))
            self.assertEqual(str(copy), str(error))

    def test_repr(self) -> None:
        """
        When an error is repr()'d, then it shows its class and fields.
        """
        self.assertEqual(repr(NoSuchMethod("frob")), "NoSuchMethod(method='frob')")

    def test_all(self) -> None:
        """
        When the module's __all__ is read, then it lists every error class.
        """
        self.assertEqual(
            sorted(errors.__all__),
            sorted(["RPCError", "MessagingTimeout", "RemoteError", "NoSuchMethod", "UnsupportedVersion",
                    "InvalidTarget", "RPCVersionCapError", "MalformedMessage"]),
        )


class MessagingTimeoutTests(SynchronousTestCase):
    """
    L{MessagingTimeout} says what timed out.
    """

    def test_text(self) -> None:
        """
        When a MessagingTimeout is shown, then it starts with oslo's text and
        names the method, topic, server, msg_id and elapsed seconds.
        """
        text = str(MessagingTimeout(topic="compute", server="h1", method="echo", msg_id="abc", elapsed=1.5))
        self.assertTrue(text.startswith("Timed out waiting for a reply to message ID abc"), text)
        for part in ("'echo'", "'compute'", "'h1'", "1.500 s"):
            self.assertIn(part, text)

    def test_any_server(self) -> None:
        """
        When the call went to the topic (no server), then the text says any
        server.
        """
        self.assertIn("any server", str(MessagingTimeout(topic="compute", msg_id="x")))

    def test_fields(self) -> None:
        """
        When a MessagingTimeout is made, then its fields are attributes.
        """
        error = MessagingTimeout(topic="t", server="s", method="m", msg_id="i", elapsed=2.0)
        self.assertEqual((error.topic, error.server, error.method, error.msg_id, error.elapsed),
                         ("t", "s", "m", "i", 2.0))

    def test_message_override(self) -> None:
        """
        When a message is given, then it is the text.
        """
        self.assertEqual(str(MessagingTimeout("custom")), "custom")


class RemoteErrorTests(SynchronousTestCase):
    """
    L{RemoteError} reads like oslo's.
    """

    def test_text(self) -> None:
        """
        When a RemoteError is shown, then it starts "Remote error: <class>
        <message>" and continues with the remote traceback.
        """
        error = RemoteError("ProbeError", "it broke", ["Traceback (most recent call last):\n", "ProbeError: x\n"])
        text = str(error)
        self.assertTrue(text.startswith("Remote error: ProbeError it broke\n"), text)
        self.assertIn("Traceback (most recent call last):", text)

    def test_no_traceback(self) -> None:
        """
        When there is no traceback, then the text is the first line only.
        """
        self.assertEqual(str(RemoteError("E", "m")), "Remote error: E m")

    def test_fields(self) -> None:
        """
        When a RemoteError is made, then exc_type, value and traceback are
        attributes.
        """
        error = RemoteError("E", "m", ("a\n",))
        self.assertEqual((error.exc_type, error.value, error.traceback), ("E", "m", ["a\n"]))


class OtherErrorTests(SynchronousTestCase):
    """
    The dispatcher's and client's errors.
    """

    def test_no_such_method(self) -> None:
        """
        When NoSuchMethod is shown, then it names the method as oslo does.
        """
        self.assertEqual(str(NoSuchMethod("frob")), "Endpoint does not support RPC method frob")

    def test_unsupported_version(self) -> None:
        """
        When UnsupportedVersion is shown, then it names the version and the
        method as oslo does.
        """
        self.assertEqual(str(UnsupportedVersion("3.0", "frob")),
                         "Endpoint does not support RPC version 3.0. Attempted method: frob")

    def test_invalid_target(self) -> None:
        """
        When InvalidTarget is made with a target, then the text shows it and
        the target is kept.
        """
        target = Target(topic="t", fanout=True)
        error = InvalidTarget("a call cannot go to a fanout target", target)
        self.assertIn("fanout=True", str(error))
        self.assertIs(error.target, target)

    def test_version_cap(self) -> None:
        """
        When RPCVersionCapError is shown, then it names the version and the
        cap.
        """
        text = str(RPCVersionCapError("2.6", "2.5"))
        self.assertIn("2.6", text)
        self.assertIn("2.5", text)

    def test_malformed(self) -> None:
        """
        When MalformedMessage is made, then its text gives the reason and the
        reply address is unset.
        """
        error = MalformedMessage("no method")
        self.assertEqual(str(error), "Malformed RPC message: no method")
        self.assertEqual((error.reason, error.msg_id, error.reply_q), ("no method", None, None))
