# -*- test-case-name: tests.test_transport_memory -*-
"""
Value objects that describe broker topology: exchanges and queues with their
bindings. Transports declare them; the RPC layer decides which ones exist (as
oslo.messaging's rabbit driver does).
"""

import uuid
from typing import Any, Dict, Mapping, Optional, Tuple

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

#: RabbitMQ's direct reply-to pseudo-queue: consumed (never declared) with
#: automatic acknowledgement, it gives its channel a name of its own,
#: C{amq.rabbitmq.reply-to.<opaque>}; a message published to the default
#: exchange with that name as routing key goes straight to the channel, with
#: no queue in between (so nothing is created on the broker, and nothing
#: waits for the other nodes of a cluster). The name dies with the channel.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def is_direct_reply_to(name: str) -> bool:
    """
    @return: whether C{name} is a channel's direct reply-to name
        (C{amq.rabbitmq.reply-to.<opaque>}), to which a publish goes without
        the mandatory flag: RabbitMQ 3.10 delivers such a mandatory message
        and also returns it as unroutable.
    """
    return name.startswith("amq.rabbitmq.reply-to.")


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
    @ivar dead_letter: the queue (with its bindings) that keeps what this
        one dead-letters, declared before it; C{None} for none.
    @ivar renew_prefix: for a process's own transient queue (an RPC reply
        queue, a fanout queue) whose name nobody else chooses: after a
        reconnection to another broker host, the transport consumes a new
        queue named C{<renew_prefix><uuid4 hex>} instead of declaring this
        one again (its home may be the node that was lost; see
        L{renewed}). C{None}: the name never changes.
    """

    name: str
    durable: bool = False
    auto_delete: bool = False
    exclusive: bool = False
    arguments: Tuple[Tuple[str, Any], ...] = attrs.field(default=(), converter=_freeze_arguments)
    bindings: Tuple[Binding, ...] = attrs.field(default=(), converter=tuple)
    dead_letter: Optional["Queue"] = None
    renew_prefix: Optional[str] = None

    def renewed(self) -> "Queue":
        """
        @return: this queue under a new name, C{<renew_prefix><uuid4 hex>}.
        @raise ValueError: when it has no L{renew_prefix}.
        """
        if self.renew_prefix is None:
            raise ValueError(f"queue {self.name!r} keeps its name")
        return attrs.evolve(self, name=f"{self.renew_prefix}{uuid.uuid4().hex}")

    def arguments_dict(self) -> dict:
        """
        @return: the declare arguments as a new C{dict}.
        """
        return dict(self.arguments)


@attrs.frozen
class QuorumQueues:
    """
    oslo.messaging's C{rabbit_quorum_queue}: the topic queues of RPC servers
    are durable quorum queues, with a delivery limit whose poison messages
    are dead-lettered (C{at-least-once}) to the exchange
    C{<exchange>.dlx}, and kept in the durable quorum queue
    C{<exchange>.dlq} bound to it with C{#} (the broker records why in the
    message's C{x-first-death-reason} and C{x-death} headers).

    @ivar delivery_limit: how many times a message is redelivered before it
        is dead-lettered (C{x-delivery-limit}); C{0} for no limit (the
        broker's default).
    """

    delivery_limit: int = 20

    @classmethod
    def from_config(cls, config: Any) -> Optional["QuorumQueues"]:
        """
        @param config: a L{novasvc.config.Config}.
        @return: its C{rabbit_quorum_queue} and
            C{rabbit_quorum_delivery_limit}, or C{None} when quorum queues
            are off.
        """
        if not config.rabbit_quorum_queue:
            return None
        return cls(config.rabbit_quorum_delivery_limit)

    def dead_letter_queue(self, exchange: str) -> Queue:
        """
        @param exchange: the name of the exchange feeding the topic queues.
        @return: the queue C{<exchange>.dlq}, bound to C{<exchange>.dlx}.
        """
        dlx = Exchange(f"{exchange}.dlx", "topic", durable=True)
        return Queue(f"{exchange}.dlq", durable=True, arguments={"x-queue-type": "quorum"},
                     bindings=(Binding(dlx, "#"),))

    def arguments(self, exchange: str) -> Dict[str, Any]:
        """
        @return: the declare arguments of a topic queue fed by C{exchange}.
        """
        arguments: Dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": f"{exchange}.dlx",
            # At-least-once dead-lettering needs reject-publish; without a
            # length limit the queue never rejects a publish.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        if self.delivery_limit:
            arguments["x-delivery-limit"] = self.delivery_limit
        return arguments


def topic_queue(name: str, binding: Binding, durable: bool = False,
                quorum: Optional[QuorumQueues] = None) -> Queue:
    """
    A topic queue of an RPC server (C{<topic>} or C{<topic>.<host>}).

    @param binding: its binding to the control exchange.
    @param durable: oslo's C{amqp_durable_queues}.
    @param quorum: the quorum queue settings, or C{None} for a classic
        queue.
    @return: a classic queue, durable as asked, or a durable quorum queue
        with its dead-letter queue.
    """
    if quorum is None:
        return Queue(name, durable=durable, bindings=(binding,))
    exchange = binding.exchange.name
    return Queue(name, durable=True, arguments=quorum.arguments(exchange), bindings=(binding,),
                 dead_letter=quorum.dead_letter_queue(exchange))
