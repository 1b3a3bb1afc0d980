"""
One RabbitMQ node of the test process's own (L{tests._rabbitmq_node}),
shared by the tests that restart the broker, each in a vhost of its own.

    node, url = yield shared_node(self)     # url: the test's own vhost
    yield node.stop_app()                   # the test's restart...
    yield node.start_app()                  # ...touches no other test

Booting a node costs seconds of CPU; a vhost costs one C{rabbitmqctl}
call. The first test that asks starts the node; the next ones find it up
(or start its application again, or a new node if it died) and get a new
vhost, so no queue, exchange or message of one test is seen by another,
durable or not. Tests run one at a time in a process, so a restart never
meets another test's traffic; trial's workers each have their own node. The
node is stopped when the process exits.
"""

import atexit
import json
import uuid
from typing import Any, List

from twisted.internet import defer

from novasvc.transport.url import TransportURL
from tests._rabbitmq_node import NodeError, RabbitMQNode, check_available

__all__ = ["shared_node"]

#: The process's node (one at most).
_NODES: List[RabbitMQNode] = []
_LOCK = defer.DeferredLock()


@defer.inlineCallbacks
def _running_node() -> Any:
    """
    @return: a C{Deferred} firing with the shared node, started (or its
        application started again) if needed.
    """
    if _NODES and not _NODES[0].accepts():
        if _NODES[0].alive():
            yield _NODES[0].start_app()
        else:
            yield _NODES.pop().stop()
    if not _NODES:
        node = RabbitMQNode()
        try:
            yield node.start()
        except BaseException:
            yield node.stop()
            raise
        _NODES.append(node)
    return _NODES[0]


@defer.inlineCallbacks
def shared_node(case: Any) -> Any:
    """
    Give C{case} the process's node, up, and a new vhost of it that
    C{guest} may use.

    @return: a C{Deferred} firing with C{(node, url)}: the
        L{RabbitMQNode} and the L{TransportURL} of the vhost.
    @raise SkipTest: outside CI, when no node can be run here.
    @raise AssertionError: in CI, when no node can be run here.
    @raise NodeError: (as the failure) when the node cannot be started or
        the vhost made.
    """
    check_available()
    node = yield _LOCK.run(_running_node)
    vhost = f"test-{uuid.uuid4().hex[:12]}"
    definitions = {
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
    }
    path = node.write_file(f"{vhost}.json", json.dumps(definitions).encode(), 0o644)
    out, err, code = yield node.rabbitmqctl("import_definitions", path)
    if code != 0:
        raise NodeError(f"cannot make vhost {vhost} on {node.name}: {(err or out).decode(errors='replace').strip()}")
    return node, TransportURL.parse(node.url + vhost)


@atexit.register
def _stop_at_exit() -> None:
    for node in _NODES:
        node.stop_now()
