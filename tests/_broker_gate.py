"""
A gate in front of the shared RabbitMQ node: a TCP proxy in this process
that a test closes (every connection through it dropped, new ones refused)
and opens again, so that a transport loses its broker and gets it back
without touching the node other tests use.

    gate = BrokerGate.open_for(self)       # closed at cleanup
    url = rabbit_url(vhost, hosts=f"127.0.0.1:{gate.port}")
    yield gate.close()                      # the broker is away
    gate.open()                             # and back
"""

from typing import Any, Set

from twisted.internet import defer, reactor
from twisted.protocols import portforward
from twisted.trial import unittest

__all__ = ["BrokerGate"]


class _Server(portforward.ProxyServer):
    def connectionMade(self) -> None:
        self.factory.gate._connections.add(self)
        portforward.ProxyServer.connectionMade(self)

    def connectionLost(self, reason: Any) -> None:
        self.factory.gate._connections.discard(self)
        portforward.ProxyServer.connectionLost(self, reason)


class BrokerGate:
    """
    A proxy listening on 127.0.0.1 and forwarding to the broker.

    @ivar port: the port it listens on (the same after each L{open}).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5672) -> None:
        self._factory = portforward.ProxyFactory(host, port)
        self._factory.protocol = _Server
        self._factory.gate = self
        self._connections: Set[_Server] = set()
        self._listening: Any = None
        self.port = 0
        self.open()

    @classmethod
    def open_for(cls, case: unittest.TestCase) -> "BrokerGate":
        """
        @return: an open gate, closed when C{case} ends.
        """
        gate = cls()
        case.addCleanup(gate.close)
        return gate

    def open(self) -> None:
        """
        Accept connections (again, on the same port).
        """
        if self._listening is None:
            self._listening = reactor.listenTCP(self.port, self._factory, interface="127.0.0.1")
            self.port = self._listening.getHost().port

    def close(self) -> defer.Deferred:
        """
        Drop every connection through the gate (both sides, so that the
        broker sees its client go) and refuse new ones.

        @return: a C{Deferred} firing once no longer listening.
        """
        listening, self._listening = self._listening, None
        for server in list(self._connections):
            if server.peer is not None:
                server.peer.transport.abortConnection()
            server.transport.abortConnection()
        if listening is None:
            return defer.succeed(None)
        return defer.maybeDeferred(listening.stopListening)
