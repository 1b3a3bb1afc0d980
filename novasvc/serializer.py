# -*- test-case-name: tests.test_serializer -*-
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

from novasvc.context import RequestContext

__all__ = ["ISerializer", "NoOpSerializer", "RequestContextSerializer", "is_noop"]


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
        @return: a L{RequestContext} (one the RPC server already read is
            returned as it is; a C{dict} goes through
            L{RequestContext.from_dict}).
        """
        if isinstance(ctxt, RequestContext):
            return ctxt
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
