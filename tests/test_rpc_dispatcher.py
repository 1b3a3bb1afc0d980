"""
Tests for L{novasvc.rpc.dispatcher}.
"""

import functools

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc.dispatcher import BaseRPCAPI, RPCDispatcher
from novasvc.rpc.errors import NoSuchMethod, UnsupportedVersion
from novasvc.rpc.target import Target
from novasvc.rpc.wire import serialize_failure


def _logged(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


class Plain:
    """
    An endpoint without a target: default namespace, version 1.0.
    """

    rpc_hidden_names = frozenset({"init_host"})
    limit = 5

    class Nested:
        pass

    def __init__(self) -> None:
        self.calls = []

    def echo(self, ctxt, value):
        self.calls.append((ctxt, value))
        return {"value": value}

    def deferred(self, ctxt):
        return defer.succeed("from deferred")

    async def coroutine(self, ctxt, value):
        return await defer.succeed(value * 2)

    def broken(self, ctxt):
        return len(5)  # raises TypeError inside the method

    @_logged
    def decorated(self, ctxt, value):
        return value

    def init_host(self, ctxt):
        return "lifecycle"

    def _private(self, ctxt):
        return "private"


class Versioned:
    """
    An endpoint at version 2.5 in namespace "ns".
    """

    target = Target(namespace="ns", version="2.5")

    def frob(self, ctxt):
        return "versioned"


class Other:
    """
    Another endpoint at 2.5 in "ns", with one more method.
    """

    target = Target(namespace="ns", version="2.5", legacy_namespaces=("old",))

    def frob(self, ctxt):
        return "other"

    def extra(self, ctxt):
        return "extra"


class DispatchTests(SynchronousTestCase):
    """
    Calling methods with the context and keyword arguments.
    """

    def setUp(self) -> None:
        self.plain = Plain()
        self.dispatcher = RPCDispatcher([self.plain])
        self.ctxt = RequestContext("u1")

    def test_call(self) -> None:
        """
        When a method is dispatched, then it is called with the context and
        the keyword arguments and its result is the Deferred's.
        """
        d = self.dispatcher.dispatch(self.ctxt, "echo", {"value": 3})
        self.assertEqual(self.successResultOf(d), {"value": 3})
        self.assertEqual(self.plain.calls, [(self.ctxt, 3)])

    def test_invoke_plain(self) -> None:
        """
        When a plain method is invoked, then its result comes back as is,
        not wrapped in a Deferred.
        """
        self.assertEqual(self.dispatcher.invoke(self.ctxt, "echo", {"value": 3}), {"value": 3})

    def test_invoke_coroutine(self) -> None:
        """
        When a coroutine method is invoked, then a Deferred of its value comes
        back.
        """
        self.assertEqual(self.successResultOf(self.dispatcher.invoke(self.ctxt, "coroutine", {"value": 4})), 8)

    def test_invoke_raises(self) -> None:
        """
        When a request cannot be served, then invoke raises what dispatch
        fails with.
        """
        self.assertRaises(NoSuchMethod, self.dispatcher.invoke, self.ctxt, "nope", {})
        error = self.assertRaises(TypeError, self.dispatcher.invoke, self.ctxt, "echo", {"bogus": 1})
        self.assertIn("'echo'", str(error))

    def test_deferred_result(self) -> None:
        """
        When a method returns a Deferred, then the dispatch gives its result.
        """
        self.assertEqual(self.successResultOf(self.dispatcher.dispatch(self.ctxt, "deferred", {})), "from deferred")

    def test_coroutine_result(self) -> None:
        """
        When a method is a coroutine function, then it is run and its value
        is the result.
        """
        self.assertEqual(self.successResultOf(self.dispatcher.dispatch(self.ctxt, "coroutine", {"value": 4})), 8)

    def test_wrong_arguments(self) -> None:
        """
        When the arguments do not fit the signature, then a TypeError names
        the method, the endpoint and the arguments, and nothing is called.
        """
        failure = self.failureResultOf(self.dispatcher.dispatch(self.ctxt, "echo", {"valu": 1}), TypeError)
        text = str(failure.value)
        self.assertIn("'echo'", text)
        self.assertIn("Plain", text)
        self.assertIn("valu", text)
        self.assertEqual(self.plain.calls, [])

    def test_wrong_arguments_quoted_short(self) -> None:
        """
        When a call names an argument of a megabyte, or ten thousand
        arguments, then the TypeError quotes them cut, in a few hundred
        characters.
        """
        for args in ({"v" * 1_000_000: 1}, {f"a{i}": i for i in range(10_000)}):
            failure = self.failureResultOf(self.dispatcher.dispatch(self.ctxt, "echo", args), TypeError)
            self.assertLess(len(str(failure.value)), 1000)
            self.assertIn("characters)", str(failure.value))

    def test_missing_argument(self) -> None:
        """
        When a required argument is missing, then the TypeError says so.
        """
        failure = self.failureResultOf(self.dispatcher.dispatch(self.ctxt, "echo", {}), TypeError)
        self.assertIn("value", str(failure.value))
        self.assertIn("none", str(failure.value))

    def test_argument_named_like_context(self) -> None:
        """
        When an argument has the name of the context parameter, then the
        TypeError is the clear one.
        """
        failure = self.failureResultOf(self.dispatcher.dispatch(self.ctxt, "echo", {"ctxt": 1, "value": 2}),
                                       TypeError)
        self.assertIn("cannot take the arguments", str(failure.value))

    def test_decorated_wrong_arguments(self) -> None:
        """
        When a decorated method gets wrong arguments, then the error is the
        clear one too (the wrapped signature is checked).
        """
        failure = self.failureResultOf(self.dispatcher.dispatch(self.ctxt, "decorated", {"nope": 1}), TypeError)
        self.assertIn("cannot take the arguments", str(failure.value))

    def test_type_error_inside(self) -> None:
        """
        When a method raises TypeError itself, then that error is kept as is.
        """
        failure = self.failureResultOf(self.dispatcher.dispatch(self.ctxt, "broken", {}), TypeError)
        self.assertNotIn("cannot take the arguments", str(failure.value))
        self.assertIn("len()", str(failure.value))

    def test_cache(self) -> None:
        """
        When a method is resolved twice, then the same bound method comes back
        from the cache.
        """
        first = self.dispatcher.resolve("echo")
        self.assertIs(self.dispatcher.resolve("echo"), first)
        self.assertEqual(first.__func__, Plain.echo)


class AccessPolicyTests(SynchronousTestCase):
    """
    Names that are never callable over RPC.
    """

    def setUp(self) -> None:
        self.dispatcher = RPCDispatcher([Plain()])

    def test_refused(self) -> None:
        """
        When a private name, a dunder, a hidden lifecycle name, a
        non-callable attribute, a class, the target attribute or an unknown
        name is asked for, then NoSuchMethod.
        """
        for name in ("_private", "__init__", "__class__", "init_host", "limit", "Nested", "target",
                     "rpc_hidden_names", "missing", ""):
            failure = self.failureResultOf(self.dispatcher.dispatch(RequestContext(), name, {}), NoSuchMethod)
            self.assertEqual(failure.value.method, name)

    def test_hidden_default(self) -> None:
        """
        When an endpoint has no rpc_hidden_names, then its public methods are
        callable.
        """
        dispatcher = RPCDispatcher([Versioned()])
        self.assertEqual(self.successResultOf(dispatcher.dispatch(RequestContext(), "frob", {}, "ns", "2.0")),
                         "versioned")


class VersionAndNamespaceTests(SynchronousTestCase):
    """
    oslo's §8 rules for choosing an endpoint.
    """

    def setUp(self) -> None:
        self.dispatcher = RPCDispatcher([Plain(), Versioned(), Other()])

    def _dispatch(self, method, namespace=None, version=None):
        return self.dispatcher.dispatch(RequestContext(), method, {}, namespace, version)

    def test_compatible_minor(self) -> None:
        """
        When 2.1 is asked of a 2.5 endpoint, then it serves.
        """
        self.assertEqual(self.successResultOf(self._dispatch("frob", "ns", "2.1")), "versioned")

    def test_higher_minor(self) -> None:
        """
        When 2.6 is asked of 2.5 endpoints, then UnsupportedVersion names the
        version and method.
        """
        failure = self.failureResultOf(self._dispatch("frob", "ns", "2.6"), UnsupportedVersion)
        self.assertEqual((failure.value.version, failure.value.method), ("2.6", "frob"))

    def test_other_major(self) -> None:
        """
        When 3.0 is asked of 2.5 endpoints, then UnsupportedVersion.
        """
        self.failureResultOf(self._dispatch("frob", "ns", "3.0"), UnsupportedVersion)

    def test_unknown_namespace(self) -> None:
        """
        When the namespace is unknown, then UnsupportedVersion (no endpoint
        was compatible), as oslo.
        """
        self.failureResultOf(self._dispatch("frob", "nowhere", "2.0"), UnsupportedVersion)

    def test_no_such_method(self) -> None:
        """
        When compatible endpoints exist but none has the method, then
        NoSuchMethod.
        """
        self.failureResultOf(self._dispatch("missing", "ns", "2.0"), NoSuchMethod)

    def test_errors_quote_short(self) -> None:
        """
        When the method name or the version is a megabyte, then NoSuchMethod
        and UnsupportedVersion keep 200 characters of it and say how long it
        was, and so does their serialized failure (traceback included).
        """
        huge = "m" * 1_000_000
        failure = self.failureResultOf(self._dispatch(huge, "ns", "2.0"), NoSuchMethod)
        self.assertEqual(failure.value.method, "m" * 200 + "... (1000000 characters)")
        self.assertLess(len(str(failure.value)), 300)
        failure = self.failureResultOf(self._dispatch(huge, "ns", "2." + "9" * 1_000_000), UnsupportedVersion)
        self.assertLess(len(str(failure.value)), 600)
        failure = self.failureResultOf(self._dispatch("frob", "ns", "v" * 1_000_000), UnsupportedVersion)
        self.assertLess(len(str(failure.value)), 600)
        self.assertLess(len(serialize_failure(failure)), 4096)

    def test_long_version_not_cached(self) -> None:
        """
        When a compatible version is written with thousands of digits, then
        the method is served but not cached.
        """
        version = "2." + "0" * 4000 + "1"
        self.assertEqual(self.successResultOf(self._dispatch("frob", "ns", version)), "versioned")
        self.assertNotIn(("ns", version, "frob"), self.dispatcher._cache)
        self.successResultOf(self._dispatch("frob", "ns", "2.1"))
        self.assertIn(("ns", "2.1", "frob"), self.dispatcher._cache)

    def test_default_version(self) -> None:
        """
        When no version is asked, then it means 1.0, which an endpoint
        without target serves and 2.5 endpoints refuse.
        """
        self.assertEqual(self.successResultOf(self._dispatch("deferred")), "from deferred")
        failure = self.failureResultOf(self._dispatch("frob", "ns"), UnsupportedVersion)
        self.assertEqual(failure.value.version, "1.0")

    def test_namespace_none_matches_none(self) -> None:
        """
        When the default namespace is asked, then namespaced endpoints are
        not compatible.
        """
        self.failureResultOf(self._dispatch("frob", None, "2.0"), UnsupportedVersion)

    def test_first_endpoint_wins(self) -> None:
        """
        When two compatible endpoints have the method, then the first in the
        list serves it.
        """
        self.assertEqual(self.successResultOf(self._dispatch("frob", "ns", "2.0")), "versioned")

    def test_later_endpoint_with_method(self) -> None:
        """
        When the first compatible endpoint lacks the method, then a later one
        that has it serves.
        """
        self.assertEqual(self.successResultOf(self._dispatch("extra", "ns", "2.0")), "extra")

    def test_legacy_namespace(self) -> None:
        """
        When a legacy namespace of an endpoint is asked, then that endpoint
        serves.
        """
        self.assertEqual(self.successResultOf(self._dispatch("frob", "old", "2.0")), "other")

    def test_revision(self) -> None:
        """
        When a revision above the endpoint's is asked at the same minor, then
        UnsupportedVersion.
        """
        self.failureResultOf(self._dispatch("frob", "ns", "2.5.1"), UnsupportedVersion)
        self.assertEqual(self.successResultOf(self._dispatch("frob", "ns", "2.4.9")), "versioned")

    def test_bad_version(self) -> None:
        """
        When the version is not a version, then UnsupportedVersion.
        """
        self.failureResultOf(self._dispatch("frob", "ns", "two"), UnsupportedVersion)

    def test_bad_target(self) -> None:
        """
        When an endpoint's target is not a Target, then the dispatcher
        refuses it.
        """

        class Wrong:
            target = "1.0"

        self.assertRaises(TypeError, RPCDispatcher, [Wrong()])


class BaseRPCAPITests(SynchronousTestCase):
    """
    Nova's baseapi endpoint.
    """

    def test_ping(self) -> None:
        """
        When ping is dispatched in namespace baseapi at 1.1, then it answers
        with the service name and the argument.
        """
        dispatcher = RPCDispatcher([Plain(), BaseRPCAPI("compute", backdoor_port=4444)])
        d = dispatcher.dispatch(RequestContext(), "ping", {"arg": "hello"}, "baseapi", "1.1")
        self.assertEqual(self.successResultOf(d), {"service": "compute", "arg": "hello"})
        d = dispatcher.dispatch(RequestContext(), "get_backdoor_port", {}, "baseapi", "1.0")
        self.assertEqual(self.successResultOf(d), 4444)

    def test_target(self) -> None:
        """
        When the endpoint's target is read, then it is namespace baseapi,
        version 1.1.
        """
        self.assertEqual(BaseRPCAPI("x").target, Target(namespace="baseapi", version="1.1"))
