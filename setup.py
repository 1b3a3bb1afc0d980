"""
Packaging for novasvc.

C{twisted/plugins/novasvc_plugin.py} ships as a module of the C{twisted.plugins}
package without an C{__init__.py} of its own (Twisted's rule for third-party
plugins). C{package_dir={"": "."}} keeps editable installs on a plain C{.pth}
file that puts this folder on C{sys.path}, which is how Twisted's plugin
search finds C{twisted/plugins/} in a checkout.
"""

from setuptools import find_packages, setup

setup(
    name="novasvc",
    version="0.1.0",
    description="The Nova service framework (Service, Manager, Driver) as a Twisted daemon",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
    package_dir={"": "."},
    packages=find_packages(include=["novasvc", "novasvc.*"]) + ["twisted.plugins"],
    package_data={"novasvc": ["py.typed"], "novasvc.db": ["migrations/*.py"],
                  # txamqp's machine description of AMQP 0-9-1 (amqp_client: txamqp).
                  "novasvc.transport": ["amqp0-9-1.xml"]},
    install_requires=[
        "Twisted>=23.8",
        # novasvc.transport reaches into pika 1.x internals (see _amqp_frames.py).
        "pika>=1.3,<2",
        "SQLAlchemy>=2.0",
        "zope.interface>=6",
        "PyYAML>=6",
        "attrs>=23.1",
    ],
    extras_require={
        "postgresql": ["psycopg2-binary>=2.9"],
        "mysql": ["PyMySQL>=1.1"],
        # TLS to the broker (rabbits://, ssl: true): pyOpenSSL and service_identity.
        "tls": ["Twisted[tls]>=23.8"],
        # RabbitMQ through txamqp (amqp_client: txamqp); its spec file ships with novasvc.
        "txamqp": ["txamqp>=0.8"],
        "test": [
            "psycopg2-binary>=2.9",
            "PyMySQL>=1.1",
            "oslo.messaging>=14",
            "Twisted[tls]>=23.8",
            "cryptography",
            "txamqp>=0.8",
        ],
        "bench": ["oslo.messaging>=14", "psutil"],
    },
    entry_points={
        "console_scripts": [
            "novasvc-rpc = novasvc.cli.rpc:main",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
    ],
)
