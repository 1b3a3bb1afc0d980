"""
Tests for L{novasvc.rpc.serializer}.
"""

from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from novasvc.context import RequestContext
from novasvc.exceptions import LoadError
from novasvc.rpc.serializer import (
    ISerializer,
    NoOpSerializer,
    RequestContextSerializer,
    check_serializer,
    is_noop,
    load_serializer,
)


class Doubling:
    """
    An entity serializer that doubles on the way out and halves on the way
    in, recording the contexts it was given.
    """

    made = 0

    def __init__(self) -> None:
        type(self).made += 1
        self.contexts: List[Any] = []

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        self.contexts.append(ctxt)
        return entity * 2

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        self.contexts.append(ctxt)
        return entity // 2

    def serialize_context(self, ctxt: Any) -> Any:
        return ctxt

    def deserialize_context(self, ctxt: Any) -> Any:
        return ctxt


def make_doubling() -> Doubling:
    """
    A zero-argument factory of L{Doubling}.
    """
    return Doubling()


#: An instance, named by a dotted path in the tests.
DOUBLING = Doubling()


class NoOpSerializerTests(SynchronousTestCase):
    """
    L{NoOpSerializer} passes everything through.
    """

    def test_unchanged(self) -> None:
        """
        When anything goes through a NoOpSerializer, then it comes back
        unchanged (the same object), and it provides ISerializer.
        """
        serializer = NoOpSerializer()
        value, ctxt = {"a": [1]}, RequestContext("u")
        self.assertIs(serializer.serialize_entity(ctxt, value), value)
        self.assertIs(serializer.deserialize_entity(ctxt, value), value)
        self.assertIs(serializer.serialize_context(ctxt), ctxt)
        self.assertIs(serializer.deserialize_context(ctxt), ctxt)
        self.assertTrue(verifyObject(ISerializer, serializer))


class RequestContextSerializerTests(SynchronousTestCase):
    """
    L{RequestContextSerializer}: Nova's.
    """

    def test_serialize_context(self) -> None:
        """
        When a context is serialized, then a RequestContext gives its
        to_dict, a dict a copy of itself, None an empty dict.
        """
        serializer = RequestContextSerializer()
        ctxt = RequestContext("u1", "p1", request_id="req-1")
        self.assertEqual(serializer.serialize_context(ctxt), ctxt.to_dict())
        given = {"user_id": "u2"}
        written = serializer.serialize_context(given)
        self.assertEqual(written, given)
        self.assertIsNot(written, given)
        self.assertEqual(serializer.serialize_context(None), {})

    def test_deserialize_context(self) -> None:
        """
        When context entries are deserialized, then they make a
        RequestContext (client_timeout and unknown keys included), read
        from a copy of the entries when first used; a RequestContext is
        returned as it is; None is an empty context.
        """
        serializer = RequestContextSerializer()
        entries = {"user_id": "u", "request_id": "r", "client_timeout": 30, "custom": 1,
                   "timestamp": "2024-05-01T10:00:00.000000"}
        ctxt = serializer.deserialize_context(entries)
        entries["user_id"] = "changed"
        self.assertIsInstance(ctxt, RequestContext)
        self.assertEqual((ctxt.user_id, ctxt.request_id, ctxt.client_timeout, ctxt.extra),
                         ("u", "r", 30, {"custom": 1}))
        self.assertIs(type(ctxt), RequestContext)
        self.assertEqual(ctxt, RequestContext.from_dict(dict(entries, user_id="u")))
        same = RequestContext("x")
        self.assertIs(serializer.deserialize_context(same), same)
        self.assertIsNone(serializer.deserialize_context(None).user_id)

    def test_round_trip(self) -> None:
        """
        When a context is serialized and deserialized, then it is equal to
        the original.
        """
        serializer = RequestContextSerializer()
        ctxt = RequestContext("u1", "p1", roles=["admin"], request_id="req-1")
        self.assertEqual(serializer.deserialize_context(serializer.serialize_context(ctxt)), ctxt)

    def test_entities(self) -> None:
        """
        When it wraps no serializer, then entities are unchanged; when it
        wraps one, then entities go through it with the context given.
        """
        value = [1, 2]
        self.assertIs(RequestContextSerializer().serialize_entity(None, value), value)
        self.assertIs(RequestContextSerializer().deserialize_entity(None, value), value)
        base = Doubling()
        serializer = RequestContextSerializer(base)
        ctxt = RequestContext()
        self.assertEqual(serializer.serialize_entity(ctxt, 3), 6)
        self.assertEqual(serializer.deserialize_entity(ctxt, 6), 3)
        self.assertEqual(base.contexts, [ctxt, ctxt])
        self.assertIs(serializer.base, base)
        self.assertTrue(verifyObject(ISerializer, serializer))


class IsNoopTests(SynchronousTestCase):
    """
    L{is_noop} tells the serializers the RPC layer may skip.
    """

    def test_noop(self) -> None:
        """
        When given None, a NoOpSerializer or oslo.messaging's, then True.
        """
        import oslo_messaging

        self.assertTrue(is_noop(None))
        self.assertTrue(is_noop(NoOpSerializer()))
        self.assertTrue(is_noop(oslo_messaging.NoOpSerializer()))

    def test_not_noop(self) -> None:
        """
        When given any other serializer, a NoOpSerializer subclass included
        (it may override a method) and a class of that name elsewhere, then
        False.
        """
        class Custom(NoOpSerializer):
            pass

        elsewhere = type("NoOpSerializer", (), {"__module__": "myproject.rpc"})
        self.assertFalse(is_noop(Custom()))
        self.assertFalse(is_noop(elsewhere()))
        self.assertFalse(is_noop(RequestContextSerializer()))
        self.assertFalse(is_noop(Doubling()))


class CheckSerializerTests(SynchronousTestCase):
    """
    L{check_serializer} refuses what cannot serve as a serializer.
    """

    def test_accepted(self) -> None:
        """
        When an object has the four methods, then it is returned.
        """
        serializer = Doubling()
        self.assertIs(check_serializer(serializer), serializer)

    def test_refused(self) -> None:
        """
        When given a class, or an object lacking methods, then TypeError
        says which.
        """
        error = self.assertRaises(TypeError, check_serializer, Doubling)
        self.assertIn("instance", str(error))

        class Half:
            def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
                return entity

            deserialize_entity = None

        error = self.assertRaises(TypeError, check_serializer, Half())
        self.assertIn("lacks deserialize_entity, serialize_context, deserialize_context", str(error))


class LoadSerializerTests(SynchronousTestCase):
    """
    L{load_serializer}: what a manager's attribute or the configuration key
    names.
    """

    def setUp(self) -> None:
        Doubling.made = 0

    def test_instance(self) -> None:
        """
        When given an instance, or a path to one, then that instance.
        """
        serializer = Doubling()
        self.assertIs(load_serializer(serializer), serializer)
        self.assertIs(load_serializer("tests.test_rpc_serializer.DOUBLING"), DOUBLING)

    def test_class_and_factory(self) -> None:
        """
        When given a class or a zero-argument factory (or a path to one),
        then it is called once and its result returned.
        """
        self.assertIsInstance(load_serializer(Doubling), Doubling)
        self.assertIsInstance(load_serializer("tests.test_rpc_serializer.make_doubling"), Doubling)
        self.assertIsInstance(load_serializer("novasvc.rpc.serializer:RequestContextSerializer"),
                              RequestContextSerializer)
        self.assertEqual(Doubling.made, 2)

    def test_errors(self) -> None:
        """
        When the path cannot be imported, the factory raises, or the result
        is not a serializer, then LoadError names what was asked.
        """
        error = self.assertRaises(LoadError, load_serializer, "tests.test_rpc_serializer.Missing", "the key")
        self.assertTrue(str(error).startswith("the key: "), str(error))
        error = self.assertRaises(LoadError, load_serializer, "tests.test_rpc_serializer.IsNoopTests", "the key")
        self.assertIn("'tests.test_rpc_serializer.IsNoopTests'", str(error))
        error = self.assertRaises(LoadError, load_serializer, "tests.test_rpc_serializer.Doubling.made")
        self.assertIn("int instance is not a serializer", str(error))

        def broken() -> Any:
            raise RuntimeError("no")

        error = self.assertRaises(LoadError, load_serializer, broken)
        self.assertIn("RuntimeError: no", str(error))
