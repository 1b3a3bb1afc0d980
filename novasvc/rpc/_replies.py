# -*- test-case-name: tests.test_rpc_replies -*-
"""
The RPC server's replies to calls (L{Replies}): each is published mandatory
to the default exchange, routed by the caller's C{_reply_q} (not mandatory
when that is a direct reply-to name, C{amq.rabbitmq.reply-to.<opaque>}:
RabbitMQ 3.10 returns such a message as unroutable although it delivered
it; a reply to a direct reply-to name whose channel is gone is dropped by
the broker, and its caller has already failed the call).

A reply that comes back unroutable (its queue is missing: the caller is
re-declaring it, or is gone) is held and retried in the background as
oslo.messaging does: every C{reply_retry_interval} seconds for
C{reply_retry_timeout} seconds, one probe per missing queue, the others
following once it went through. What is held stays within a budget of
C{reply_retry_max} replies and C{reply_retry_bytes} bytes, all missing
queues together; a reply beyond it is dropped (one WARNING when the budget
first refuses one). A reply queue that stayed missing that long is
remembered as gone for 60 s (the last 1,000 such queues): replies to it are
dropped at once. So a caller that vanished never holds a slot that live
traffic needs.
"""

from collections import deque
from typing import Any, Deque, Dict, Optional

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from novasvc._text import clip
from novasvc.exceptions import UnroutableError
from novasvc.interfaces import ITransport
from novasvc.transport.topology import DEFAULT_EXCHANGE, is_direct_reply_to

__all__ = ["Replies"]

#: How many reply queues found gone are remembered, and for how many seconds.
_GONE_QUEUES = 1000
_GONE_FOR = 60.0


class Replies:
    """
    The replies of one RPC server, and those held for missing queues.

    @ivar clock: the C{IReactorTime} of the retries (set by the server when
        it starts).
    @ivar missing: the queues found missing, whose replies are held and
        retried, by name.
    @ivar gone: the queues found gone, with the time until which they stay
        so, oldest first. While both are empty (the usual case) a reply is
        published at once: the server tests them before calling
        L{held_back}.
    @ivar held: how many replies are held now.
    @ivar retry_timeout: how long, in seconds, a missing queue's replies are
        retried.
    """

    _log = Logger()

    def __init__(self, transport: ITransport, *, retry_timeout: float, retry_interval: float, retry_max: int,
                 retry_bytes: int) -> None:
        """
        @param transport: where replies are published.
        @param retry_timeout: see L{novasvc.rpc.server.RPCServer}'s
            C{reply_retry_timeout}; C{0} drops a reply after its first
            attempt.
        @param retry_interval: seconds between two probes of a missing queue.
        @param retry_max: the most replies held at once.
        @param retry_bytes: the most bytes of replies held at once.
        """
        self._transport = transport
        self.clock: Any = None
        self.retry_timeout = float(retry_timeout)
        self._retry_interval = float(retry_interval)
        self._retry_max = int(retry_max)
        self._retry_bytes = int(retry_bytes)
        self.missing: Dict[str, _MissingQueue] = {}
        self.gone: Dict[str, float] = {}
        self.held = 0
        self._held_bytes = 0
        self._budget_warned = False
        self._retrying = True

    def send(self, reply_q: str, body: bytes) -> Optional[defer.Deferred]:
        """
        Publish a reply nothing waits for (mandatory). When its queue is
        missing, the reply is held and retried in the background.

        @return: C{None} when the reply was dropped or held at once (its
            queue is known gone or missing); otherwise the publish's
            C{Deferred}, firing with C{None} once the reply is confirmed, held
            or dropped (it never fails; problems are logged).
        """
        if self.held_back(reply_q, body):
            return None
        d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, body, mandatory=not is_direct_reply_to(reply_q))
        d.addErrback(self.failed, reply_q, body)
        return d

    def held_back(self, reply_q: str, body: bytes) -> bool:
        """
        @return: C{True} when the reply was dropped (its queue is known gone)
            or held (its queue is known missing), C{False} when it is to be
            published.
        """
        if self.gone and self._is_gone(reply_q):
            self._log.debug("Dropping a reply to the gone queue {reply_q}", reply_q=clip(reply_q))
            return True
        if self.missing:
            queue = self.missing.get(reply_q)
            if queue is not None:
                self._hold(queue, body)
                return True
        return False

    def failed(self, failure: Failure, reply_q: str, body: bytes) -> None:
        """
        A reply was not published: hold it for a retry when no queue took
        it, else log it.
        """
        if failure.check(UnroutableError):
            self._missing_reply(reply_q, body)
        else:
            self._log.error("A reply to {reply_q} could not be published: {error}", reply_q=clip(reply_q),
                            error=clip(failure.getErrorMessage()))

    def stop(self, topic: Optional[str], server: Optional[str]) -> None:
        """
        The server stopped: drop the replies held (logged once), and from
        now on retry none.

        @param topic: the server's topic, for the log line.
        @param server: its server name, for the log line.
        """
        self._retrying = False
        if not self.missing:
            return
        missing, self.missing = self.missing, {}
        count = 0
        for queue in missing.values():
            if queue.call is not None and queue.call.active():
                queue.call.cancel()
            count += len(queue.replies)
        self.held = self._held_bytes = 0
        self._budget_warned = False
        self._log.warn("RPC server {topic}.{server} stopped: dropping {count} reply(ies) held for {queues} "
                       "missing queue(s)", topic=topic, server=server, count=count, queues=len(missing))

    def restart(self) -> None:
        """
        The server started again: replies to missing queues are retried.
        """
        self._retrying = True

    def _missing_reply(self, reply_q: str, body: bytes) -> None:
        """
        A reply came back unroutable: hold it for a retry, its queue now
        known missing (retried every C{reply_retry_interval} seconds, one
        reply at a time, until it appears or C{reply_retry_timeout} passed).
        """
        if self.gone and self._is_gone(reply_q):
            self._log.debug("Dropping a reply to the gone queue {reply_q}", reply_q=clip(reply_q))
            return
        queue = self.missing.get(reply_q)
        if queue is None:
            now = self.clock.seconds()
            if not self._retrying or self._retry_interval > self.retry_timeout or not self._fits(body):
                self._abandon(reply_q, _MissingQueue(now), now, 1)
                return
            queue = self.missing[reply_q] = _MissingQueue(now)
            queue.call = self.clock.callLater(self._retry_interval, self._retry, reply_q)
            self._log.debug("The reply queue {reply_q} is missing; its replies are retried for {timeout} s",
                            reply_q=clip(reply_q), timeout=self.retry_timeout)
        self._hold(queue, body)

    def _fits(self, body: bytes) -> bool:
        """
        @return: whether C{body} may be held within the retry budget (a
            WARNING when the budget first refuses one).
        """
        if self.held < self._retry_max and self._held_bytes + len(body) <= self._retry_bytes:
            return True
        if not self._budget_warned:
            self._budget_warned = True
            self._log.warn("Reply retry budget full ({count} replies, {size} bytes held for {queues} missing "
                           "queue(s)): dropping replies to missing queues until it frees",
                           count=self.held, size=self._held_bytes, queues=len(self.missing))
        return False

    def _hold(self, queue: "_MissingQueue", body: bytes) -> None:
        if not self._fits(body):
            queue.dropped += 1
            return
        queue.replies.append(body)
        self.held += 1
        self._held_bytes += len(body)

    def _release(self, body: bytes) -> None:
        self.held -= 1
        self._held_bytes -= len(body)
        self._budget_warned = False

    def _retry(self, reply_q: str) -> None:
        queue = self.missing.get(reply_q)
        if queue is None:
            return
        queue.call = None
        try:
            d = self._transport.publish(DEFAULT_EXCHANGE, reply_q, queue.replies[0], mandatory=True)
            d.addCallbacks(self._found, self._retry_failed, callbackArgs=(reply_q, queue),
                           errbackArgs=(reply_q, queue))
        except Exception:
            del self.missing[reply_q]
            self._log.failure("Retrying the replies to {reply_q} failed; {count} reply(ies) dropped",
                              reply_q=clip(reply_q), count=self._drop(queue), level=LogLevel.error)

    def _found(self, _: object, reply_q: str, queue: "_MissingQueue") -> None:
        """
        The first held reply went through: send the others the usual way.
        """
        if self.missing.get(reply_q) is not queue:
            return  # dropped by stop() meanwhile
        del self.missing[reply_q]
        self._release(queue.replies.popleft())
        self._log.debug("The reply queue {reply_q} appeared after {elapsed} s", reply_q=clip(reply_q),
                        elapsed=self.clock.seconds() - queue.since)
        if queue.dropped:
            self._log.warn("{count} reply(ies) to {reply_q} were dropped while it was missing: the reply retry "
                           "budget was full", count=queue.dropped, reply_q=clip(reply_q))
        while queue.replies:
            body = queue.replies.popleft()
            self._release(body)
            self.send(reply_q, body)

    def _retry_failed(self, failure: Failure, reply_q: str, queue: "_MissingQueue") -> None:
        if self.missing.get(reply_q) is not queue:
            return
        now = self.clock.seconds()
        if failure.check(UnroutableError) and now - queue.since + self._retry_interval <= self.retry_timeout:
            queue.call = self.clock.callLater(self._retry_interval, self._retry, reply_q)
            return
        del self.missing[reply_q]
        if failure.check(UnroutableError):
            self._abandon(reply_q, queue, now, 0)
            return
        self._log.error("{count} reply(ies) to {reply_q} dropped: the retry could not be published: {error}",
                        count=self._drop(queue), reply_q=clip(reply_q), error=clip(failure.getErrorMessage()))

    def _drop(self, queue: "_MissingQueue") -> int:
        """
        @return: how many replies to C{queue} were dropped, now that its held
            ones are.
        """
        for body in queue.replies:
            self._release(body)
        count = len(queue.replies) + queue.dropped
        queue.replies.clear()
        return count

    def _abandon(self, reply_q: str, queue: "_MissingQueue", now: float, extra: int) -> None:
        """
        Give up on a missing reply queue: drop what it held, and remember it
        as gone for C{_GONE_FOR} seconds, so replies to it are dropped at
        once (one log line here, DEBUG for each later one).

        @param extra: replies dropped that were not held.
        """
        count = self._drop(queue) + extra
        gone = self.gone
        gone.pop(reply_q, None)
        while len(gone) >= _GONE_QUEUES:
            del gone[next(iter(gone))]
        gone[reply_q] = now + _GONE_FOR
        self._log.warn("The reply queue {reply_q} is missing after {elapsed} s: abandoning {count} reply(ies), "
                       "and replies to it for the next {ttl} s", reply_q=clip(reply_q), elapsed=now - queue.since,
                       count=count, ttl=_GONE_FOR)

    def _is_gone(self, reply_q: str) -> bool:
        until = self.gone.get(reply_q)
        if until is None:
            return False
        if self.clock.seconds() < until:
            return True
        del self.gone[reply_q]
        return False


class _MissingQueue:
    """
    A reply queue found missing: the replies held for it, oldest first.

    @ivar since: when it was found missing, in seconds (the clock's).
    @ivar replies: the reply bodies held, a C{deque} of C{bytes}.
    @ivar dropped: how many replies to it the budget refused.
    @ivar call: the pending retry, or C{None} while a probe is out.
    """

    __slots__ = ("since", "replies", "dropped", "call")

    def __init__(self, since: float) -> None:
        self.since = since
        self.replies: Deque[bytes] = deque()
        self.dropped = 0
        self.call: Any = None
