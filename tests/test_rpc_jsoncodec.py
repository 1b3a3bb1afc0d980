"""
Tests for L{novasvc.rpc._jsoncodec}.
"""

import datetime
import json
import math
import os
import subprocess
import sys
import uuid
from unittest import SkipTest

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc import _jsoncodec, wire
from novasvc.rpc._jsoncodec import dumps
from tests._services import in_ci

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class JSONTests(SynchronousTestCase):
    """
    The JSON fallback for types oslo's to_primitive handles.
    """

    def test_fallbacks(self) -> None:
        """
        When values JSON cannot hold are encoded, then they become their
        primitive forms.
        """
        value = {
            "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
            "date": datetime.date(2024, 1, 2),
            "set": {3},
            "frozen": frozenset(["a"]),
            "uuid": uuid.UUID(int=1),
            "bytes": b"abc",
            "ctxt": RequestContext("u1"),
        }
        decoded = json.loads(dumps(value))
        self.assertEqual(decoded["dt"], "2024-01-02T03:04:05.000006")
        self.assertEqual(decoded["date"], "2024-01-02")
        self.assertEqual(decoded["set"], [3])
        self.assertEqual(decoded["frozen"], ["a"])
        self.assertEqual(decoded["uuid"], "00000000-0000-0000-0000-000000000001")
        self.assertEqual(decoded["bytes"], "abc")
        self.assertEqual(decoded["ctxt"]["user_id"], "u1")

    def test_unencodable(self) -> None:
        """
        When a value has no primitive form, then TypeError is raised.
        """
        self.assertRaises(TypeError, dumps, {"x": object()})


def _orjson_or_skip():
    """
    @return: the C{orjson} module.
    @raise SkipTest: when it is not installed, outside CI (a test
        dependency: CI fails instead).
    """
    try:
        import orjson
    except ImportError as e:
        if in_ci():
            raise AssertionError(f"orjson is a test dependency: {e}")
        raise SkipTest(f"orjson is not installed: {e}")
    return orjson


def _codecs():
    """
    @return: C{(stdlib, orjson)}: both paths, built here whatever
        C{NOVASVC_JSON} chose for the process.
    """
    stdlib = _jsoncodec._stdlib_codec()
    return stdlib, _jsoncodec._orjson_codec(_orjson_or_skip(), stdlib)


def _outcome(function, value):
    """
    @return: C{("ok", repr(result))} or C{("error", type name, message)}:
        what C{function(value)} did, comparable across paths (C{repr} tells
        C{1} from C{1.0}, C{0.0} from C{-0.0}, and matches C{nan} with
        C{nan}).
    """
    try:
        return ("ok", repr(function(value)))
    except Exception as e:
        return ("error", type(e).__name__, str(e))


#: JSON values, including what JSON cannot hold exactly (NaN, infinities,
#: integers beyond 64 bits, lone surrogates, non-ASCII text) and long runs of
#: digits in text.
_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
    st.text(), st.text(alphabet="0123456789", min_size=15),
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
#: What a manager may send besides: values only C{to_primitive} converts
#: (datetimes, UUIDs, bytes, sets) and non-str keys, among JSON values.
_ANY = st.recursive(
    st.one_of(_JSON_SCALARS, st.datetimes(), st.uuids(), st.binary(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans()), children, max_size=2),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)
_VALUES = st.one_of(_JSON, _ANY)
_EXAMPLES = settings(max_examples=400, derandomize=True, deadline=None, database=None)


class PathsTests(SynchronousTestCase):
    """
    The orjson path reads and writes exactly what the stdlib path does.
    """

    @_EXAMPLES
    @given(_VALUES)
    @example([math.nan, {"x": -math.inf}])
    @example({"big": 2**64, "keys": {1: "a"}, "text": "\udc00\u00e9"})
    @example(("tuple", [datetime.date(2024, 1, 2)]))
    def test_encode_same_values(self, value) -> None:
        """
        When any value is encoded by both paths, then both give ASCII text
        that decodes to the same thing, or both raise the same error.
        """
        stdlib, fast = _codecs()
        for name in ("encode", "encode_lenient"):
            mine, theirs = _outcome(getattr(fast, name), value), _outcome(getattr(stdlib, name), value)
            if theirs[0] == "error":
                self.assertEqual(mine, theirs)
                continue
            text = getattr(fast, name)(value)
            self.assertTrue(text.isascii(), text)
            self.assertEqual(_outcome(json.loads, text), _outcome(json.loads, getattr(stdlib, name)(value)))

    @_EXAMPLES
    @given(_VALUES, st.sampled_from([{}, {"separators": (",", ":")}, {"ensure_ascii": False}, {"indent": 1}]))
    @example({"n": 2**70, "m": [-2**64, math.nan, 18446744073709551615]}, {"separators": (",", ":")})
    def test_decode_same_values(self, value, style) -> None:
        """
        When JSON text written by oslo's encoder (the stdlib's, in any
        style) is decoded by both paths, then both give the same value
        (same types: an integer beyond 64 bits stays an C{int}, NaN stays
        NaN) or raise the same error.
        """
        stdlib, fast = _codecs()
        try:
            text = json.dumps(value, default=_jsoncodec._to_primitive, **style)
        except (TypeError, ValueError):
            return
        for name in ("decode", "loads"):
            self.assertEqual(_outcome(getattr(fast, name), text), _outcome(getattr(stdlib, name), text))
        data = text.encode("utf-8", "surrogatepass")
        self.assertEqual(_outcome(fast.loads, data), _outcome(stdlib.loads, data))

    def test_decode_refusals(self) -> None:
        """
        When text that is not JSON, or JSON only the stdlib reads (a UTF-16
        or BOM-prefixed body, a number of 5,000 digits, nesting beyond
        orjson's limit), is decoded by both paths, then both give the same
        value or the same error.
        """
        stdlib, fast = _codecs()
        cases = ["", " ", "{", "[1,]", "01", "NaN", "-Infinity", '"\\ud800"', "1" * 5000, "[" * 2000 + "]" * 2000,
                 '{"a": 1} x', "18446744073709551616", "-9223372036854775809", "1e400"]
        for text in cases:
            self.assertEqual(_outcome(fast.decode, text), _outcome(stdlib.decode, text), text[:40])
            self.assertEqual(_outcome(fast.loads, text), _outcome(stdlib.loads, text), text[:40])
        for data in ['{"a": 1}'.encode("utf-16"), b"\xef\xbb\xbf{}", b"\xff"]:
            self.assertEqual(_outcome(fast.loads, data), _outcome(stdlib.loads, data), data)

    def test_encode_circular(self) -> None:
        """
        When a circular structure is encoded by the orjson path, then it
        raises the stdlib's C{ValueError}.
        """
        _, fast = _codecs()
        loop = []
        loop.append({"loop": loop})
        self.assertRaises(ValueError, fast.encode, loop)

    def test_wire_format(self) -> None:
        """
        When a request is encoded by the orjson path, then its text is the
        compact JSON of the same object, key order kept.
        """
        _, fast = _codecs()
        message = {"method": "echo", "args": {"value": "v"}, "_unique_id": "u", "_context_roles": ["a"],
                   "_context_domain": None, "_context_is_admin": False, "n": 1.5}
        self.assertEqual(
            fast.encode(message),
            '{"method":"echo","args":{"value":"v"},"_unique_id":"u","_context_roles":["a"],'
            '"_context_domain":null,"_context_is_admin":false,"n":1.5}',
        )


class ChoiceTests(SynchronousTestCase):
    """
    Which path C{NOVASVC_JSON} selects.
    """

    def test_auto(self) -> None:
        """
        When C{NOVASVC_JSON} is unset, empty or C{auto}, then orjson is
        taken when importable, the stdlib otherwise.
        """
        _orjson_or_skip()
        for environ in ({}, {"NOVASVC_JSON": ""}, {"NOVASVC_JSON": " Auto "}):
            self.assertEqual(_jsoncodec._choose(environ).name, "orjson")
            self.assertEqual(_jsoncodec._choose(environ, lambda: None).name, "stdlib")

    def test_stdlib(self) -> None:
        """
        When C{NOVASVC_JSON} is C{stdlib}, then the stdlib path is taken
        even with orjson installed.
        """
        self.assertEqual(_jsoncodec._choose({"NOVASVC_JSON": "stdlib"}).name, "stdlib")

    def test_orjson_missing(self) -> None:
        """
        When C{NOVASVC_JSON} is C{orjson} and orjson is not installed, then
        ImportError says so.
        """
        error = self.assertRaises(ImportError, _jsoncodec._choose, {"NOVASVC_JSON": "orjson"}, lambda: None)
        self.assertIn("NOVASVC_JSON=orjson but orjson is not installed", str(error))

    def test_unknown(self) -> None:
        """
        When C{NOVASVC_JSON} names no path, then ValueError quotes a
        clipped value and the choices.
        """
        error = self.assertRaises(ValueError, _jsoncodec._choose, {"NOVASVC_JSON": "simd" * 1000})
        self.assertIn("expected auto, orjson or stdlib", str(error))
        self.assertLess(len(str(error)), 400)

    def test_ci_runs_orjson(self) -> None:
        """
        When the suite runs in CI without C{NOVASVC_JSON=stdlib}, then the
        process took the orjson path (a test dependency), so CI covers both
        paths (C{tox -e json-stdlib} the other).
        """
        wanted = os.environ.get("NOVASVC_JSON", "").strip().lower()
        if wanted == "stdlib":
            self.assertEqual(_jsoncodec.BACKEND, "stdlib")
        elif in_ci() or wanted == "orjson":
            self.assertEqual(_jsoncodec.BACKEND, "orjson")
        else:
            self.assertIn(_jsoncodec.BACKEND, ("orjson", "stdlib"))

    def test_environment_at_import(self) -> None:
        """
        When a process imports the codec with C{NOVASVC_JSON=stdlib}, then
        it takes the stdlib path, and a body it encodes is read back by this
        process's path.
        """
        env = dict(os.environ, NOVASVC_JSON="stdlib", PYTHONPATH=ROOT)
        script = ("from novasvc.rpc import _jsoncodec, wire; print(_jsoncodec.BACKEND); "
                  "print(wire.encode_request('echo', {'v': [1, 2.5, None]}, {'user_id': 'u'}).decode())")
        output = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True,
                                capture_output=True, text=True, timeout=60).stdout.splitlines()
        self.assertEqual(output[0], "stdlib")
        request = wire.decode_request(output[1].encode())
        self.assertEqual((request.method, request.args), ("echo", {"v": [1, 2.5, None]}))
