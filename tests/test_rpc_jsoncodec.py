"""
Tests for L{novasvc.rpc._jsoncodec}.
"""

import datetime
import json
import math
import uuid
from unittest import SkipTest

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc import _jsoncodec
from novasvc.rpc._jsoncodec import dumps
from tests._services import in_ci


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


def _jsonutils_or_skip():
    """
    @return: oslo_serialization's C{jsonutils} (oslo.messaging's JSON).
    @raise SkipTest: when it is not installed, outside CI (a test
        dependency, through oslo.messaging: CI fails instead).
    """
    try:
        from oslo_serialization import jsonutils
    except ImportError as e:
        if in_ci():
            raise AssertionError(f"oslo.messaging is a test dependency: {e}")
        raise SkipTest(f"oslo.serialization is not installed: {e}")
    return jsonutils


#: The standard library alone, as oslo's C{jsonutils} uses it: what the
#: codec's functions of the same names must give the values (and errors) of.
_STDLIB = {
    "encode": json.JSONEncoder(default=_jsoncodec._to_primitive).encode,
    "encode_lenient": json.JSONEncoder(default=_jsoncodec._to_primitive_or_repr).encode,
    "decode": json.JSONDecoder().decode,
    "loads": json.loads,
}


def _outcome(function, value):
    """
    @return: C{("ok", repr(result))} or C{("error", type name, message)}:
        what C{function(value)} did, comparable across implementations
        (C{repr} tells C{1} from C{1.0}, C{0.0} from C{-0.0}, and matches
        C{nan} with C{nan}).
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
_FEWER_EXAMPLES = settings(_EXAMPLES, max_examples=150)

#: Text orjson writes byte for byte as oslo does: ASCII without DEL (which
#: orjson leaves as is and oslo escapes).
_ASCII = st.text(alphabet=st.characters(max_codepoint=0x7E), max_size=12)
#: JSON values orjson writes, without floats (whose text may differ, never
#: their value).
_ORJSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**64 - 1), _ASCII),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_ASCII, children, max_size=4),
    ),
    max_leaves=12,
)
#: One value that sends the whole message to the standard library, each
#: converted by oslo's C{to_primitive} as by the codec's.
_SPOILERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 2**64, -2**63 - 1, "\u00e9", "\ud800", "\x7f\u2028"]),
    st.text(min_size=1).filter(lambda text: not text.isascii()),
    st.integers(min_value=2**64, max_value=2**80),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
    # Years from 1000: below, oslo's strftime drops the leading zeros.
    st.datetimes(min_value=datetime.datetime(1000, 1, 1)), st.dates(min_value=datetime.date(1000, 1, 1)),
    st.uuids(), st.frozensets(st.integers(), max_size=3),
    st.binary(max_size=8).map(lambda data: data.hex().encode("ascii")),
)


class PathsTests(SynchronousTestCase):
    """
    The codec reads and writes exactly the values the standard library
    does, and writes the bytes oslo's C{jsonutils} does.
    """

    @_EXAMPLES
    @given(_VALUES)
    @example([math.nan, {"x": -math.inf}])
    @example({"big": 2**64, "keys": {1: "a"}, "text": "\udc00\u00e9"})
    @example(("tuple", [datetime.date(2024, 1, 2)]))
    def test_encode_same_values(self, value) -> None:
        """
        When any value is encoded by the codec and by the standard library,
        then both give ASCII text that decodes to the same thing, or both
        raise the same error.
        """
        for name in ("encode", "encode_lenient"):
            mine, theirs = _outcome(getattr(_jsoncodec, name), value), _outcome(_STDLIB[name], value)
            if theirs[0] == "error":
                self.assertEqual(mine, theirs)
                continue
            text = getattr(_jsoncodec, name)(value)
            self.assertTrue(text.isascii(), text)
            self.assertEqual(_outcome(json.loads, text), _outcome(json.loads, _STDLIB[name](value)))

    @_EXAMPLES
    @given(_VALUES, st.sampled_from([{}, {"separators": (",", ":")}, {"ensure_ascii": False}, {"indent": 1}]))
    @example({"n": 2**70, "m": [-2**64, math.nan, 18446744073709551615]}, {"separators": (",", ":")})
    def test_decode_same_values(self, value, style) -> None:
        """
        When JSON text written by oslo's encoder (the stdlib's, in any
        style) is decoded by the codec and by the standard library, then
        both give the same value (same types: an integer beyond 64 bits
        stays an C{int}, NaN stays NaN) or raise the same error.
        """
        try:
            text = json.dumps(value, default=_jsoncodec._to_primitive, **style)
        except (TypeError, ValueError):
            return
        for name in ("decode", "loads"):
            self.assertEqual(_outcome(getattr(_jsoncodec, name), text), _outcome(_STDLIB[name], text))
        data = text.encode("utf-8", "surrogatepass")
        self.assertEqual(_outcome(_jsoncodec.loads, data), _outcome(json.loads, data))

    def test_decode_refusals(self) -> None:
        """
        When text that is not JSON, or JSON only the standard library reads
        (a UTF-16 or BOM-prefixed body, a number of 5,000 digits, nesting
        beyond orjson's limit), is decoded by the codec and by the standard
        library, then both give the same value or the same error.
        """
        cases = ["", " ", "{", "[1,]", "01", "NaN", "-Infinity", '"\\ud800"', "1" * 5000, "[" * 2000 + "]" * 2000,
                 '{"a": 1} x', "18446744073709551616", "-9223372036854775809", "1e400", "\ufeff{}"]
        for text in cases:
            for name in ("decode", "loads"):
                self.assertEqual(_outcome(getattr(_jsoncodec, name), text), _outcome(_STDLIB[name], text), text[:40])
        for data in ['{"a": 1}'.encode("utf-16"), b"\xef\xbb\xbf{}", b"\xff"]:
            self.assertEqual(_outcome(_jsoncodec.loads, data), _outcome(json.loads, data), data)

    def test_encode_circular(self) -> None:
        """
        When a circular structure is encoded, then the codec raises the
        standard library's C{ValueError}.
        """
        loop = []
        loop.append({"loop": loop})
        self.assertRaises(ValueError, _jsoncodec.encode, loop)

    def test_wire_format(self) -> None:
        """
        When a request of JSON values is encoded, then orjson wrote its
        text: the compact JSON of the same object, key order kept.
        """
        message = {"method": "echo", "args": {"value": "v"}, "_unique_id": "u", "_context_roles": ["a"],
                   "_context_domain": None, "_context_is_admin": False, "n": 1.5}
        self.assertEqual(
            _jsoncodec.encode(message),
            '{"method":"echo","args":{"value":"v"},"_unique_id":"u","_context_roles":["a"],'
            '"_context_domain":null,"_context_is_admin":false,"n":1.5}',
        )

    @_FEWER_EXAMPLES
    @given(_ORJSON_VALUES)
    def test_orjson_bytes_as_oslo(self, value) -> None:
        """
        When a value orjson writes (JSON values, ASCII text without DEL, no
        float) is encoded, then its text is byte for byte what oslo's
        C{jsonutils.dumps} writes with compact separators.
        """
        jsonutils = _jsonutils_or_skip()
        expected = jsonutils.dumps(value, separators=(",", ":"))
        self.assertEqual(_jsoncodec.encode(value), expected)
        self.assertEqual(_jsoncodec.encode_lenient(value), expected)

    @_FEWER_EXAMPLES
    @given(_JSON, _SPOILERS)
    @example({"a": [1, None]}, math.nan)
    def test_fallback_bytes_as_oslo(self, value, spoiler) -> None:
        """
        When a message holds a value orjson does not write as oslo does
        (NaN, an infinity, an integer beyond 64 bits, a non-C{str} key,
        non-ASCII text, a lone surrogate, a datetime, a set, a UUID,
        bytes), then the standard library writes the whole message, byte
        for byte what oslo's C{jsonutils.dumps} writes.
        """
        jsonutils = _jsonutils_or_skip()
        message = {"value": value, "spoiler": spoiler}
        expected = jsonutils.dumps(message)
        self.assertEqual(_jsoncodec.encode(message), expected)
        self.assertEqual(_jsoncodec.encode_lenient(message), expected)
