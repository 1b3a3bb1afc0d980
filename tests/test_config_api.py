"""
Tests for L{novasvc.config.api}: the C{api:} section, read by
L{novasvc.config.load_config}.
"""

import hashlib
import os
import re
import textwrap

import attrs
from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import load_config
from novasvc.config.api import (
    BODY_TIMEOUT,
    DATABASE_DEADLINE,
    DEFAULT_APP,
    DEFAULT_FILTERS,
    DEFAULT_LISTEN,
    EMBEDDED_IN_FLIGHT,
    EMBEDDED_WAITING,
    HEADER_TIMEOUT,
    HEALTH_TIMEOUT,
    LINGER,
    MAX_CONNECTIONS,
    MAX_IN_FLIGHT,
    RETRY_AFTER,
    APIConfig,
    APIToken,
    check_listen,
)
from novasvc.exceptions import ConfigError

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "etc", "novasvc.yaml")
DIGEST = hashlib.sha256(b"secret-token").hexdigest()
DIGEST2 = hashlib.sha256(b"other-token").hexdigest()


class APISectionTests(SynchronousTestCase):
    """
    The C{api:} mapping is validated like the rest of the file.
    """

    def load(self, text: str):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        self.path = path
        return load_config(path, environ={})

    def refused(self, text: str) -> str:
        error = self.assertRaises(ConfigError, self.load, text)
        message = str(error)
        self.assertTrue(message.startswith(self.path + ", line "), message)
        return message[len(self.path):]

    def test_defaults(self) -> None:
        """
        When the file has no C{api:} section, then the API is off, listens on
        loopback port 8774 when turned on, with one worker, 8192-byte URLs,
        1 MiB bodies, the default app and filters and no token.
        """
        api = load_config(None).api
        self.assertEqual(api, APIConfig())
        self.assertEqual(
            (api.enabled, api.listen, api.workers, api.max_url_len, api.max_body_size),
            (False, "tcp:8774:interface=127.0.0.1", 1, 8192, 1048576))
        self.assertEqual((api.app, api.filters, api.tokens), (DEFAULT_APP, DEFAULT_FILTERS, ()))
        self.assertEqual(DEFAULT_LISTEN, api.listen)

    def test_protection_defaults(self) -> None:
        """
        When the section does not set the API's protections, then they are
        the documented defaults: 10 s for headers, 30 s for a body, 1024
        connections, 64 requests at once (none waiting) on its own, 2 at once
        and 256 waiting inside a service, which takes at most a quarter of
        the reactor there, 3 s per database call, C{Retry-After: 5}, 3 s for
        the health check's database check and 2 s of lingering.
        """
        api = self.load("api:\n  enabled: false\n").api
        self.assertEqual(
            (api.header_timeout, api.body_timeout, api.max_connections, api.max_in_flight,
             api.max_waiting, api.service_max_in_flight, api.service_max_waiting,
             api.service_reactor_share, api.database_deadline, api.retry_after, api.health_timeout, api.linger),
            (10.0, 30.0, 1024, 64, 0, 2, 256, 0.25, 3.0, 5, 3.0, 2.0))
        self.assertEqual(
            (HEADER_TIMEOUT, BODY_TIMEOUT, MAX_CONNECTIONS, MAX_IN_FLIGHT, EMBEDDED_IN_FLIGHT,
             EMBEDDED_WAITING, DATABASE_DEADLINE, RETRY_AFTER, HEALTH_TIMEOUT, LINGER),
            (10.0, 30.0, 1024, 64, 2, 256, 3.0, 5, 3.0, 2.0))

    def test_protections_set(self) -> None:
        """
        When the section sets the API's protections, then each is kept,
        seconds as C{float} (an integer too) and counts as C{int}.
        """
        api = self.load("""\
            api:
              header_timeout: 2
              body_timeout: 0.5
              max_connections: 10
              max_in_flight: 8
              max_waiting: 4
              service_max_in_flight: 1
              service_max_waiting: 0
              service_reactor_share: 1
              database_deadline: 1.5
              retry_after: 0
              health_timeout: 1
              linger: 0
            """).api
        self.assertEqual(api, APIConfig(
            header_timeout=2.0, body_timeout=0.5, max_connections=10, max_in_flight=8,
            max_waiting=4, service_max_in_flight=1, service_max_waiting=0,
            service_reactor_share=1.0, database_deadline=1.5, retry_after=0, health_timeout=1.0, linger=0.0))
        self.assertIsInstance(api.service_reactor_share, float)
        self.assertIsInstance(api.header_timeout, float)
        self.assertIsInstance(api.health_timeout, float)

    def test_every_key(self) -> None:
        """
        When every key is given, then each is kept, and a token's hash is
        kept in lower case.
        """
        api = self.load(f"""\
            api:
              enabled: true
              listen: tcp:0:interface=127.0.0.1
              workers: 3
              max_url_len: 100
              max_body_size: 0
              app: mypkg.api.make
              filters: [mypkg.filters.one, mypkg.filters.two]
              tokens:
                - name: ops
                  role: admin
                  sha256: {DIGEST.upper()}
                - name: dash.board
                  role: reader
                  sha256: {DIGEST2}
            """).api
        self.assertEqual(api, APIConfig(
            enabled=True, listen="tcp:0:interface=127.0.0.1", workers=3, max_url_len=100,
            max_body_size=0, app="mypkg.api.make", filters=("mypkg.filters.one", "mypkg.filters.two"),
            tokens=(APIToken("ops", "admin", DIGEST), APIToken("dash.board", "reader", DIGEST2))))

    def test_same_token_twice(self) -> None:
        """
        When two entries have the same sha256 (in any case), then the file
        is refused at the second, naming the first, without the hash.
        """
        message = self.refused(f"""\
            api:
              tokens:
                - name: ops
                  role: admin
                  sha256: {DIGEST}
                - name: dash
                  role: reader
                  sha256: {DIGEST.upper()}
            """)
        self.assertIn("line 8: api.tokens[1].sha256: the same token as 'ops' (role admin)",
                      message)
        self.assertNotIn(DIGEST, message.lower())

    def test_empty_section(self) -> None:
        """
        When the section is empty (every key commented out), then the
        defaults apply.
        """
        self.assertEqual(self.load("api:\n").api, APIConfig())

    def test_not_a_mapping(self) -> None:
        """
        When C{api} is not a mapping, then it is refused naming the line.
        """
        self.assertIn("line 1: api: expected a mapping", self.refused("api: true\n"))

    def test_unknown_key(self) -> None:
        """
        When a key is unknown, then the message gives its line and the
        closest known key.
        """
        message = self.refused("""\
            api:
              enabled: true
              listn: tcp:0
            """)
        self.assertEqual(message, ", line 3: api.listn: unknown key (did you mean 'listen'?)")

    def test_wrong_values(self) -> None:
        """
        When a value has the wrong type or is out of range, then the message
        names the line, the key, what was expected and what was given.
        """
        cases = {
            "enabled: yes please": "api.enabled: expected true or false, got 'yes please'",
            "workers: 0": "api.workers: expected an integer >= 1, got 0",
            "workers: 1.5": "api.workers: expected an integer >= 1, got 1.5",
            "max_url_len: 10": "api.max_url_len: expected an integer >= 64, got 10",
            "max_body_size: -1": "api.max_body_size: expected an integer >= 0, got -1",
            "max_body_size: true": "api.max_body_size: expected an integer >= 0, got true",
            "header_timeout: 0": "api.header_timeout: expected a number of seconds > 0, got 0",
            "body_timeout: -1": "api.body_timeout: expected a number of seconds > 0, got -1",
            "body_timeout: .inf": "api.body_timeout: expected a number of seconds > 0, got inf",
            "database_deadline: soon":
                "api.database_deadline: expected a number of seconds > 0, got 'soon'",
            "max_connections: 0": "api.max_connections: expected an integer >= 1, got 0",
            "max_in_flight: 0": "api.max_in_flight: expected an integer >= 1, got 0",
            "max_in_flight: 2.5": "api.max_in_flight: expected an integer >= 1, got 2.5",
            "max_waiting: -1": "api.max_waiting: expected an integer >= 0, got -1",
            "service_max_in_flight: 0":
                "api.service_max_in_flight: expected an integer >= 1, got 0",
            "service_max_waiting: true":
                "api.service_max_waiting: expected an integer >= 0, got true",
            "service_reactor_share: 0":
                "api.service_reactor_share: expected a fraction above 0 and at most 1, got 0",
            "service_reactor_share: 1.5":
                "api.service_reactor_share: expected a fraction above 0 and at most 1, got 1.5",
            "service_reactor_share: true":
                "api.service_reactor_share: expected a fraction above 0 and at most 1, got true",
            "retry_after: 1.5": "api.retry_after: expected an integer >= 0, got 1.5",
            "health_timeout: 0": "api.health_timeout: expected a number of seconds > 0, got 0",
            "health_timeout: soon":
                "api.health_timeout: expected a number of seconds > 0, got 'soon'",
            "linger: -1": "api.linger: expected a number of seconds >= 0, got -1",
            "linger: true": "api.linger: expected a number of seconds >= 0, got true",
            "app: not a path": "api.app: expected a dotted path",
            "filters: novasvc.api.auth.auth_filter": "api.filters: expected a list of dotted paths",
            "filters: [1]": "api.filters: expected a list of dotted paths",
        }
        for line, expected in cases.items():
            message = self.refused(f"api:\n  {line}\n")
            self.assertTrue(message.startswith(", line 2: " + expected), (line, message))

    def test_listen_parsed(self) -> None:
        """
        When C{listen} is not an endpoint Twisted can build, then the
        message names the key, its line and Twisted's reason.
        """
        message = self.refused("api:\n  listen: bogus:80\n")
        self.assertIn("line 2: api.listen: expected a Twisted server endpoint string", message)
        self.assertIn("Unknown endpoint type: 'bogus'", message)
        message = self.refused("api:\n  listen: tcp:port\n")
        self.assertIn("api.listen", message)

    def test_listen_ssl_files(self) -> None:
        """
        When an C{ssl:} endpoint names a key file that does not exist, then
        start-up refuses it.
        """
        missing = os.path.abspath(self.mktemp())
        message = self.refused(f"api:\n  listen: ssl:8443:privateKey={missing}:certKey={missing}\n")
        self.assertIn("api.listen", message)
        self.assertIn("FileNotFoundError", message)

    def test_check_listen(self) -> None:
        """
        When a command-line value is checked, then a good one is returned
        and a bad one refused with what was expected.
        """
        self.assertEqual(check_listen("tcp:0"), "tcp:0")
        error = self.assertRaises(ConfigError, check_listen, "nope:1")
        self.assertTrue(str(error).startswith("expected a Twisted server endpoint string"))
        self.assertRaises(ConfigError, check_listen, 80)

    def test_token_errors(self) -> None:
        """
        When a token entry is wrong, then the message names the line of the
        key at fault within the list.
        """
        good = f"sha256: {DIGEST}"
        cases = [
            ("- name: a\n    role: owner\n    " + good,
             ", line 4: api.tokens[0].role: expected one of reader, admin, got 'owner'"),
            ("- name: a\n    role: admin\n    sha256: abc",
             ", line 5: api.tokens[0].sha256: expected the SHA-256 of the token as 64 hex digits"),
            ("- name: a\n    role: admin\n    " + good + "\n    rol: admin",
             ", line 6: api.tokens[0].rol: unknown key (did you mean 'role'?)"),
            ("- name: a\n    " + good, ", line 3: api.tokens[0]: role is missing"),
            ("- just-a-string", ", line 3: api.tokens[0]: expected a mapping"),
            ("- name: has space\n    role: admin\n    " + good,
             ", line 3: api.tokens[0].name: expected 1 to 64 letters"),
            (f"- name: a\n    role: admin\n    {good}\n  - name: a\n    role: reader\n    {good}",
             ", line 6: api.tokens[1].name: 'a' names another token already"),
        ]
        for entries, expected in cases:
            message = self.refused(f"api:\n  tokens:\n  {entries}\n")
            self.assertTrue(message.startswith(expected), (entries, message))
        message = self.refused("api:\n  tokens: ops\n")
        self.assertIn("line 2: api.tokens: expected a list of mappings", message)

    def test_token_never_shown(self) -> None:
        """
        When a raw token is pasted where its hash belongs, then the refusal
        does not show it, and a token's hash is not in the configuration's
        C{repr}.
        """
        message = self.refused("api:\n  tokens:\n  - name: a\n    role: admin\n"
                               "    sha256: my-raw-secret-token\n")
        self.assertNotIn("my-raw-secret-token", message)
        api = self.load(f"api:\n  tokens:\n  - name: a\n    role: admin\n    sha256: {DIGEST}\n").api
        self.assertNotIn(DIGEST, repr(api))
        self.assertNotIn(DIGEST, repr(load_config(self.path)))

    def test_sample_documents_every_key(self) -> None:
        """
        When C{etc/novasvc.yaml} is read, then it has the C{api:} section
        with every key (the defaults), and it loads as the defaults.
        """
        with open(SAMPLE) as f:
            text = f.read()
        section = text[text.index("\napi:\n"):]
        keys = set(re.findall(r"^\s+#?\s*([a-z_0-9]+):", section, re.MULTILINE))
        self.assertEqual({f.name for f in attrs.fields(APIConfig)} - keys, set())
        self.assertEqual(load_config(SAMPLE, environ={}).api, APIConfig())
