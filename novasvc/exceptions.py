# -*- test-case-name: tests.test_exceptions -*-
"""
Errors raised by the framework itself (configuration, loading, store and
transport). RPC errors that cross the wire live in L{novasvc.rpc.errors}.
"""


class NovaSvcError(Exception):
    """
    Base class of every error novasvc raises on purpose.
    """


class ConfigError(NovaSvcError):
    """
    The configuration (YAML file or command line) is unusable; the message
    names the key or file and what was expected.
    """


class LoadError(NovaSvcError):
    """
    A dotted path named in configuration could not be imported, or the object
    found does not provide the interface it must.
    """


class ServiceNotFound(NovaSvcError):
    """
    No live row in the C{services} table matches.
    """


class ServiceExists(NovaSvcError):
    """
    A live row for this (host, binary) already exists (Nova's
    C{ServiceBinaryExists}).
    """


class TransportError(NovaSvcError):
    """
    The message broker could not take a message (not connected, stopped,
    channel closed, publish nacked).
    """


class DisconnectedError(TransportError):
    """
    The connection to the broker was down (and did not come back in time) or
    was lost before the broker confirmed the message: the broker may or may
    not have it, and sending it again once connected may succeed.
    """


class UnroutableError(TransportError):
    """
    A mandatory publish reached no queue (AMQP C{basic.return}).
    """


class WorkerStartError(NovaSvcError):
    """
    A worker ended, other than by a signal, before every worker of the pool
    had been ready once: the pool's start fails instead of restarting it
    in a loop (a configuration or import error ends every worker alike).
    Defined here, not in L{novasvc.process.workers}, so that the launcher can
    recognise it without importing the workers' code in a one-process
    service.
    """


class StartupError(NovaSvcError):
    """
    A manager's start-up hook failed (C{init_host}, C{pre_start_hook},
    C{post_start_hook}). The message is one line naming the hook, the
    manager and the cause (C{init_host of inventory.manager.InventoryManager
    failed: OperationalError: ...}); the original exception is chained as
    C{__cause__}, for the traceback shown under C{--traceback} or DEBUG.
    """


class LifecycleError(NovaSvcError):
    """
    A start or stop asked for in a state that cannot take it (e.g. a start
    while a stop is still under way): the message names the object and its
    state.
    """
