"""
Tests for L{novasvc.config}.
"""

import os
import re
import textwrap
from typing import Any, Mapping

import attrs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface, implementer

from novasvc.config import Config, DatabaseConfig, NotificationsConfig, TracingConfig, load_config
from novasvc.config.options import DriverOpt, Opt, Section
from novasvc.exceptions import ConfigError
from tests._entry_points import install_entry_points

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "etc", "novasvc.yaml")


class _ConfigTestCase(SynchronousTestCase):
    """
    Helpers: write YAML text to a file and load it.
    """

    def write(self, text: str, mode: str = "w") -> str:
        path = self.mktemp()
        with open(path, mode) as f:
            f.write(textwrap.dedent(text) if isinstance(text, str) else text)
        return path

    def load(self, text: str, overrides: Mapping[str, Any] = {},
             environ: Mapping[str, str] = {}, **kwargs: Any) -> Config:
        return load_config(self.write(text), overrides, environ=environ, **kwargs)

    def refused(self, text: str, overrides: Mapping[str, Any] = {},
                environ: Mapping[str, str] = {}) -> str:
        path = self.write(text)
        error = self.assertRaises(ConfigError, load_config, path, overrides, environ=environ)
        message = str(error)
        self.assertTrue(message.startswith(path), message)
        return message[len(path):]


class LoadConfigTests(_ConfigTestCase):
    """
    L{load_config} layers defaults, the file and the overrides.
    """

    def test_defaults(self) -> None:
        """
        When there is no file and no override, then the result is L{Config}'s
        defaults.
        """
        config = load_config(None)
        self.assertEqual(config, Config(host=config.host))
        self.assertTrue(config.host)

    def test_empty_file(self) -> None:
        """
        When the file is empty or holds only comments, then the defaults
        apply.
        """
        self.assertEqual(self.load("# nothing yet\n"), load_config(None))

    def test_file_values(self) -> None:
        """
        When the file sets keys, then they replace the defaults; durations
        become floats and lists become tuples.
        """
        config = self.load("""
            host: node-1
            transport_url: amqp://user:pw@broker:5673/vh
            report_interval: 5
            service_down_time: 12.5
            periodic_enable: false
            periodic_interval_max: 30
            rpc_max_inflight: 8
            rpc_ack: early
            allowed_remote_exmods: [myproject.exceptions, other]
            database:
              connection: postgresql://postgres@127.0.0.1/nova
              thread_pool_size: 4
        """)
        self.assertEqual(config.host, "node-1")
        self.assertEqual(config.transport_url, "amqp://user:pw@broker:5673/vh")
        self.assertEqual(config.report_interval, 5.0)
        self.assertIsInstance(config.report_interval, float)
        self.assertEqual(config.service_down_time, 12.5)
        self.assertFalse(config.periodic_enable)
        self.assertEqual(config.periodic_interval_max, 30.0)
        self.assertEqual(config.rpc_max_inflight, 8)
        self.assertEqual(config.rpc_ack, "early")
        self.assertEqual(config.allowed_remote_exmods, ("myproject.exceptions", "other"))
        self.assertEqual(config.database,
                         DatabaseConfig("postgresql://postgres@127.0.0.1/nova", 4))
        self.assertEqual(config.control_exchange, "openstack")

    def test_partial_database(self) -> None:
        """
        When the C{database:} section sets one key, then the other keeps its
        default.
        """
        config = self.load("database:\n  thread_pool_size: 2\n")
        self.assertEqual(config.database, DatabaseConfig(thread_pool_size=2))

    def test_auto_sync(self) -> None:
        """
        When the C{database:} section sets C{auto_sync: true}, then
        C{database.auto_sync} is C{True}; by default it is C{False}.
        """
        self.assertEqual(self.load("database:\n  auto_sync: true\n").database,
                         DatabaseConfig(auto_sync=True))
        self.assertIs(self.load("host: h\n").database.auto_sync, False)

    def test_empty_database_section(self) -> None:
        """
        When the C{database:} section is empty (its keys commented out), then
        the database defaults apply.
        """
        config = self.load("database:\n  # connection: sqlite://\n")
        self.assertEqual(config.database, DatabaseConfig())

    def test_tracing(self) -> None:
        """
        When the C{tracing:} section sets its keys, then they are read into
        L{TracingConfig}; the keys not given keep their default.
        """
        config = self.load("tracing:\n  enabled: true\n  service_name: vol\n  exporter: otlp\n")
        self.assertEqual(config.tracing, TracingConfig(enabled=True, service_name="vol", exporter="otlp"))
        self.assertEqual(self.load("tracing:\n  enabled: true\n").tracing, TracingConfig(enabled=True))
        self.assertEqual(self.load("tracing:\n").tracing, TracingConfig())
        self.assertEqual(load_config(None).tracing, TracingConfig(enabled=False, service_name=None,
                                                                  exporter="none"))

    def test_tracing_refused(self) -> None:
        """
        When a C{tracing:} value is of the wrong kind, or a key is unknown,
        then the file is refused naming the line and the key.
        """
        self.assertEqual(self.refused("tracing:\n  enabled: yes please\n"),
                         ", line 2: tracing.enabled: expected true or false, got 'yes please'")
        self.assertEqual(self.refused("tracing:\n  exporter: zipkin\n"),
                         ", line 2: tracing.exporter: expected one of 'none', 'console', 'otlp', got 'zipkin'")
        self.assertEqual(self.refused("tracing:\n  service_name: ''\n"),
                         ", line 2: tracing.service_name: expected a non-empty string or null, got ''")
        self.assertIn("tracing.enable: unknown key (did you mean 'enabled'?)",
                      self.refused("tracing:\n  enable: true\n"))
        self.assertIn("tracing: expected a mapping", self.refused("tracing: true\n"))

    def test_null_interval_max(self) -> None:
        """
        When C{periodic_interval_max} is null, then there is no cap.
        """
        self.assertIsNone(self.load("periodic_interval_max: null\n").periodic_interval_max)

    def test_managers(self) -> None:
        """
        When the file has C{<topic>_manager} keys, then they are collected
        into C{managers}, sorted, and found by C{manager_for}.
        """
        config = self.load("""
            volume_manager: myproject.volume.VolumeManager
            compute_manager: "myproject.compute:ComputeManager"
        """)
        self.assertEqual(config.managers, (("compute", "myproject.compute:ComputeManager"),
                                           ("volume", "myproject.volume.VolumeManager")))
        self.assertEqual(config.manager_for("volume"), "myproject.volume.VolumeManager")
        self.assertIsNone(config.manager_for("network"))

    def test_overrides(self) -> None:
        """
        When overrides are given, then they win over the file, C{None} means
        "not given", and C{database_connection} sets C{database.connection}.
        """
        config = self.load(
            "report_interval: 5\nhost: from-file\ndatabase:\n  thread_pool_size: 3\n",
            {"report_interval": 2.5, "host": None, "periodic_enable": False,
             "database_connection": "sqlite://"},
        )
        self.assertEqual(config.report_interval, 2.5)
        self.assertEqual(config.host, "from-file")
        self.assertFalse(config.periodic_enable)
        self.assertEqual(config.database, DatabaseConfig("sqlite://", 3))

    def test_overrides_without_file(self) -> None:
        """
        When there is no file, then overrides apply to the defaults, also
        C{database_thread_pool_size}.
        """
        config = load_config(None, {"control_exchange": "nova", "topic": None,
                                    "database_thread_pool_size": 2})
        self.assertEqual(config.control_exchange, "nova")
        self.assertEqual(config.database, DatabaseConfig(thread_pool_size=2))

    def test_caller_defaults(self) -> None:
        """
        When the caller gives defaults, then they replace the built-in ones,
        the file and the overrides beat them, and C{None} means "not given".
        """
        defaults = {"transport_url": ("memory://from-env", "environment variable X"),
                    "control_exchange": ("from-env", "environment variable Y"),
                    "host": (None, "environment variable Z")}
        config = load_config(None, defaults=defaults)
        self.assertEqual((config.transport_url, config.control_exchange, config.host),
                         ("memory://from-env", "from-env", Config().host))
        config = load_config(self.write("transport_url: memory://from-file\n"), defaults=defaults)
        self.assertEqual((config.transport_url, config.control_exchange),
                         ("memory://from-file", "from-env"))
        config = load_config(None, {"control_exchange": "from-option"}, defaults=defaults)
        self.assertEqual(config.control_exchange, "from-option")

    def test_caller_default_refused(self) -> None:
        """
        When a caller's default has a bad value, then L{ConfigError} names
        its source and hides the password.
        """
        error = self.assertRaises(ConfigError, load_config, None, defaults={
            "transport_url": ("http://u:hunter2@h/", "environment variable NOVASVC_TRANSPORT_URL")})
        self.assertTrue(str(error).startswith("environment variable NOVASVC_TRANSPORT_URL: 'http://u:***@h/'"),
                        str(error))
        self.assertNotIn("hunter2", str(error))

    def test_beaten_default_unchecked(self) -> None:
        """
        When the file or an override gives a key, then the caller's default
        for it is not checked.
        """
        defaults = {"transport_url": ("http://bad/", "environment variable X"),
                    "database_connection": ("not a URL", "environment variable Y")}
        config = self.load("transport_url: memory://\ndatabase:\n  connection: sqlite://\n",
                           defaults=defaults)
        self.assertEqual((config.transport_url, config.database.connection), ("memory://", "sqlite://"))
        config = load_config(None, {"transport_url": "memory://", "database_connection": "sqlite://"},
                             defaults=defaults)
        self.assertEqual((config.transport_url, config.database.connection), ("memory://", "sqlite://"))

    def test_repr_hides_passwords(self) -> None:
        """
        When a config is shown with C{repr}, then neither the broker nor the
        database password appears.
        """
        config = load_config(None, {"transport_url": "rabbit://u:s3cret@h:5672/",
                                    "database_connection": "postgresql://u:t0psecret@h/db"})
        self.assertNotIn("s3cret", repr(config))
        self.assertNotIn("t0psecret", repr(config))
        self.assertIn("rabbit://u:***@h:5672/", repr(config))


class FileErrorTests(_ConfigTestCase):
    """
    A file that cannot be used is refused with its name and, where it helps,
    the line.
    """

    def test_missing(self) -> None:
        """
        When the file does not exist, then L{ConfigError} names it and says
        why it cannot be read.
        """
        path = self.mktemp()
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(str(error), f"{path}: cannot read the configuration file: "
                                     "No such file or directory")

    def test_directory(self) -> None:
        """
        When the path is a directory, then L{ConfigError} says it cannot be
        read.
        """
        path = self.mktemp()
        os.mkdir(path)
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertIn(f"{path}: cannot read the configuration file", str(error))

    def test_not_utf8(self) -> None:
        """
        When the file is not UTF-8, then L{ConfigError} says so.
        """
        path = self.write(b"host: caf\xe9\n", "wb")
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(str(error), f"{path}: not a UTF-8 text file (byte 9)")

    def test_invalid_yaml(self) -> None:
        """
        When the file is not valid YAML, then L{ConfigError} gives the line
        and column and the parser's complaint.
        """
        message = self.refused("host: a\nreport_interval: [1, 2\n")
        self.assertRegex(message, r"^, line 3, column 1: invalid YAML: ")
        self.assertEqual(self.refused("host: a: b\n"),
                         ", line 1, column 8: invalid YAML: mapping values are not allowed here")

    def test_duplicate_key(self) -> None:
        """
        When a key is given twice, then L{ConfigError} names it and both
        lines instead of silently keeping the last.
        """
        self.assertEqual(
            self.refused("host: a\nrpc_ack: late\nhost: b\n"),
            ", line 3, column 1: invalid YAML: duplicate key 'host' (first given on line 1)",
        )

    def test_not_a_mapping(self) -> None:
        """
        When the top level is not a mapping, then L{ConfigError} says what
        was expected and what was found.
        """
        self.assertEqual(self.refused("- host\n"), ": expected a mapping of settings "
                                                   "(key: value) at the top level, got a list")
        self.assertIn("got 'just text'", self.refused("just text\n"))

    def test_non_string_key(self) -> None:
        """
        When a key is not a string, then L{ConfigError} says keys must be
        strings.
        """
        self.assertEqual(self.refused("3: x\n"), ", line 1: 3: keys must be strings, got 3")

    def test_unknown_key(self) -> None:
        """
        When a key is unknown, then L{ConfigError} names it with its line
        and suggests the closest known key.
        """
        self.assertEqual(self.refused("host: a\nreport_intervall: 5\n"),
                         ", line 2: report_intervall: unknown key "
                         "(did you mean 'report_interval'?)")

    def test_unknown_key_no_suggestion(self) -> None:
        """
        When an unknown key resembles no known key, then L{ConfigError}
        lists the known keys.
        """
        message = self.refused("zzz: 1\n")
        self.assertIn(", line 1: zzz: unknown key; expected one of: host, transport_url,", message)
        self.assertIn("database, <topic>_manager", message)

    def test_managers_key(self) -> None:
        """
        When the file has a C{managers} key, then L{ConfigError} explains the
        C{<topic>_manager} form.
        """
        self.assertIn("managers: not a file key; write one '<topic>_manager: dotted.path'",
                      self.refused("managers: {volume: a.B}\n"))

    def test_database_errors(self) -> None:
        """
        When the C{database:} section is not a mapping or has an unknown key,
        then L{ConfigError} names C{database} or C{database.<key>}.
        """
        self.assertEqual(self.refused("database: [1]\n"),
                         ", line 1: database: expected a mapping with keys connection, "
                         "thread_pool_size, auto_sync, got a list")
        self.assertEqual(self.refused("database:\n  conection: sqlite://\n"),
                         ", line 2: database.conection: unknown key "
                         "(did you mean 'connection'?)")


class ValueErrorTests(_ConfigTestCase):
    """
    A value of the wrong type or out of range is refused with the key and
    what was expected.
    """

    def assertRefused(self, text: str, expected: str) -> None:
        message = self.refused(text)
        self.assertEqual(message, expected)

    def test_booleans(self) -> None:
        """
        When a boolean key has a number or a string, then it is refused:
        only YAML booleans count.
        """
        self.assertRefused("periodic_enable: 1\n",
                           ", line 1: periodic_enable: expected true or false, got 1")
        self.assertRefused("durable_queues: 'yes'\n",
                           ", line 1: durable_queues: expected true or false, got 'yes'")

    def test_serializer(self) -> None:
        """
        When C{serializer} is a dotted path or null, then it is kept as
        given; anything else is refused with the file, line and key.
        """
        self.assertEqual(self.load("serializer: novasvc.rpc.serializer.RequestContextSerializer\n").serializer,
                         "novasvc.rpc.serializer.RequestContextSerializer")
        self.assertIsNone(self.load("serializer: null\n").serializer)
        self.assertIsNone(self.load("host: h\n").serializer)
        self.assertRefused("\nserializer: not a path\n", ", line 2: serializer: expected a dotted path such as "
                           "mypackage.rpc.Serializer, or null, got 'not a path'")
        self.assertRefused("serializer: [a.b]\n", ", line 1: serializer: expected a dotted path such as "
                           "mypackage.rpc.Serializer, or null, got a list")

    def test_numbers_not_booleans(self) -> None:
        """
        When a number key has a boolean or a string, then it is refused.
        """
        self.assertRefused("report_interval: true\n", ", line 1: report_interval: expected "
                           "a number of seconds >= 0, got true")
        self.assertRefused("rpc_response_timeout: '30'\n", ", line 1: rpc_response_timeout: "
                           "expected a number of seconds > 0, got '30'")
        self.assertRefused("rpc_max_inflight: false\n",
                           ", line 1: rpc_max_inflight: expected an integer >= 1, got false")

    def test_ranges(self) -> None:
        """
        When a number is out of range (negative duration, zero interval,
        zero in-flight bound, not finite), then it is refused.
        """
        self.assertRefused("periodic_fuzzy_delay: -1\n", ", line 1: periodic_fuzzy_delay: "
                           "expected a number of seconds >= 0, got -1")
        self.assertRefused("report_interval: -1\n",
                           ", line 1: report_interval: expected a number of seconds >= 0, got -1")
        self.assertRefused("periodic_interval_max: 0\n", ", line 1: periodic_interval_max: "
                           "expected a number of seconds > 0 or null, got 0")
        self.assertRefused("rpc_max_inflight: 0\n",
                           ", line 1: rpc_max_inflight: expected an integer >= 1, got 0")
        self.assertRefused("rpc_duplicate_window: -5\n",
                           ", line 1: rpc_duplicate_window: expected an integer >= 0, got -5")
        self.assertRefused("service_down_time: .inf\n",
                           ", line 1: service_down_time: expected a number of seconds > 0, got inf")
        self.assertRefused("graceful_shutdown_timeout: .nan\n", ", line 1: "
                           "graceful_shutdown_timeout: expected a number of seconds >= 0, got nan")

    def test_zero_allowed(self) -> None:
        """
        When a key that accepts zero is zero, then it is kept.
        """
        config = self.load("periodic_fuzzy_delay: 0\ngraceful_shutdown_timeout: 0\n"
                           "heartbeat_timeout_threshold: 0\nrpc_duplicate_window: 0\n")
        self.assertEqual((config.periodic_fuzzy_delay, config.graceful_shutdown_timeout,
                          config.heartbeat_timeout_threshold, config.rpc_duplicate_window),
                         (0, 0, 0, 0))

    def test_integers(self) -> None:
        """
        When an integer key has a float, then it is refused.
        """
        self.assertRefused("database:\n  thread_pool_size: 2.5\n", ", line 2: "
                           "database.thread_pool_size: expected an integer >= 1, got 2.5")

    def test_auto_sync_boolean(self) -> None:
        """
        When C{database.auto_sync} is not a boolean, then it is refused.
        """
        self.assertRefused("database:\n  auto_sync: yes please\n", ", line 2: "
                           "database.auto_sync: expected true or false, got 'yes please'")

    def test_null_refused(self) -> None:
        """
        When a key that is not nullable is null, then it is refused.
        """
        self.assertRefused("host:\n", ", line 1: host: expected a non-empty string, got null")
        self.assertRefused("report_interval: null\n", ", line 1: report_interval: "
                           "expected a number of seconds >= 0, got null")

    def test_strings(self) -> None:
        """
        When a string key is empty or not a string, then it is refused.
        """
        self.assertRefused("control_exchange: ''\n",
                           ", line 1: control_exchange: expected a non-empty string, got ''")
        self.assertRefused("host: no\n",
                           ", line 1: host: expected a non-empty string, got false")

    def test_rpc_ack(self) -> None:
        """
        When C{rpc_ack} is neither C{late} nor C{early}, then it is refused.
        """
        self.assertRefused("rpc_ack: later\n",
                           ", line 1: rpc_ack: expected one of 'late', 'early', got 'later'")

    def test_log_settings(self) -> None:
        """
        When C{log_level} and C{log_format} are not given, then they are
        C{info} and C{text}; when the file sets them, then they are kept, and
        C{--log-level} wins over the file.
        """
        self.assertEqual((load_config(None).log_level, load_config(None).log_format), ("info", "text"))
        config = self.load("log_level: warning\nlog_format: json\n")
        self.assertEqual((config.log_level, config.log_format), ("warning", "json"))
        self.assertEqual(self.load("log_level: warning\n", {"log_level": "debug"}).log_level, "debug")

    def test_log_settings_refused(self) -> None:
        """
        When C{log_level} or C{log_format} is not one of its names, then it
        is refused with the names it takes, in the file and on the command
        line.
        """
        self.assertRefused("log_level: WARN\n", ", line 1: log_level: expected one of 'debug', "
                           "'info', 'warning', 'error', 'critical', got 'WARN'")
        self.assertRefused("\nlog_format: xml\n",
                           ", line 2: log_format: expected one of 'text', 'json', got 'xml'")
        error = self.assertRaises(ConfigError, load_config, None, {"log_level": "loud"})
        self.assertEqual(str(error), "command line option --log-level: expected one of 'debug', "
                                     "'info', 'warning', 'error', 'critical', got 'loud'")

    def test_allowed_remote_exmods(self) -> None:
        """
        When C{allowed_remote_exmods} is not a list of module names, then it
        is refused.
        """
        expected = ("expected a list of module names such as [myproject.exceptions], got ")
        self.assertRefused("allowed_remote_exmods: myproject.exceptions\n",
                           ", line 1: allowed_remote_exmods: " + expected
                           + "'myproject.exceptions'")
        self.assertRefused("allowed_remote_exmods: [a, 3]\n",
                           ", line 1: allowed_remote_exmods: " + expected + "a list")

    def test_manager_path(self) -> None:
        """
        When a C{<topic>_manager} value is not a dotted path, then it is
        refused; nothing is imported.
        """
        self.assertRefused("volume_manager: not a path\n", ", line 1: volume_manager: expected "
                           "the dotted path of a manager class such as "
                           "mypackage.volume.VolumeManager, got 'not a path'")

    def test_transport_url(self) -> None:
        """
        When C{transport_url} has an unknown scheme or a bad port, then it is
        refused and the password is not shown.
        """
        message = self.refused("transport_url: kafka://me:hunter2@broker/\n")
        self.assertEqual(message, ", line 1: transport_url: 'kafka://me:***@broker/': unknown "
                                  "scheme 'kafka', expected one of rabbit://, rabbits://, amqp://, amqps://, memory://")
        message = self.refused("transport_url: rabbit://me:hunter2@broker:99999/\n")
        self.assertIn("port '99999' is not a number in 1..65535", message)
        self.assertNotIn("hunter2", message)
        message = self.refused("transport_url: 'rabbit://me:hunter2@[::1/'\n")
        self.assertEqual(message, ", line 1: transport_url: expected a URL such as "
                                  "rabbit://user:password@host:5672/vhost, got a string that is not one")

    def test_database_connection(self) -> None:
        """
        When C{database.connection} is not an SQLAlchemy URL, then it is
        refused without showing it.
        """
        message = self.refused("database:\n  connection: 'postgresql://u:hunter2@h:port/db'\n")
        self.assertEqual(message, ", line 2: database.connection: expected an SQLAlchemy URL "
                                  "such as postgresql://user:password@host/dbname, "
                                  "got a string that is not one")

    def test_override_errors(self) -> None:
        """
        When an override has a bad value, then L{ConfigError} names the
        command-line option.
        """
        error = self.assertRaises(ConfigError, load_config, None, {"report_interval": -1.0})
        self.assertEqual(str(error), "command line option --report-interval: expected "
                                     "a number of seconds >= 0, got -1.0")
        error = self.assertRaises(ConfigError, load_config, None,
                                  {"database_connection": "user:hunter2 at host"})
        self.assertNotIn("hunter2", str(error))
        self.assertIn("command line option --database-connection: expected an SQLAlchemy URL",
                      str(error))
        error = self.assertRaises(ConfigError, load_config, None,
                                  {"transport_url": "http://x:hunter2@h/"})
        self.assertEqual(str(error), "command line option --transport-url: 'http://x:***@h/': "
                                     "unknown scheme 'http', expected one of rabbit://, "
                                     "rabbits://, amqp://, amqps://, memory://")

    def test_unknown_override(self) -> None:
        """
        When an override key is not a setting, then it is refused.
        """
        error = self.assertRaises(ConfigError, load_config, None, {"reprot_interval": 3})
        self.assertEqual(str(error), "command line option --reprot-interval: "
                                     "unknown setting 'reprot_interval'")


class EnvironmentTests(_ConfigTestCase):
    """
    C{${NAME}} and C{${NAME:default}} are replaced in the file's scalars.
    """

    def test_substitution(self) -> None:
        """
        When a value refers to a set variable, then its value is used, also
        in the middle of a string and several times.
        """
        config = self.load("transport_url: rabbit://${USER}:${PASS}@${HOST:localhost}:5672/\n",
                           environ={"USER": "svc", "PASS": "pw", "HOST": "mq"})
        self.assertEqual(config.transport_url, "rabbit://svc:pw@mq:5672/")

    def test_default(self) -> None:
        """
        When the variable is unset, then the default after the colon is used
        (it may contain colons); an empty variable is used as it is.
        """
        config = self.load("transport_url: ${URL:rabbit://guest:guest@mq:5672/}\n"
                           "control_exchange: ${EXCHANGE:}x\n",
                           environ={"EXCHANGE": ""})
        self.assertEqual(config.transport_url, "rabbit://guest:guest@mq:5672/")
        self.assertEqual(config.control_exchange, "x")

    def test_typed(self) -> None:
        """
        When an unquoted value is substituted, then the result gets its YAML
        type (number, boolean, null); a quoted one stays a string.
        """
        config = self.load("report_interval: ${RI:10}\nperiodic_enable: ${PE}\n"
                           "periodic_interval_max: ${PIM:}\nhost: '${H:42}'\n",
                           environ={"PE": "false"})
        self.assertEqual(config.report_interval, 10.0)
        self.assertIs(config.periodic_enable, False)
        self.assertIsNone(config.periodic_interval_max)
        self.assertEqual(config.host, "42")

    def test_checked_after_substitution(self) -> None:
        """
        When the substituted value has the wrong type, then it is refused
        like a literal one.
        """
        self.assertEqual(self.refused("report_interval: ${RI}\n", environ={"RI": "soon"}),
                         ", line 1: report_interval: expected a number of seconds >= 0, "
                         "got 'soon'")

    def test_unset(self) -> None:
        """
        When a variable is unset and has no default, then L{ConfigError}
        names it and its line.
        """
        self.assertEqual(self.refused("host: a\ntransport_url: ${NOVASVC_URL}\n"),
                         ", line 2: environment variable 'NOVASVC_URL' is not set and has "
                         "no default (write ${NOVASVC_URL:default} to give one)")

    def test_malformed(self) -> None:
        """
        When a reference is malformed or not closed, then L{ConfigError}
        says so.
        """
        self.assertEqual(self.refused("host: ${1X}\n"),
                         ", line 1: '${1X}' is not ${NAME} or ${NAME:default}")
        self.assertEqual(self.refused("host: ${X\n"),
                         ", line 1: '${' without a closing '}'")

    def test_escape(self) -> None:
        """
        When a value has C{$${}, then it stands for a literal C{${}; a lone
        C{$} is kept.
        """
        config = self.load("host: a$${X}b$c\n")
        self.assertEqual(config.host, "a${X}b$c")

    def test_value_not_substituted_again(self) -> None:
        """
        When a variable's value itself contains C{${...}}, then it is used
        literally.
        """
        config = self.load("host: ${H}\n", environ={"H": "${OTHER}"})
        self.assertEqual(config.host, "${OTHER}")

    def test_os_environ(self) -> None:
        """
        When no environment is passed, then C{os.environ} is used.
        """
        self.patch(os, "environ", {"NOVASVC_TEST_HOST": "env-host"})
        config = load_config(self.write("host: ${NOVASVC_TEST_HOST}\n"))
        self.assertEqual(config.host, "env-host")


class IThing(Interface):
    """
    A driver interface for the binding tests.
    """


class FileThingDriver:
    """
    A driver that declares options of its own.
    """

    config_section = "file_thing"
    options = (Opt("directory", help="where things go"), Opt("capacity", int, default=10))


class PlainThingDriver:
    """
    A driver without options.
    """


class ThingManager:
    """
    A manager class declaring a section.
    """

    topic = "thing"
    config_section = "thing"
    options = (
        DriverOpt("driver", IThing, default="tests.test_config.PlainThingDriver"),
        Opt("size", int, default=1, minimum=1),
        Opt("label", default=None),
    )


class BindTests(_ConfigTestCase):
    """
    L{Config.bind} validates the sections that managers and drivers declare.
    """

    def test_defaults(self) -> None:
        """
        When the file has no section for a component, then binding fills
        in its defaults.
        """
        config = load_config(None).bind([ThingManager])
        self.assertEqual(config.section("thing"),
                         Section("thing", {"driver": "tests.test_config.PlainThingDriver",
                                           "size": 1, "label": None}))

    def test_fileValues(self) -> None:
        """
        When the file gives the section, then its values are validated and
        kept, read-only.
        """
        config = self.load("""
            thing:
              size: 3
              label: big
            """).bind([ThingManager])
        self.assertEqual(config.section("thing").size, 3)
        self.assertEqual(config.section("thing")["label"], "big")
        self.assertRaises(AttributeError, setattr, config.section("thing"), "size", 4)

    def test_unknownKeyInSection(self) -> None:
        """
        When a declared section has an unknown key, then L{ConfigError}
        names the file, line and key, with a suggestion.
        """
        path = self.write("""
            report_interval: 5
            thing:
              size: 3
              sise: 4
            """)
        error = self.assertRaises(ConfigError, load_config(path).bind, [ThingManager])
        self.assertEqual(str(error), f"{path}, line 5: thing.sise: unknown key "
                                     "(did you mean 'size'?)")

    def test_wrongTypeInSection(self) -> None:
        """
        When a section's value has the wrong type, then L{ConfigError} says
        what was expected.
        """
        path = self.write("""
            thing:
              size: 0
            """)
        error = self.assertRaises(ConfigError, load_config(path).bind, [ThingManager])
        self.assertEqual(str(error), f"{path}, line 3: thing.size: expected an integer >= 1, "
                                     "got 0")

    def test_unknownSection(self) -> None:
        """
        When the file has a section that no component declares, then
        binding refuses it with its line and a suggestion; loading alone
        does not.
        """
        path = self.write("""
            thing:
              size: 2
            thinq:
              size: 2
            """)
        config = load_config(path)
        error = self.assertRaises(ConfigError, config.bind, [ThingManager])
        self.assertEqual(str(error), f"{path}, line 4: thinq: unknown key "
                                     "(did you mean 'thing'?)")

    def test_otherManagersSection(self) -> None:
        """
        When the file configures several managers, then the section named
        after another manager's topic is left for that manager.
        """
        config = self.load("""
            thing_manager: tests.test_config.ThingManager
            other_manager: some.other.Manager
            other:
              anything: 1
            """).bind([ThingManager])
        self.assertEqual(config.section("thing").size, 1)

    def test_driverSection(self) -> None:
        """
        When a L{DriverOpt} chooses a driver that declares options, then
        the driver's section is validated too.
        """
        config = self.load("""
            thing:
              driver: tests.test_config.FileThingDriver
            file_thing:
              directory: /srv/things
            """).bind([ThingManager])
        self.assertEqual(dict(config.section("file_thing")),
                         {"directory": "/srv/things", "capacity": 10})

    def test_driverSectionRequired(self) -> None:
        """
        When the chosen driver has a required option the file does not
        give, then L{ConfigError} names it.
        """
        config = self.load("""
            thing:
              driver: tests.test_config.FileThingDriver
            """)
        error = self.assertRaises(ConfigError, config.bind, [ThingManager])
        self.assertIn("file_thing.directory: required, and not given (where things go)",
                      str(error))

    def test_driverNotImportable(self) -> None:
        """
        When the driver path cannot be imported, then L{ConfigError} names
        the file, line and key and why.
        """
        path = self.write("""
            thing:
              driver: tests.test_config.NoSuchDriver
            """)
        error = self.assertRaises(ConfigError, load_config(path).bind, [ThingManager])
        self.assertEqual(str(error), f"{path}, line 3: thing.driver: cannot load "
                                     "'tests.test_config.NoSuchDriver': module "
                                     "'tests.test_config' has no attribute 'NoSuchDriver'")

    def test_defaultSectionName(self) -> None:
        """
        When a component declares options without C{config_section}, then
        the section is named by C{default_section} (the topic).
        """
        class Unnamed:
            options = (Opt("size", int, default=5),)

        config = self.load("""
            volume:
              size: 7
            """).bind([Unnamed], default_section="volume")
        self.assertEqual(config.section("volume").size, 7)

    def test_idempotent(self) -> None:
        """
        When a bound configuration is bound again, then it is unchanged.
        """
        config = self.load("""
            thing:
              size: 3
            """).bind([ThingManager])
        self.assertEqual(config.bind([ThingManager]), config)

    def test_unknownSectionName(self) -> None:
        """
        When an undeclared section is asked for, then C{KeyError} lists the
        declared ones.
        """
        config = load_config(None).bind([ThingManager])
        error = self.assertRaises(KeyError, config.section, "volume")
        self.assertIn("declared sections: thing", str(error))


class SampleTests(SynchronousTestCase):
    """
    C{etc/novasvc.yaml} documents every key with its default.
    """

    def test_loads(self) -> None:
        """
        When the sample is loaded in a clean environment, then it succeeds
        and gives the defaults (host aside, which depends on the machine),
        plus the example manager.
        """
        config = load_config(SAMPLE, environ={})
        self.assertEqual(attrs.evolve(config, managers=()), Config(host=config.host))
        self.assertEqual(config.manager_for("echo"), "novasvc.examples.echo.EchoManager")

    def test_every_key(self) -> None:
        """
        When the sample is read, then every L{Config} field and every
        C{database} key appears in it, as a key or as a commented-out key,
        together with a C{<topic>_manager} example.
        """
        with open(SAMPLE) as f:
            text = f.read()
        keys = set(re.findall(r"^#?\s*([a-z_]+):", text, re.MULTILINE))
        expected = {f.name for f in attrs.fields(Config)} - {"managers", "database", "sections",
                                                             "_unbound"}
        expected |= {f.name for f in attrs.fields(DatabaseConfig)} | {"database", "echo_manager"}
        expected |= {f.name for f in attrs.fields(TracingConfig)}
        self.assertEqual(expected - keys, set())


class WithSectionsTests(_ConfigTestCase):
    """
    L{Config.with_sections} gives declared sections values in code, which
    L{Config.bind} validates as the file's.
    """

    class Component:
        config_section = "thing"
        options = (Opt("size", int, minimum=1), Opt("name", str, default="x"))

    def test_values_bound(self) -> None:
        """
        When a section is given in code, then bind validates it and fills in
        the defaults.
        """
        config = Config().with_sections(thing={"size": 3}).bind([self.Component])
        self.assertEqual(dict(config.section("thing")), {"size": 3, "name": "x"})

    def test_code_beats_file(self) -> None:
        """
        When the file gives the section too, then a key given in code wins
        and the file's other keys stay.
        """
        config = self.load("""\
            thing:
              size: 1
              name: from-file
            """).with_sections(thing={"size": 5}).bind([self.Component])
        self.assertEqual(dict(config.section("thing")), {"size": 5, "name": "from-file"})

    def test_refused_value(self) -> None:
        """
        When a value given in code is wrong, then bind refuses it naming the
        section and key.
        """
        config = Config().with_sections(thing={"size": 0})
        error = self.assertRaises(ConfigError, config.bind, [self.Component])
        self.assertIn("thing.size", str(error))

    def test_bound_already(self) -> None:
        """
        When the section is bound already, then ValueError says to give the
        values before bind.
        """
        config = Config().with_sections(thing={"size": 3}).bind([self.Component])
        self.assertRaises(ValueError, config.with_sections, thing={"size": 4})

    def test_not_a_mapping(self) -> None:
        """
        When a section's values are not a mapping, then TypeError.
        """
        self.assertRaises(TypeError, Config().with_sections, thing=[1])


@implementer(IThing)
class MemoryThingDriver:
    """
    An installed driver of the things group, with a section of its own.
    """

    config_section = "memory_thing"
    options = (Opt("slots", int, default=4, minimum=1),)

    def __init__(self, config=None):
        pass


class GroupThingManager:
    """
    A component whose driver is chosen by alias from an entry point group.
    """

    config_section = "grouped"
    options = (DriverOpt("driver", IThing, default="memory", group="novasvc_tests.things"),)


class DriverGroupTests(_ConfigTestCase):
    """
    L{Config.bind} with a L{DriverOpt} that has an entry point group.
    """

    def setUp(self) -> None:
        install_entry_points(self, {"novasvc_tests.things": {
            "memory": "tests.test_config:MemoryThingDriver",
            "file": "tests.test_config:FileThingDriver",
        }})

    def test_alias(self) -> None:
        """
        When the option names an alias, then the aliased driver's section
        is validated as the chosen one.
        """
        config = self.load("""
            grouped:
              driver: file
            file_thing:
              directory: /srv
            """).bind([GroupThingManager])
        self.assertEqual(config.section("file_thing").directory, "/srv")

    def test_unchosen_sections_ignored(self) -> None:
        """
        When the file keeps the section of an installed driver that is not
        chosen, then binding accepts it; switching drivers is one edit.
        """
        text = """
            grouped:
              driver: {}
            file_thing:
              directory: /srv
            memory_thing:
              slots: 8
            """
        for choice in ("file", "memory"):
            config = self.load(text.format(choice)).bind([GroupThingManager])
            self.assertEqual(config.section("grouped").driver, choice)
            self.assertEqual(config.section("memory_thing").slots, 8)

    def test_unchosen_section_checked(self) -> None:
        """
        When an unchosen driver's section has an unknown key, then binding
        refuses it with the line and says the driver is not chosen.
        """
        path = self.write("""
            grouped:
              driver: memory
            file_thing:
              directry: /srv
            """)
        error = self.assertRaises(ConfigError, load_config(path).bind, [GroupThingManager])
        self.assertEqual(str(error), f"{path}, line 5: file_thing.directry: unknown key (did you "
                                     "mean 'directory'?) (the section of driver 'file' of "
                                     "novasvc_tests.things, installed but not chosen)")

    def test_unknown_section_close_matches_only(self) -> None:
        """
        When a section nobody declares resembles nothing, then the message
        lists no keys; when it resembles a driver's section, it offers that.
        """
        path = self.write("""
            memory_thinq:
              slots: 2
            """)
        error = self.assertRaises(ConfigError, load_config(path).bind, [GroupThingManager])
        self.assertEqual(str(error), f"{path}, line 2: memory_thinq: unknown key (did you mean "
                                     "'memory_thing'?)")
        path = self.write("""
            zzz:
              slots: 2
            """)
        error = self.assertRaises(ConfigError, load_config(path).bind, [GroupThingManager])
        self.assertEqual(str(error), f"{path}, line 2: zzz: unknown key: no setting of that "
                                     "name, and no manager or installed driver declares such "
                                     "a section")

    def test_unknown_alias(self) -> None:
        """
        When the option names no installed alias, then L{ConfigError} names
        the key and the installed aliases.
        """
        path = self.write("""
            grouped:
              driver: memroy
            """)
        error = self.assertRaises(ConfigError, load_config(path).bind, [GroupThingManager])
        self.assertIn(f"{path}, line 3: grouped.driver: no driver named 'memroy' in entry point "
                      "group 'novasvc_tests.things' (did you mean 'memory'? installed: file, "
                      "memory;", str(error))


class SectionForTests(_ConfigTestCase):
    """
    L{Config.section_for}: a driver's own section, bound or not.
    """

    def test_unbound(self) -> None:
        """
        When a configuration made in code gives a driver's section, then
        the driver reads it validated, defaults filled in.
        """
        config = Config().with_sections(file_thing={"directory": "/srv"})
        self.assertEqual(dict(config.section_for(FileThingDriver())),
                         {"directory": "/srv", "capacity": 10})
        error = self.assertRaises(KeyError, config.section, "file_thing")
        self.assertIn("config.section_for(component)", str(error))

    def test_refused(self) -> None:
        """
        When the section's values are wrong, then L{ConfigError} names them.
        """
        config = Config().with_sections(file_thing={"directory": "/srv", "capacity": "x"})
        error = self.assertRaises(ConfigError, config.section_for, FileThingDriver)
        self.assertIn("file_thing.capacity: expected an integer", str(error))


class NotificationsConfigTests(_ConfigTestCase):
    """
    The C{notifications:} section, a L{NotificationsConfig}.
    """

    def test_defaults(self) -> None:
        """
        When the file says nothing about notifications, then no driver
        (off, as oslo's), topic notifications, format both (Nova's before
        Train), versioned topic versioned_notifications, retry -1.
        """
        self.assertEqual(load_config(None).notifications, NotificationsConfig(
            driver=(), topics=("notifications",), notification_format="both",
            versioned_notifications_topics=("versioned_notifications",), retry=-1))
        self.assertEqual(self.load("notifications:\n").notifications, NotificationsConfig())

    def test_values(self) -> None:
        """
        When the section sets every key, then they are read, lists as
        tuples; one driver name is a list of one.
        """
        config = self.load("""\
            notifications:
              driver: [messagingv2, log]
              topics: [notifications, billing]
              notification_format: both
              versioned_notifications_topics: [vn]
              retry: 3
            """)
        self.assertEqual(config.notifications, NotificationsConfig(
            driver=("messagingv2", "log"), topics=("notifications", "billing"), notification_format="both",
            versioned_notifications_topics=("vn",), retry=3))
        self.assertEqual(self.load("notifications:\n  driver: messaging\n").notifications.driver, ("messaging",))
        self.assertEqual(self.load("notifications:\n  driver: []\n").notifications.driver, ())

    def test_refused(self) -> None:
        """
        When a value is wrong or a key unknown, then the error names the
        file, line and key and says what was expected.
        """
        self.assertIn(", line 2: notifications.driver: expected a driver name or a list of distinct driver names",
                      self.refused("notifications:\n  driver: routing\n"))
        self.assertIn("notifications.driver: expected",
                      self.refused("notifications:\n  driver: [log, log]\n"))
        self.assertIn(", line 3: notifications.topics: expected a non-empty list of topic names",
                      self.refused("notifications:\n  driver: log\n  topics: []\n"))
        self.assertIn("notifications.versioned_notifications_topics: expected",
                      self.refused("notifications:\n  versioned_notifications_topics: vn\n"))
        self.assertEqual(self.refused("notifications:\n  notification_format: json\n"),
                         ", line 2: notifications.notification_format: expected one of 'unversioned', "
                         "'versioned', 'both', got 'json'")
        self.assertEqual(self.refused("notifications:\n  retry: -2\n"),
                         ", line 2: notifications.retry: expected an integer >= -1, got -2")
        self.assertIn("notifications.topic: unknown key (did you mean 'topics'?)",
                      self.refused("notifications:\n  topic: [x]\n"))
        self.assertIn("notifications: expected a mapping", self.refused("notifications: messagingv2\n"))

    def test_sample_documents_every_key(self) -> None:
        """
        When etc/novasvc.yaml is read, then its notifications section names
        every key, with the defaults.
        """
        with open(SAMPLE) as f:
            text = f.read()
        section = text.split("\nnotifications:\n", 1)[1].split("\n\n", 1)[0]
        keys = set(re.findall(r"^  ([a-z_]+):", section, re.MULTILINE))
        self.assertEqual(keys, {f.name for f in attrs.fields(NotificationsConfig)})
        self.assertEqual(load_config(SAMPLE, environ={}).notifications, NotificationsConfig())


class PackageTests(SynchronousTestCase):
    """
    The C{novasvc.config} package: its names, each imported on first use.
    """

    def test_exports(self) -> None:
        """
        When each name of C{novasvc.config.__all__} is looked up, then it is
        found, and an unknown name raises C{AttributeError}.
        """
        import novasvc.config

        for name in novasvc.config.__all__:
            self.assertIsNotNone(getattr(novasvc.config, name), name)
        self.assertIs(novasvc.config.Config, Config)
        self.assertLessEqual(set(novasvc.config.__all__), set(dir(novasvc.config)))
        self.assertRaises(AttributeError, getattr, novasvc.config, "NoSuchThing")

    def test_loaderAlone(self) -> None:
        """
        When C{novasvc.config.loader} is imported in a fresh process, then
        the modules of L{Config} and L{load_config} are not.
        """
        import subprocess
        import sys

        code = ("import sys, novasvc.config.loader; "
                "print(sorted(m for m in sys.modules if m.startswith('novasvc.config')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.dirname(SAMPLE))).stdout
        self.assertEqual(out.strip(), "['novasvc.config', 'novasvc.config.loader']")
