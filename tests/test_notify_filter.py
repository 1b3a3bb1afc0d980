"""
Tests for L{novasvc.notify.filter}: the rules of oslo.messaging's
C{NotificationFilter}, checked case by case and against oslo's own filter.
"""

import os
import re
from typing import Any, Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.notify.filter import NotificationFilter

_METADATA = {"message_id": "m-1", "timestamp": "2026-01-02 03:04:05.000006"}

#: (filter arguments, (context, publisher_id, event_type, metadata, payload), match?)
_CASES: List[Tuple[Dict[str, Any], Tuple[Any, ...], bool]] = [
    ({}, ({}, "p", "e", _METADATA, {}), True),
    ({"publisher_id": "^compute"}, ({}, "compute.h1", "e", _METADATA, {}), True),
    ({"publisher_id": "^compute"}, ({}, "volume.h1", "e", _METADATA, {}), False),
    # re.match: anchored at the start only.
    ({"publisher_id": "compute"}, ({}, "compute.h1", "e", _METADATA, {}), True),
    ({"publisher_id": "h1"}, ({}, "compute.h1", "e", _METADATA, {}), False),
    ({"event_type": r"volume\.create"}, ({}, "p", "volume.create.end", _METADATA, {}), True),
    ({"event_type": r"volume\.create$"}, ({}, "p", "volume.create.end", _METADATA, {}), False),
    ({"event_type": "x"}, ({}, "p", None, _METADATA, {}), False),
    ({"context": {"project_id": "^p1$"}}, ({"project_id": "p1"}, "p", "e", _METADATA, {}), True),
    ({"context": {"project_id": "^p1$"}}, ({"project_id": "p10"}, "p", "e", _METADATA, {}), False),
    ({"context": {"project_id": ".*"}}, ({}, "p", "e", _METADATA, {}), False),
    ({"context": {"project_id": ".*"}}, ({"project_id": None}, "p", "e", _METADATA, {}), False),
    ({"context": {"a": "1", "b": "2"}}, ({"a": "1", "b": "2"}, "p", "e", _METADATA, {}), True),
    ({"context": {"a": "1", "b": "2"}}, ({"a": "1", "b": "3"}, "p", "e", _METADATA, {}), False),
    ({"payload": {"state": "^active$"}}, ({}, "p", "e", _METADATA, {"state": "active"}), True),
    ({"payload": {"state": "^active$"}}, ({}, "p", "e", _METADATA, {"state": "inactive"}), False),
    ({"payload": {"size": "1"}}, ({}, "p", "e", _METADATA, {"size": 1}), False),
    ({"payload": {"state": ".*"}}, ({}, "p", "e", _METADATA, {"other": "x"}), False),
    ({"metadata": {"timestamp": "^2026"}}, ({}, "p", "e", _METADATA, {}), True),
    ({"metadata": {"message_id": "^x"}}, ({}, "p", "e", _METADATA, {}), False),
    ({"publisher_id": "^c", "event_type": "^e", "payload": {"k": "v"}},
     ({}, "c1", "e1", _METADATA, {"k": "v"}), True),
    ({"publisher_id": "^c", "event_type": "^e", "payload": {"k": "v"}},
     ({}, "c1", "f1", _METADATA, {"k": "v"}), False),
]


def _oslo_filter() -> Any:
    """
    @return: oslo.messaging's C{NotificationFilter}, loaded from its file
        alone: importing the C{oslo_messaging} package would load its
        drivers (and eventlet) into the test process.
    """
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.PathFinder.find_spec("oslo_messaging")
    if spec is None or not spec.submodule_search_locations:
        raise AssertionError("oslo.messaging is a test dependency; it is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "notify", "filter.py")
    module_spec = importlib.util.spec_from_file_location("_oslo_notify_filter", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.NotificationFilter


class FilterTests(SynchronousTestCase):
    """
    L{NotificationFilter.match}, field by field.
    """

    def test_cases(self) -> None:
        """
        When each case of the table is matched, then the result is the one
        listed (re.match semantics, missing keys and non-strings do not
        match, every field must match).
        """
        for arguments, fields, expected in _CASES:
            self.assertEqual(NotificationFilter(**arguments).match(*fields), expected, (arguments, fields))

    def test_same_as_oslo(self) -> None:
        """
        When oslo.messaging's own filter matches the same cases, then it
        agrees on every one.
        """
        OsloFilter = _oslo_filter()
        for arguments, fields, expected in _CASES:
            self.assertEqual(OsloFilter(**arguments).match(*fields), expected, (arguments, fields))

    def test_positional_order(self) -> None:
        """
        When the arguments are given by position, then they are oslo's:
        context, publisher_id, event_type, metadata, payload.
        """
        screen = NotificationFilter({"c": "1"}, "p", "e", {"message_id": "m"}, {"k": "v"})
        self.assertTrue(screen.match({"c": "1"}, "p", "e", _METADATA, {"k": "v"}))
        self.assertFalse(screen.match({"c": "1"}, "p", "e", _METADATA, {"k": "w"}))

    def test_not_a_dict(self) -> None:
        """
        When the context or payload is not a dictionary and the filter has
        expressions for its keys, then it does not match (and does not
        raise, where oslo's would); an object with to_dict() is matched
        through that dictionary.
        """
        screen = NotificationFilter(payload={"k": ".*"})
        for payload in (None, ["k"], "k", 3):
            self.assertFalse(screen.match({}, "p", "e", _METADATA, payload))
        by_user = NotificationFilter(context={"user_id": "^u1$"})
        self.assertTrue(by_user.match(RequestContext(user_id="u1"), "p", "e", _METADATA, {}))
        self.assertFalse(by_user.match(RequestContext(user_id="u2"), "p", "e", _METADATA, {}))

        class Broken:
            def to_dict(self) -> dict:
                raise RuntimeError("no")

        self.assertFalse(by_user.match(Broken(), "p", "e", _METADATA, {}))

    def test_bad_regex(self) -> None:
        """
        When an expression does not compile, then the filter cannot be
        made.
        """
        self.assertRaises(re.error, NotificationFilter, event_type="(")
        self.assertRaises(re.error, NotificationFilter, payload={"k": "["})

    def test_repr(self) -> None:
        """
        When a filter is repr()'d, then it shows its expressions.
        """
        self.assertEqual(repr(NotificationFilter(event_type="^v", payload={"k": "x"})),
                         "NotificationFilter(event_type='^v', payload={'k': 'x'})")
