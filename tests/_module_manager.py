"""
A module served as a manager (Nova: "singletons, classes, modules or
objects"), for tests.test_core_manager and tests.test_core_service.
"""

from os.path import join  # noqa: F401 (imported: must not be callable over RPC)

from novasvc.rpc.target import Target

topic = "modular"
target = Target(version="1.2")
events = []


def echo(ctxt, value):
    """
    @return: C{value}.
    """
    return value


def init_host(service_ref):
    """
    A lifecycle hook the service calls (never over RPC).
    """
    events.append("init_host")


class Greeter:
    """
    A plain object with methods, served as a manager instance.
    """

    topic = "greeter"

    def greet(self, ctxt, name):
        return f"hello {name}"


GREETER = Greeter()
