# -*- test-case-name: tests.test_rpc_dispatcher,tests.test_rpc_serializing -*-
"""
Choose the endpoint method a request names and call it, with
oslo.messaging's C{RPCDispatcher} rules (oslo-wire-protocol.md §8).

Endpoints are scanned in order. An endpoint is I{compatible} when the
request's namespace is one of its target's namespaces and its target's
version (C{"1.0"} when it has none) is compatible with the requested one
(C{"1.0"} when the request has none). The first compatible endpoint that has
the method and whose access policy allows it is called as
C{method(ctxt, **args)}. When no endpoint is compatible the error is
L{UnsupportedVersion}; when some are but none serves the method it is
L{NoSuchMethod}.

The access policy is oslo's C{DefaultRPCAccessPolicy} (no names starting
with C{_}) made stricter: names listed in the endpoint's C{rpc_hidden_names}
(the Manager's lifecycle hooks; an endpoint without that attribute hides the
hooks by their usual names), attributes of C{object}, the reserved C{target}
attribute, classes and anything not callable are refused too. A module
served as an endpoint exposes only the functions it defines itself, not
those it imports.

With a serializer (L{novasvc.rpc.serializer}), as oslo.messaging's dispatcher:
the context given to L{RPCDispatcher.invoke} is the request's context
entries (a C{dict}), the method gets what C{deserialize_context} makes of
them and each argument through C{deserialize_entity}, and its result is
returned through C{serialize_entity} (see L{novasvc.rpc._serializing}).
"""

import inspect
import types
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from twisted.internet import defer

from novasvc.context import RequestContext
from novasvc.rpc import _serializing
from novasvc._text import clip, quote
from novasvc.rpc.errors import NoSuchMethod, UnsupportedVersion
from novasvc.rpc.target import Target, parse_version

__all__ = ["RPCDispatcher", "BaseRPCAPI"]

_DEFAULT_VERSION = "1.0"
_CACHE_SIZE = 4096
# A version is cached only up to this length: "1.000...0" of thousands of
# digits is valid, and would otherwise pin kilobytes per cache entry.
_CACHED_VERSION_LIMIT = 32
_OBJECT_NAMES = frozenset(dir(object))
_Key = Tuple[Optional[str], Optional[str], str]
# Hidden on an endpoint that declares no rpc_hidden_names of its own (a
# module or plain object served as a manager): the hooks the service calls.
_LIFECYCLE_NAMES = frozenset({
    "init_host", "pre_start_hook", "post_start_hook", "cleanup_host", "reset",
    "periodic_tasks", "run_periodic_tasks", "options", "config_section", "topic",
})
_CoroutineType = types.CoroutineType


class RPCDispatcher:
    """
    Dispatch requests to a fixed list of endpoints.

    Resolved methods are cached per (namespace, version, method): the
    endpoints, their C{target}s and their methods are read once; replacing a
    method on an endpoint after its first dispatch is not seen.

    @ivar endpoints: the endpoints, in order.
    @ivar serializer: the serializer given, or C{None}.
    """

    def __init__(self, endpoints: Sequence[object], serializer: Optional[Any] = None) -> None:
        """
        @param endpoints: objects whose public methods take C{(ctxt,
            **kwargs)}; each may have a C{target} attribute
            (L{novasvc.rpc.target.Target}) giving its namespace and version,
            and a C{rpc_hidden_names} C{frozenset} of names never callable.
        @type endpoints: C{Sequence[object]}
        @param serializer: an L{novasvc.rpc.serializer.ISerializer} for the
            contexts, arguments and results (see the module docstring);
            C{None} or a no-op one: none is used.
        @raise TypeError: when an endpoint's C{target} is not a
            L{novasvc.rpc.target.Target}, or C{serializer} is not a
            serializer instance.
        @raise ValueError: when an endpoint's target version is not a valid
            version string.
        """
        self.endpoints: List[object] = list(endpoints)
        self.serializer = serializer
        self._serializer = _serializing.active(serializer)
        if self._serializer is not None:
            # This instance's invoke deserializes first, then runs the plain
            # one: without a serializer, the hot path has not one more step.
            self.invoke = self._invoke_serialized  # type: ignore[method-assign]
        self._scan: List[Tuple[object, Tuple[Optional[str], ...], Tuple[int, int, int]]] = []
        for endpoint in self.endpoints:
            target = getattr(endpoint, "target", None)
            if target is None:
                target = Target()
            elif not isinstance(target, Target):
                raise TypeError(f"endpoint {endpoint!r}: 'target' must be a Target, not {target!r}")
            self._scan.append((endpoint, target.namespaces, parse_version(target.version or _DEFAULT_VERSION)))
        self._cache: Dict[_Key, Callable[..., Any]] = {}

    def resolve(self, method: str, namespace: Optional[str] = None,
                version: Optional[str] = None) -> Callable[..., Any]:
        """
        Find the bound method that serves a request.

        @param method: the method name.
        @param namespace: the request's namespace.
        @param version: the request's version; C{None} is C{"1.0"}.
        @return: the bound method.
        @raise UnsupportedVersion: when no endpoint is compatible (including
            an unknown namespace and an unparsable version).
        @raise NoSuchMethod: when a compatible endpoint exists but none may
            serve C{method}.

        The errors quote the client's method name and version cut by
        L{novasvc._text.clip}.
        """
        key = (namespace, version, method)
        bound = self._cache.get(key)
        if bound is not None:
            return bound
        requested = version or _DEFAULT_VERSION
        try:
            req = parse_version(requested)
        except ValueError:
            # Not chained: the ValueError quotes the version in full.
            raise UnsupportedVersion(clip(requested), clip(method)) from None
        compatible = False
        for endpoint, namespaces, imp in self._scan:
            if namespace not in namespaces:
                continue
            if req[0] != imp[0] or req[1] > imp[1] or (req[1] == imp[1] and req[2] > imp[2]):
                continue
            compatible = True
            found = _allowed_method(endpoint, method)
            if found is not None:
                if len(requested) <= _CACHED_VERSION_LIMIT:
                    if len(self._cache) >= _CACHE_SIZE:
                        self._cache.clear()
                    self._cache[key] = found
                return found
        if compatible:
            raise NoSuchMethod(clip(method))
        raise UnsupportedVersion(clip(requested), clip(method))

    @property
    def serializing(self) -> bool:
        """
        Whether a serializer is used: then L{invoke} takes the request's
        context entries (a C{dict}) as its context.
        """
        return self._serializer is not None

    def invoke(self, ctxt: Any, method: str, args: Mapping[str, Any],
               namespace: Optional[str] = None, version: Optional[str] = None) -> Any:
        """
        Call the method a request names, without wrapping a plain result (the
        RPC server's hot path; L{dispatch} is the same as a C{Deferred}).

        @param ctxt: the request context, passed as the first argument; with
            a serializer (L{serializing}), the request's context entries, a
            C{dict} given to C{deserialize_context}.
        @param method: the method name.
        @param args: the keyword arguments.
        @param namespace: the request's namespace.
        @param version: the request's version (C{None} is C{"1.0"}).
        @return: the method's result; a C{Deferred} when the method returned
            one or a coroutine (run with C{ensureDeferred}).
        @raise UnsupportedVersion: see L{resolve}.
        @raise NoSuchMethod: see L{resolve}.
        @raise TypeError: naming the method and the arguments when they do not
            fit its signature.
        @raise Exception: whatever the method or the serializer raised (see
            L{novasvc.rpc._serializing.stage}).
        """
        bound = self._cache.get((namespace, version, method))
        try:
            if bound is None:
                bound = self.resolve(method, namespace, version)
            result = bound(ctxt, **args)
        except TypeError as e:
            error = _argument_error(bound, method, ctxt, args, e)
            if error is None:
                raise
            raise error from None
        if type(result) is _CoroutineType:
            return defer.ensureDeferred(result)
        return result

    def _invoke_serialized(self, entries: Any, method: str, args: Mapping[str, Any],
                           namespace: Optional[str] = None, version: Optional[str] = None) -> Any:
        """
        L{invoke} with a serializer: once the method is found, the context
        and the arguments deserialized; the result serialized (when it is a
        C{Deferred}, once it fires).
        """
        if (namespace, version, method) not in self._cache:
            self.resolve(method, namespace, version)  # a refused request never reaches the serializer
        serializer = self._serializer
        ctxt, values = _serializing.deserialize_request(serializer, entries, args)
        result = RPCDispatcher.invoke(self, ctxt, method, values, namespace, version)
        if isinstance(result, defer.Deferred):
            return result.addCallback(_serializing.serialize_result, serializer, ctxt)
        return _serializing.serialize_result(result, serializer, ctxt)

    def dispatch(self, ctxt: Any, method: str, args: Mapping[str, Any],
                 namespace: Optional[str] = None, version: Optional[str] = None) -> defer.Deferred:
        """
        Call the method a request names.

        @param ctxt: the request context, passed as the first argument (with
            a serializer, the context entries: see L{invoke}).
        @param method: the method name.
        @param args: the keyword arguments.
        @param namespace: the request's namespace.
        @param version: the request's version (C{None} is C{"1.0"}).
        @return: a C{Deferred} firing with the method's result, which may be
            a plain value, a C{Deferred} or a coroutine (run with
            C{ensureDeferred}). It fails with L{UnsupportedVersion} or
            L{NoSuchMethod} (see L{resolve}), with a C{TypeError} naming the
            method and the arguments when they do not fit its signature, or
            with whatever the method or the serializer raised.
        """
        try:
            result = self.invoke(ctxt, method, args, namespace, version)
        except Exception:
            return defer.fail()
        if isinstance(result, defer.Deferred):
            return result
        return defer.succeed(result)


def _allowed_method(endpoint: object, name: str) -> Optional[Callable[..., Any]]:
    """
    The access policy: the bound method, or C{None} when C{name} must not be
    called over RPC.
    """
    if not name or name[0] == "_" or name in _OBJECT_NAMES or name == "target":
        return None
    if name in getattr(endpoint, "rpc_hidden_names", _LIFECYCLE_NAMES):
        return None
    try:
        attr = getattr(endpoint, name)
    except Exception:
        return None
    if not callable(attr) or isinstance(attr, type):
        return None
    if isinstance(endpoint, types.ModuleType) and getattr(attr, "__module__", None) != endpoint.__name__:
        return None  # imported into the module, not defined by it
    return attr  # type: ignore[no-any-return]


def _argument_error(bound: Optional[Callable[..., Any]], method: str, ctxt: object,
                    args: Mapping[str, Any], error: TypeError) -> Optional[TypeError]:
    """
    Tell a C{TypeError} raised because the arguments do not fit the method's
    signature (then return a clear one) from one raised inside the method
    (then return C{None}). Runs only on the error path.
    """
    if bound is None:
        return None
    try:
        signature = inspect.signature(bound)
    except (TypeError, ValueError):
        tb = error.__traceback__
        if tb is None or tb.tb_next is not None:
            return None
        reason = str(error)
    else:
        try:
            signature.bind(ctxt, **args)
        except TypeError as e:
            reason = str(e)
        else:
            return None
    owner = type(getattr(bound, "__self__", bound)).__name__
    return TypeError(
        f"RPC method {quote(method)} of {owner} cannot take the arguments "
        f"({clip(', '.join(sorted(args))) or 'none'}): {clip(reason)}"
    )


class BaseRPCAPI:
    """
    The endpoint every Nova service exposes beside its manager, as Nova's
    C{nova.baserpc.BaseRPCAPI}: namespace C{baseapi}, version C{1.1}.

    @ivar service_name: the service's name (e.g. the topic), returned by
        L{ping}.
    @ivar backdoor_port: returned by L{get_backdoor_port}.
    """

    target = Target(namespace="baseapi", version="1.1")

    def __init__(self, service_name: str, backdoor_port: Optional[int] = None) -> None:
        """
        @param service_name: the service's name.
        @param backdoor_port: the port of a debugging backdoor, if any.
        """
        self.service_name = service_name
        self.backdoor_port = backdoor_port

    def ping(self, ctxt: RequestContext, arg: Any) -> Dict[str, Any]:
        """
        @return: C{{"service": service_name, "arg": arg}}, so a caller knows
            the service answers (Nova's conductor readiness check).
        """
        return {"service": self.service_name, "arg": arg}

    def get_backdoor_port(self, ctxt: RequestContext) -> Optional[int]:
        """
        @return: the backdoor port, or C{None}.
        """
        return self.backdoor_port
