"""
Tests for L{novasvc.rpc._failures}.
"""

import json

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

# RequestContext: looked up by name in this module by test_rebuild_problems
# (a class that is not an Exception).
from novasvc.context import RequestContext  # noqa: F401
from novasvc.rpc._failures import deserialize_failure, remote_origin, serialize_failure
from novasvc.rpc.errors import NoSuchMethod, RemoteError


class ProbeError(Exception):
    """
    An application exception with kwargs, as Nova's exceptions have.
    """

    def __init__(self, message: str = "probe", code: int = 0) -> None:
        super().__init__(message)
        self.kwargs = {"code": code}


class ProbeError_Remote(Exception):
    """
    Looks like a re-raised remote exception (class and module end in
    _Remote once the module is renamed in a test).
    """


class NeedsKeyword(Exception):
    """
    Cannot be rebuilt from its args alone.
    """

    def __init__(self, *, required: str) -> None:
        super().__init__(required)


def _raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as e:
        return e


class FailureSerializationTests(SynchronousTestCase):
    """
    §9.1 failure serialization.
    """

    def test_keys(self) -> None:
        """
        When an exception is serialized, then the JSON has class, module,
        message, tb (traceback lines), args and kwargs.
        """
        data = json.loads(serialize_failure(_raised(ProbeError("it broke", code=7))))
        self.assertEqual(set(data), {"class", "module", "message", "tb", "args", "kwargs"})
        self.assertEqual((data["class"], data["module"], data["message"], data["args"], data["kwargs"]),
                         ("ProbeError", __name__, "it broke", ["it broke"], {"code": 7}))
        self.assertTrue(data["tb"][0].startswith("Traceback"), data["tb"])
        self.assertIn("ProbeError: it broke", data["tb"][-1])

    def test_failure(self) -> None:
        """
        When a Twisted Failure is serialized, then its exception and
        traceback are used.
        """
        failure = defer.fail(ValueError("bad"))
        captured = []
        failure.addErrback(captured.append)
        data = json.loads(serialize_failure(captured[0]))
        self.assertEqual((data["class"], data["module"], data["message"]), ("ValueError", "builtins", "bad"))
        self.assertEqual(data["tb"][-1], "ValueError: bad\n")

    def test_failure_without_traceback(self) -> None:
        """
        When a Failure made from an exception that was never raised is
        serialized, then tb still ends with the exception line.
        """
        data = json.loads(serialize_failure(Failure(ValueError("x"))))
        self.assertEqual(data["tb"][-1], "ValueError: x\n")

    def test_remote_suffix_stripped(self) -> None:
        """
        When a re-raised remote exception is serialized, then the _Remote
        suffix is stripped from class and module.
        """
        error = deserialize_failure(serialize_failure(_raised(ProbeError("x", 1))), [__name__])
        data = json.loads(serialize_failure(error))
        self.assertEqual((data["class"], data["module"]), ("ProbeError", __name__))

    def test_suffix_only_on_class(self) -> None:
        """
        When only the class name ends with _Remote, then nothing is stripped.
        """
        data = json.loads(serialize_failure(ProbeError_Remote("x")))
        self.assertEqual(data["class"], "ProbeError_Remote")

    def test_unencodable_args(self) -> None:
        """
        When an exception's args cannot be JSON, then they are sent as their
        repr.
        """
        data = json.loads(serialize_failure(ValueError(object())))
        self.assertTrue(data["args"][0].startswith("<object object"))

    def test_args_too_deep_or_circular(self) -> None:
        """
        When an exception's args are nested too deeply or circular (and its
        str() fails), then it is still serialized, each argument as a short
        repr.
        """
        deep: list = []
        for _ in range(100_000):
            deep = [deep]
        circular: list = []
        circular.append(circular)
        for error in (ValueError(deep), KeyError(circular, {"a": circular})):
            data = json.loads(serialize_failure(error))
            self.assertEqual(data["class"], type(error).__name__)
            self.assertTrue(all(isinstance(arg, str) and len(arg) < 300 for arg in data["args"]))

    def test_clipped(self) -> None:
        """
        When a failure is serialized clipped, then its message, each
        traceback line and each text in args and kwargs are cut to a few
        hundred characters, a long structure is sent as its shortened repr,
        and numbers are kept.
        """
        long = "x" * 10000
        error = _raised(ProbeError(long, code=7))
        error.args = (long, {"deep": [long]}, 3)
        error.kwargs = {"name": long, "code": 7, "small": [1, 2]}  # type: ignore[attr-defined]
        data = json.loads(serialize_failure(Failure(error), clipped=True))
        self.assertLess(len(data["message"]), 300)
        self.assertLess(max(len(line) for line in data["tb"]), 300)
        self.assertLess(len(data["args"][0]), 300)
        self.assertIsInstance(data["args"][1], str)
        self.assertLess(len(data["args"][1]), 300)
        self.assertEqual(data["args"][2], 3)
        self.assertLess(len(data["kwargs"]["name"]), 300)
        self.assertEqual((data["kwargs"]["code"], data["kwargs"]["small"]), (7, [1, 2]))
        self.assertGreater(len(json.loads(serialize_failure(Failure(error)))["message"]), 10000)

    def test_no_kwargs_dict(self) -> None:
        """
        When an exception's kwargs attribute is not a dict, then kwargs is
        empty.
        """
        error = ValueError("x")
        error.kwargs = "nope"  # type: ignore[attr-defined]
        self.assertEqual(json.loads(serialize_failure(error))["kwargs"], {})


class FailureDeserializationTests(SynchronousTestCase):
    """
    §9.1 re-raise rules.
    """

    def test_builtin(self) -> None:
        """
        When a builtin exception comes back, then it is rebuilt as itself
        with message and remote traceback in its first argument.
        """
        error = deserialize_failure(serialize_failure(_raised(KeyError("k"))))
        self.assertIs(type(error), KeyError)
        self.assertTrue(error.args[0].startswith("'k'\nTraceback"), error.args)

    def test_old_exceptions_module(self) -> None:
        """
        When the module is Python 2's exceptions, then it is read as builtins.
        """
        data = json.dumps({"class": "ValueError", "module": "exceptions", "message": "m", "tb": [], "args": ["m"],
                           "kwargs": {}})
        self.assertIs(type(deserialize_failure(data)), ValueError)

    def test_allowed_module(self) -> None:
        """
        When the module is allowed, then the exception is rebuilt with its
        args and kwargs as a <Class>_Remote subclass in <module>_Remote whose
        text is the message and the remote traceback.
        """
        data = serialize_failure(_raised(ProbeError("it broke", code=7)))
        error = deserialize_failure(data, [__name__])
        self.assertIsInstance(error, ProbeError)
        self.assertEqual(type(error).__name__, "ProbeError_Remote")
        self.assertEqual(type(error).__module__, __name__ + "_Remote")
        self.assertEqual(error.kwargs, {"code": 7})
        self.assertTrue(str(error).startswith("it broke\nTraceback"), str(error))
        again = deserialize_failure(data, [__name__])
        self.assertIs(type(again), type(error))

    def test_not_allowed(self) -> None:
        """
        When the module is not allowed, then a RemoteError names the class
        and message.
        """
        error = deserialize_failure(serialize_failure(_raised(ProbeError("it broke"))))
        self.assertIsInstance(error, RemoteError)
        self.assertEqual((error.exc_type, error.value), ("ProbeError", "it broke"))
        self.assertTrue(str(error).startswith("Remote error: ProbeError it broke"))

    def test_our_errors(self) -> None:
        """
        When novasvc.rpc.errors is allowed, then NoSuchMethod comes back as a
        NoSuchMethod with its fields.
        """
        error = deserialize_failure(serialize_failure(NoSuchMethod("frob")), ["novasvc.rpc.errors"])
        self.assertIsInstance(error, NoSuchMethod)
        self.assertEqual(error.method, "frob")

    def test_rebuild_problems(self) -> None:
        """
        When the allowed module lacks the class, the class is not an
        Exception, or its constructor refuses the args, then RemoteError.
        """
        for cls in ("Missing", "RequestContext", "NeedsKeyword"):
            data = json.dumps({"class": cls, "module": __name__, "message": "m", "tb": [], "args": ["m"],
                               "kwargs": {}})
            self.assertIsInstance(deserialize_failure(data, [__name__]), RemoteError, cls)

    def test_builtin_not_exception(self) -> None:
        """
        When the builtin named is not an Exception class (SystemExit, open),
        then RemoteError.
        """
        for name in ("SystemExit", "open"):
            data = json.dumps({"class": name, "module": "builtins", "message": "m", "tb": [], "args": [],
                               "kwargs": {}})
            self.assertIsInstance(deserialize_failure(data), RemoteError, name)

    def test_garbage(self) -> None:
        """
        When the failure is not JSON or not an object, then RemoteError.
        """
        self.assertIsInstance(deserialize_failure("not json"), RemoteError)
        self.assertIsInstance(deserialize_failure("[1]"), RemoteError)


class RemoteOriginTests(SynchronousTestCase):
    """
    L{remote_origin} tells rebuilt remote exceptions from local ones.
    """

    def test_rebuilt(self) -> None:
        """
        When a builtin, an allowed module's exception or a RemoteError is
        rebuilt from a reply, then remote_origin gives the remote class name
        and the message without the traceback.
        """
        cases = [
            (deserialize_failure(serialize_failure(_raised(ValueError("bad value")))), ("ValueError", "bad value")),
            (deserialize_failure(serialize_failure(_raised(ProbeError("it broke"))), [__name__]),
             ("ProbeError", "it broke")),
            (deserialize_failure(serialize_failure(_raised(ProbeError("it broke")))), ("ProbeError", "it broke")),
            (deserialize_failure("not json"), ("MalformedFailure", "not json")),
        ]
        for error, expected in cases:
            self.assertEqual(remote_origin(error), expected, repr(error))

    def test_local(self) -> None:
        """
        When an exception was raised here, even of a builtin class a server
        could send, then remote_origin gives None.
        """
        for error in (_raised(ValueError("bad value")), ProbeError("x"), TypeError()):
            self.assertIsNone(remote_origin(error), repr(error))
