"""
Tests for L{novasvc.transport.url}: parsing C{transport_url} values as
oslo.messaging does, with the password never shown.
"""

from twisted.trial import unittest

from novasvc.exceptions import ConfigError
from novasvc.transport import get_transport
from novasvc.transport.memory import MemoryTransport
from novasvc.transport.url import DEFAULT_URL, TransportURL, redact


class ParseTests(unittest.SynchronousTestCase):
    """
    L{TransportURL.parse} of good URLs.
    """

    def test_full_url(self) -> None:
        """
        When a URL names user, password, host, port and vhost, then each is
        parsed.
        """
        url = TransportURL.parse("rabbit://nova:s3cret@mq.example:5673/prod")
        self.assertEqual((url.scheme, url.username, url.password, url.hosts, url.virtual_host),
                         ("rabbit", "nova", "s3cret", (("mq.example", 5673),), "prod"))

    def test_defaults(self) -> None:
        """
        When a URL names nothing but the scheme, then user and password are
        guest, the host localhost:5672 and the vhost C{/}, as oslo.
        """
        url = TransportURL.parse("rabbit://")
        self.assertEqual((url.username, url.password, url.hosts, url.virtual_host),
                         ("guest", "guest", (("localhost", 5672),), "/"))
        self.assertEqual(TransportURL.parse("rabbit://h").hosts, (("h", 5672),))
        self.assertEqual(TransportURL.parse(DEFAULT_URL).hosts, (("localhost", 5672),))

    def test_amqp_scheme_and_case(self) -> None:
        """
        When the scheme is C{amqp} or written in capitals, then it is
        accepted and kept lower-case.
        """
        self.assertEqual(TransportURL.parse("amqp://h/").scheme, "amqp")
        self.assertEqual(TransportURL.parse("RABBIT://h/").scheme, "rabbit")

    def test_vhost(self) -> None:
        """
        When the path is empty or C{/}, then the vhost is C{/}; C{%2F} is
        C{/} too; any other path, unquoted, is the vhost.
        """
        self.assertEqual(TransportURL.parse("rabbit://h").virtual_host, "/")
        self.assertEqual(TransportURL.parse("rabbit://h/").virtual_host, "/")
        self.assertEqual(TransportURL.parse("rabbit://h/%2F").virtual_host, "/")
        self.assertEqual(TransportURL.parse("rabbit://h/nova%20cells").virtual_host, "nova cells")

    def test_multiple_hosts(self) -> None:
        """
        When several hosts are given comma-separated, then they are kept in
        order, each with its port or 5672, with one set of credentials.
        """
        url = TransportURL.parse("rabbit://u:p@h1:5673,h2,[::1]:5674/v")
        self.assertEqual(url.hosts, (("h1", 5673), ("h2", 5672), ("::1", 5674)))
        self.assertEqual((url.username, url.password, url.virtual_host), ("u", "p", "v"))

    def test_quoted_credentials(self) -> None:
        """
        When user name and password are percent-encoded, then they are
        decoded; a password may hold C{:} and C{@} as they are.
        """
        url = TransportURL.parse("rabbit://us%2Fer:p%23ss@h/")
        self.assertEqual((url.username, url.password), ("us/er", "p#ss"))
        url = TransportURL.parse("rabbit://user:a:b@c@h/")
        self.assertEqual((url.username, url.password, url.hosts), ("user", "a:b@c", (("h", 5672),)))

    def test_query_options(self) -> None:
        """
        When the URL has a query string, then its pairs are the options.
        """
        url = TransportURL.parse("rabbit://h/v?heartbeat=5&b=2")
        self.assertEqual(url.options, {"heartbeat": "5", "b": "2"})
        self.assertEqual(url.virtual_host, "v")

    def test_memory(self) -> None:
        """
        When the scheme is C{memory}, then the broker name is the host part,
        C{default} when absent.
        """
        self.assertEqual(TransportURL.parse("memory://cells").hosts, (("cells", 0),))
        self.assertEqual(TransportURL.parse("memory://").hosts, (("default", 0),))
        self.assertEqual(str(TransportURL.parse("memory://")), "memory://default")

    def test_get_transport_memory(self) -> None:
        """
        When get_transport is given a memory URL, then it makes a
        MemoryTransport for it.
        """
        transport = get_transport("memory://url-test", reactor=object())
        self.assertIsInstance(transport, MemoryTransport)
        self.assertEqual(transport.url.hosts, (("url-test", 0),))


class BadURLTests(unittest.SynchronousTestCase):
    """
    L{TransportURL.parse} of bad URLs: a clear L{ConfigError} that never
    shows the password.
    """

    def assertRefused(self, url: str, *fragments: str) -> str:
        e = self.assertRaises(ConfigError, TransportURL.parse, url)
        message = str(e)
        for fragment in fragments:
            self.assertIn(fragment, message)
        self.assertNotIn("s3", message)
        return message

    def test_unknown_scheme(self) -> None:
        """
        When the scheme is unknown, then the error names it and the schemes
        accepted, with the password hidden.
        """
        self.assertRefused("kafka://u:s3cret@h/", "unknown scheme 'kafka'", "rabbit://", "amqp://", "memory://",
                           "u:***@h")
        self.assertRefused("", "unknown scheme ''")

    def test_bad_port(self) -> None:
        """
        When a port is not a number in 1..65535, then the error names it.
        """
        self.assertRefused("rabbit://u:s3cret@h:abc/", "port 'abc'", "1..65535", "rabbit://u:***@h:abc/")
        self.assertRefused("rabbit://u:s3cret@h:0/", "port '0'")
        self.assertRefused("amqp://u:s3cret@h1,h2:65536/", "port '65536'")

    def test_unencoded_special_characters_in_password(self) -> None:
        """
        When a password holds an unencoded C{#}, C{?} or C{/} (which end the
        host part of a URL), then the error asks for percent-encoding and
        shows no piece of the password.
        """
        for url in ("rabbit://u:s3#cr@h/", "rabbit://u:s3?cr@h/v", "rabbit://u:s3/cr@h/v"):
            self.assertRefused(url, "percent-encoded", "u:***@h")


class DisplayTests(unittest.SynchronousTestCase):
    """
    C{str()}, C{repr()} and L{redact} hide the password.
    """

    def test_str_hides_password(self) -> None:
        """
        When a URL is shown with str(), then the password is C{***} and the
        rest (hosts with ports, vhost) is there.
        """
        url = TransportURL.parse("rabbit://nova:s3cret@h1,h2:5673/prod")
        self.assertEqual(str(url), "rabbit://nova:***@h1:5672,h2:5673/prod")
        self.assertEqual(str(TransportURL.parse("amqp://h/")), "amqp://guest:***@h:5672/")

    def test_repr_hides_password(self) -> None:
        """
        When a URL is shown with repr(), then the password is absent.
        """
        text = repr(TransportURL.parse("rabbit://nova:s3cret@h/prod"))
        self.assertNotIn("s3cret", text)
        self.assertIn("nova", text)

    def test_redact(self) -> None:
        """
        When a raw URL string is redacted, then the password is C{***}
        (even one with an unencoded C{#}), and a URL without a password is
        unchanged.
        """
        self.assertEqual(redact("rabbit://u:s3cret@h:5672/v"), "rabbit://u:***@h:5672/v")
        self.assertEqual(redact("rabbit://u:s3#cr@h/v"), "rabbit://u:***@h/v")
        self.assertEqual(redact("rabbit://u@h/v"), "rabbit://u@h/v")
        self.assertEqual(redact("rabbit://h/v"), "rabbit://h/v")
