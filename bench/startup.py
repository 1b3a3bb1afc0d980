"""
Measure C{twistd -n novasvc} from exec to ready (consuming and registered),
and its idle RSS, as the median of several runs.

    python bench/startup.py [--runs 5] [--transport-url URL] [--idle 3]

Prints one line per run and the medians. "Ready" is the service's own log
line "Service ... is ready", written once the RPC consumers are active and the
services row exists. RSS is read from /proc/<pid>/status after C{--idle}
seconds of idling.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def one_run(transport_url, idle):
    workdir = tempfile.mkdtemp(prefix="novasvc-startup-")
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    start = time.monotonic()
    process = subprocess.Popen(
        [twistd, "-n", "--pidfile=", "novasvc", "--manager=novasvc.examples.echo.EchoManager",
         f"--transport-url={transport_url}", f"--database-connection=sqlite:///{workdir}/s.sqlite",
         "--periodic-fuzzy-delay=0"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for line in process.stdout:
            if "is ready" in line:
                ready = time.monotonic() - start
                break
        else:
            raise RuntimeError("twistd exited before it was ready")
        time.sleep(idle)
        with open(f"/proc/{process.pid}/status") as f:
            rss_kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        return ready, rss_kb / 1024.0, process.returncode
    finally:
        if process.poll() is None:
            process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--transport-url", default="rabbit://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before reading RSS")
    args = parser.parse_args()
    readies, rsses = [], []
    for n in range(args.runs):
        ready, rss, code = one_run(args.transport_url, args.idle)
        readies.append(ready)
        rsses.append(rss)
        print(f"run {n + 1}: ready in {ready:.3f} s, idle RSS {rss:.1f} MiB, exit {code}")
    print(f"median: ready in {statistics.median(readies):.3f} s, idle RSS {statistics.median(rsses):.1f} MiB")


if __name__ == "__main__":
    main()
