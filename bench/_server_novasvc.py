# -*- test-case-name: tests.test_bench -*-
"""
The benchmark's novasvc server: a whole L{novasvc.core.service.Service} (memory
service store, L{AMQPTransport} or, with C{amqp_client} C{txamqp},
L{novasvc.transport.TxAMQPTransport}, periodic tasks and report_state on, every
RPC feature at its default: oslo envelope, request context, de-duplication,
the dispatcher with its version and access checks, late acks, publisher
confirms on replies) hosting L{novasvc.examples.echo.EchoManager}, whose
C{echo} also ticks the L{DispatchClock}.

    python bench/_server_novasvc.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{exchange}, C{host}, C{amqp_client}
(optional: C{pika} or C{txamqp}) and C{arm} (optional: a number of casts to
time from the very start, for the drain phase).
Commands: C{arm} (C{n}), C{tally} (the armed batch so far, for one of several
workers on the same queue), C{profile}, C{exit} (graceful stop).
"""

from typing import Any, Dict

from novasvc.config import Config
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.echo import EchoManager
from novasvc.core.service import Service
from novasvc.transport import get_transport

from _child import DispatchClock, read_settings
from _twisted_child import Commands, run


def setup(reactor: Any, commands: Commands) -> Any:
    """
    Start the service; fires once it consumes.
    """
    settings = read_settings()
    clock = DispatchClock(commands.emit)
    if settings.get("arm"):
        clock.arm(settings["arm"])

    class TimedEchoManager(EchoManager):
        def echo(self, ctxt: Any, value: Any) -> Any:
            clock.hit()
            return value

    transport = get_transport(settings["url"], reactor=reactor, client=settings.get("amqp_client", "pika"))
    config = Config(host=settings["host"], control_exchange=settings["exchange"], transient_queues_ttl=120)
    service = Service.create(host=settings["host"], topic=settings["topic"], manager=TimedEchoManager,
                             config=config, store=MemoryServiceStore(), transport=transport, clock=reactor)

    def arm(command: Dict[str, Any]) -> None:
        clock.arm(command["n"])

    commands.handle("arm", arm)
    commands.handle("tally", lambda _: clock.tally())
    commands.handle("exit", lambda _: service.stopService())
    return service.startService()


if __name__ == "__main__":
    run(setup)
