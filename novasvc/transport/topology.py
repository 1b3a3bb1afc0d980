# -*- test-case-name: tests.test_transport_memory -*-
"""
Value objects that describe broker topology: exchanges and queues with their
bindings. Transports declare them; the RPC layer decides which ones exist (as
oslo.messaging's rabbit driver does).
"""

from typing import Any, Mapping, Tuple

import attrs


@attrs.frozen
class Exchange:
    """
    An AMQP exchange.

    @ivar name: the exchange name; C{''} is the default (direct) exchange,
        which is never declared.
    @ivar type: C{'topic'}, C{'fanout'} or C{'direct'}.
    @ivar durable: survives a broker restart.
    @ivar auto_delete: deleted by the broker once its last binding is gone.
    """

    name: str
    type: str = "topic"
    durable: bool = False
    auto_delete: bool = False

    @property
    def is_default(self) -> bool:
        """
        C{True} for the default exchange C{''}.
        """
        return self.name == ""


DEFAULT_EXCHANGE = Exchange("", "direct")


@attrs.frozen
class Binding:
    """
    A binding of a queue to an exchange with a routing key.
    """

    exchange: Exchange
    routing_key: str


def _freeze_arguments(value: Mapping[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    return tuple(sorted(dict(value).items()))


@attrs.frozen
class Queue:
    """
    An AMQP queue and the bindings that feed it.

    @ivar name: the queue name.
    @ivar durable: survives a broker restart.
    @ivar auto_delete: deleted by the broker when its last consumer goes.
    @ivar exclusive: private to the declaring connection.
    @ivar arguments: declare arguments such as C{x-expires} (milliseconds),
        kept as a sorted tuple of pairs so the value stays hashable; read it
        with L{arguments_dict}.
    @ivar bindings: the L{Binding}s to declare with the queue.
    """

    name: str
    durable: bool = False
    auto_delete: bool = False
    exclusive: bool = False
    arguments: Tuple[Tuple[str, Any], ...] = attrs.field(default=(), converter=_freeze_arguments)
    bindings: Tuple[Binding, ...] = attrs.field(default=(), converter=tuple)

    def arguments_dict(self) -> dict:
        """
        @return: the declare arguments as a new C{dict}.
        """
        return dict(self.arguments)
