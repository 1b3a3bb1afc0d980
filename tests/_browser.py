"""
Headless Chromium for the browser tests: the system's Chromium (Debian's
C{chromium} package, which C{.ci/run} installs when it is missing), driven
by playwright's synchronous API in one thread of its own, so the API under
test keeps serving on the reactor while the browser waits for it.

Outside CI a missing Chromium or playwright skips the test; in CI
(C{CI=true}) it fails it (L{tests._services.in_ci}).
"""

import importlib
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar
from unittest import SkipTest

from twisted.internet import defer, reactor
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests._services import in_ci

_T = TypeVar("_T")

#: Where Chromium is looked for, in turn: C{$NOVASVC_CHROMIUM}, then these
#: names on C{PATH}.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _missing(message: str) -> None:
    if in_ci():
        raise AssertionError(message)
    raise SkipTest(message)


def chromium_path() -> str:
    """
    @return: the Chromium executable to drive.
    @raise SkipTest: when there is none, outside CI.
    @raise AssertionError: when there is none, in CI.
    """
    configured = os.environ.get("NOVASVC_CHROMIUM")
    if configured:
        if not os.access(configured, os.X_OK):
            _missing(f"NOVASVC_CHROMIUM={configured!r} is not an executable file")
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    _missing(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}; or set "
             "NOVASVC_CHROMIUM): apt-get install chromium")
    raise AssertionError("unreachable")


def _require_playwright() -> None:
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError as e:
        _missing(f"playwright is not installed ({e}): pip install 'novasvc[test]'")


class Browser:
    """
    One headless Chromium and the one thread that drives it: playwright's
    synchronous objects belong to the thread that made them, so every
    call on them goes through L{run}.

    @ivar browser: playwright's C{Browser}, for use in L{run} only.
    """

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._playwright: Any = None
        self.browser: Any = None

    def run(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> "defer.Deferred[_T]":
        """
        Call C{work(*args, **kwargs)} in the browser's thread.

        @return: a C{Deferred} firing, on the reactor, with its result or
            failure.
        """
        done: defer.Deferred = defer.Deferred()

        def finished(future: "Future[_T]") -> None:
            error = future.exception()
            if error is not None:
                reactor.callFromThread(done.errback, Failure(error))
            else:
                reactor.callFromThread(done.callback, future.result())

        self._thread.submit(work, *args, **kwargs).add_done_callback(finished)
        return done

    def _launch(self, executable: str) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(executable_path=executable,
                                                            headless=True)
        except BaseException:
            self._playwright.stop()
            self._playwright = None
            raise

    def _close(self) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            self.browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None

    async def stop(self) -> None:
        """
        Close Chromium and end the thread.
        """
        try:
            await self.run(self._close)
        finally:
            self._thread.shutdown(wait=False)


async def start_browser(case: unittest.TestCase, executable: Optional[str] = None) -> Browser:
    """
    Launch headless Chromium, closed at the end of C{case}.

    @param executable: default L{chromium_path}.
    @raise SkipTest: outside CI, when Chromium or playwright is missing.
    @raise AssertionError: in CI, when either is missing.
    """
    executable = executable or chromium_path()
    _require_playwright()
    browser = Browser()
    try:
        await browser.run(browser._launch, executable)
    except BaseException:
        browser._thread.shutdown(wait=False)
        raise
    case.addCleanup(browser.stop)
    return browser
