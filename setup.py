"""
Packaging for novasvc.

C{twisted/plugins/novasvc_plugin.py} ships as a module of the C{twisted.plugins}
package without an C{__init__.py} of its own (Twisted's rule for third-party
plugins). C{package_dir={"": "."}} keeps editable installs on a plain C{.pth}
file that puts this folder on C{sys.path}, which is how Twisted's plugin
search finds C{twisted/plugins/} in a checkout.
"""

import re

from setuptools import find_packages, setup

_VERSION = re.search(r'__version__ = "([^"]+)"', open("novasvc/_version.py", encoding="utf-8").read()).group(1)

setup(
    name="novasvc",
    version=_VERSION,
    description="The Nova service framework (Service, Manager, Driver) as a Twisted daemon",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
    package_dir={"": "."},
    packages=find_packages(include=["novasvc", "novasvc.*"]) + ["twisted.plugins"],
    package_data={
        "novasvc": ["py.typed"],
        # The Alembic script directory (not a package): env.py, versions/.
        "novasvc.db": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
        # txamqp's machine description of AMQP 0-9-1 (amqp_client: txamqp).
        "novasvc.transport.txamqp": ["amqp0-9-1.xml"],
    },
    install_requires=[
        "Twisted>=23.8",
        # The releases the transport was verified with, fast path and public
        # API (novasvc/transport/pika/_internals.py: PIN, checked at start-up).
        "pika>=1.3.0,!=1.4.0,<1.4.5",
        "SQLAlchemy>=2.0",
        "zope.interface>=6",
        "PyYAML>=6",
        "attrs>=23.1",
        # The JSON codec (novasvc.rpc._jsoncodec): orjson writes and reads the
        # messages, the standard library what orjson does not handle as it.
        "orjson>=3.9",
        # Schema migrations (novasvc-manage db sync).
        "alembic>=1.13",
    ],
    extras_require={
        "postgresql": ["psycopg2-binary>=2.9"],
        "mysql": ["PyMySQL>=1.1"],
        # TLS to the broker (rabbits://, ssl: true): pyOpenSSL and service_identity.
        "tls": ["Twisted[tls]>=23.8"],
        # RabbitMQ through txamqp (amqp_client: txamqp); its spec file ships with novasvc.
        "txamqp": ["txamqp>=0.8"],
        # tracing.enabled: spans through the OpenTelemetry API; the SDK and an
        # exporter are the user's choice (tracing.exporter: console and otlp
        # need opentelemetry-sdk, otlp also an OTLP exporter package).
        "tracing": ["opentelemetry-api>=1.20"],
        # The HTTP API (api.enabled, twistd novasvc-api): klein's routing and
        # metrics in Prometheus's format (novasvc.metrics.prometheus).
        "api": ["klein>=23.5", "prometheus_client>=0.17"],
        # Versioned objects on the wire (novasvc.objects, the volume example):
        # oslo.versionedobjects, the library Nova's objects are built on.
        "objects": ["oslo.versionedobjects>=3"],
        "test": [
            "oslo.versionedobjects>=3",
            "psycopg2-binary>=2.9",
            "PyMySQL>=1.1",
            "oslo.messaging>=14",
            "Twisted[tls]>=23.8",
            "cryptography",
            "txamqp>=0.8",
            "opentelemetry-api>=1.20",
            "opentelemetry-sdk>=1.20",
            "prometheus_client>=0.17",
            "klein>=23.5",
            "treq>=23.11",
            "schemathesis>=4",
            "orjson>=3.9",
            "hypothesis>=6",
            # tests/test_layers.py and tox: the layering contracts in .importlinter.
            "import-linter>=2.1",
            # tests/test_api_browser.py: drives the system's Chromium (never
            # downloads a browser of its own; .ci/run installs Debian's).
            "playwright>=1.40",
        ],
        # bench/run.py's systems: oslo.messaging's, and novasvc on txamqp.
        # bench/run.py (oslo.messaging, the txamqp system) and bench/services_scale.py
        # (PostgreSQL, twistd novasvc-api; wrk from the system's packages);
        # bench/volume_calls.py (the volume example's Volume objects).
        "bench": ["oslo.messaging>=14", "psutil", "txamqp>=0.8", "psycopg2-binary>=2.9",
                  "klein>=23.5", "prometheus_client>=0.17", "oslo.versionedobjects>=3"],
    },
    entry_points={
        "console_scripts": [
            "novasvc-rpc = novasvc.cli.rpc:main",
            "novasvc-manage = novasvc.cli.manage:main",
        ],
        # The volume example's drivers by short name (volume.driver: file).
        "novasvc.volume.drivers": [
            "fake = novasvc.examples.volume.drivers.fake:FakeVolumeDriver",
            "file = novasvc.examples.volume.drivers.file:FileVolumeDriver",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
    ],
)
