# -*- test-case-name: tests.test_bench -*-
"""
The benchmark's oslo.messaging server: C{get_rpc_server} with the threading
executor (64 worker threads, oslo's default) and the rabbit driver at its
defaults, serving an endpoint whose C{echo} ticks the L{DispatchClock}.

    python bench/_server_oslo.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{exchange}, C{host}, C{arm} (optional).
Commands: C{arm} (C{n}), C{exit} (stop, wait, clean up).
"""

from typing import Any, Dict

import oslo_messaging

from _child import DispatchClock, read_settings
from _oslo import CommandLoop, get_transport


class Endpoint:
    """
    C{echo}, at version 1.3 as novasvc's EchoManager.
    """

    target = oslo_messaging.Target(version="1.3")

    def __init__(self, clock: DispatchClock) -> None:
        """
        @param clock: ticked by each C{echo}.
        """
        self._clock = clock

    def echo(self, ctxt: Dict[str, Any], value: Any) -> Any:
        """
        @return: C{value}, after ticking the dispatch clock.
        """
        self._clock.hit()
        return value


def main() -> None:
    """
    Serve until told to exit.
    """
    settings = read_settings()
    commands = CommandLoop()
    clock = DispatchClock(commands.emit)
    if settings.get("arm"):
        clock.arm(settings["arm"])
    transport = get_transport(settings["url"], settings["exchange"])
    target = oslo_messaging.Target(topic=settings["topic"], server=settings["host"])
    server = oslo_messaging.get_rpc_server(transport, target, [Endpoint(clock)], executor="threading")
    server.start()

    def arm(command: Dict[str, Any]) -> None:
        clock.arm(command["n"])

    def stop(_: Dict[str, Any]) -> None:
        server.stop()
        server.wait()
        transport.cleanup()

    commands.handle("arm", arm)
    commands.handle("exit", stop)
    commands.emit({"event": "ready"})
    commands.run()


if __name__ == "__main__":
    main()
