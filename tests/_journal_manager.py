"""
L{JournalManager}: a manager for process tests. Each request it runs is
written to a file, when it begins and when it ends, with the worker's pid, so
that a test can count executions across processes (and across a SIGKILL).
"""

import os

from twisted.internet import task

from novasvc.config.options import Opt
from novasvc.core.manager import Manager


def read_journal(path):
    """
    @param path: the journal file.
    @return: the list of C{(event, pid, key)} written so far (C{event} is
        C{"begin"} or C{"end"}, C{pid} an C{int}); empty while there is no
        file. A line still being written is left out.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            event, pid, key = line.split()
            entries.append((event, int(pid), key))
    return entries


class JournalManager(Manager):
    """
    Serves C{record}; its section C{journal} names the file.
    """

    topic = "journal"
    config_section = "journal"
    options = (
        Opt("path", str, help="the file each request is appended to"),
        Opt("max_sleep", float, default=None,
            help="the most seconds a request may sleep here (none: as asked)"),
    )

    def record(self, ctxt, key, seconds=0.0):
        """
        Write C{begin}, wait C{seconds} (at most C{max_sleep}) without
        blocking, then write C{end}.

        @return: a C{Deferred} firing with C{key} once C{end} is written.
        """
        self._write("begin", key)
        delay = float(seconds)
        if self.section.max_sleep is not None:
            delay = min(delay, self.section.max_sleep)
        return task.deferLater(self.clock, delay, lambda: self._write("end", key) or key)

    def _write(self, event, key):
        line = f"{event} {os.getpid()} {key}\n".encode("utf-8")
        fd = os.open(self.section.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
