"""
What the two RabbitMQ transports share, whatever AMQP client library speaks
for them: the base transport (L{novasvc.transport.amqp._base}), reaching the
broker (endpoints, TLS, backoff), liveness, channels, frames, publish,
consume and declare.

It may import the rest of L{novasvc.transport} outside L{novasvc.transport.pika}
and L{novasvc.transport.txamqp}, and the layers below the transport; never
those two client packages, which build on it.
"""
