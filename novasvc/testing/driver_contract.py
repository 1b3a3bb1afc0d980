# -*- test-case-name: tests.test_testing_driver_contract -*-
"""
The part of a driver contract that holds for every driver interface: mix
L{DriverContractMixin} into the contract suite of your own interface (as
C{novasvc.examples.volume} does for C{IVolumeDriver}) and run that suite
against your fake and your real driver alike::

    class VolumeDriverContract(DriverContractMixin):
        interface = IVolumeDriver

        async def test_create(self):
            driver = await self.driver()
            ...

    class FakeVolumeDriverTests(VolumeDriverContract, TestCase):
        def make_driver(self):
            return FakeVolumeDriver(config=...)
"""

from typing import Any

from twisted.internet.defer import maybeDeferred
from zope.interface.verify import verifyObject

from novasvc.config.options import declared_options

__all__ = ["DriverContractMixin"]


class DriverContractMixin:
    """
    Checks every driver passes; mix into a trial C{TestCase}.

    @cvar interface: the zope interface the driver must provide.
    """

    interface: Any = None

    def make_driver(self) -> Any:
        """
        Build the driver under test; override it.

        @return: the driver, or a C{Deferred} firing with it.
        """
        raise NotImplementedError(f"{type(self).__name__} must define make_driver()")

    def driver(self) -> Any:
        """
        @return: a C{Deferred} firing with L{make_driver}'s driver.
        """
        return maybeDeferred(self.make_driver)

    async def test_provides_interface(self) -> None:
        """
        When the driver is built, then it declares and fully provides the
        interface (every method, with a compatible signature).
        """
        driver = await self.driver()
        self.assertTrue(verifyObject(self.interface, driver))  # type: ignore[attr-defined]

    async def test_declared_options(self) -> None:
        """
        When the driver declares options, then they are well formed (a
        section name, L{novasvc.config.options.Opt}s, no name twice).
        """
        driver = await self.driver()
        declared_options(driver)
