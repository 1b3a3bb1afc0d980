"""
A PostgreSQL cluster of a test's own (L{PostgresCluster}): C{initdb} and
C{pg_ctl} run as user C{postgres} from a temporary directory, the server on
127.0.0.1 at a free port with its socket in that directory, never the
shared server on port 5432. It can be stopped and started again, and hung
(every process of the server SIGSTOPped) and resumed.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from typing import Any, Generator, List, Optional

import sqlalchemy as sa
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from tests._services import free_port, in_ci

__all__ = ["PostgresCluster", "report_count", "start_postgres_cluster"]


def _children(parent: int) -> List[int]:
    """
    @return: the ids of the processes whose parent is C{parent}.
    """
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                text = f.read()
        except OSError:
            continue  # it exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = text.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(text.split(" ", 1)[0]))
    return found


class PostgresCluster:
    """
    A PostgreSQL cluster of its own, run as user C{postgres} from a
    temporary directory, listening on 127.0.0.1 on a free port.

    @ivar url: the SQLAlchemy URL of its C{postgres} database.
    @ivar port: its TCP port.
    """

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if not bins or owner is None or shutil.which("runuser") is None or os.geteuid() != 0:
            message = "PostgreSQL binaries, the postgres user, runuser or root are missing"
            if in_ci():
                raise AssertionError(message)
            raise SkipTest(message)
        self.bindir = os.path.dirname(bins[-1])
        self.base = tempfile.mkdtemp(prefix="novasvc-pg-")
        os.chown(self.base, owner.pw_uid, owner.pw_gid)
        self.data = os.path.join(self.base, "data")
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self._frozen: List[int] = []

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(self.bindir, program), *args],
                       check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.base, "server.log"), "-w", "-t", "30",
                  "-o", f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")

    def postmaster(self) -> int:
        """
        @return: the process id of the running server (its postmaster).
        """
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def hang(self) -> int:
        """
        SIGSTOP the postmaster, then each of its children (the backends
        and background processes): the server accepts TCP connections (the
        kernel does) but answers nothing, as a hung database host.

        @return: how many processes were stopped.
        """
        postmaster = self.postmaster()
        os.kill(postmaster, signal.SIGSTOP)
        self._frozen = [postmaster]
        for pid in _children(postmaster):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            self._frozen.append(pid)
        return len(self._frozen)

    def resume(self) -> None:
        """
        SIGCONT every process L{hang} stopped.
        """
        frozen, self._frozen = self._frozen, []
        for pid in reversed(frozen):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        """
        Resume the server if it hangs, stop it if it runs, then delete its
        directory.
        """
        self.resume()
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self.stop("immediate")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


@defer.inlineCallbacks
def start_postgres_cluster(case: TestCase) -> Generator[defer.Deferred, Any, PostgresCluster]:
    """
    Make a L{PostgresCluster} for C{case} and start it (in a thread: its
    commands block); it is removed at C{case}'s cleanup.

    @return: a C{Deferred} firing with the running cluster.
    @raise SkipTest: outside CI, when PostgreSQL cannot run here.
    @raise AssertionError: in CI, when it cannot.
    """
    cluster = PostgresCluster()
    case.addCleanup(deferToThread, cluster.remove)
    yield deferToThread(cluster.init)
    yield deferToThread(cluster.start)
    return cluster


def report_count(url: str, topic: str) -> Optional[int]:
    """
    Read the C{report_count} of the live service of C{topic} (blocking:
    call it in a thread), on a connection of its own.

    @param url: the SQLAlchemy URL of the database.
    @return: the count, or C{None} when there is no such row.
    @raise sqlalchemy.exc.OperationalError: when the database cannot be
        reached within 3 s.
    """
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT report_count FROM services WHERE topic = :topic AND deleted = 0"),
                                {"topic": topic}).scalar()
    finally:
        engine.dispose()
