# -*- test-case-name: tests.test_rpc_errors -*-
"""
The errors of the RPC layer, with oslo.messaging's names so that code written
for Nova reads the same.

Every class keeps its constructor arguments in a C{kwargs} C{dict} of JSON
values and leaves C{args} empty, so that a failure serialized on a server
(L{novasvc.rpc.wire.serialize_failure}) is rebuilt on a client that allows
the module C{novasvc.rpc.errors} as C{cls(**kwargs)} with the same fields.

A value a client chose (a method name, an id, a version, an argument name)
is quoted in an error, a reply or a log line only through L{novasvc._text.clip} or
L{novasvc._text.quote}, which cut it to L{novasvc._text.QUOTE_LIMIT} characters: a megabyte of method
name is never a megabyte of log.
"""

from typing import Any, Optional, Sequence, Union

from novasvc.exceptions import NovaSvcError

__all__ = [
    "RPCError",
    "MessagingTimeout",
    "RemoteError",
    "NoSuchMethod",
    "UnsupportedVersion",
    "InvalidTarget",
    "RPCVersionCapError",
    "MalformedMessage",
]

class RPCError(NovaSvcError):
    """
    Base class of the RPC errors.

    @ivar kwargs: the constructor arguments, JSON values only; this is what
        crosses the wire as the failure's C{kwargs}.
    @type kwargs: C{dict}
    """

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        """
        @param message: the text of the error; subclasses build it from their
            fields when it is C{None}.
        @param kwargs: more JSON-valued fields to keep in L{kwargs}.
        """
        super().__init__()
        if message is not None:
            kwargs["message"] = message
        self.kwargs = kwargs

    def _describe(self) -> str:
        return self.kwargs.get("message") or (self.__doc__ or "").strip().splitlines()[0]

    def __str__(self) -> str:
        return self._describe()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}({fields})"

    def __reduce__(self):
        return (_rebuild, (type(self), self.kwargs))


def _rebuild(cls, kwargs):
    return cls(**kwargs)


class MessagingTimeout(RPCError):
    """
    No reply came in time for a call (as oslo.messaging's C{MessagingTimeout},
    whose text starts the same way: "Timed out waiting for a reply to message
    ID <msg_id>"). The text also names the topic, server, method and the
    elapsed seconds, which oslo's does not.

    @ivar topic: C{str} or C{None}.
    @ivar server: C{str} or C{None}.
    @ivar method: C{str} or C{None}.
    @ivar msg_id: the C{_msg_id} of the request, C{str} or C{None}.
    @ivar elapsed: seconds waited, C{float} or C{None}.
    """

    def __init__(self, message: Optional[str] = None, *, topic: Optional[str] = None,
                 server: Optional[str] = None, method: Optional[str] = None,
                 msg_id: Optional[str] = None, elapsed: Optional[float] = None) -> None:
        super().__init__(message, topic=topic, server=server, method=method, msg_id=msg_id, elapsed=elapsed)
        self.topic = topic
        self.server = server
        self.method = method
        self.msg_id = msg_id
        self.elapsed = elapsed

    def _describe(self) -> str:
        if self.kwargs.get("message"):
            return self.kwargs["message"]
        text = f"Timed out waiting for a reply to message ID {self.msg_id}"
        details = []
        if self.method is not None:
            details.append(f"method {self.method!r}")
        if self.topic is not None:
            details.append(f"topic {self.topic!r}")
        details.append("any server" if self.server is None else f"server {self.server!r}")
        if self.elapsed is not None:
            details.append(f"after {self.elapsed:.3f} s")
        return f"{text} ({', '.join(details)})"


class RemoteError(RPCError):
    """
    An exception raised by the remote method whose class the client may not
    or cannot rebuild, as oslo.messaging's C{RemoteError}. Its text starts
    C{"Remote error: <class> <message>"} and continues with the remote
    traceback.

    @ivar exc_type: the remote exception's class name, C{str}.
    @ivar value: the remote exception's message, C{str}.
    @ivar traceback: the remote traceback, a C{list} of C{str} (as the wire's
        C{tb}) or one C{str}.
    """

    def __init__(self, exc_type: Optional[str] = None, value: Optional[str] = None,
                 traceback: Union[Sequence[str], str, None] = None) -> None:
        if traceback is not None and not isinstance(traceback, str):
            traceback = [str(line) for line in traceback]
        super().__init__(exc_type=exc_type, value=value, traceback=traceback)
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback

    def _describe(self) -> str:
        tb = self.traceback
        if tb is None:
            tb = ""
        elif not isinstance(tb, str):
            tb = "".join(tb)
        text = f"Remote error: {self.exc_type} {self.value}"
        return f"{text}\n{tb.rstrip()}" if tb.strip() else text


class NoSuchMethod(RPCError):
    """
    An endpoint compatible with the request's namespace and version exists,
    but none serves the method (or the method is private or hidden), as
    oslo.messaging's dispatcher C{NoSuchMethod}.

    @ivar method: the method name asked for.
    """

    def __init__(self, method: Optional[str] = None, message: Optional[str] = None) -> None:
        super().__init__(message, method=method)
        self.method = method

    def _describe(self) -> str:
        return self.kwargs.get("message") or f"Endpoint does not support RPC method {self.method}"


class UnsupportedVersion(RPCError):
    """
    No endpoint is compatible with the request's namespace and version, as
    oslo.messaging's dispatcher C{UnsupportedVersion}.

    @ivar version: the version asked for.
    @ivar method: the method name asked for.
    """

    def __init__(self, version: Optional[str] = None, method: Optional[str] = None,
                 message: Optional[str] = None) -> None:
        super().__init__(message, version=version, method=method)
        self.version = version
        self.method = method

    def _describe(self) -> str:
        if self.kwargs.get("message"):
            return self.kwargs["message"]
        return f"Endpoint does not support RPC version {self.version}. Attempted method: {self.method}"


class InvalidTarget(RPCError, ValueError):
    """
    The target cannot be used for this operation (no topic; a call to a
    fanout target; a server target without server), as oslo.messaging's
    C{InvalidTarget}, which is also a C{ValueError}.

    @ivar target: the offending L{novasvc.rpc.target.Target} (not sent over
        the wire; its C{repr} is part of the message).
    """

    def __init__(self, message: Optional[str] = None, target: Any = None) -> None:
        text = message or "Invalid target"
        if target is not None:
            text = f"{text}: {target!r}"
        super().__init__(text)
        self.target = target


class RPCVersionCapError(RPCError):
    """
    The client was asked to send a version above its C{version_cap}, as
    oslo.messaging's C{RPCVersionCapError}.

    @ivar version: the version that was to be sent.
    @ivar version_cap: the client's cap.
    """

    def __init__(self, version: Optional[str] = None, version_cap: Optional[str] = None,
                 message: Optional[str] = None) -> None:
        super().__init__(message, version=version, version_cap=version_cap)
        self.version = version
        self.version_cap = version_cap

    def _describe(self) -> str:
        if self.kwargs.get("message"):
            return self.kwargs["message"]
        return (f"Requested message version {self.version} is not compatible with the version cap "
                f"{self.version_cap}: it needs the same major version and a minor version no higher "
                f"than the cap's")


class MalformedMessage(RPCError):
    """
    A message body the RPC layer cannot use: not JSON, not an object, an
    unsupported envelope, no method, arguments that are not an object, or a
    content type other than C{application/json}.

    @ivar reason: what is wrong, C{str}.
    @ivar msg_id: the request's C{_msg_id} when it could be read (not sent
        over the wire).
    @ivar reply_q: the request's C{_reply_q} when it could be read (not sent
        over the wire).
    """

    msg_id: Optional[str] = None
    reply_q: Optional[str] = None

    def __init__(self, reason: Optional[str] = None, message: Optional[str] = None) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason

    def _describe(self) -> str:
        return self.kwargs.get("message") or f"Malformed RPC message: {self.reason}"
