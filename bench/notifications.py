# -*- test-case-name: tests.test_bench -*-
"""
Notifications per second, sent and received, of novasvc's L{Notifier} and
notification listener against oslo.messaging's, on the local RabbitMQ::

    python bench/notifications.py [--count 5000] [--reps 3] [--transport-url URL] [--output FILE]

Each rep measures, each in a fresh child process (C{bench/notifications.py
--child ROLE SETTINGS_JSON}, printing one JSON line), in this order:

  - sent/s: C{--count} C{info} notifications (2.0 envelope, a request
    context, a small payload) to a topic of their own, from the first send
    to the last broker confirmation: novasvc all at once (each
    C{notifier.info} returns a C{Deferred}: the Twisted way), novasvc one
    after the other (each waits for its confirmation, as oslo's blocking
    API does), oslo.messaging's C{Notifier} (C{messagingv2});
  - received/s: a queue C{<topic>.info} filled beforehand with
    C{--count} notifications (by novasvc's notifier, untimed) is drained by
    a listener whose endpoint counts them: from the first endpoint call to
    the last; novasvc's L{NotificationListener} (pika, C{max_inflight} 64),
    then oslo.messaging's (C{get_notification_listener}, threading
    executor).

Beside each rate: the child's CPU seconds over the same interval. The
report gives, per rep and as the median of the reps, each figure, the ratio
novasvc ÷ oslo.messaging of the rates (above 1: novasvc is faster) and
oslo.messaging ÷ novasvc of the CPU seconds (above 1: novasvc spends
less), all measured in the same run. On a busy machine the rates move from
rep to rep more than the CPU seconds do. Everything runs in a vhost of its own made with
C{rabbitmqctl} (deleted at the end); without C{rabbitmqctl}, in the URL's
vhost with unique names, deleted at the end.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: The most seconds a child may take.
CHILD_DEADLINE = 300.0
PAYLOAD = {"volume_id": "5f1e8c8e-6a5b-4f57-a8e4-5b0d1c3f9a10", "size": 1, "status": "available",
           "display_name": "bench-volume"}
CONTEXT = {"user_id": "bench-user", "project_id": "bench-project", "request_id": "req-bench"}
EVENT_TYPE = "volume.create.end"

#: (key, title) of the measurements, in the order a rep runs them.
SENDS = (("novasvc_all", "novasvc Notifier, all at once"),
         ("novasvc_one", "novasvc Notifier, one after the other"),
         ("oslo", "oslo.messaging Notifier"))
RECEIVES = (("novasvc", "novasvc NotificationListener"), ("oslo", "oslo.messaging listener"))


# -- children ---------------------------------------------------------------------


def _react(run: Any) -> None:
    """
    Run C{run(reactor)} with C{task.react}, returning once it is done
    (C{react} exits: a status 0 is not an error here).
    """
    from twisted.internet import task

    try:
        task.react(run)
    except SystemExit as e:
        if e.code:
            raise


def _novasvc_send(settings: Dict[str, Any]) -> Dict[str, Any]:
    from twisted.internet import defer

    from novasvc.context import RequestContext
    from novasvc.metrics import Recorder
    from novasvc.notify import Notifier
    from novasvc.transport import get_transport

    result: Dict[str, Any] = {}

    @defer.inlineCallbacks
    def run(reactor: Any) -> Any:
        transport = get_transport(settings["url"], reactor=reactor)
        transport.start()
        recorder = Recorder()
        notifier = Notifier(transport, "bench.host", topics=[settings["topic"]], clock=reactor, metrics=recorder)
        ctxt = RequestContext(**CONTEXT)
        count = settings["count"]
        if not settings.get("fill"):
            yield notifier.info(ctxt, "bench.warmup", {})  # connection, exchange and queue
        start, cpu = time.perf_counter(), time.process_time()
        if settings.get("one_by_one"):
            for _ in range(count):
                yield notifier.info(ctxt, EVENT_TYPE, PAYLOAD)
        else:
            yield defer.gatherResults([notifier.info(ctxt, EVENT_TYPE, PAYLOAD) for _ in range(count)])
        result.update(seconds=time.perf_counter() - start, cpu=time.process_time() - cpu)
        failed = sum(outcomes["failed"] for _, _, outcomes in recorder.notifier.counts())
        result["failed"] = failed
        yield transport.stop()

    _react(run)
    return result


def _oslo_send(settings: Dict[str, Any]) -> Dict[str, Any]:
    import oslo_messaging
    from oslo_context import context

    from _oslo import get_transport

    transport = get_transport(settings["url"], "openstack", notification=True)
    notifier = oslo_messaging.Notifier(transport, "bench.host", driver="messagingv2", topics=[settings["topic"]])
    ctxt = context.RequestContext(user_id=CONTEXT["user_id"], project_id=CONTEXT["project_id"],
                                  request_id=CONTEXT["request_id"])
    notifier.info(ctxt, "bench.warmup", {})
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(settings["count"]):
        notifier.info(ctxt, EVENT_TYPE, PAYLOAD)
    result = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "failed": 0}
    transport.cleanup()
    return result


def _novasvc_listen(settings: Dict[str, Any]) -> Dict[str, Any]:
    from twisted.internet import defer

    from novasvc.metrics import Recorder
    from novasvc.notify.listener import NotificationListener
    from novasvc.rpc.target import Target
    from novasvc.transport import get_transport

    count = settings["count"]
    marks: Dict[str, float] = {}
    done: defer.Deferred = defer.Deferred()

    class Counter:
        seen = 0

        def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any, metadata: Any) -> None:
            Counter.seen += 1
            if Counter.seen == 1:
                marks["first"], marks["cpu"] = time.perf_counter(), time.process_time()
            if Counter.seen == count:
                marks["last"], marks["cpu_last"] = time.perf_counter(), time.process_time()
                done.callback(None)

    @defer.inlineCallbacks
    def run(reactor: Any) -> Any:
        transport = get_transport(settings["url"], reactor=reactor)
        transport.start()
        listener = NotificationListener(transport, [Target(topic=settings["topic"])], [Counter()], clock=reactor,
                                        metrics=Recorder())
        yield listener.start()
        yield done
        yield listener.wait(10)
        yield transport.stop()

    _react(run)
    return {"seconds": marks["last"] - marks["first"], "cpu": marks["cpu_last"] - marks["cpu"]}


def _oslo_listen(settings: Dict[str, Any]) -> Dict[str, Any]:
    import threading

    import oslo_messaging

    count = settings["count"]
    marks: Dict[str, float] = {}
    done = threading.Event()
    lock = threading.Lock()

    class Counter:
        seen = 0

        def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any, metadata: Any) -> None:
            with lock:
                Counter.seen += 1
                if Counter.seen == 1:
                    marks["first"], marks["cpu"] = time.perf_counter(), time.process_time()
                if Counter.seen == count:
                    marks["last"], marks["cpu_last"] = time.perf_counter(), time.process_time()
                    done.set()

    from _oslo import get_transport

    transport = get_transport(settings["url"], "openstack", notification=True)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=settings["topic"])], [Counter()], executor="threading")
    listener.start()
    if not done.wait(CHILD_DEADLINE):
        raise RuntimeError(f"the oslo listener got {Counter.seen} of {count} notifications")
    listener.stop()
    listener.wait()
    transport.cleanup()
    return {"seconds": marks["last"] - marks["first"], "cpu": marks["cpu_last"] - marks["cpu"]}


_ROLES = {"novasvc-send": _novasvc_send, "oslo-send": _oslo_send, "novasvc-listen": _novasvc_listen,
          "oslo-listen": _oslo_listen}


def _child_main(role: str, settings_json: str) -> None:
    import logging

    sys.path.insert(0, HERE)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = _ROLES[role](json.loads(settings_json))
    print(json.dumps(result), flush=True)


# -- driver -----------------------------------------------------------------------


def _run_child(role: str, **settings: Any) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    process = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", role, json.dumps(settings)],
                             capture_output=True, text=True, env=env, timeout=CHILD_DEADLINE, cwd=ROOT)
    if process.returncode != 0 or not process.stdout.strip():
        raise RuntimeError(f"{role} failed ({process.returncode}):\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def _rep(url: str, count: int, run_id: str, rep: int) -> Dict[str, Any]:
    """
    @return: C{{"sent": {key: (rate, cpu)}, "received": {key: (rate, cpu)},
        "queues": [names]}} for one rep.
    """
    out: Dict[str, Any] = {"sent": {}, "received": {}, "queues": []}
    for key, _ in SENDS:
        topic = f"bench-{run_id}-{rep}-send-{key}"
        role = "oslo-send" if key == "oslo" else "novasvc-send"
        result = _run_child(role, url=url, topic=topic, count=count, one_by_one=key == "novasvc_one")
        if result.get("failed"):
            raise RuntimeError(f"{key}: {result['failed']} notification(s) not sent")
        out["sent"][key] = (count / result["seconds"], result["cpu"])
        out["queues"].append(f"{topic}.info")
    for key, _ in RECEIVES:
        topic = f"bench-{run_id}-{rep}-receive-{key}"
        _run_child("novasvc-send", url=url, topic=topic, count=count, fill=True)
        result = _run_child(f"{key}-listen", url=url, topic=topic, count=count)
        out["received"][key] = ((count - 1) / result["seconds"], result["cpu"])
        out["queues"].append(f"{topic}.info")
    return out


def _median(values: List[float]) -> float:
    return statistics.median(values)


def render(reps: List[Dict[str, Any]], count: int, url: str) -> str:
    """
    @return: the report in markdown: a table of rates (median of the reps,
        with each rep's), the CPU per 1,000 notifications, and the ratios
        novasvc ÷ oslo.messaging.
    """
    lines = [f"# Notifications: novasvc against oslo.messaging ({datetime.date.today().isoformat()})", "",
             f"{count} notifications per measurement, {len(reps)} rep(s), broker {url.split('@')[-1]}; "
             "rates are the median of the reps (each rep's in brackets); CPU is the child's, in seconds per "
             "1,000 notifications.", "",
             "| measurement | notifications/s | CPU s per 1,000 |", "|---|---|---|"]

    def row(title: str, kind: str, key: str) -> str:
        rates = [rep[kind][key][0] for rep in reps]
        cpus = [rep[kind][key][1] * 1000.0 / count for rep in reps]
        each = ", ".join(f"{rate:,.0f}" for rate in rates)
        return f"| {title} | {_median(rates):,.0f} ({each}) | {_median(cpus):.3f} |"

    for key, title in SENDS:
        lines.append(row(f"sent/s: {title}", "sent", key))
    for key, title in RECEIVES:
        lines.append(row(f"received/s: {title}", "received", key))
    lines += ["", "| ratio (novasvc ÷ oslo.messaging, per rep) | median | reps |", "|---|---|---|"]

    def ratio(title: str, kind: str, key: str) -> str:
        values = [rep[kind][key][0] / rep[kind]["oslo"][0] for rep in reps]
        return f"| {title} | {_median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |"

    lines.append(ratio("sent/s, all at once", "sent", "novasvc_all"))
    lines.append(ratio("sent/s, one after the other", "sent", "novasvc_one"))
    lines.append(ratio("received/s", "received", "novasvc"))

    def cpu_ratio(title: str, kind: str, key: str) -> str:
        values = [rep[kind]["oslo"][1] / rep[kind][key][1] for rep in reps]
        return f"| {title} | {_median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |"

    lines += ["", "| CPU ratio (oslo.messaging ÷ novasvc, per rep; above 1: novasvc spends less) | median | reps |",
              "|---|---|---|"]
    lines.append(cpu_ratio("CPU per notification sent, all at once", "sent", "novasvc_all"))
    lines.append(cpu_ratio("CPU per notification sent, one after the other", "sent", "novasvc_one"))
    lines.append(cpu_ratio("CPU per notification received", "received", "novasvc"))
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--count", type=int, default=5000, help="notifications per measurement (default 5000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions, interleaved (default 3)")
    parser.add_argument("--transport-url", default="rabbit://guest:guest@127.0.0.1:5672/",
                        help="the broker (default: the local RabbitMQ as guest)")
    parser.add_argument("--output", help="also write the report to this file")
    args = parser.parse_args(argv)
    sys.path.insert(0, HERE)
    from _driver import Broker

    broker = Broker(args.transport_url)
    run_id = uuid.uuid4().hex[:8]
    private = broker.make_vhost(f"novasvc-bench-notify-{run_id}")
    reps: List[Dict[str, Any]] = []
    try:
        for rep in range(args.reps):
            started = time.monotonic()
            result = _rep(broker.run_url, args.count, run_id, rep)
            reps.append(result)
            print(f"rep {rep + 1}/{args.reps} done in {time.monotonic() - started:.1f} s", file=sys.stderr)
            if not private:
                broker.delete(result["queues"], [])
    finally:
        if private:
            broker.drop_vhost()
    report = render(reps, args.count, args.transport_url)
    print(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child_main(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
