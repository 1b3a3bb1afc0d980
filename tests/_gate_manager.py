"""
L{GateManager}: a manager for process tests whose start-up and stop hooks,
and one RPC method, can be held open by the test.

Its section C{gates} names a directory. Each hook (C{init_host},
C{pre_start_hook}, C{post_start_hook}, C{cleanup_host}) and each C{hold}
request appends C{enter NAME PID} to the file C{journal} there and, while
a file called C{NAME} exists in the directory (C{request} for C{hold}),
waits for it to be removed, checking every 10 ms on the manager's clock
(the reactor is never blocked); then it appends C{leave NAME PID}. A wait
that is cancelled (the service stopped while starting) appends C{cancel
NAME PID}. C{reset()} (SIGHUP) appends C{reset - PID}.

The test creates a gate file before it starts the process, reads the
journal to know which phase the process is in, sends its signal there, and
removes the file to let the phase end.
"""

import os

from twisted.internet import defer, task

from novasvc.config.options import Opt
from novasvc.examples.echo import EchoManager

__all__ = ["GateManager", "read_journal"]

#: Seconds between two looks at a gate file.
_LOOK = 0.01


def read_journal(directory):
    """
    @param directory: the gates directory.
    @return: the C{(event, name, pid)} entries written so far, in order
        (C{pid} an C{int}); a line still being written is left out.
    """
    try:
        with open(os.path.join(directory, "journal"), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            event, name, pid = line.split()
            entries.append((event, name, int(pid)))
    return entries


class GateManager(EchoManager):
    """
    The echo manager (topic C{echo}) with gated hooks and C{hold(key)}.
    """

    config_section = "gates"
    options = (Opt("dir", str, help="the directory of the gate files and the journal"),)

    def _write(self, event, name):
        line = f"{event} {name} {os.getpid()}\n".encode("utf-8")
        fd = os.open(os.path.join(self.section.dir, "journal"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _gate(self, name, gate=None, result=None):
        """
        Journal C{enter NAME}, wait while the gate file exists, journal
        C{leave NAME}.

        @return: a C{Deferred} firing with C{result}; cancelling it stops
            the wait and journals C{cancel NAME}.
        """
        path = os.path.join(self.section.dir, gate or name)
        self._write("enter", name)
        done = defer.Deferred(lambda _: (looking.stop(), self._write("cancel", name)))

        def look():
            if not os.path.exists(path):
                looking.stop()
                self._write("leave", name)
                done.callback(result)

        looking = task.LoopingCall(look)
        looking.clock = self.clock
        looking.start(_LOOK, now=True)
        return done

    def init_host(self, service_ref=None):
        return self._gate("init_host")

    def pre_start_hook(self, service_ref=None):
        return self._gate("pre_start_hook")

    def post_start_hook(self):
        return self._gate("post_start_hook")

    def cleanup_host(self):
        return self._gate("cleanup_host")

    def reset(self):
        self._write("reset", "-")

    def hold(self, ctxt, key):
        """
        Run until the gate file C{request} is removed.

        @return: a C{Deferred} firing with C{key}.
        """
        return self._gate(f"hold:{key}", gate="request", result=key)
