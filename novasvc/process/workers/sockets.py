# -*- test-case-name: tests.test_process_workers_sockets -*-
"""
A listening socket shared by worker processes: the parent binds it
(L{listen_socket}) and never accepts on it; each worker adopts its
inherited copy (L{adopt_listening_port}, or
L{novasvc.process.workers.child.inherited_port}) and accepts connections from it,
so the kernel spreads the connections over the workers, and a worker that
dies leaves the port open to the others.
"""

import os
import socket
from typing import Any, Optional

import attrs
from twisted.internet.endpoints import TCP6ServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.internet.protocol import Factory
from zope.interface import implementer


__all__ = ["ListeningSocket", "adopt_listening_port", "listen_socket"]


def _quote(description: str) -> str:
    return repr(description if len(description) <= 100 else description[:100] + "...")


@attrs.frozen
class ListeningSocket:
    """
    A bound, listening, non-blocking TCP socket held by the parent.

    @ivar sock: the C{socket.socket}.
    @ivar host: the address it is bound to (C{str}).
    @ivar port: the port it is bound to (C{int}; the real one when C{0} was
        asked for).
    @ivar description: the endpoint string it was made from.
    """

    sock: socket.socket = attrs.field(repr=False)
    host: str
    port: int
    description: str

    def fileno(self) -> int:
        """
        @return: its file descriptor.
        """
        return self.sock.fileno()

    def close(self) -> None:
        """
        Close the parent's copy (the workers keep theirs).
        """
        self.sock.close()


@implementer(IReactorTCP)
class _Recorder:
    """
    Stands in for a reactor so that Twisted's own endpoint parser reads an
    endpoint string: it records what C{listenTCP} is asked, and listens on
    nothing.
    """

    args: Optional[tuple] = None

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> None:
        self.args = (port, backlog, interface)

    def connectTCP(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - never asked
        raise NotImplementedError()


def listen_socket(description: str) -> ListeningSocket:
    """
    Bind and listen, in the parent, as a Twisted server endpoint string
    says: C{tcp:PORT}, C{tcp:PORT:interface=ADDR}, C{tcp:PORT:backlog=N},
    C{tcp6:PORT:interface=\\:\\:1} (port C{0}: any free port, see
    L{ListeningSocket.port}). The socket has C{SO_REUSEADDR} (as Twisted's
    own C{listenTCP}) and is non-blocking, as C{adoptStreamPort} wants it.

    @param description: the endpoint string.
    @return: the L{ListeningSocket}.
    @raise ValueError: when C{description} is not a C{tcp:} or C{tcp6:}
        endpoint string (the message quotes it, clipped).
    @raise CannotListenError: when the address cannot be bound (in use,
        not allowed, not this machine's).
    """
    recorder = _Recorder()
    try:
        endpoint = serverFromString(recorder, description)
    except Exception as e:
        raise ValueError(f"not a server endpoint string: {_quote(description)} ({str(e)[:100]})") from None
    try:
        endpoint.listen(Factory()).addErrback(lambda _: None)
    except Exception:
        pass  # asked the recorder for something other than listenTCP
    if recorder.args is None:
        raise ValueError(f"only tcp: and tcp6: endpoints can be shared by worker processes, "
                         f"got {_quote(description)}")
    port, backlog, interface = recorder.args
    family = socket.AF_INET6 if isinstance(endpoint, TCP6ServerEndpoint) or ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise CannotListenError(interface, port, e) from None
    host, bound = sock.getsockname()[:2]
    return ListeningSocket(sock, host, bound, description)


def adopt_listening_port(reactor: Any, fd: int, factory: Factory, close: bool = True) -> IListeningPort:
    """
    Accept connections for C{factory} on a listening socket given as a file
    descriptor (one inherited from the parent), with C{reactor.adoptStreamPort}.

    @param reactor: provides C{IReactorSocket}.
    @param fd: the listening socket's file descriptor; made non-blocking.
    @param close: close C{fd} once adopted (the reactor keeps a copy of its
        own, closed when the port stops listening).
    @return: the listening port.
    @raise ValueError: when C{fd} is not a listening stream socket.
    """
    try:
        probe = socket.socket(fileno=fd)
    except OSError as e:
        raise ValueError(f"file descriptor {fd} is not a socket: {e.strerror or e}") from None
    try:
        family, kind = probe.family, probe.type
        listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    finally:
        probe.detach()
    if kind != socket.SOCK_STREAM or not listening or family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"file descriptor {fd} is not a listening TCP socket")
    os.set_blocking(fd, False)
    port = reactor.adoptStreamPort(fd, family, factory)
    if close:
        os.close(fd)
    return port
