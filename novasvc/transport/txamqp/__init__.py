"""
The RabbitMQ transport on txamqp (C{amqp_client: txamqp}):
L{novasvc.transport.txamqp._transport.TxAMQPTransport} (exported as
L{novasvc.transport.TxAMQPTransport}), its protocol, channels and frame
codec, and the machine description of AMQP 0-9-1 that txamqp needs
(C{amqp0-9-1.xml}, package data).

Its modules may import L{novasvc.transport.amqp}, the rest of
L{novasvc.transport} and the layers below; never L{novasvc.transport.pika}.
"""
