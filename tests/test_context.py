"""
Tests for L{novasvc.context}.
"""

import copy
import datetime
import pickle
import re
from typing import Any, Dict, List

import attrs
from twisted.trial.unittest import SynchronousTestCase

from novasvc import _context_wire, context as context_module
from novasvc.context import RequestContext, context_from_message, generate_request_id, get_admin_context

_OSLO_KEYS = {"user", "project_id", "system_scope", "project", "domain", "user_domain", "project_domain",
              "is_admin", "read_only", "show_deleted", "auth_token", "request_id", "global_request_id",
              "resource_uuid", "roles", "user_identity", "is_admin_project"}
_NOVA_KEYS = {"user_id", "read_deleted", "remote_address", "timestamp", "quota_class", "user_name",
              "service_catalog", "project_name"}


class RequestContextTests(SynchronousTestCase):
    """
    L{RequestContext} carries oslo.context's and Nova's fields.
    """

    def test_request_id(self) -> None:
        """
        When a context is made without a request id, then it gets a fresh
        req-<uuid4>.
        """
        first, second = RequestContext(), RequestContext()
        self.assertRegex(first.request_id, r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
        self.assertNotEqual(first.request_id, second.request_id)
        self.assertTrue(generate_request_id().startswith("req-"))

    def test_positional_user_and_project(self) -> None:
        """
        When user and project are given by position, then they are user_id
        and project_id, as Nova's.
        """
        ctxt = RequestContext("u1", "p1")
        self.assertEqual((ctxt.user_id, ctxt.project_id), ("u1", "p1"))

    def test_repr_hides_token(self) -> None:
        """
        When a context with a token is repr()'d, then the token does not
        appear.
        """
        ctxt = RequestContext("u1", "p1", auth_token="s3cret-token")
        self.assertNotIn("s3cret-token", repr(ctxt))
        self.assertIn("u1", repr(ctxt))

    def test_to_dict_keys(self) -> None:
        """
        When a context is turned into a dict, then it has every key
        oslo.context and Nova write, with the aliases filled.
        """
        values = RequestContext("u1", "p1", roles=["member"]).to_dict()
        self.assertTrue(_OSLO_KEYS | _NOVA_KEYS <= set(values), (_OSLO_KEYS | _NOVA_KEYS) - set(values))
        self.assertEqual((values["user"], values["project"]), ("u1", "p1"))
        self.assertEqual(values["user_identity"], "u1 p1 - - -")
        self.assertEqual(values["roles"], ["member"])

    def test_to_dict_timestamp(self) -> None:
        """
        When a context is turned into a dict, then the timestamp is Nova's
        strtime string.
        """
        ctxt = RequestContext(timestamp=datetime.datetime(2024, 5, 6, 7, 8, 9, 123))
        self.assertEqual(ctxt.to_dict()["timestamp"], "2024-05-06T07:08:09.000123")

    def test_round_trip(self) -> None:
        """
        When a context goes through to_dict and from_dict, then the copy is
        equal to it.
        """
        ctxt = RequestContext("u1", "p1", roles=["admin", "member"], is_admin=True, auth_token="tok",
                              remote_address="10.0.0.1", global_request_id="req-global", user_name="alice",
                              project_name="demo", read_deleted="yes", domain_id="d",
                              extra={"trace_info": {"base_id": "b"}})
        self.assertEqual(RequestContext.from_dict(ctxt.to_dict()), ctxt)

    def test_unknown_keys_kept(self) -> None:
        """
        When a dict has keys the context does not know, then they are kept in
        extra and written back by to_dict.
        """
        ctxt = RequestContext.from_dict({"user_id": "u1", "traceparent": "00-abc", "custom": [1, 2]})
        self.assertEqual(ctxt.extra, {"traceparent": "00-abc", "custom": [1, 2]})
        values = ctxt.to_dict()
        self.assertEqual((values["traceparent"], values["custom"]), ("00-abc", [1, 2]))

    def test_aliases(self) -> None:
        """
        When a dict uses oslo's aliases (user, tenant, domain...), then they
        fill the fields and are not kept as extras.
        """
        ctxt = RequestContext.from_dict({"user": "u", "tenant": "t", "domain": "d", "user_domain": "ud",
                                         "project_domain": "pd", "user_identity": "u t d ud pd"})
        self.assertEqual(
            (ctxt.user_id, ctxt.project_id, ctxt.domain_id, ctxt.user_domain_id, ctxt.project_domain_id),
            ("u", "t", "d", "ud", "pd"),
        )
        self.assertEqual(ctxt.extra, {})

    def test_field_wins_over_alias(self) -> None:
        """
        When a dict has both user_id and user, then user_id is used.
        """
        self.assertEqual(RequestContext.from_dict({"user_id": "a", "user": "b"}).user_id, "a")
        self.assertEqual(RequestContext.from_dict({"project": "p", "tenant": "t"}).project_id, "p")

    def test_timestamp_parsed(self) -> None:
        """
        When a dict has a timestamp string, then it becomes a naive UTC
        datetime; an unreadable one is kept as it came.
        """
        ctxt = RequestContext.from_dict({"timestamp": "2024-05-06T07:08:09.000123"})
        self.assertEqual(ctxt.timestamp, datetime.datetime(2024, 5, 6, 7, 8, 9, 123))
        aware = RequestContext.from_dict({"timestamp": "2024-05-06T09:08:09+02:00"})
        self.assertEqual(aware.timestamp, datetime.datetime(2024, 5, 6, 7, 8, 9))
        self.assertEqual(RequestContext.from_dict({"timestamp": "yesterday"}).timestamp, "yesterday")

    def test_timestamp_parsed_again(self) -> None:
        """
        When several dicts carry timestamp texts, the same one again and
        again or others in between, then each context reads its own text's
        instant.
        """
        texts = ["2024-05-06T07:08:09.000123", "2024-05-06T07:08:09.000123", "2024-05-06T09:08:09+02:00",
                 "yesterday", "2024-05-06T07:08:09.000123", "2025-01-02T03:04:05.000006", "yesterday"]
        expected = [datetime.datetime(2024, 5, 6, 7, 8, 9, 123), datetime.datetime(2024, 5, 6, 7, 8, 9, 123),
                    datetime.datetime(2024, 5, 6, 7, 8, 9), "yesterday", datetime.datetime(2024, 5, 6, 7, 8, 9, 123),
                    datetime.datetime(2025, 1, 2, 3, 4, 5, 6), "yesterday"]
        self.assertEqual([RequestContext.from_dict({"timestamp": text}).timestamp for text in texts], expected)

    def test_missing_request_id_generated(self) -> None:
        """
        When a dict has a null request_id, then the context gets a fresh one.
        """
        self.assertTrue(RequestContext.from_dict({"request_id": None}).request_id.startswith("req-"))

    def test_client_timeout(self) -> None:
        """
        When a dict has client_timeout (set by the RPC server from _timeout),
        then it is a field.
        """
        self.assertEqual(RequestContext.from_dict({"client_timeout": 30}).client_timeout, 30)

    def test_prefixed_round_trip(self) -> None:
        """
        When a context is written with a prefix and read back from a message
        holding those entries among others, then only the prefixed entries
        are read, extras included, and the copy equals the original.
        """
        ctxt = RequestContext("u1", "p1", roles=["member"], extra={"traceparent": "00-abc"})
        message = {"method": "m", "args": {}, "user_id": "not context", **ctxt.to_dict("_context_")}
        self.assertEqual(message["_context_user_id"], "u1")
        self.assertEqual(message["_context_traceparent"], "00-abc")
        self.assertEqual(RequestContext.from_dict(message, "_context_"), ctxt)

    def test_prefixed_aliases(self) -> None:
        """
        When prefixed entries use the aliases, then they are read as the
        unprefixed ones are: the own key wins, tenant fills the project, and
        user_identity is dropped.
        """
        ctxt = RequestContext.from_dict({"_context_user": "u", "_context_user_id": "own", "_context_tenant": "t",
                                         "_context_user_identity": "x", "_timeout": 5}, "_context_")
        self.assertEqual((ctxt.user_id, ctxt.project_id, ctxt.extra), ("own", "t", {}))

    def test_prefixed_extras_found(self) -> None:
        """
        When a message holds only known prefixed keys plus one unknown
        prefixed key, then that key alone is an extra.
        """
        message = RequestContext("u1").to_dict("_context_")
        message["_context_custom"] = [1]
        self.assertEqual(RequestContext.from_dict(message, "_context_").extra, {"custom": [1]})

    def test_redacted_copy(self) -> None:
        """
        When a redacted copy is made, then it has no token and the original
        keeps its own.
        """
        ctxt = RequestContext("u1", auth_token="tok")
        self.assertIsNone(ctxt.redacted_copy().auth_token)
        self.assertEqual(ctxt.auth_token, "tok")
        self.assertEqual(ctxt.redacted_copy().user_id, "u1")

    def test_elevated(self) -> None:
        """
        When a context is elevated, then the copy is admin with the admin
        role and the original is unchanged.
        """
        ctxt = RequestContext("u1", roles=["member"])
        admin = ctxt.elevated(read_deleted="yes")
        self.assertEqual((admin.is_admin, admin.roles, admin.read_deleted), (True, ["member", "admin"], "yes"))
        self.assertEqual((ctxt.is_admin, ctxt.roles), (False, ["member"]))


class _Watched(dict):  # type: ignore[type-arg]
    """
    A message that records the keys looked up in it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self, *args, **kwargs)
        self.looked_up: List[str] = []

    def __contains__(self, key: object) -> bool:
        self.looked_up.append(key)  # type: ignore[arg-type]
        return dict.__contains__(self, key)

    def __getitem__(self, key: str) -> Any:
        self.looked_up.append(key)
        return dict.__getitem__(self, key)


class ContextFromMessageTests(SynchronousTestCase):
    """
    L{context_from_message} makes the context C{from_dict} makes, read from
    the message only when first used.
    """

    def setUp(self) -> None:
        self.original = RequestContext("u1", "p1", roles=["member"], extra={"traceparent": "00-abc"})
        self.message: Dict[str, Any] = {"method": "m", "args": {}, **self.original.to_dict("_context_")}
        self.expected = RequestContext.from_dict(self.message, "_context_")
        self.expected.client_timeout = 30

    def unread(self) -> RequestContext:
        return context_from_message(self.message, "_context_", 30)

    def test_not_read_until_used(self) -> None:
        """
        When a context is made from a message and nothing looks at it, then
        the message is not read; when a field is read, then it is.
        """
        message = _Watched(self.message)
        ctxt = context_from_message(message, "_context_", None)
        self.assertEqual(message.looked_up, [])
        self.assertEqual(ctxt.user_id, "u1")
        self.assertIn("_context_user_id", message.looked_up)

    def test_same_as_from_dict(self) -> None:
        """
        When a context made from a message is read, then it is a plain
        RequestContext equal to from_dict's with the client timeout set,
        compared either way round.
        """
        self.assertEqual(self.unread(), self.expected)
        self.assertEqual(self.expected, self.unread())
        self.assertFalse(self.unread() != self.expected)
        ctxt = self.unread()
        self.assertIsInstance(ctxt, RequestContext)
        self.assertEqual((ctxt.client_timeout, ctxt.extra, ctxt.roles), (30, {"traceparent": "00-abc"}, ["member"]))
        self.assertIs(type(ctxt), RequestContext)

    def test_missing_attribute(self) -> None:
        """
        When a name that is no field is looked up on a context, read or
        not, then it is an AttributeError and the context stays usable.
        """
        for ctxt in (self.unread(), self.expected):
            self.assertFalse(hasattr(ctxt, "no_such_field"))
            self.assertEqual(ctxt.user_id, "u1")

    def test_set_before_read(self) -> None:
        """
        When a field of a context made from a message is set before anything
        is read, then the value set is kept and the other fields are read.
        """
        ctxt = self.unread()
        ctxt.read_deleted = "yes"
        self.assertEqual((ctxt.read_deleted, ctxt.user_id), ("yes", "u1"))
        self.assertEqual(ctxt, attrs.evolve(self.expected, read_deleted="yes"))

    def test_copies(self) -> None:
        """
        When a context made from a message is first used by repr, copy,
        deepcopy, pickle, attrs.evolve or attrs.asdict, then each sees the
        fields read from the message.
        """
        self.assertEqual(repr(self.unread()), repr(self.expected))
        self.assertEqual(copy.copy(self.unread()), self.expected)
        self.assertEqual(copy.deepcopy(self.unread()), self.expected)
        self.assertEqual(pickle.loads(pickle.dumps(self.unread())), self.expected)
        evolved = attrs.evolve(self.unread(), user_id="u2")
        self.assertEqual((type(evolved), evolved.user_id, evolved.project_id), (RequestContext, "u2", "p1"))
        self.assertEqual(attrs.asdict(self.unread()), attrs.asdict(self.expected))
        self.assertEqual(self.unread().to_dict(), self.expected.to_dict())

    def test_defaults(self) -> None:
        """
        When a message has no context entries, then each context made from
        it gets its own request id, roles and extra, as from_dict's.
        """
        first = context_from_message({}, "_context_", None)
        second = context_from_message({}, "_context_", None)
        self.assertNotEqual(first.request_id, second.request_id)
        self.assertIsNot(first.roles, second.roles)
        self.assertEqual((first.roles, first.extra, first.is_admin_project), ([], {}, True))


class FailedReadTests(SynchronousTestCase):
    """
    A lazy context whose reading fails, or runs while another reads.
    """

    def test_failed_read_leaves_a_usable_context(self) -> None:
        """
        When reading the entries fails unexpectedly, then the context has
        its defaults, the error is logged, and every later lookup works.
        """
        def broken(values: Any, prefix: str, keys: Any) -> Any:
            raise RuntimeError("unexpected")

        self.patch(context_module, "read_fields", broken)
        ctxt = context_from_message({"_context_user_id": "u1"}, "_context_", 30)
        self.assertEqual((ctxt.user_id, ctxt.client_timeout), (None, 30))
        self.assertEqual(ctxt.roles, [])
        self.assertIs(type(ctxt), RequestContext)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_no_global_lock(self) -> None:
        """
        When a context is read while another one is being read (here, by
        the code that reads the timestamp), then both read.
        """
        inner = context_from_message({"_context_user_id": "inner"}, "_context_", None)
        seen = []

        def parse(text: Any) -> Any:
            seen.append(inner.user_id)
            return text

        self.patch(_context_wire, "parse_timestamp", parse)
        outer = context_from_message({"_context_user_id": "outer", "_context_timestamp": "t"}, "_context_", None)
        self.assertEqual(outer.user_id, "outer")
        self.assertEqual(seen, ["inner"])


class AdminContextTests(SynchronousTestCase):
    """
    L{get_admin_context} as Nova's.
    """

    def test_admin(self) -> None:
        """
        When an admin context is made, then it is admin with no user or
        project and the given read_deleted.
        """
        ctxt = get_admin_context(read_deleted="yes")
        self.assertEqual((ctxt.is_admin, ctxt.user_id, ctxt.project_id, ctxt.read_deleted), (True, None, None, "yes"))
        self.assertTrue(re.match(r"^req-", ctxt.request_id))
        self.assertEqual(get_admin_context().read_deleted, "no")
