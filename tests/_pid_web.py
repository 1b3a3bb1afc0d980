"""
A worker process for the tests of L{novasvc.process.workers}: it serves its own
pid over HTTP on the listening socket it inherits, logs JSON lines for its
parent, says when it is ready, and stops on SIGTERM or when its parent is
gone. Run as C{python -m tests._pid_web}.
"""

import os
import sys

from twisted.internet import reactor
from twisted.logger import Logger, globalLogBeginner
from twisted.web.resource import Resource
from twisted.web.server import Site

from novasvc.process.log import file_observer
from novasvc.process.workers import ParentLink, WorkerIdentity, inherited_port

_log = Logger()


class PidResource(Resource):
    """
    C{GET /} answers this process's pid.
    """

    isLeaf = True

    def render_GET(self, request):
        return str(os.getpid()).encode("ascii")


def main() -> None:
    globalLogBeginner.beginLoggingTo([file_observer(sys.stdout, "json")], redirectStandardIO=False)
    identity = WorkerIdentity.from_environ()
    link = ParentLink(reactor, identity.channel_fd)
    port = inherited_port(reactor, Site(PidResource()), 0, identity)
    _log.info("worker {index} of {count} serving on port {port}", index=identity.index,
              count=identity.count, port=port.getHost().port)
    reactor.callWhenRunning(link.ready)
    reactor.addSystemEventTrigger("before", "shutdown", link.stopping)
    reactor.run()


if __name__ == "__main__":
    main()
