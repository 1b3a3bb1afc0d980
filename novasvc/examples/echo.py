# -*- test-case-name: tests.test_examples_echo -*-
"""
L{EchoManager}: the smallest useful manager, used by the README and the tests.

Run it::

    twistd -n novasvc --manager=novasvc.examples.echo.EchoManager

and call it::

    novasvc-rpc call echo echo value='"hello"'
"""

import os

from twisted.internet import task
from twisted.logger import Logger

from novasvc.core.manager import Manager
from novasvc.periodic import periodic_task
from novasvc.rpc.target import Target

_log = Logger()


class EchoError(Exception):
    """
    The error L{EchoManager.fail} raises; callers that list
    C{novasvc.examples.echo} in C{allowed_remote_exmods} get it back as this
    class.

    @ivar code: an application error code (C{int}), kept across the wire as
        an exception C{kwargs} entry.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        Exception.__init__(self, message)
        self.kwargs = {"code": code}
        self.code = code


class EchoManager(Manager):
    """
    Echoes values back; serves topic C{echo} at RPC API version 1.3.

    @ivar heartbeats: how many times the periodic task ran (C{int}).
    """

    topic = "echo"
    target = Target(version="1.3")

    def __init__(self, *args, **kwargs) -> None:
        Manager.__init__(self, *args, **kwargs)
        self.heartbeats = 0

    def echo(self, ctxt, value):
        """
        @return: C{value}, unchanged (any JSON value).
        """
        return value

    def pid(self, ctxt) -> int:
        """
        @return: the id of the process that answered (C{int}): with
            C{workers: N}, which worker it was.
        """
        return os.getpid()

    def sleep(self, ctxt, seconds: float):
        """
        Wait without blocking the reactor.

        @param seconds: how long, in seconds.
        @return: a C{Deferred} firing with C{seconds} after that long.
        """
        return task.deferLater(self.clock, float(seconds), lambda: seconds)

    def fail(self, ctxt, message: str, code: int = 1):
        """
        @raise EchoError: always, with C{message} and C{code}.
        """
        raise EchoError(message, code)

    @periodic_task(spacing=30)
    def _log_heartbeat(self, context):
        """
        Log that the service is alive, every 30 seconds.
        """
        self.heartbeats += 1
        _log.info("{host}: echo service alive ({count} heartbeats)", host=self.host, count=self.heartbeats)
