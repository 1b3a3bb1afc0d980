"""
A property-based run of schemathesis against a live API: every operation of
C{/v1/openapi.json}, fed generated valid and invalid requests with an admin
token, answers without a 5xx and as the document says.
"""

import importlib.util
import os
import re
import sys
from typing import List

from twisted.internet import utils
from twisted.trial import unittest

from novasvc.config.api import APIConfig
from tests._api import ADMIN, start_api, token_entries

#: Examples per operation and phase (issue #21 asks for at least 200): about
#: 2,300 requests, some 35 s on a busy two-core machine.
MAX_EXAMPLES = 200
SEED = 20260301


def _schemathesis() -> str:
    """
    @return: the C{schemathesis} script beside the running interpreter.
    """
    return os.path.join(os.path.dirname(sys.executable), "schemathesis")


class SchemathesisTests(unittest.TestCase):
    """
    schemathesis' checks against the live API.
    """

    timeout = 240

    async def test_no_server_errors(self) -> None:
        """
        When schemathesis runs every check (no 5xx, status codes, content
        types, headers and bodies as documented, invalid input refused,
        valid input accepted, auth enforced, 405 with Allow, deleted
        services gone) against the live API with an admin token, in the
        coverage, fuzzing and stateful phases with a fixed seed, then it
        finds no issue. (The stateful phase may try to delete the running
        services: the API refuses, 409, as documented.)

        The status page C{/} and C{/metrics} are included. The RPC gateway
        is left out: for a valid body its answer depends on a broker and on
        servers of the topics schemathesis makes up, and with no server
        consuming a topic the documented answer is 503 (UnroutableError),
        with a server that does not answer in time 504: 5xx by design,
        which the no-5xx check would flag. A broker where every made-up
        topic has a server would need a catch-all server that is no
        novasvc behaviour. The gateway's body and topic validation, its
        statuses and its document are covered by C{tests.test_api_gateway},
        C{tests.test_api_app} (over HTTP) and C{tests.test_api_openapi}.
        """
        live = await start_api(self, api=APIConfig(tokens=token_entries()))
        for n in range(3):
            await live.store.create(f"host-{n}", "novasvc-echo", f"echo-{n}")
        excluded: List[str] = ["--exclude-path", "/v1/rpc/{topic}"]
        self.assertIsNotNone(importlib.util.find_spec("prometheus_client"),
                             "the test extra has prometheus_client")
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        args = ["run", live.url + "/v1/openapi.json", "--url", live.url,
                "-H", f"Authorization: {ADMIN['Authorization']}",
                "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
                "--workers", "1", "--request-timeout", "20", *excluded]
        out, err, code = await utils.getProcessOutputAndValue(
            _schemathesis(), args, env=dict(os.environ, NO_COLOR="1"), path=workdir)
        report = (out + err).decode("utf-8", "replace")
        self.assertEqual(code, 0, report[-8000:])
        self.assertIn("No issues found", report)
        for phase in ("Coverage", "Fuzzing", "Stateful"):
            self.assertRegex(report, rf"✅ {phase}", report[-8000:])
        found = re.search(r"Selected: (\d+)/(\d+)", report)
        self.assertIsNotNone(found, report[-8000:])
        selected, total = map(int, found.groups())
        self.assertEqual(selected, total - 1, "every operation but the gateway's is tested")
