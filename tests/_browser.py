"""
Headless Chromium for the browser tests: the system's Chromium (Debian's
C{chromium} package, which C{.ci/run} installs when it is missing), driven
by playwright's synchronous API in one thread of its own, so the API under
test keeps serving on the reactor while the browser waits for it.

    browser = await shared_browser()
    page = await browser.run(make_page, browser.browser)   # in the browser's thread

Launching Chromium costs a second or two; the first test that asks
launches it, the next ones get the same one (or a new one if it died) and
each opens a context of its own (its own cookies and storage), so no test
sees another's session. It is closed when the process exits.

Outside CI a missing Chromium or playwright skips the test; in CI
(C{CI=true}) it fails it (L{tests._services.in_ci}).
"""

import atexit
import importlib
import os
import queue
import shutil
import threading
from concurrent.futures import Future
from typing import Any, Callable, List, Optional, TypeVar
from unittest import SkipTest

from twisted.internet import defer, reactor
from twisted.python.failure import Failure

from tests._services import in_ci

__all__ = ["CHROMIUM_NAMES", "Browser", "chromium_path", "shared_browser"]

_T = TypeVar("_T")

#: Where Chromium is looked for, in turn: C{$NOVASVC_CHROMIUM}, then these
#: names on C{PATH}.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: B{Seconds} closing Chromium may take at exit.
_CLOSE_TIMEOUT = 30.0


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
    call on them goes through L{run}. The thread is a daemon, so a test
    process never waits for it at exit.

    @ivar browser: playwright's C{Browser}, for use in L{run} only.
    """

    def __init__(self) -> None:
        self._jobs: "queue.Queue[Any]" = queue.Queue()
        self._playwright: Any = None
        self.browser: Any = None
        self._thread = threading.Thread(target=self._serve, name="chromium", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            work, args, kwargs, future = job
            try:
                future.set_result(work(*args, **kwargs))
            except BaseException as e:
                future.set_exception(e)

    def _submit(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> "Future[_T]":
        future: "Future[_T]" = Future()
        self._jobs.put((work, args, kwargs, future))
        return future

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

        self._submit(work, *args, **kwargs).add_done_callback(finished)
        return done

    def launch(self, executable: str) -> None:
        """
        Start playwright and Chromium (in the browser's thread).
        """
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(executable_path=executable,
                                                            headless=True)
        except BaseException:
            self._close()
            raise

    def alive(self) -> bool:
        """
        @return: whether Chromium still runs (in the browser's thread).
        """
        return self.browser is not None and self.browser.is_connected()

    def _close(self) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            self.browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None

    def stop_now(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        """
        Close Chromium and end the thread, waiting for it (without the
        reactor: at exit).
        """
        try:
            self._submit(self._close).result(timeout)
        finally:
            self._jobs.put(None)


#: The process's browser (one at most).
_BROWSERS: List[Browser] = []
_LOCK = defer.DeferredLock()


async def _running_browser(executable: str) -> Browser:
    if _BROWSERS and not await _BROWSERS[0].run(_BROWSERS[0].alive):
        _BROWSERS.pop().stop_now()
    if not _BROWSERS:
        browser = Browser()
        try:
            await browser.run(browser.launch, executable)
        except BaseException:
            browser.stop_now()
            raise
        _BROWSERS.append(browser)
    return _BROWSERS[0]


async def shared_browser(executable: Optional[str] = None) -> Browser:
    """
    The process's headless Chromium, launched on first use (or again, if it
    died).

    @param executable: default L{chromium_path}.
    @raise SkipTest: outside CI, when Chromium or playwright is missing.
    @raise AssertionError: in CI, when either is missing.
    """
    executable = executable or chromium_path()
    _require_playwright()
    return await _LOCK.run(lambda: defer.ensureDeferred(_running_browser(executable)))


@atexit.register
def _stop_at_exit() -> None:
    while _BROWSERS:
        _BROWSERS.pop().stop_now()
