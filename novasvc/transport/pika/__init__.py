"""
The RabbitMQ transport on pika's Twisted adapter (the default
C{amqp_client}): L{novasvc.transport.pika._transport.AMQPTransport}
(exported as L{novasvc.transport.AMQPTransport}), how it connects through
pika, and its fast path (L{novasvc.transport.pika._internals}).

Its modules may import L{novasvc.transport.amqp}, the rest of
L{novasvc.transport} and the layers below; never L{novasvc.transport.txamqp}.
"""
