# -*- test-case-name: tests.test_rpc_serializer -*-
"""
Serializers: what turns the arguments, results, payloads and contexts that
application code handles into what travels on the wire, and back, with
oslo.messaging's four methods (C{oslo_messaging.Serializer}).

An RPC client serializes each argument (L{ISerializer.serialize_entity}) and
its context (L{ISerializer.serialize_context}) before sending, and
deserializes the result (L{ISerializer.deserialize_entity}); an RPC server
deserializes the context and each argument before calling the method, and
serializes its result; a notifier serializes the payload and the context; a
notification listener deserializes both. Failures are never passed through
a serializer (as oslo.messaging).

L{NoOpSerializer} is the default everywhere: the RPC client and server skip
it altogether (no call per argument). L{RequestContextSerializer} is Nova's
C{nova.rpc.RequestContextSerializer}: the context through
L{novasvc.context.RequestContext.to_dict} and C{from_dict}, the entities
through the serializer it wraps (for example oslo.versionedobjects'
C{VersionedObjectSerializer}, whose four methods are these; see
L{novasvc.objects}).
"""

from typing import Any, Mapping, Optional

from zope.interface import Interface, implementer

from novasvc.config.loader import create_object, describe_object, load_object
from novasvc.context import RequestContext, context_from_message
from novasvc.exceptions import LoadError

__all__ = ["ISerializer", "NoOpSerializer", "RequestContextSerializer", "is_noop", "check_serializer",
           "load_serializer"]

#: The four methods of a serializer.
_METHODS = ("serialize_entity", "deserialize_entity", "serialize_context", "deserialize_context")


class ISerializer(Interface):
    """
    Turns entities and contexts into wire primitives and back, as
    oslo.messaging's C{Serializer} (any object with these four methods
    serves, an oslo.messaging or oslo.versionedobjects serializer included;
    declaring the interface is not required).
    """

    def serialize_entity(ctxt, entity):
        """
        @param ctxt: the request context (a L{RequestContext}, a C{dict} or
            C{None}), as the caller gave it.
        @param entity: an argument, a result or a payload.
        @return: its wire form (JSON values).
        """

    def deserialize_entity(ctxt, entity):
        """
        @param ctxt: the deserialized request context.
        @param entity: a wire value.
        @return: the application's value.
        """

    def serialize_context(ctxt):
        """
        @param ctxt: the caller's context (a L{RequestContext}, a C{dict} or
            C{None}).
        @return: a C{dict} of context entries, or an object with
            C{to_dict()}.
        """

    def deserialize_context(ctxt):
        """
        @param ctxt: the context as received (a L{RequestContext} read from
            the message on the RPC server, a C{dict} for a notification).
        @return: what the method or endpoint receives as its context.
        """


@implementer(ISerializer)
class NoOpSerializer:
    """
    Pass everything through unchanged (oslo.messaging's C{NoOpSerializer});
    the default of every client, server, notifier and listener.
    """

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> Any:
        return ctxt

    def deserialize_context(self, ctxt: Any) -> Any:
        return ctxt


@implementer(ISerializer)
class RequestContextSerializer:
    """
    Nova's C{RequestContextSerializer}: contexts as
    L{RequestContext.to_dict}/L{RequestContext.from_dict}, entities through
    a wrapped serializer (none: unchanged).

    @ivar base: the wrapped serializer, or C{None}.
    """

    def __init__(self, base: Optional[Any] = None) -> None:
        """
        @param base: the serializer for entities (an L{ISerializer}, e.g.
            oslo.versionedobjects' C{VersionedObjectSerializer}), or
            C{None} to leave entities unchanged.
        """
        self.base = base

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if self.base is None:
            return entity
        return self.base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if self.base is None:
            return entity
        return self.base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: Any) -> Any:
        """
        @return: C{ctxt.to_dict()} for an object that has it, a C{dict}
            unchanged, C{{}} for C{None}.
        """
        if ctxt is None:
            return {}
        if isinstance(ctxt, Mapping):
            return dict(ctxt)
        return ctxt.to_dict()

    def deserialize_context(self, ctxt: Any) -> RequestContext:
        """
        @param ctxt: the context entries the RPC server or a notification
            listener received (a C{dict}; C{None} is an empty one), or a
            L{RequestContext}.
        @return: a L{RequestContext}: the one C{RequestContext.from_dict}
            makes of a C{dict} (of a copy of it, read when the context is
            first used, as the RPC server's contexts without a serializer:
            see L{novasvc.context.context_from_message}); a
            L{RequestContext} is returned as it is.
        """
        if isinstance(ctxt, RequestContext):
            return ctxt
        if type(ctxt) is dict:
            return context_from_message(dict(ctxt), "", ctxt.get("client_timeout"))
        return RequestContext.from_dict(ctxt or {})


def is_noop(serializer: Optional[Any]) -> bool:
    """
    @return: C{True} when C{serializer} is C{None} or exactly a
        L{NoOpSerializer} (or oslo.messaging's C{NoOpSerializer}): the
        client, server, notifier and listener then skip it.
    """
    if serializer is None:
        return True
    cls = type(serializer)
    return cls is NoOpSerializer or (cls.__name__ == "NoOpSerializer"
                                     and cls.__module__ == "oslo_messaging.serializer")


def check_serializer(serializer: Any) -> Any:
    """
    @param serializer: a serializer instance.
    @return: C{serializer}.
    @raise TypeError: when it is a class (give an instance), or one of the
        four methods is missing or not callable (the message names them).
    """
    if isinstance(serializer, type):
        raise TypeError(f"a serializer must be an instance, not the class {describe_object(serializer)}")
    missing = [name for name in _METHODS if not callable(getattr(serializer, name, None))]
    if missing:
        raise TypeError(f"{describe_object(serializer)} is not a serializer: it lacks {', '.join(missing)}")
    return serializer


def load_serializer(spec: Any, what: str = "serializer") -> Any:
    """
    The serializer that a manager's C{serializer} attribute or the
    C{serializer:} configuration key names.

    @param spec: a serializer instance; or a class or zero-argument factory
        of one, called once here; or a dotted path to any of these.
    @param what: what names it, for the messages (e.g. C{"the configuration
        key serializer"}).
    @return: the serializer instance.
    @raise LoadError: a one-line message naming C{what} and C{spec}: the
        path cannot be imported, calling the factory raised, or what it
        gives has not the four methods.
    """
    named = f"{what} {spec!r}" if isinstance(spec, str) else what
    found = spec
    if isinstance(spec, str):
        try:
            found = load_object(spec)
        except LoadError as e:
            raise LoadError(f"{what}: {e}") from None
    if isinstance(found, type) or (callable(found) and not _has_methods(found)):
        found = create_object(spec if isinstance(spec, str) else describe_object(spec), found, what)
    try:
        return check_serializer(found)
    except TypeError as e:
        raise LoadError(f"{named}: {e}") from None


def _has_methods(obj: Any) -> bool:
    return all(callable(getattr(obj, name, None)) for name in _METHODS)
