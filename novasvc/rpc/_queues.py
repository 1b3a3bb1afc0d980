# -*- test-case-name: tests.test_rpc_queues,tests.test_transport_quorum -*-
"""
The queues an RPC server consumes (L{server_queues}), as oslo.messaging's
rabbit driver declares them (oslo-wire-protocol.md §2-3): the queues
C{<topic>} and C{<topic>.<server>} bound to the control exchange (topic
type), and a private queue C{<topic>_fanout_<uuid hex>} with C{x-expires}
bound to the fanout exchange C{<topic>_fanout} (auto-delete).

Public through L{novasvc.rpc.server}.
"""

from typing import Optional, Sequence

from novasvc.rpc import wire
from novasvc.rpc.errors import InvalidTarget
from novasvc.rpc.target import Target
from novasvc.transport.topology import Binding, Exchange, Queue, QuorumQueues, topic_queue

__all__ = ["server_queues"]


def server_queues(target: Target, control_exchange: str = "openstack", *, durable_queues: bool = False,
                  transient_queues_ttl: Optional[float] = 1800.0,
                  fanout_suffix: Optional[str] = None, quorum: Optional[QuorumQueues] = None) -> Sequence[Queue]:
    """
    The three queues an RPC server for C{target} consumes, exactly as
    oslo.messaging declares them.

    @param target: needs C{topic} and C{server}; C{exchange} overrides
        C{control_exchange}.
    @param control_exchange: the topic exchange's name when the target has
        no exchange.
    @param durable_queues: oslo's C{amqp_durable_queues}: the control
        exchange and the two topic queues survive a broker restart.
    @param transient_queues_ttl: the fanout queue's C{x-expires}, in
        B{seconds}; C{0} or C{None} for none.
    @param fanout_suffix: the fanout queue's suffix; a fresh uuid4 hex when
        C{None}.
    @param quorum: oslo's C{rabbit_quorum_queue}: the two topic queues are
        quorum queues (see L{topic_queue}), and durable, as the exchange.
    @return: the queues C{<topic>}, C{<topic>.<server>} and
        C{<topic>_fanout_<suffix>}, in that order.
    @raise InvalidTarget: when C{target} lacks a topic or a server.
    """
    if not target.topic or not target.server:
        raise InvalidTarget("an RPC server needs a target with a topic and a server", target)
    topic, server = target.topic, target.server
    exchange = Exchange(target.exchange or control_exchange, "topic", durable=durable_queues or quorum is not None,
                        auto_delete=False)
    fanout = Exchange(f"{topic}_fanout", "fanout", durable=False, auto_delete=True)
    arguments = {"x-expires": int(transient_queues_ttl * 1000)} if transient_queues_ttl else {}
    return (
        topic_queue(topic, Binding(exchange, topic), durable_queues, quorum),
        topic_queue(f"{topic}.{server}", Binding(exchange, f"{topic}.{server}"), durable_queues, quorum),
        Queue(f"{topic}_fanout_{fanout_suffix or wire.new_id()}", arguments=arguments,
              bindings=(Binding(fanout, topic),), renew_prefix=f"{topic}_fanout_"),
    )
