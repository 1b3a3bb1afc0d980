# -*- test-case-name: tests.test_cli_rpc_arguments -*-
"""
The C{key=VALUE} arguments of C{novasvc-rpc call}, C{cast} and C{notify}:
each one keyword argument (or payload key), its value decoded as JSON, or
read from a file (C{key=@FILE}) or standard input (C{key=@-}).
"""

import json
from typing import IO, Any, Dict, Optional, Sequence

from novasvc.cli._rpc_options import Parser, show_name
from novasvc._text import show_value

__all__ = ["parse_pairs"]


def parse_pairs(parser: Parser, pairs: Sequence[str], stdin: Optional[IO[str]]) -> Dict[str, Any]:
    """
    @param parser: what reports a bad argument (C{EX_USAGE}).
    @param pairs: the C{key=VALUE} arguments, as given.
    @param stdin: what C{key=@-} reads; C{None} when there is none.
    @return: the decoded values by key: C{key=JSON} decoded, or the text
        itself when it is not valid JSON; C{key=@FILE} and C{key=@-} the
        same rule applied to the file's or standard input's text (UTF-8);
        C{key=@@TEXT} the string C{@TEXT}.
    @raise SystemExit: with C{EX_USAGE} for an argument that is not
        C{key=VALUE} with an identifier as key, a key given twice, two keys
        reading standard input, or a file that cannot be read.
    """
    kwargs: Dict[str, Any] = {}
    reads_stdin: Optional[str] = None
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            parser.error(f"argument {show_value(pair)} is not key=VALUE with a Python identifier as key")
        if key in kwargs:
            parser.error(f"argument {show_value(key)} is given twice")
        if text == "@-":
            if reads_stdin is not None:
                parser.error(f"arguments {show_value(reads_stdin)} and {show_value(key)} both ask for "
                             f"standard input (key=@-), which can be read once")
            reads_stdin = key
        kwargs[key] = text
    for key, text in kwargs.items():
        if text.startswith("@"):
            text = _read_value(parser, key, text, stdin)
        kwargs[key] = _decode(text)
    return kwargs


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _read_value(parser: Parser, key: str, text: str, stdin: Optional[IO[str]]) -> str:
    """
    @return: the text of an C{@FILE}, C{@-} or C{@@TEXT} value (C{text}
        starts with C{@}).
    """
    if text.startswith("@@"):
        return text[1:]
    name = text[1:]
    if not name:
        parser.fail(f"argument {show_value(key)}: '@' needs a file name (key=@FILE), '-' for standard "
                    f"input (key=@-), or a second '@' for a value that starts with '@' (key=@@TEXT)")
    if name == "-":
        what = "standard input"
        if stdin is None:
            parser.fail(f"argument {show_value(key)}: there is no standard input to read")
        raw = getattr(stdin, "buffer", None)
        try:
            return raw.read().decode("utf-8") if raw is not None else stdin.read()
        except UnicodeDecodeError as e:
            parser.fail(f"argument {show_value(key)}: {what} is not UTF-8 text (byte {e.start})")
        except OSError as e:
            parser.fail(f"argument {show_value(key)}: cannot read {what}: {e.strerror or type(e).__name__}")
    what = f"file {show_name(name)}"
    try:
        with open(name, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        parser.fail(f"argument {show_value(key)}: {what} is not UTF-8 text (byte {e.start})")
    except (OSError, ValueError) as e:
        # ValueError: a name with a NUL byte; OSError's str() would repeat the
        # whole name, strerror does not.
        reason = getattr(e, "strerror", None) or "not a file name"
        parser.fail(f"argument {show_value(key)}: cannot read {what}: {reason}")
