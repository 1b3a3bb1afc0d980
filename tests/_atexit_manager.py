"""
L{FailingManager}: a manager for process tests whose C{init_host} fails;
importing this module registers an C{atexit} handler that writes the file
named by C{NOVASVC_TEST_ATEXIT}, so that a test can see whether the
interpreter ran its exit handlers.
"""

import atexit
import os

from novasvc.core.manager import Manager


def _write_marker() -> None:
    path = os.environ.get("NOVASVC_TEST_ATEXIT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write("ran\n")


atexit.register(_write_marker)


class FailingManager(Manager):
    """
    A manager that cannot start.
    """

    topic = "failing"

    def init_host(self, service_ref=None):
        raise RuntimeError("this manager never starts")
