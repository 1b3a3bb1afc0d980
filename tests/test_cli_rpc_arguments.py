"""
Tests for L{novasvc.cli._rpc_arguments}: the C{key=@FILE}, C{key=@-} and
C{key=@@TEXT} arguments of C{novasvc-rpc}, through
L{novasvc.cli.rpc.parse_arguments}.
"""

import io
import json
import os
import sys
from typing import Any, Dict, Optional

from twisted.trial.unittest import SynchronousTestCase

from novasvc.cli import rpc as cli

HERE = os.path.dirname(os.path.abspath(__file__))


class ArgumentFileTests(SynchronousTestCase):
    """
    C{key=@FILE}, C{key=@-} and C{key=@@TEXT} in L{cli.parse_arguments}.
    """

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def parse(self, *argv: str, stdin: Optional[Any] = None) -> Dict[str, Any]:
        return cli.parse_arguments(["call", "t", "m", *argv], stdin=stdin or io.StringIO(), environ={}).kwargs

    def write(self, content: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(content)
        return path

    def refused(self, *argv: str, stdin: Optional[Any] = None) -> str:
        error = self.assertRaises(SystemExit, self.parse, *argv, stdin=stdin)
        self.assertEqual(error.code, cli.EXIT_USAGE)
        (line,) = self.stderr.getvalue().splitlines()
        self.assertTrue(line.startswith("novasvc-rpc: error: "), line)
        return line

    def test_file(self) -> None:
        """
        When a value is @FILE, then the file's whole content is decoded as
        JSON, or taken as a string when it is not JSON.
        """
        document = {"volumes": [{"id": i, "name": f"vol{i}"} for i in range(2000)]}
        json_path = self.write(json.dumps(document, indent=2).encode())
        text_path = self.write("not json: é\n".encode())
        kwargs = self.parse(f"spec=@{json_path}", f"note=@{text_path}")
        self.assertEqual(kwargs, {"spec": document, "note": "not json: é\n"})

    def test_stdin(self) -> None:
        """
        When a value is @-, then standard input is read as UTF-8 by the same
        rule, whether it is a text or a binary stream underneath.
        """
        self.assertEqual(self.parse("data=@-", stdin=io.StringIO('{"a": [1, 2]}\n')), {"data": {"a": [1, 2]}})
        stdin = io.TextIOWrapper(io.BytesIO("plain é".encode()), encoding="latin-1")
        self.assertEqual(self.parse("data=@-", "other=2", stdin=stdin), {"data": "plain é", "other": 2})

    def test_stdin_default(self) -> None:
        """
        When no stream is given, then @- reads C{sys.stdin}.
        """
        self.patch(sys, "stdin", io.StringIO("[3]"))
        self.assertEqual(cli.parse_arguments(["cast", "t", "m", "x=@-"], environ={}).kwargs, {"x": [3]})

    def test_literal_at(self) -> None:
        """
        When a value starts with @@, then it is the string after the first
        @, never a file; a JSON string may start with @ too.
        """
        self.assertEqual(self.parse("a=@@home", "b=@@-", "c=@@", 'd="@x"', "e=@@1"),
                         {"a": "@home", "b": "@-", "c": "@", "d": "@x", "e": "@1"})

    def test_missing_file(self) -> None:
        """
        When the file cannot be read, then one line and status 64, with a
        long file name shortened.
        """
        path = os.path.abspath(self.mktemp())
        line = self.refused(f"spec=@{path}")
        self.assertIn("argument 'spec': cannot read file ", line)
        self.assertTrue(line.endswith(": No such file or directory"), line)
        self.stderr.truncate(0)
        self.stderr.seek(0)
        line = self.refused("spec=@" + "d/" * 3000 + "f")
        self.assertLess(len(line), 300)
        self.assertIn("/d...': ", line)

    def test_unreadable(self) -> None:
        """
        When the value names a directory, a NUL byte or a file that is not
        UTF-8, then one line and status 64.
        """
        self.assertIn("cannot read file", self.refused(f"spec=@{HERE}"))
        self.stderr.truncate(0)
        self.stderr.seek(0)
        self.assertIn("not a file name", self.refused("spec=@a\0b"))
        self.stderr.truncate(0)
        self.stderr.seek(0)
        self.assertIn("is not UTF-8 text (byte 1)", self.refused(f"spec=@{self.write(b'x' + bytes([0xff]))}"))

    def test_bad_stdin(self) -> None:
        """
        When standard input is not UTF-8, missing, or asked for twice, then
        status 64.
        """
        stdin = io.TextIOWrapper(io.BytesIO(b"\xff"), encoding="utf-8")
        self.assertIn("standard input is not UTF-8 text", self.refused("d=@-", stdin=stdin))
        self.stderr.truncate(0)
        self.stderr.seek(0)
        self.patch(sys, "stdin", None)
        error = self.assertRaises(SystemExit, cli.parse_arguments, ["call", "t", "m", "d=@-"], environ={})
        self.assertEqual(error.code, cli.EXIT_USAGE)
        self.assertIn("no standard input", self.stderr.getvalue())
        error = self.assertRaises(SystemExit, self.parse, "a=@-", "b=@-")
        self.assertEqual(error.code, cli.EXIT_USAGE)
        self.assertIn("can be read once", self.stderr.getvalue())

    def test_bare_at(self) -> None:
        """
        When a value is a lone @, then the message says how to write a file,
        standard input or a literal @.
        """
        self.assertIn("key=@@TEXT", self.refused("a=@"))
