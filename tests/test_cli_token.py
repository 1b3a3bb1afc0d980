"""
Tests for L{novasvc.cli._token}: C{novasvc-manage token new} through
L{novasvc.cli.manage.main}.
"""

import hashlib
from typing import Any, Dict, Tuple

import yaml

from tests._manage import _ManageTestCase


class TokenTests(_ManageTestCase):
    """
    C{token new}.
    """

    def new(self, *argv: str) -> Tuple[str, Dict[str, Any]]:
        out = self.ok("token", "new", *argv)
        token = out.splitlines()[1]
        snippet = out[out.index("api:"):]
        return token, yaml.safe_load(snippet)

    def test_new(self) -> None:
        """
        When a token is made, then the tool prints a random URL-safe token
        of 32 bytes and the configuration snippet holding its SHA-256 and
        role, no database needed.
        """
        token, config = self.new("--role", "reader", "--name", "grafana")
        self.assertRegex(token, r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(config, {"api": {"tokens": [{
            "name": "grafana", "role": "reader",
            "sha256": hashlib.sha256(token.encode()).hexdigest()}]}})
        self.assertNotEqual(self.new("--role", "reader")[0], token)

    def test_default_name(self) -> None:
        """
        When no name is given, then it is C{token-} and the first 8 hex
        digits of the hash.
        """
        token, config = self.new("--role", "admin")
        [entry] = config["api"]["tokens"]
        self.assertEqual((entry["role"], entry["name"]), ("admin", "token-" + entry["sha256"][:8]))

    def test_name_quoted(self) -> None:
        """
        When the name has YAML syntax or control characters, then the
        snippet still reads back as that name.
        """
        name = "ops: {team}\n# x\x1b"
        _, config = self.new("--role", "admin", "--name", name)
        self.assertEqual(config["api"]["tokens"][0]["name"], name)
