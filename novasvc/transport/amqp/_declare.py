# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
Declaring queues on RabbitMQ, for both AMQP transports: the declare
sequence a consumer and L{novasvc.interfaces.ITransport.declare_queue} share
(L{declare_topology}), and L{QueueDeclarations}, the queues a transport
declares without consuming them, declared again on every connection.

Each declaration of L{QueueDeclarations} runs on a channel of its own,
closed afterwards: a declaration the broker refuses closes only that
channel, never the calls pending on another. A connection's remembered
queues are all declared before its publish channel is handed out, so a
publish made after a reconnection never reaches the exchange before its
queue is back.
"""

from typing import Any, Callable, Dict, List

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc.exceptions import DisconnectedError, TransportError
from novasvc.transport.amqp._channel import ChannelError, describe
from novasvc.transport.topology import Queue

__all__ = ["declare_topology", "QueueDeclarations"]

_log = Logger()


def _always(_step: str) -> bool:
    return True


@defer.inlineCallbacks
def declare_topology(channel: Any, queue: Queue, progress: Callable[[str], bool] = _always) -> Any:
    """
    Declare C{queue} on C{channel}: first its dead-letter queue (exchanges,
    queue, bindings), then the exchanges its bindings name, the queue, and
    its bindings. The default exchange is never declared nor bound.

    @param channel: an open channel (L{novasvc.transport.amqp._channel.Channel}
        or its txamqp twin).
    @param queue: the queue.
    @param progress: called with the text of each step before it is taken
        (e.g. C{"declaring queue 'q' (durable=False, ...)"}); returning
        C{False} stops there.
    @return: a C{Deferred} firing with C{True} once every step is done,
        C{False} when C{progress} stopped it; failing with the channel's
        error.
    """
    dead_letter = queue.dead_letter
    if dead_letter is not None:
        done = yield _declare(channel, dead_letter, progress, "dead-letter ")
        if not done:
            return False
    done = yield _declare(channel, queue, progress, "")
    return done


@defer.inlineCallbacks
def _declare(channel: Any, queue: Queue, progress: Callable[[str], bool], kind: str) -> Any:
    seen = set()
    for binding in queue.bindings:
        exchange = binding.exchange
        if exchange.is_default or exchange.name in seen:
            continue
        seen.add(exchange.name)
        if not progress(f"declaring {kind}exchange {exchange.name!r} (type {exchange.type}, "
                        f"durable={exchange.durable}, auto_delete={exchange.auto_delete})"):
            return False
        yield channel.call("exchange_declare", exchange=exchange.name, exchange_type=exchange.type,
                           durable=exchange.durable, auto_delete=exchange.auto_delete)
    if not progress(f"declaring {kind}queue {queue.name!r} (durable={queue.durable}, "
                    f"auto_delete={queue.auto_delete}, exclusive={queue.exclusive}, "
                    f"arguments={queue.arguments_dict()})"):
        return False
    yield channel.call("queue_declare", queue=queue.name, durable=queue.durable, exclusive=queue.exclusive,
                       auto_delete=queue.auto_delete, arguments=queue.arguments_dict() or None)
    for binding in queue.bindings:
        if binding.exchange.is_default:
            continue
        if not progress(f"binding {kind}queue {queue.name!r} to exchange {binding.exchange.name!r} "
                        f"with key {binding.routing_key!r}"):
            return False
        yield channel.call("queue_bind", queue=queue.name, exchange=binding.exchange.name,
                           routing_key=binding.routing_key)
    return True


class _Waiter:
    """
    One caller of L{QueueDeclarations.declare} waiting for its queue.
    """

    __slots__ = ("deferred", "timer")

    def __init__(self) -> None:
        self.deferred: defer.Deferred = defer.Deferred()
        self.timer: Any = None

    def stop_waiting(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def settle(self, result: Any) -> None:
        self.stop_waiting()
        if not self.deferred.called:
            if isinstance(result, Failure):
                self.deferred.errback(result)
            else:
                self.deferred.callback(result)


class _Run:
    """
    One declaration of a queue on one connection, and who waits for it.
    """

    __slots__ = ("queue", "waiters")

    def __init__(self, queue: Queue, waiters: List[_Waiter]) -> None:
        self.queue = queue
        self.waiters = waiters


class QueueDeclarations:
    """
    The queues a transport declares without consuming them
    (L{novasvc.interfaces.ITransport.declare_queue}): remembered until the
    transport stops or the queue is deleted, declared on every connection.

    The transport calls L{declare} for its callers, L{connected} while it
    sets up a connection (before handing out its publish channel),
    L{disconnected} when it loses it, L{forget} when a queue is deleted and
    L{stop} when it stops.
    """

    def __init__(self, clock: Callable[[], Any], publish_wait: float, describe_url: str) -> None:
        """
        @param clock: returns the C{IReactorTime} for the waits.
        @param publish_wait: how long, in B{seconds}, a declaration made
            while disconnected waits for a connection before failing with
            L{DisconnectedError}; C{0} fails at once.
        @param describe_url: the transport's URL, password hidden, for
            error messages.
        """
        self._clock = clock
        self._publish_wait = publish_wait
        self._url = describe_url
        # Remembered: declared on every connection.
        self._queues: Dict[str, Queue] = {}
        # Declared on the current connection.
        self._declared: Dict[str, Queue] = {}
        # Waiting for a connection (or for the run in progress to end).
        self._waiting: Dict[str, List[_Waiter]] = {}
        self._running: Dict[str, _Run] = {}
        # The connection the declarations go to once set up: an object
        # with open_channel() and alive.
        self._target: Any = None
        self._problem = "not connected yet"

    def declare(self, queue: Queue) -> defer.Deferred:
        """
        Declare C{queue} now (connected) or on the next connection, and on
        every connection after.

        @return: see L{novasvc.interfaces.ITransport.declare_queue}.
        """
        name = queue.name
        target = self._target
        if target is not None and self._declared.get(name) == queue:
            return defer.succeed(None)
        self._queues[name] = queue
        waiter = _Waiter()
        run = self._running.get(name)
        if target is not None and run is not None and run.queue == queue:
            run.waiters.append(waiter)
            return waiter.deferred
        if target is None:
            if self._publish_wait <= 0:
                return defer.fail(DisconnectedError(
                    f"cannot declare queue {name!r}: not connected to {self._url}: {self._problem}"))
            waiter.timer = self._clock().callLater(self._publish_wait, self._timed_out, name, waiter)
        self._waiting.setdefault(name, []).append(waiter)
        if target is not None and run is None:
            self._start(name, target)
        return waiter.deferred

    def connected(self, target: Any) -> defer.Deferred:
        """
        A connection is being set up: declare every remembered queue on it,
        then send the later declarations there too.

        @param target: the connection: C{open_channel()} returns a
            C{Deferred} firing with a new channel, C{alive} says whether
            it is still up.
        @return: a C{Deferred} firing with C{None} once every remembered
            queue was tried (it never fails: refusals are logged).
        """
        self._target = None
        self._declared.clear()
        tried = [self._start(name, target) for name in list(self._queues)]

        def ready(_: Any) -> None:
            if not target.alive:
                return
            self._target = target
            for name in list(self._waiting):
                if name not in self._running and name in self._queues:
                    self._start(name, target)

        return defer.DeferredList(tried, consumeErrors=True).addCallback(ready)

    def disconnected(self, problem: str) -> None:
        """
        The connection is lost: what was declared on it must be declared
        again on the next one.

        @param problem: why, for the errors of the declarations that wait.
        """
        self._target = None
        self._declared.clear()
        self._problem = problem

    def forget(self, name: str) -> None:
        """
        Declare queue C{name} no more (it is being deleted).
        """
        self._queues.pop(name, None)
        self._declared.pop(name, None)

    def stop(self, error: Exception) -> None:
        """
        Forget every queue and fail every waiting declaration with
        C{error}.
        """
        self._target = None
        self._queues.clear()
        self._declared.clear()
        waiting, self._waiting = self._waiting, {}
        running, self._running = self._running, {}
        for waiters in [*waiting.values(), *(run.waiters for run in running.values())]:
            for waiter in waiters:
                waiter.settle(Failure(error))

    # -- one declaration ----------------------------------------------------------

    def _start(self, name: str, target: Any) -> defer.Deferred:
        queue = self._queues[name]
        waiters = self._waiting.pop(name, [])
        for waiter in waiters:
            waiter.stop_waiting()  # declaring now: the wait for a connection is over
        run = self._running[name] = _Run(queue, waiters)
        steps: List[str] = []

        def progress(step: str) -> bool:
            steps.append(step)
            return True

        def declare(channel: Any) -> defer.Deferred:
            d = declare_topology(channel, queue, progress)
            d.addBoth(lambda result: (channel.close(), result)[1])
            return d

        d = target.open_channel().addCallback(declare)
        d.addCallbacks(self._done, self._failed, callbackArgs=(name, run, target), errbackArgs=(name, run, steps))
        return d

    def _end(self, name: str, run: _Run, result: Any) -> None:
        if self._running.get(name) is run:
            del self._running[name]
        for waiter in run.waiters:
            waiter.settle(result)
        target = self._target
        if target is not None and name in self._waiting and name not in self._running and name in self._queues:
            self._start(name, target)  # asked for meanwhile, with other flags

    def _done(self, _: Any, name: str, run: _Run, target: Any) -> None:
        if target.alive and self._queues.get(name) == run.queue:
            self._declared[name] = run.queue
        self._end(name, run, None)

    def _failed(self, failure: Failure, name: str, run: _Run, steps: List[str]) -> None:
        error = failure.value
        step = steps[-1] if steps else "opening a channel"
        reason = describe(getattr(error, "reason", None) or error)
        if isinstance(error, ChannelError) and error.by_broker:
            if self._queues.get(name) == run.queue:
                del self._queues[name]
            refused = TransportError(f"cannot declare queue {name!r}: the broker refused {step}: {reason}")
            _log.warn("{error}", error=str(refused))
            self._end(name, run, Failure(refused))
        else:
            self._end(name, run, Failure(DisconnectedError(
                f"cannot declare queue {name!r}: the connection to {self._url} was lost while {step}: {reason}")))

    def _timed_out(self, name: str, waiter: _Waiter) -> None:
        waiter.timer = None
        waiting = self._waiting.get(name, [])
        if waiter in waiting:
            waiting.remove(waiter)
            if not waiting:
                del self._waiting[name]
        waiter.settle(Failure(DisconnectedError(
            f"cannot declare queue {name!r}: not connected to {self._url} within {self._publish_wait} "
            f"seconds: {self._problem}")))
