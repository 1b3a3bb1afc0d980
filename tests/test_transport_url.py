"""
Tests for L{novasvc.transport.url}: parsing C{transport_url} values as
oslo.messaging does, with the password never shown.
"""

from twisted.trial import unittest

from novasvc.exceptions import ConfigError
from novasvc.transport import get_transport
from novasvc.transport.memory import MemoryTransport
from novasvc.transport.url import DEFAULT_URL, TLSOptions, TransportURL, redact


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
        When several hosts are given comma-separated and only the first has
        credentials, then they are kept in order, each with its port or
        5672, and every host logs in with those credentials.
        """
        url = TransportURL.parse("rabbit://u:p@h1:5673,h2,[::1]:5674/v")
        self.assertEqual(url.hosts, (("h1", 5673), ("h2", 5672), ("::1", 5674)))
        self.assertEqual((url.username, url.password, url.virtual_host), ("u", "p", "v"))
        self.assertEqual([url.login(i) for i in range(3)], [("u", "p")] * 3)

    def test_per_host_credentials(self) -> None:
        """
        When each host carries its own credentials (oslo's multi-host form),
        then each host logs in with its own, and the password of one never
        swallows the hosts after it.
        """
        url = TransportURL.parse("rabbit://a:b@h1:5672,c:d@h2:5673/vh")
        self.assertEqual(url.hosts, (("h1", 5672), ("h2", 5673)))
        self.assertEqual((url.login(0), url.login(1)), (("a", "b"), ("c", "d")))
        self.assertEqual((url.username, url.password, url.virtual_host), ("a", "b", "vh"))

    def test_host_without_credentials_uses_first_given(self) -> None:
        """
        When some hosts have credentials and others not, then a host
        without them uses the first credentials the URL gives, wherever it
        stands; with none given, every host uses guest.
        """
        url = TransportURL.parse("rabbit://h0,a:b@h1,h2,c:d@h3/")
        self.assertEqual([url.login(i) for i in range(4)], [("a", "b"), ("a", "b"), ("a", "b"), ("c", "d")])
        url = TransportURL.parse("rabbit://h1,h2/")
        self.assertEqual([url.login(i) for i in range(2)], [("guest", "guest")] * 2)

    def test_per_host_quoted_credentials(self) -> None:
        """
        When per-host credentials are percent-encoded, a C{,} among them,
        then each is decoded for its own host.
        """
        url = TransportURL.parse("rabbit://a:p%2Cq@h1,c:x%40y@[::1]:5674/")
        self.assertEqual((url.login(0), url.login(1)), (("a", "p,q"), ("c", "x@y")))
        self.assertEqual(url.hosts, (("h1", 5672), ("::1", 5674)))

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
        When the URL's query gives TLS options, then they are the options.
        """
        url = TransportURL.parse("rabbit://h/v?ssl=1&ssl_ca_file=/etc/ca.pem")
        self.assertEqual(url.options, {"ssl": "1", "ssl_ca_file": "/etc/ca.pem"})
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


class TLSTests(unittest.SynchronousTestCase):
    """
    What a URL says about TLS (L{TransportURL.tls}), and L{TLSOptions}.
    """

    def test_tls_schemes(self) -> None:
        """
        When the scheme is C{rabbits} or C{amqps}, then TLS is on and a host
        without a port is on 5671; a port given is kept.
        """
        url = TransportURL.parse("rabbits://u:p@h1,h2:5999/")
        self.assertEqual((url.scheme, url.tls.enabled), ("rabbits", True))
        self.assertEqual(url.hosts, (("h1", 5671), ("h2", 5999)))
        self.assertEqual(TransportURL.parse("AMQPS://h").tls.enabled, True)

    def test_ssl_query(self) -> None:
        """
        When the query says C{ssl} with one of oslo's boolean words, then
        TLS is on or off as it says, and 5671 is the default port when on;
        without it, the URL does not say.
        """
        for word in ("1", "true", "Yes", "on"):
            url = TransportURL.parse(f"rabbit://h?ssl={word}")
            self.assertEqual((url.tls.enabled, url.hosts), (True, (("h", 5671),)))
        for word in ("0", "False", "no", "off"):
            url = TransportURL.parse(f"rabbit://h?ssl={word}")
            self.assertEqual((url.tls.enabled, url.hosts), (False, (("h", 5672),)))
        self.assertIsNone(TransportURL.parse("rabbit://h/").tls.enabled)

    def test_tls_files_from_query(self) -> None:
        """
        When the query names the CA, certificate and key files, then they
        are the URL's TLS options.
        """
        url = TransportURL.parse("rabbits://h/?ssl_ca_file=/c/ca.pem&ssl_cert_file=/c/me.pem"
                                 "&ssl_key_file=/c/me.key")
        self.assertEqual(url.tls, TLSOptions(True, "/c/ca.pem", "/c/me.pem", "/c/me.key"))

    def test_url_beats_configuration(self) -> None:
        """
        When the URL and the configuration both give TLS options, then the
        URL's win field by field, and what the URL leaves out comes from the
        configuration.
        """
        config = TLSOptions(True, "/etc/ca.pem", "/etc/me.pem", None)
        url = TransportURL.parse("rabbit://h/?ssl_ca_file=/mine/ca.pem")
        self.assertEqual(url.tls.over(config), TLSOptions(True, "/mine/ca.pem", "/etc/me.pem", None))
        self.assertEqual(TransportURL.parse("rabbit://h/?ssl=0").tls.over(config).enabled, False)

    def test_with_tls(self) -> None:
        """
        When TLS is turned on for a plain URL (by the configuration), then
        the URL's scheme gets its C{s} and only the hosts given without a
        port move to 5671.
        """
        url = TransportURL.parse("rabbit://u:p@h1,h2:5672/").with_tls()
        self.assertEqual((url.scheme, url.hosts), ("rabbits", (("h1", 5671), ("h2", 5672))))
        self.assertEqual(str(url), "rabbits://u:***@h1:5671,h2:5672/")
        self.assertEqual(TransportURL.parse("amqp://h:1234").with_tls().hosts, (("h", 1234),))

    def test_files_without_tls_refused(self) -> None:
        """
        When certificate files are given but TLS is off, then L{TLSOptions.check}
        refuses, naming the files and how to turn TLS on.
        """
        e = self.assertRaises(ConfigError, TLSOptions(None, "/c/ca.pem", "/c/me.pem").check)
        self.assertIn("ssl_ca_file, ssl_cert_file given but TLS is off", str(e))
        self.assertIn("rabbits://", str(e))
        e = self.assertRaises(ConfigError, TransportURL.parse("rabbit://h/?ssl=0&ssl_ca_file=/ca").tls.check)
        self.assertIn("ssl_ca_file given but TLS is off", str(e))
        TLSOptions(True, "/c/ca.pem").check()
        TLSOptions().check()

    def test_key_without_certificate_refused(self) -> None:
        """
        When a key file is given without a certificate file, then
        L{TLSOptions.check} refuses.
        """
        e = self.assertRaises(ConfigError, TLSOptions(True, key_file="/c/me.key").check)
        self.assertIn("ssl_key_file given without ssl_cert_file", str(e))

    def test_from_config(self) -> None:
        """
        When TLS options are read from a configuration, then its C{ssl*}
        keys are the fields.
        """
        from novasvc.config import Config

        config = Config(ssl=True, ssl_ca_file="/a", ssl_cert_file="/b", ssl_key_file="/c")
        self.assertEqual(TLSOptions.from_config(config), TLSOptions(True, "/a", "/b", "/c"))
        self.assertEqual(TLSOptions.from_config(Config()), TLSOptions(False))


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

    def test_unknown_query_option(self) -> None:
        """
        When the query holds an option novasvc does not implement (say, one
        oslo.messaging accepts for another driver), then it is refused with
        the options accepted, and its value is not shown.
        """
        message = self.assertRefused("rabbit://u:s3cret@h/?heartbeat=5", "unknown option 'heartbeat' in the query",
                                     "ssl, ssl_ca_file, ssl_cert_file, ssl_key_file", "u:***@h")
        self.assertNotIn("=5", message)
        self.assertRefused("rabbit://u:s3cret@h/?ssl_version=TLSv1_2", "unknown option 'ssl_version'")
        self.assertRefused("memory://x?ssl=1", "unknown option 'ssl'", "none for memory://")
        message = self.assertRefused("rabbit://h/?" + "k" * 300 + "=1", "unknown option")
        self.assertLess(len(message), 300)

    def test_repeated_query_option(self) -> None:
        """
        When an option is given twice, then the URL is refused.
        """
        self.assertRefused("rabbit://u:s3cret@h/?ssl=1&ssl=0", "option ssl given twice")

    def test_bad_ssl_value(self) -> None:
        """
        When C{ssl} is not one of oslo's boolean words, or says 0 in a
        C{rabbits://} URL, then the URL is refused.
        """
        self.assertRefused("rabbit://u:s3cret@h/?ssl=maybe", "ssl='maybe'", "1, true, yes, on, 0")
        self.assertRefused("rabbit://u:s3cret@h/?ssl", "ssl=''")
        self.assertRefused("rabbits://u:s3cret@h/?ssl=0", "ssl=0 contradicts the rabbits:// scheme")

    def test_empty_file_option(self) -> None:
        """
        When a file option is empty, then the URL is refused.
        """
        self.assertRefused("rabbits://u:s3cret@h/?ssl_ca_file=", "ssl_ca_file is empty")

    def test_unencoded_comma_in_password(self) -> None:
        """
        When a password holds an unencoded C{,} (which separates hosts),
        then the error asks for percent-encoding and shows no piece of the
        password.
        """
        message = self.assertRefused("rabbit://u:s3x,cr@h/", "%2C", "'rabbit://***,***@h/'")
        self.assertNotIn("s3x", message)
        self.assertNotIn("cr@", message)

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

    def test_str_per_host_credentials(self) -> None:
        """
        When hosts have their own credentials, then str() shows each host
        with its user name and C{***}.
        """
        url = TransportURL.parse("rabbit://a:s3cret@h1:5672,c:s3cond@h2:5673/vh")
        self.assertEqual(str(url), "rabbit://a:***@h1:5672,c:***@h2:5673/vh")
        self.assertEqual(str(TransportURL.parse("rabbit://a:s3@[::1],h2/")), "rabbit://a:***@[::1]:5672,h2:5672/")

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

    def test_redact_per_host(self) -> None:
        """
        When a raw URL string has per-host credentials, then each password
        is C{***} and every host is kept.
        """
        self.assertEqual(redact("rabbit://a:s3cret@h1:5672,c:s3cond@h2:5673/vh?ssl=1"),
                         "rabbit://a:***@h1:5672,c:***@h2:5673/vh?ssl=1")
        self.assertEqual(redact("rabbit://h1:5672,c:s3cond@h2/"), "rabbit://h1:5672,c:***@h2/")

    def test_redact_unencoded_comma(self) -> None:
        """
        When a password holds an unencoded C{,}, then the pieces before
        the last C{@} that do not read as a host are hidden.
        """
        self.assertEqual(redact("rabbit://u:s3x,cr@h/"), "rabbit://***,***@h/")
        self.assertEqual(redact("rabbit://u:s3x,y,cr:z@h/"), "rabbit://***,y,cr:***@h/")
