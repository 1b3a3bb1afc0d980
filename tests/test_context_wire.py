"""
Tests for L{novasvc._context_wire}: reading a context's values from a
message never fails, whatever they are.
"""

import json
from typing import Any, Dict, List

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext, context_from_message
from tests.test_context import _NOVA_KEYS, _OSLO_KEYS


#: Every key a context reads, for the fuzzing.
_CONTEXT_KEYS = sorted(_OSLO_KEYS | _NOVA_KEYS | {"tenant", "client_timeout", "domain_id", "extra"})
#: Any JSON value.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
    | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2024-05-06T07:08:09Z"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6)


class TotalReadTests(SynchronousTestCase):
    """
    Reading a context from a message never fails, whatever its values.
    """

    def setUp(self) -> None:
        self.warnings: List[Dict[str, Any]] = []

        def observe(event: Dict[str, Any]) -> None:
            if event.get("log_namespace") == "novasvc.context" and event["log_level"] == LogLevel.warn:
                self.warnings.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def test_timestamp_out_of_range(self) -> None:
        """
        When the timestamp is an instant before year 1 in UTC, then reading
        the context does not raise: the text is kept as it came, every
        field reads, and to_dict writes it back.
        """
        ctxt = context_from_message({"_context_timestamp": "0001-01-01T00:00:00+01:00",
                                     "_context_user_id": "u1"}, "_context_", None)
        self.assertEqual(ctxt.timestamp, "0001-01-01T00:00:00+01:00")
        self.assertEqual(ctxt.user_id, "u1")
        self.assertEqual(ctxt.to_dict()["timestamp"], "0001-01-01T00:00:00+01:00")

    def test_roles_of_the_wrong_type(self) -> None:
        """
        When roles is not a list of strings, then the context has no roles,
        to_dict works, and one WARNING names the field.
        """
        ctxt = context_from_message({"_context_roles": 5, "_context_is_admin": "yes"}, "_context_", None)
        self.assertEqual((ctxt.roles, ctxt.is_admin), ([], False))
        self.assertEqual(ctxt.to_dict()["roles"], [])
        ctxt.project_id
        [warning] = self.warnings
        self.assertIn("roles", formatEvent(warning))
        self.assertIn("is_admin", formatEvent(warning))

    def test_warning_bounded(self) -> None:
        """
        When many fields have the wrong type, then one WARNING names five of
        them.
        """
        fields = ["user_id", "project_id", "domain_id", "user_name", "project_name", "quota_class", "is_admin"]
        RequestContext.from_dict({field: [1] for field in fields})
        [warning] = self.warnings
        self.assertEqual(formatEvent(warning).count(", "), 5)
        self.assertIn("7 value(s)", formatEvent(warning))

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(entries=st.dictionaries(st.sampled_from(_CONTEXT_KEYS) | st.text(max_size=8), _JSON, max_size=12),
           client_timeout=_JSON)
    def test_fuzzed_entries(self, entries: Dict[str, Any], client_timeout: Any) -> None:
        """
        When a message's context entries have any JSON values, then every
        field of its context reads, to_dict writes JSON, and that reads
        back to the same dict.
        """
        message = {"_context_" + key: value for key, value in entries.items()}
        message["method"] = "m"
        ctxt = context_from_message(message, "_context_", client_timeout)
        for field in attrs.fields(RequestContext):
            getattr(ctxt, field.name)
        written = ctxt.to_dict()
        json.dumps(written)
        self.assertEqual(RequestContext.from_dict(written).to_dict(), written)
