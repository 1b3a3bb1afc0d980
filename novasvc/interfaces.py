# -*- test-case-name: tests.test_interfaces -*-
"""
The seams of novasvc, declared as zope interfaces the way Twisted declares its
own (C{IService}, C{IServiceMaker}).

Every interface here has an in-memory twin shipped with novasvc and one
contract test suite that runs against the twin and the real implementation:

  - L{ITransport}: L{novasvc.transport.memory.MemoryTransport},
    L{novasvc.transport.AMQPTransport} (RabbitMQ through pika) and
    L{novasvc.transport.TxAMQPTransport} (RabbitMQ through txamqp).
  - L{IServiceStore}: L{novasvc.db.memory.MemoryServiceStore} and
    L{novasvc.db.store.SQLServiceStore} (SQLAlchemy).
  - L{IDatabaseAPI}: L{novasvc.db.api.Database} on SQLite in memory and on
    a database server.
"""

from zope.interface import Attribute, Interface


class IDelivery(Interface):
    """
    One message delivered to a consumer, as AMQP's C{basic.deliver}.

    Exactly one of L{ack} or L{reject} settles it; further calls are ignored.
    A delivery that is never settled goes back to its queue when the consumer
    or the connection closes (that is how at-least-once delivery survives a
    worker kill).
    """

    body = Attribute("The message body, C{bytes}.")
    content_type = Attribute("The C{content_type} property, C{str} or C{None}.")
    exchange = Attribute("The exchange it was published to, C{str} (C{''} is the default exchange).")
    routing_key = Attribute("The routing key it was published with, C{str}.")
    redelivered = Attribute("C{True} if the broker delivered it before, C{bool}.")

    def ack():
        """
        Acknowledge: the broker forgets the message.

        @rtype: C{None}
        """

    def reject(requeue):
        """
        Reject the message.

        @param requeue: C{True} puts it back on its queue; C{False} drops it
            (or dead-letters it, where the broker is configured to).
        @type requeue: C{bool}
        @rtype: C{None}
        """


class IConsumer(Interface):
    """
    A running subscription to one queue, made by L{ITransport.consume}.
    """

    queue = Attribute("The L{novasvc.transport.topology.Queue} consumed.")

    def whenActive():
        """
        @return: a C{Deferred} that fires with C{None} once the queue, its
            bindings and the consumer exist on the broker for the first time.
            While the broker cannot be reached it simply does not fire yet.
        """

    def cancel():
        """
        Stop the delivery of new messages (AMQP C{basic.cancel}) and forget
        the subscription, so it is not restored on reconnection. Deliveries
        already handed out may still be settled afterwards.

        @return: a C{Deferred} firing with C{None} when the broker has
            confirmed, or at once when not connected.
        """


class ITransport(Interface):
    """
    A message broker connection with AMQP 0-9-1 semantics: exchanges, queues,
    bindings, publish and consume with manual acknowledgement.

    The transport owns its connection lifecycle: after L{start} it connects,
    and on every (re)connection it declares again every exchange, queue and
    binding that a live consumer needs, and every queue given to
    L{declare_queue}, and restarts the consumers. A broker
    that cannot be reached is logged and retried, never raised to the caller
    of L{start}.
    """

    url = Attribute(
        "The L{novasvc.transport.url.TransportURL} this transport was made "
        "from; its C{str()} hides the password."
    )

    is_connected = Attribute(
        "C{True} while the transport can publish (connected to the broker, "
        "for a transport that has one); C{False} once stopped. A C{bool}, "
        "read by the API's C{/healthz}."
    )

    def start():
        """
        Begin connecting. Does not wait for the broker. A stopped transport
        starts again; one whose stop is under way starts once that stop
        has fired (unless stopped again meanwhile).

        @rtype: C{None}
        """

    def stop():
        """
        Close the connection; unsettled deliveries go back to their queues,
        publishes and declarations waiting for a connection fail with
        L{novasvc.exceptions.TransportError}, and every timer of the
        transport is gone once it fires. A stop while one is under way
        fires with it.

        @return: a C{Deferred} firing with C{None} once closed.
        """

    def publish(exchange, routing_key, body, content_type="application/json",
                expiration=None, mandatory=False):
        """
        Publish one message. The exchange is declared first (once per
        connection) unless it is the default exchange.

        @param exchange: where to publish.
        @type exchange: L{novasvc.transport.topology.Exchange}
        @param routing_key: the routing key.
        @type routing_key: C{str}
        @param body: the message body.
        @type body: C{bytes}
        @param content_type: the C{content_type} property.
        @type content_type: C{str} or C{None}
        @param expiration: per-message TTL in B{milliseconds}, or C{None}.
        @type expiration: C{int} or C{None}
        @param mandatory: if C{True} and no queue takes the message, the
            returned C{Deferred} fails with
            L{novasvc.exceptions.UnroutableError}.
        @type mandatory: C{bool}

        @return: a C{Deferred} firing with C{None} once the broker has taken
            responsibility for the message (publisher confirm); it fails with
            L{novasvc.exceptions.TransportError} if that cannot happen (for
            example when the transport is stopped).
        """

    def consume(queue, on_message, prefetch=0):
        """
        Declare C{queue} (and each exchange and binding it names) and consume
        it with manual acknowledgement, now and after every reconnection.

        @param queue: the queue and its bindings.
        @type queue: L{novasvc.transport.topology.Queue}
        @param on_message: called on the reactor thread with each
            L{IDelivery}; it must not raise (an exception is logged and the
            delivery rejected without requeue).
        @type on_message: C{Callable[[IDelivery], None]}
        @param prefetch: the most unsettled deliveries at once (C{basic.qos});
            C{0} means no limit.
        @type prefetch: C{int}

        @return: the subscription; once the transport is stopped, one
            cancelled at once (its C{whenActive} fails with
            C{CancelledError}).
        @rtype: L{IConsumer}
        """

    def declare_queue(queue):
        """
        Declare C{queue}, each exchange and binding it names (and its
        dead-letter queue) without consuming it, now or once connected, and
        again after every reconnection until the transport stops (or the
        queue is deleted with L{delete_queue}): a broker restart loses the
        queues that are not durable. oslo.messaging's notifier declares the
        queue of each routing key it publishes to this way, so that nothing
        is lost before a listener exists.

        Declaring a queue already declared on the current connection costs
        no round trip to the broker.

        @param queue: the queue and its bindings.
        @type queue: L{novasvc.transport.topology.Queue}
        @return: a C{Deferred} firing with C{None} once the queue and its
            bindings exist on the broker; failing with
            L{novasvc.exceptions.TransportError} when the broker refuses
            them (e.g. the queue exists with other flags; the queue is then
            no longer declared on reconnection) or the transport is
            stopped, and with L{novasvc.exceptions.DisconnectedError} when
            the connection was lost during the declaration or none came
            within the transport's wait for a connection (the queue is still
            declared on the next connection).
        """

    def delete_queue(name):
        """
        Delete a queue if it exists (oslo.messaging does this to its fanout
        queues on shutdown).

        @param name: the queue name.
        @type name: C{str}
        @return: a C{Deferred} firing with C{None}; deleting an absent queue,
            or deleting while disconnected, is not an error.
        """


class IServiceStore(Interface):
    """
    The C{services} table: which service (host, binary) exists and when it
    last reported, with Nova's columns and soft-delete semantics.

    Every method returns a C{Deferred}; the work runs off the reactor thread.
    Records are L{novasvc.db.record.ServiceRecord} values. Timestamps are naive
    UTC C{datetime}s.
    """

    def start():
        """
        Open the store (create the schema if it is missing).

        @return: a C{Deferred} firing with C{None}.
        """

    def stop():
        """
        Close the store; waits for work already submitted.

        @return: a C{Deferred} firing with C{None}.
        """

    def get_by_host_and_binary(host, binary):
        """
        @return: a C{Deferred} firing with the live record for (C{host},
            C{binary}), or C{None}.
        """

    def get(service_id):
        """
        @return: a C{Deferred} firing with the live record with this id.
        @raise novasvc.exceptions.ServiceNotFound: (as the C{Deferred}'s
            failure) when there is none.
        """

    def create(host, binary, topic, version=0, disabled=False, disabled_reason=None):
        """
        Create a live record with C{report_count} 0, a fresh C{uuid} and
        C{created_at} now.

        @return: a C{Deferred} firing with the new record.
        @raise novasvc.exceptions.ServiceExists: (as the failure) when a live
            record for (C{host}, C{binary}) already exists.
        """

    def update(service_id, **values):
        """
        Update columns of a live record (C{updated_at} is set to now).
        Accepted keys: C{topic}, C{version}, C{disabled}, C{disabled_reason},
        C{forced_down}.

        @return: a C{Deferred} firing with the updated record.
        @raise novasvc.exceptions.ServiceNotFound: (as the failure).
        @raise ValueError: for any other key.
        """

    def report_state(service_id):
        """
        One heartbeat, as Nova's servicegroup DB driver: C{report_count} + 1
        and C{last_seen_up} = now, in one statement.

        @return: a C{Deferred} firing with the updated record.
        @raise novasvc.exceptions.ServiceNotFound: (as the failure) when the
            record is gone (it is B{not} recreated, as in Nova).
        """

    def destroy(service_id):
        """
        Soft-delete: C{deleted} = id, C{deleted_at} = now.

        @return: a C{Deferred} firing with C{None}.
        @raise novasvc.exceptions.ServiceNotFound: (as the failure).
        """

    def list_services(host=None, binary=None, topic=None, include_deleted=False):
        """
        @return: a C{Deferred} firing with a C{list} of records ordered by id,
            filtered by whichever of C{host}, C{binary} and C{topic} is given.
        """

    def ping():
        """
        Check that the database answers (one trivial query), for health
        checks.

        @return: a C{Deferred} firing with C{None} when it answered; failing
            with the database error, or with C{RuntimeError} when the store
            is not running.
        """


class IDatabaseAPI(Interface):
    """
    The database a manager reaches as C{self.db} (Nova's C{db_driver}): the
    service's SQL database, for the manager's own tables, with every
    statement run off the reactor thread.
    """

    def run(work, *args, **kwargs):
        """
        Run C{work(connection, *args, **kwargs)} in a worker thread, inside
        one transaction: committed when C{work} returns, rolled back when it
        raises.

        @param work: a blocking callable taking an SQLAlchemy C{Connection}
            first.
        @return: a C{Deferred} firing with what C{work} returned, or failing
            with what it raised (or the database error).
        """

    def create_tables(metadata):
        """
        Create the tables of an SQLAlchemy C{MetaData} that do not exist
        yet.

        @return: a C{Deferred} firing with C{None}.
        """

    def start():
        """
        Make the API usable (a no-op when already running).

        @return: a C{Deferred} firing with C{None}.
        """

    def stop():
        """
        Wait for the work already submitted, then close the connections.

        @return: a C{Deferred} firing with C{None}.
        """
