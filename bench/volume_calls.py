"""
Time L{novasvc.examples.volume.rpcapi.VolumeAPI} calls against the volume
example run as C{twistd -n novasvc --config etc/volume.yaml} on the local
RabbitMQ::

    python bench/volume_calls.py [--calls 100] [--transport-url URL]

The service runs in a temporary directory (its own SQLite file and volumes
directory) under a topic, host and control exchange of its own. After one
warm-up call (which makes the client's reply queue), it times C{--calls}
sequential C{list_volumes} calls on the empty service, then C{--calls}
sequential C{create_volume} calls of 1 GiB (sparse files) to the service's
host, and prints the median, 90th percentile and minimum round trip of each
in milliseconds. Then it stops the service with SIGTERM and removes its
queues and directory.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet import defer, task  # noqa: E402

from novasvc.config import Config  # noqa: E402
from novasvc.examples.volume.rpcapi import VolumeAPI  # noqa: E402
from novasvc.transport import get_transport  # noqa: E402

#: Seconds the service has to become ready.
READY_DEADLINE = 30.0


def start_service(workdir, url, topic, host, exchange, capacity_gb):
    """
    @return: the C{twistd} process, its log file's path.
    """
    log = os.path.join(workdir, "twistd.log")
    env = {**os.environ, "PYTHONPATH": ROOT, "NOVASVC_TRANSPORT_URL": url,
           "NOVASVC_VOLUMES_DIR": os.path.join(workdir, "volumes"),
           "NOVASVC_VOLUMES_CAPACITY_GB": str(capacity_gb)}
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "novasvc",
             "--config", os.path.join(ROOT, "etc", "volume.yaml"),
             "--manager", "novasvc.examples.volume.manager.VolumeManager", "--topic", topic,
             "--host", host, "--control-exchange", exchange,
             "--database-connection", f"sqlite:///{os.path.join(workdir, 'volume.sqlite')}"],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, log


async def wait_ready(reactor, process, log):
    """
    Return once the service logged that it is ready.

    @raise SystemExit: with its log, if it exited or was not ready within
        L{READY_DEADLINE} seconds.
    """
    deadline = time.monotonic() + READY_DEADLINE
    while True:
        with open(log, "rb") as f:
            if b"is ready" in f.read():
                return
        if process.poll() is not None or time.monotonic() > deadline:
            with open(log, "rb") as f:
                output = f.read().decode("utf-8", "replace")
            raise SystemExit(f"the volume service did not start:\n{output}")
        await task.deferLater(reactor, 0.1, lambda: None)


async def timed(calls, make_call):
    """
    @return: the round trip of each of C{calls} sequential calls, in
        milliseconds.
    """
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await make_call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(name, times):
    """
    @return: one line: the count, median, 90th percentile and minimum of
        C{times} (milliseconds).
    """
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * len(ordered))) - 1)]
    return (f"{name:<14} n={len(times)}  median {statistics.median(times):.2f} ms  "
            f"p90 {p90:.2f} ms  min {ordered[0]:.2f} ms")


async def main(reactor, args):
    """
    Start the service, time the calls, print the summary, clean up.
    """
    unique = uuid.uuid4().hex[:8]
    topic, host, exchange = f"volume_{unique}", f"vol-{unique}", f"novasvc-volume-{unique}"
    workdir = tempfile.mkdtemp(prefix="novasvc-volume-calls-")
    process, log = start_service(workdir, args.transport_url, topic, host, exchange,
                                 capacity_gb=args.calls + 10)
    transport = get_transport(args.transport_url, reactor=reactor)
    try:
        await wait_ready(reactor, process, log)
        transport.start()
        api = VolumeAPI(transport, config=Config(control_exchange=exchange), topic=topic,
                        timeout=30, clock=reactor)
        await api.list_volumes({}, host=host)  # warm-up: the reply queue
        listed = await timed(args.calls, lambda: api.list_volumes({}, host=host))
        created = await timed(args.calls, lambda: api.create_volume({}, 1, host=host))
        count = len(await api.list_volumes({}, host=host))
        files = len(os.listdir(os.path.join(workdir, "volumes")))
        print(summary("list_volumes", listed))
        print(summary("create_volume", created))
        print(f"volumes created: {count} rows, {files} sparse files")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + READY_DEADLINE
        while process.poll() is None and time.monotonic() < deadline:
            await task.deferLater(reactor, 0.1, lambda: None)
        if process.poll() is None:
            process.kill()
        for queue in (topic, f"{topic}.{host}"):
            await transport.delete_queue(queue)
        await transport.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls of each kind (default 100)")
    parser.add_argument("--transport-url", default="rabbit://guest:guest@127.0.0.1:5672/",
                        help="the broker (default: the local RabbitMQ as guest)")
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
