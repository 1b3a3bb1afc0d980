"""
Tests for L{novasvc.process.api_tap}: C{twistd novasvc-api} (and C{twistd novasvc
--api-only}), in process and as a real C{twistd} process.
"""

import os
import re
import signal
import subprocess
import textwrap
from typing import Any

import treq
from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool
from zope.interface.verify import verifyObject

from novasvc.process import api_tap as tap
from novasvc.api.standalone import StandaloneAPI
from novasvc.config.api import APIConfig
from novasvc.process.launcher import HangupService
from tests._services import poll
from tests.test_core_service_process import _bin, _environ


def _config_file(case: unittest.TestCase, text: str) -> str:
    path = os.path.abspath(case.mktemp()) + ".yaml"
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


class OptionsTests(unittest.SynchronousTestCase):
    """
    L{tap.Options}.
    """

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def test_config_and_listen(self) -> None:
        """
        When a file and C{--listen} are given, then the file's api section
        applies and C{--listen} beats its C{listen}.
        """
        path = _config_file(self, """\
            transport_url: memory://
            api:
              listen: tcp:9999:interface=127.0.0.1
              max_body_size: 10
            """)
        options = self.parse("--config", path)
        self.assertEqual((options.settings.api.listen, options.settings.api.max_body_size),
                         ("tcp:9999:interface=127.0.0.1", 10))
        options = self.parse("-c", path, "--listen", "tcp:0:interface=127.0.0.1")
        self.assertEqual(options.settings.api.listen, "tcp:0:interface=127.0.0.1")
        options = self.parse("--transport-url", "memory://x", "--database-connection", "sqlite://")
        self.assertEqual((options.settings.transport_url, options.settings.database.connection),
                         ("memory://x", "sqlite://"))

    def test_bad_listen(self) -> None:
        """
        When C{--listen} is not an endpoint, then a usage error names it.
        """
        error = self.assertRaises(usage.UsageError, self.parse, "--listen", "nope:1")
        self.assertTrue(str(error).startswith("command line option --listen: expected a Twisted "
                                              "server endpoint string"), str(error))

    def test_bad_config(self) -> None:
        """
        When the file's api section is wrong, then a usage error gives the
        file, line and key.
        """
        path = _config_file(self, "api:\n  workers: 0\n")
        error = self.assertRaises(usage.UsageError, self.parse, "--config", path)
        self.assertEqual(str(error), f"{path}, line 2: api.workers: expected an integer >= 1, got 0")

    def test_make_service(self) -> None:
        """
        When the service is made, then it is the standalone API (store,
        transport, API) inside a L{HangupService}; a bad application path
        ends it with a one-line message.
        """
        options = self.parse("--transport-url", "memory://", "--database-connection", "sqlite://",
                             "--listen", "tcp:0:interface=127.0.0.1")
        made = tap.makeService(options, reactor)
        self.assertIsInstance(made, HangupService)
        self.assertIsInstance(made.service, StandaloneAPI)
        self.assertEqual([child.name for child in made.service], ["store", "transport", "api"])
        self.assertEqual(made.service.api.listen, "tcp:0:interface=127.0.0.1")
        options.settings = options.settings.replace(api=APIConfig(app="no.such.app"))
        error = self.assertRaises(SystemExit, tap.makeService, options, reactor)
        self.assertTrue(str(error).startswith("novasvc-api: error: api.app: "), str(error))

    def test_api_only(self) -> None:
        """
        When C{twistd novasvc --api-only} is made, then it is the same
        standalone API.
        """
        from novasvc.process import tap as novasvc_tap

        options = novasvc_tap.Options()
        options.parseOptions(["--api-only", "--transport-url", "memory://",
                              "--database-connection", "sqlite://"])
        made = novasvc_tap.makeService(options, reactor)
        self.assertIsInstance(made.service, StandaloneAPI)

    def test_plugin(self) -> None:
        """
        When plugins are searched, then one C{novasvc-api} service maker is
        found, whose options are L{tap.Options}.
        """
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "novasvc-api"]
        self.assertEqual(len(makers), 1)
        self.assertTrue(verifyObject(IServiceMaker, makers[0]))
        self.assertIsInstance(makers[0].options(), tap.Options)


class ProcessTests(unittest.TestCase):
    """
    C{twistd -n novasvc-api} as a real process.
    """

    timeout = 90

    def start_twistd(self, *args: str) -> subprocess.Popen:
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.logpath = os.path.join(self.workdir, "twistd.log")
        logfile = open(self.logpath, "wb")
        self.addCleanup(logfile.close)
        process = subprocess.Popen([_bin("twistd"), "-n", "--pidfile=", *args], cwd=self.workdir,
                                   env=_environ(), stdout=logfile, stderr=subprocess.STDOUT)

        def reap() -> None:
            if process.poll() is None:
                process.kill()
                process.wait()

        self.addCleanup(reap)
        return process

    def output(self) -> str:
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    async def serve(self, *args: str, listen_in_file: bool = False) -> None:
        text = (f"transport_url: memory://\ndatabase:\n"
                f"  connection: sqlite:///{os.path.abspath(self.mktemp())}.sqlite\n")
        if listen_in_file:
            text += "api:\n  listen: tcp:0:interface=127.0.0.1\n"
        path = _config_file(self, text)
        process = self.start_twistd(*args, "--config", path)

        def port() -> Any:
            found = re.search(r"API listening on http://127\.0\.0\.1:(\d+)", self.output())
            return found and int(found.group(1))

        number = await poll(port, "the API is listening", interval=0.1)
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(f"http://127.0.0.1:{number}/healthz", pool=pool)
        self.assertEqual((response.code, await response.json()), (200, {
            "status": "ok", "checks": {"broker": {"ok": True}, "database": {"ok": True}}}))
        response = await treq.get(f"http://127.0.0.1:{number}/v1/services", pool=pool)
        self.assertEqual((response.code, await response.json()), (200, {"services": []}))
        process.send_signal(signal.SIGTERM)
        await poll(lambda: process.poll() is not None, "twistd exited", interval=0.1)
        self.assertEqual(process.returncode, 0, self.output())
        self.assertIn(f"API stopped listening on http://127.0.0.1:{number}", self.output())

    async def test_novasvc_api(self) -> None:
        """
        When C{twistd -n novasvc-api --config FILE --listen tcp:0:...} runs,
        then it logs the port it got, answers /healthz and /v1/services
        there, and exits 0 on SIGTERM.
        """
        await self.serve("novasvc-api", "--listen", "tcp:0:interface=127.0.0.1")

    async def test_api_only(self) -> None:
        """
        When C{twistd -n novasvc --api-only} runs with the listen address in
        the file, then it serves the same API.
        """
        await self.serve("novasvc", "--api-only", listen_in_file=True)
