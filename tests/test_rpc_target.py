"""
Tests for L{novasvc.rpc.target}.
"""

import attrs
from twisted.trial.unittest import SynchronousTestCase

from novasvc.rpc.target import Target, parse_version, version_is_compatible


class TargetTests(SynchronousTestCase):
    """
    L{Target} is oslo.messaging's Target as a frozen value.
    """

    def test_defaults(self) -> None:
        """
        When a Target is made without arguments, then every field is None and
        fanout is False, as oslo's.
        """
        target = Target()
        self.assertEqual(
            (target.exchange, target.topic, target.namespace, target.version, target.server, target.fanout),
            (None, None, None, None, None, False),
        )

    def test_frozen(self) -> None:
        """
        When a field of a Target is assigned, then it is refused.
        """
        target = Target(topic="compute")
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, target, "topic", "other")

    def test_replace(self) -> None:
        """
        When replace() is called, then a new Target has the changes and the
        original is unchanged.
        """
        target = Target(topic="compute", version="1.0")
        changed = target.replace(server="host1", version="1.2")
        self.assertEqual(changed, Target(topic="compute", server="host1", version="1.2"))
        self.assertEqual(target, Target(topic="compute", version="1.0"))

    def test_equal_and_hashable(self) -> None:
        """
        When two Targets have the same fields, then they are equal and hash
        alike.
        """
        self.assertEqual(Target(topic="a", fanout=True), Target(topic="a", fanout=True))
        self.assertEqual(len({Target(topic="a"), Target(topic="a")}), 1)

    def test_non_string_refused(self) -> None:
        """
        When a name field is given something other than a string, then a
        TypeError names the field.
        """
        error = self.assertRaises(TypeError, Target, topic=5)
        self.assertIn("Target.topic", str(error))

    def test_namespaces(self) -> None:
        """
        When a Target has legacy namespaces, then namespaces lists its own
        namespace first, then the legacy ones.
        """
        self.assertEqual(Target(namespace="new", legacy_namespaces=["old", None]).namespaces, ("new", "old", None))
        self.assertEqual(Target().namespaces, (None,))


class VersionTests(SynchronousTestCase):
    """
    Version parsing and oslo's compatibility rule.
    """

    def test_parse(self) -> None:
        """
        When a version has two or three parts, then it parses to (major,
        minor, revision) with revision 0 by default.
        """
        self.assertEqual(parse_version("2.5"), (2, 5, 0))
        self.assertEqual(parse_version("2.5.3"), (2, 5, 3))
        self.assertEqual(parse_version("10.12"), (10, 12, 0))

    def test_parse_invalid(self) -> None:
        """
        When a version is not major.minor[.revision] integers, then
        ValueError is raised.
        """
        for bad in ("1", "1.x", "1.2.3.4", "", "a.b", "1..2", "-1.0", None, 1.0):
            self.assertRaises(ValueError, parse_version, bad)

    def test_compatible(self) -> None:
        """
        When versions are compared, then the major must match, the requested
        minor must not exceed the implemented one and, for equal minors, the
        requested revision must not exceed the implemented one.
        """
        cases = [
            ("2.5", "2.1", True),
            ("2.5", "2.5", True),
            ("2.5", "2.6", False),
            ("2.5", "3.0", False),
            ("2.5", "1.0", False),
            ("2.5", "2.5.1", False),
            ("2.5.1", "2.5", True),
            ("2.5.1", "2.5.1", True),
            ("2.5.0", "2.4.9", True),
            ("1.0", "1.0", True),
        ]
        for implemented, requested, expected in cases:
            self.assertEqual(version_is_compatible(implemented, requested), expected, (implemented, requested))
