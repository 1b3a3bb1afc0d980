"""
An unmodified oslo.messaging peer, run as a subprocess by the interop tests.

  python _oslo_peer.py client URL EXCHANGE ACTIONS_JSON
      Runs each action with an oslo RPCClient and prints one JSON line per
      action: {"ok": result} or {"error": class, "module": ..., "message": ...}.
      An action: {"op": "call"|"cast", "topic", "method", "args", "ctxt",
      "server", "fanout", "version", "namespace", "timeout", "exmods",
      "serializer"}; "serializer": "wrap" gives the client a WrapSerializer.

  python _oslo_peer.py server URL EXCHANGE TOPIC HOST [wrap]
      Serves an oslo RPCServer (threading executor) with the endpoint below
      (and a WrapSerializer when "wrap" is given), prints READY once
      consuming, and stops when stdin closes.
"""

import json
import sys
import time

import oslo_messaging as om
from oslo_config import cfg


class PeerError(Exception):
    """
    An application error raised by the oslo endpoint.
    """


class WrapSerializer(om.Serializer):
    """
    Values travel as {"wrapped": value, "by": "oslo"}, and anything else is
    refused when read; a context leaves with "serialized_by": "oslo" and
    arrives with "deserialized_by": "oslo" added.
    """

    def serialize_entity(self, ctxt, entity):
        return {"wrapped": entity, "by": "oslo"}

    def deserialize_entity(self, ctxt, entity):
        if not isinstance(entity, dict) or "wrapped" not in entity:
            raise ValueError(f"not wrapped: {entity!r}")
        return entity["wrapped"]

    def serialize_context(self, ctxt):
        return dict(ctxt, serialized_by="oslo")

    def deserialize_context(self, ctxt):
        return dict(ctxt, deserialized_by="oslo")


_SERIALIZERS = {None: None, "wrap": WrapSerializer}


class Endpoint:
    target = om.Target(version="1.3")

    def echo(self, ctxt, value):
        return {"value": value, "ctxt": ctxt}

    def fail(self, ctxt, message):
        raise ValueError(message)

    def sleep(self, ctxt, seconds):
        time.sleep(seconds)
        return seconds


def oslo_conf(exchange):
    """
    @return: a fresh oslo.config C{ConfigOpts} for a transport whose control
        exchange is C{exchange} (also used by C{_oslo_notify_peer.py}).
    """
    om.set_transport_defaults(control_exchange=exchange)
    conf = cfg.ConfigOpts()
    conf([], project="novasvc-interop")
    # oslo.messaging 18 registers these groups only on the global cfg.CONF.
    try:
        from oslo_messaging._metrics import client as metrics
        from oslo_messaging._tracing import client as tracing
    except ImportError:
        pass
    else:
        conf.register_opts(tracing.oslo_messaging_tracing, group="oslo_messaging_tracing")
        conf.register_opts(metrics.oslo_messaging_metrics, group="oslo_messaging_metrics")
    return conf


def _transport(url, exchange, exmods=()):
    return om.get_rpc_transport(oslo_conf(exchange), url=url, allowed_remote_exmods=list(exmods))


def client(url, exchange, actions):
    actions = json.loads(actions)
    exmods = sorted({m for a in actions for m in a.get("exmods", [])})
    transport = _transport(url, exchange, exmods)
    try:
        for action in actions:
            target = om.Target(topic=action["topic"], server=action.get("server"),
                               fanout=action.get("fanout", False), version=action.get("version"),
                               namespace=action.get("namespace"))
            serializer = _SERIALIZERS[action.get("serializer")]
            rpc = om.get_rpc_client(transport, target, timeout=action.get("timeout", 20),
                                    serializer=serializer and serializer())
            try:
                if action["op"] == "call":
                    result = rpc.call(action.get("ctxt", {}), action["method"], **action.get("args", {}))
                else:
                    result = rpc.cast(action.get("ctxt", {}), action["method"], **action.get("args", {}))
                out = {"ok": result}
            except Exception as e:
                out = {"error": type(e).__name__, "module": type(e).__module__,
                       "message": str(e), "mro": [c.__name__ for c in type(e).__mro__]}
            print(json.dumps(out), flush=True)
    finally:
        transport.cleanup()


def server(url, exchange, topic, host, serializer=None):
    transport = _transport(url, exchange)
    target = om.Target(topic=topic, server=host)
    serializer = _SERIALIZERS[serializer]
    rpc = om.get_rpc_server(transport, target, [Endpoint()], executor="threading",
                            serializer=serializer and serializer())
    serve(rpc, transport)


def serve(rpc, transport):
    """
    Start an oslo RPC server, print READY, and stop it and its transport
    when stdin closes.
    """
    rpc.start()
    print("READY", flush=True)
    sys.stdin.read()
    rpc.stop()
    rpc.wait()
    transport.cleanup()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"client": client, "server": server}[mode](*args)
