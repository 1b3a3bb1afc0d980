"""
Public helpers for people testing their own services with trial:

  - L{ServiceHarness} (L{novasvc.testing.harness}): run a manager in
    process, with an in-memory broker and services table and a fake clock;
    call and cast to it, advance time, read its services row.
  - L{make_transport_contract_tests}
    (L{novasvc.testing.transport_contract}) and
    L{make_store_contract_tests} (L{novasvc.testing.store_contract}): the
    contract suites novasvc runs against its own transports and stores, to
    run against yours.
  - L{DriverContractMixin} (L{novasvc.testing.driver_contract}): the checks
    every driver passes, to mix into the contract suite of a driver
    interface.

  - the in-memory twins a test builds a service from by hand:
    L{MemoryBroker} and L{MemoryTransport} (L{novasvc.transport.memory}),
    L{MemoryServiceStore} (L{novasvc.db.memory}); and L{Config} and
    L{DatabaseConfig} (L{novasvc.config}) to configure it.

Importing this package imports twisted.trial; never import it from service
code.

Layer: above the core, beside the API (which it never imports): examples and
users' tests import it, service code never does.
"""

from novasvc.config import Config, DatabaseConfig
from novasvc.db.memory import MemoryServiceStore
from novasvc.testing.driver_contract import DriverContractMixin
from novasvc.testing.harness import EPOCH, ServiceHarness
from novasvc.testing.store_contract import SettableUTCNow, make_store_contract_tests
from novasvc.testing.transport_contract import make_transport_contract_tests
from novasvc.transport.memory import MemoryBroker, MemoryTransport

__all__ = [
    "ServiceHarness",
    "EPOCH",
    "make_transport_contract_tests",
    "make_store_contract_tests",
    "SettableUTCNow",
    "DriverContractMixin",
    "MemoryBroker",
    "MemoryTransport",
    "MemoryServiceStore",
    "Config",
    "DatabaseConfig",
]
