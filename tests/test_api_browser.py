"""
The status page in a real browser: headless Chromium (L{tests._browser})
against a live API with tokens configured, on an SQLite file the test
controls, with one service up, one down and one disabled.

What the HTTP tests of L{novasvc.api.session} and L{novasvc.api.app} cannot
see is checked here: the login form as a browser submits it, the cookie as
the browser keeps it, the page's own refresh, its layout at 480 pixels (the
rendered boxes of its regions, not pixels), and the database-down banner.
"""

import datetime
import os
import sqlite3
import struct
import time
from typing import Any, Dict, List

from twisted.internet import reactor
from twisted.trial import unittest

from novasvc.api import app
from novasvc.api.session import COOKIE, SESSION_LIFETIME
from novasvc.config.api import APIConfig
from tests._api import TOKENS, start_api, token_entries
from tests._browser import shared_browser

#: The narrow window the page must fit.
NARROW = {"width": 480, "height": 900}
#: B{Seconds} the page waits between its reloads here (the default is 10).
REFRESH = 1
#: B{Milliseconds} the browser waits for the page to show a change.
WAIT = 8000
#: The page's regions, top to bottom, as C{tag.class} (the DOM outline).
REGIONS = ["h1", "p.summary", "p.muted", "div.scroll"]

# The outline of the page as the browser lays it out: each child of the body
# (tag.class) and its box, the row classes in order, and the widths that say
# whether anything is cut off.
_OUTLINE = """() => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
  const scroll = document.querySelector('div.scroll');
  return {
    regions: Array.from(document.body.children).map((e) => ({
      name: e.tagName.toLowerCase() + (e.className ? '.' + e.className.split(' ')[0] : ''),
      box: box(e), text: e.innerText})),
    rows: Array.from(document.querySelectorAll('tbody tr')).map((r) => r.className),
    hosts: Array.from(document.querySelectorAll('tbody tr')).map((r) => r.cells[2].innerText),
    weights: Array.from(document.querySelectorAll('tbody tr')).map((r) =>
      [getComputedStyle(r.cells[2]).fontWeight, getComputedStyle(r.cells[5]).fontWeight]),
    viewport: document.documentElement.clientWidth,
    scrollWidth: document.documentElement.scrollWidth,
    table: scroll && {box: box(scroll), scrollWidth: scroll.scrollWidth,
                      clientWidth: scroll.clientWidth, overflowX: getComputedStyle(scroll).overflowX},
  };
}"""


def png_size(path: str) -> tuple:
    """
    @return: the (width, height) in pixels of the PNG file at C{path}.
    """
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", head[:8]
    return struct.unpack(">II", head[16:24])


def _last_report(engine: Any, service_id: int, ago: float) -> None:
    """
    Make the service C{service_id} last report (and be created) C{ago}
    B{seconds} ago, in the database.
    """
    from novasvc.db.schema import services

    then = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(
        seconds=ago)
    with engine.begin() as connection:
        connection.execute(services.update().where(services.c.id == service_id)
                           .values(created_at=then, last_seen_up=then))


class _Page:
    """
    The browser's side of a test, run in the browser's thread: one context
    (a fresh cookie jar) and one page in it, with what the console said.
    """

    def __init__(self, browser: Any, base: str, **options: Any) -> None:
        self.base = base
        self.context = browser.new_context(viewport=NARROW, **options)
        self.page = self.context.new_page()
        self.console: List[str] = []
        self.requested: List[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        self.page.on("request", lambda request: self.requested.append(
            request.url[len(base):] if request.url.startswith(base) else request.url))
        #: The status of each document the page loaded, in order.
        self.documents: List[int] = []
        self.page.on("response", lambda response: self.documents.append(response.status)
                     if response.request.is_navigation_request() else None)

    def _console(self, message: Any) -> None:
        """
        Keep the console's errors and warnings (a CSP violation is one),
        but not the line Chromium adds for a document's own status (the
        login form's 401, the outage's 503): the tests check those.
        """
        if message.type in ("error", "warning") and not message.text.startswith(
                "Failed to load resource: the server responded with a status of"):
            self.console.append(f"{message.type}: {message.text}")

    def open(self) -> Dict[str, Any]:
        response = self.page.goto(self.base + "/")
        return {"status": response.status, "form": self.page.locator("form").count(),
                "title": self.page.title(), "action": self.page.get_attribute("form", "action"),
                "fits": self.page.evaluate("() => document.documentElement.scrollWidth"
                                           " <= document.documentElement.clientWidth")}

    def login(self, token: str) -> Dict[str, Any]:
        """
        Submit the form with C{token}.

        @return: the status of the page the browser lands on, and the
            form's error, if any.
        """
        self.page.fill("#token", token)
        with self.page.expect_navigation() as navigation:
            self.page.click("button[type=submit]")
        error = self.page.locator("p.error")
        return {"status": navigation.value.status,
                "error": error.inner_text() if error.count() else None}

    def show(self, page: bytes) -> None:
        self.page.set_content(page.decode("utf-8"))

    def outline(self) -> Dict[str, Any]:
        return self.page.evaluate(_OUTLINE)

    def wait_for(self, selector: str, text: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator(selector)).to_contain_text(text, timeout=WAIT)

    def wait_gone(self, selector: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator(selector)).to_have_count(0, timeout=WAIT)

    def screenshot(self, path: str) -> None:
        self.page.screenshot(path=path, full_page=True)

    def cookies(self) -> List[Dict[str, Any]]:
        return self.context.cookies()

    def script_cookies(self) -> str:
        return self.page.evaluate("() => document.cookie")

    def with_cookie_only(self, service_id: int) -> Dict[str, int]:
        """
        Requests that carry the browser's cookie jar and no token.
        """
        request = self.context.request
        read = request.get(self.base + "/v1/services")
        write = request.put(self.base + f"/v1/services/{service_id}",
                            data={"status": "disabled", "disabled_reason": "csrf"})
        delete = request.delete(self.base + f"/v1/services/{service_id}?force=true")
        return {"read": read.status, "write": write.status, "delete": delete.status}


class BrowserTests(unittest.TestCase):
    """
    The status page in headless Chromium, with tokens configured.
    """

    timeout = 60

    async def setUp(self) -> None:
        self.patch(app, "PAGE_REFRESH", REFRESH)
        self.browser = await shared_browser()
        self.path = os.path.abspath(self.mktemp()) + ".sqlite"
        from novasvc.db.store import SQLServiceStore

        # Half a second for a lock: the lock the test takes is the outage.
        self.store = SQLServiceStore(f"sqlite:///{self.path}?timeout=0.5", reactor=reactor)
        await self.store.start()
        self.addCleanup(self.store.stop)
        self.up = await self.store.report_state((await self.store.create("a-up", "novasvc-x", "x")).id)
        self.down = await self.store.create("b-down", "novasvc-x", "y")
        await self.store.run(_last_report, self.store.engine, self.down.id, 3600)
        disabled = await self.store.create("c-off", "novasvc-x", "z", disabled=True,
                                           disabled_reason="maintenance")
        self.disabled = await self.store.report_state(disabled.id)
        self.live = await start_api(self, api=APIConfig(tokens=token_entries()), store=self.store)

    async def page(self, **options: Any) -> _Page:
        page = await self.browser.run(_Page, self.browser.browser, self.live.url, **options)
        self.addCleanup(self.browser.run, page.context.close)
        return page

    async def signed_in(self) -> _Page:
        page = await self.page()
        await self.browser.run(page.open)
        await self.browser.run(page.login, TOKENS["dash"][1])
        return page

    async def test_login(self) -> None:
        """
        When the browser opens the page without a cookie, then it shows the
        login form (within 480 pixels), again with an error for a wrong
        token; when the right one is submitted, then the browser is back
        on the page, which lists the services with the down one first, then
        the disabled one; the browser keeps an HttpOnly, SameSite=Strict
        cookie (not Secure over plain HTTP) that expires, which no script
        can read, and that cookie alone is refused for every change.
        """
        page = await self.page()
        opened = await self.browser.run(page.open)
        self.assertEqual(opened, {"status": 401, "form": 1, "title": "novasvc: sign in",
                                  "action": "/v1/session", "fits": True})
        self.assertEqual(await self.browser.run(page.login, "not-a-token"),
                         {"status": 401, "error": "That token is not valid."})
        self.assertEqual(await self.browser.run(page.login, TOKENS["dash"][1]),
                         {"status": 200, "error": None})
        self.assertEqual(await self.browser.run(lambda: page.page.url), self.live.url + "/")
        outline = await self.browser.run(page.outline)
        self.assertEqual(outline["hosts"], ["b-down", "c-off", "a-up"])
        self.assertEqual(outline["rows"], ["down enabled", "up disabled", "up enabled"])
        summary = [region["text"] for region in outline["regions"] if region["name"] == "p.summary"]
        self.assertEqual(summary, ["2 up, 1 down, 1 disabled"])
        cookies = await self.browser.run(page.cookies)
        self.assertEqual([c["name"] for c in cookies], [COOKIE.decode()])
        cookie = cookies[0]
        self.assertEqual((cookie["httpOnly"], cookie["sameSite"], cookie["secure"], cookie["path"]),
                         (True, "Strict", False, "/"))
        self.assertNotIn(TOKENS["dash"][1], cookie["value"])
        self.assertLess(abs(cookie["expires"] - (time.time() + SESSION_LIFETIME)), 60)
        self.assertEqual(await self.browser.run(page.script_cookies), "")
        # The same jar, with the admin's token this time: still only a reader.
        admin = await self.page()
        await self.browser.run(admin.open)
        await self.browser.run(admin.login, TOKENS["ops"][1])
        for jar in (page, admin):
            self.assertEqual(await self.browser.run(jar.with_cookie_only, self.down.id),
                             {"read": 200, "write": 401, "delete": 401})
        self.assertFalse((await self.store.get(self.down.id)).disabled)
        # The page (reloading itself) and the form loaded nothing else, and
        # the console is clean.
        self.assertEqual(page.requested[:4], ["/", "/v1/session", "/v1/session", "/"])
        self.assertEqual(set(page.requested), {"/", "/v1/session"})
        self.assertEqual(page.console, [])

    async def test_login_over_tls(self) -> None:
        """
        When the API is served over TLS, then the browser signs in the same
        way and keeps the cookie as Secure too.
        """
        from tests._tls_certs import make_certificates

        certs = make_certificates(os.path.abspath(self.mktemp()))
        live = await start_api(self, api=APIConfig(tokens=token_entries()), store=self.store,
                               listen=f"ssl:0:interface=127.0.0.1:privateKey={certs['server_key']}:"
                                      f"certKey={certs['server_cert']}")
        self.assertTrue(live.url.startswith("https://"), live.url)
        # The test's own CA is not the browser's to trust.
        page = await self.browser.run(_Page, self.browser.browser, live.url, ignore_https_errors=True)
        self.addCleanup(self.browser.run, page.context.close)
        self.assertEqual((await self.browser.run(page.open))["status"], 401)
        await self.browser.run(page.login, TOKENS["dash"][1])
        self.assertEqual((await self.browser.run(page.outline))["hosts"], ["b-down", "c-off", "a-up"])
        [cookie] = await self.browser.run(page.cookies)
        self.assertEqual((cookie["httpOnly"], cookie["sameSite"], cookie["secure"]),
                         (True, "Strict", True))

    async def test_layout(self) -> None:
        """
        When the page is shown at 480 pixels, then nothing is cut off (the
        document is no wider than the window), its regions are stacked
        top to bottom in the page's order, each inside the window, the
        table scrolls sideways in its own box, and in a row only the state
        is bold; the screenshot is the window's width.
        """
        page = await self.signed_in()
        outline = await self.browser.run(page.outline)
        self.assertLessEqual(outline["scrollWidth"], outline["viewport"])
        self.assertEqual(outline["viewport"], NARROW["width"])
        self.assertRegions(outline, REGIONS)
        self.assertEqual(page.console, [])
        # Only the state stands out in a row (the row's up/down class does
        # not make the whole row bold).
        self.assertEqual(outline["weights"], [["400", "600"]] * 3)
        table = outline["table"]
        self.assertEqual(table["overflowX"], "auto")
        self.assertLessEqual(table["box"]["right"], NARROW["width"])
        shot = os.path.abspath(self.mktemp()) + ".png"
        await self.browser.run(page.screenshot, shot)
        width, height = png_size(shot)
        self.assertEqual(width, NARROW["width"])
        self.assertGreaterEqual(height, outline["regions"][-1]["box"]["bottom"])

    async def test_long_values(self) -> None:
        """
        When the page shows the longest values it may (cut to 64 characters
        in a cell, 255 in the banner), without a space to break at, then
        the document is still no wider than 480 pixels: the heading and the
        banner wrap, and the table scrolls in its box.
        """
        from novasvc.api.status_page import render
        from novasvc.db.record import ServiceRecord

        now = datetime.datetime(2024, 5, 1, 12, 0, 0)
        long = ServiceRecord(id=1, uuid="u", host="h" * 255, binary="b" * 255, topic="t" * 255,
                             disabled=True, disabled_reason="r" * 255, last_seen_up=now,
                             created_at=now)
        html = render([long], now, 60, title="T" * 300, refresh=REFRESH,
                      outage=("2024-05-01T12:00:00Z", "W" * 255, now))
        page = await self.page()
        await self.browser.run(page.show, html)
        outline = await self.browser.run(page.outline)
        self.assertLessEqual(outline["scrollWidth"], outline["viewport"])
        self.assertRegions(outline, ["h1", "p.outage", *REGIONS[1:]])
        self.assertGreater(outline["table"]["scrollWidth"], outline["table"]["clientWidth"])

    def assertRegions(self, outline: Dict[str, Any], names: List[str]) -> None:
        """
        Assert the body's children are C{names}, in order, each below the
        one before it and within the window's width.
        """
        self.assertEqual([region["name"] for region in outline["regions"]], names)
        bottom = 0.0
        for region in outline["regions"]:
            box = region["box"]
            self.assertGreaterEqual(box["top"], bottom, region)
            self.assertGreaterEqual(box["left"], 0, region)
            self.assertLessEqual(box["right"], outline["viewport"], region)
            self.assertGreater(box["width"], 0, region)
            bottom = box["bottom"]

    async def test_refresh(self) -> None:
        """
        When a service's state changes in the database, then the open page
        shows it on its own (no reload asked), within a few of its refresh
        periods.
        """
        page = await self.signed_in()
        await self.browser.run(page.wait_for, "p.summary", "2 up, 1 down, 1 disabled")
        await self.store.report_state(self.down.id)
        await self.browser.run(page.wait_for, "p.summary", "3 up, 0 down, 1 disabled")
        await self.store.update(self.up.id, forced_down=True)
        await self.browser.run(page.wait_for, "tbody tr:first-child", "down (forced)")
        self.assertEqual(set(page.requested), {"/", "/v1/session"})
        self.assertEqual(page.console, [])

    async def test_database_down(self) -> None:
        """
        When the database cannot be used (another connection holds its
        file's exclusive lock), then the open page shows, on its own, the
        "Database unreachable since ..." banner above the services it read
        last (a 503 document), still within 480 pixels, and goes on
        refreshing itself: when the database is back, the banner goes.
        """
        page = await self.signed_in()
        lock = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(lock.close)
        lock.execute("BEGIN EXCLUSIVE")
        await self.browser.run(page.wait_for, "p.outage", "Database unreachable since")
        outline = await self.browser.run(page.outline)
        self.assertRegions(outline, ["h1", "p.outage", *REGIONS[1:]])
        self.assertLessEqual(outline["scrollWidth"], outline["viewport"])
        banner = outline["regions"][1]["text"]
        self.assertIn("database is locked", banner)
        self.assertIn("Showing the services as read at", banner)
        self.assertEqual(outline["hosts"], ["b-down", "c-off", "a-up"])
        shot = os.path.abspath(self.mktemp()) + ".png"
        await self.browser.run(page.screenshot, shot)
        self.assertEqual(png_size(shot)[0], NARROW["width"])
        self.assertEqual(page.documents[-1], 503)
        lock.execute("ROLLBACK")
        await self.browser.run(page.wait_gone, "p.outage")
        self.assertEqual(page.documents[-1], 200)
        outline = await self.browser.run(page.outline)
        self.assertRegions(outline, REGIONS)
        self.assertEqual(page.console, [])
