# -*- test-case-name: tests.test_bench -*-
"""
The oslo-protocol floor's server (L{_oslo_protocol.Server}): oslo.messaging's
RPC protocol by hand on pika's Twisted public API, serving an endpoint whose
C{echo} ticks the L{DispatchClock}.

    python bench/_server_floor_oslo.py SETTINGS_JSON

Settings: C{url}, C{topic}, C{exchange}, C{host}, C{arm} (optional, as
novasvc's server). Commands: C{arm} (C{n}), C{profile}, C{exit}.
"""

from typing import Any, Dict

from twisted.internet import defer

from _child import DispatchClock, read_settings
from _oslo_protocol import Server, connect
from _twisted_child import Commands, run


class Endpoint:
    """
    What the floor serves: C{echo}, ticking the dispatch clock.
    """

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


@defer.inlineCallbacks
def setup(reactor: Any, commands: Commands) -> Any:
    """
    Connect, declare, consume.
    """
    settings = read_settings()
    clock = DispatchClock(commands.emit)
    if settings.get("arm"):
        clock.arm(settings["arm"])
    connection, channel = yield connect(reactor, settings["url"])
    server = Server(channel, settings["exchange"], settings["topic"], settings["host"], Endpoint(clock))
    yield server.start()

    def arm(command: Dict[str, Any]) -> None:
        clock.arm(command["n"])

    commands.handle("arm", arm)
    commands.handle("exit", lambda _: connection.close())


if __name__ == "__main__":
    run(setup)
