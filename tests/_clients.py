"""
The AMQP client libraries the RabbitMQ integration suites run against.

A suite's test case names the transport it makes in a C{transport_class}
attribute (pika's L{AMQPTransport} by default); L{on_txamqp} makes the same
test case on L{TxAMQPTransport}, so that each suite exists once per client
without being written twice::

    class CallTests(TestCase):
        transport_class = AMQPTransport
        ...

    TxAMQPCallTests = on_txamqp(CallTests)
"""

from typing import Optional, Type, TypeVar

from novasvc.transport import AMQPTransport
from novasvc.transport import TxAMQPTransport

__all__ = ["AMQPTransport", "TxAMQPTransport", "on_txamqp"]

T = TypeVar("T", bound=type)


def on_txamqp(case_class: T, name: Optional[str] = None) -> T:
    """
    @param case_class: a test case with a C{transport_class} attribute.
    @param name: the new class's name, C{TxAMQP<name of case_class>} by
        default.
    @return: a subclass whose C{transport_class} is L{TxAMQPTransport};
        assign it to a module-level name of the same name for trial to find
        it.
    """
    name = name or f"TxAMQP{case_class.__name__}"
    doc = f"{(case_class.__doc__ or '').strip()}\n\n(On txamqp: L{{TxAMQPTransport}}.)"
    twin: Type = type(name, (case_class,), {"transport_class": TxAMQPTransport, "__doc__": doc,
                                            "__module__": case_class.__module__})
    return twin  # type: ignore[return-value]
