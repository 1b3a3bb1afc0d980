"""
Tests for L{novasvc.api.status_page}, reading the page back with the
standard library's C{html.parser}.
"""

import datetime
from html.parser import HTMLParser
from typing import Any, Dict, List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from novasvc.api.status_page import CELL_LIMIT, render
from novasvc.db.record import ServiceRecord

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0)
_VOID = {"meta", "link", "br", "img", "hr", "input"}


class Page(HTMLParser):
    """
    The parts of the page the tests look at: the body rows (cell texts and
    row classes), the header cells, the summary, the title, the tags and
    attributes, and whether every element was closed in order.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.open: List[str] = []
        self.errors: List[str] = []
        self.tags: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self.headers: List[str] = []
        self.rows: List[List[str]] = []
        self.row_classes: List[str] = []
        self.titles: List[str] = []
        self.text: Dict[str, str] = {}
        self._cell: Optional[List[str]] = None
        self._in: Optional[str] = None
        self.doctype = data.decode("utf-8").startswith("<!DOCTYPE html>")
        self.feed(data.decode("utf-8"))
        self.close()

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in _VOID:
            self.open.append(tag)
        if "title" in attributes and tag == "span":
            self.titles.append(attributes["title"] or "")
        if tag == "tr" and "tbody" in self.open:
            self.rows.append([])
            self.row_classes.append(attributes.get("class") or "")
        if tag in ("td", "th"):
            self._cell = []
        if tag in ("title", "h1", "p"):
            self._in = attributes.get("class") or tag
            self.text[self._in] = ""

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell)
            if tag == "th":
                self.headers.append(text)
            else:
                self.rows[-1].append(text)
            self._cell = None
        if tag in ("title", "h1", "p"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in is not None:
            self.text[self._in] += data


def record(id: int, binary: str = "novasvc-echo", host: str = "host1", **kwargs: Any) -> ServiceRecord:
    """
    @return: a service that reported 10 s before L{NOW}, unless told
        otherwise.
    """
    kwargs.setdefault("topic", "echo")
    kwargs.setdefault("last_seen_up", NOW - datetime.timedelta(seconds=10))
    kwargs.setdefault("created_at", NOW - datetime.timedelta(days=1))
    return ServiceRecord(id=id, uuid=f"uuid-{id}", host=host, binary=binary, **kwargs)


class RenderTests(SynchronousTestCase):
    """
    L{render}.
    """

    def page(self, records: List[ServiceRecord], **kwargs: Any) -> Page:
        data = render(records, NOW, 60, **kwargs)
        self.assertIsInstance(data, bytes)
        page = Page(data)
        self.assertTrue(page.doctype)
        self.assertEqual((page.errors, page.open), ([], []))
        return page

    def test_rows(self) -> None:
        """
        When services are given, then one row each, the down ones first,
        then the disabled ones, then the rest, each group sorted by binary
        then host, with id, binary, host, topic, status, state, last report
        and disabled reason.
        """
        page = self.page([
            record(3, host="host2"),
            record(1, binary="novasvc-volume", topic="volume"),
            record(2, host="host1", disabled=True, disabled_reason="maintenance"),
            record(4, host="host3", topic=None, last_seen_up=NOW - datetime.timedelta(seconds=61)),
        ])
        self.assertEqual(page.headers, ["Id", "Binary", "Host", "Topic", "Status", "State", "Last report",
                                        "Disabled reason"])
        self.assertEqual([row[:6] + row[7:] for row in page.rows], [
            ["4", "novasvc-echo", "host3", "", "enabled", "down", ""],
            ["2", "novasvc-echo", "host1", "echo", "disabled", "up", "maintenance"],
            ["3", "novasvc-echo", "host2", "echo", "enabled", "up", ""],
            ["1", "novasvc-volume", "host1", "volume", "enabled", "up", ""],
        ])
        self.assertEqual(page.rows[1][6], "2024-05-01 11:59:50 UTC (10 s ago)")
        self.assertEqual(page.rows[0][6], "2024-05-01 11:58:59 UTC (61 s ago)")
        self.assertEqual(page.row_classes, ["down enabled", "up disabled", "up enabled", "up enabled"])
        self.assertEqual(page.text["summary"], "3 up, 1 down, 1 disabled")
        self.assertEqual(page.text["title"], "novasvc services")

    def test_forced_down(self) -> None:
        """
        When a service is forced down, then it is shown down (forced) though
        it reported just now.
        """
        page = self.page([record(1, forced_down=True, last_seen_up=NOW)])
        self.assertEqual(page.rows[0][5], "down (forced)")
        self.assertEqual(page.text["summary"], "0 up, 1 down, 0 disabled")

    def test_never_reported(self) -> None:
        """
        When a service never reported, then its last report says never, and
        its state follows created_at (as is_up; down ones first); a report
        from a clock ahead says so.
        """
        page = self.page([
            record(1, last_seen_up=None, created_at=NOW - datetime.timedelta(seconds=5)),
            record(2, host="host2", last_seen_up=None),
            record(3, host="host3", last_seen_up=NOW + datetime.timedelta(seconds=3)),
        ])
        self.assertEqual([(row[5], row[6]) for row in page.rows],
                         [("down", "never"), ("up", "never"), ("up", "2024-05-01 12:00:03 UTC (3 s ahead)")])

    def test_aware_now(self) -> None:
        """
        When now is an aware time, then it is read as UTC.
        """
        now = datetime.datetime(2024, 5, 1, 14, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        page = Page(render([record(1)], now, 60))
        self.assertEqual(page.rows[0][5:7], ["up", "2024-05-01 11:59:50 UTC (10 s ago)"])

    def test_escaping(self) -> None:
        """
        When a host, a reason or the title holds markup, then it is shown as
        text, and the page has no script element.
        """
        evil = "<script>alert('x')</script>"
        data = render([record(1, host=f'h"><{evil}', disabled=True, disabled_reason=evil)], NOW, 60,
                      title=f"<b>{evil}</b>")
        self.assertNotIn(b"<script", data.lower())
        page = Page(data)
        self.assertEqual(page.rows[0][7], evil)
        self.assertEqual(page.rows[0][2], f'h"><{evil}')
        self.assertEqual(page.text["h1"], f"<b>{evil}</b>")
        self.assertEqual({tag for tag, _ in page.tags},
                         {"html", "head", "meta", "title", "style", "body", "h1", "p", "span", "time", "div", "table",
                          "thead", "tbody", "tr", "th", "td"})

    def test_clipped(self) -> None:
        """
        When a value is long, then the cell shows it cut with an ellipsis,
        and the tooltip more of it.
        """
        page = self.page([record(1, disabled=True, disabled_reason="r" * 1000)])
        cell = page.rows[0][7]
        self.assertEqual(cell, "r" * (CELL_LIMIT - 1) + "\u2026")
        self.assertEqual(page.titles, ["r" * 255 + "\u2026"])

    def test_empty(self) -> None:
        """
        When there is no service, then a sentence says so instead of a
        table.
        """
        page = self.page([])
        self.assertEqual(page.text["empty"], "No services are registered.")
        self.assertNotIn("table", {tag for tag, _ in page.tags})
        self.assertEqual(page.text["summary"], "0 up, 0 down, 0 disabled")

    def test_self_contained(self) -> None:
        """
        When the page is rendered, then it loads nothing else (no script,
        link, image or src/href attribute) and declares UTF-8.
        """
        page = self.page([record(1)], refresh=30)
        tags = {tag for tag, _ in page.tags}
        self.assertFalse(tags & {"script", "link", "img", "iframe", "object"})
        self.assertFalse([attrs for _, attrs in page.tags if "src" in attrs or "href" in attrs])
        self.assertIn(("meta", {"charset": "utf-8"}), page.tags)
        self.assertIn(("meta", {"http-equiv": "refresh", "content": "30"}), page.tags)
        self.assertNotIn("http-equiv", str(self.page([record(1)]).tags))

    def test_outage(self) -> None:
        """
        When the database is down, then the page opens with a banner saying
        since when (an ISO 8601 time shown as the page's other times), why,
        and as of when the services shown were read, judged at that time;
        with no earlier reading, it says so.
        """
        as_of = NOW - datetime.timedelta(seconds=30)
        page = self.page([record(1, last_seen_up=as_of - datetime.timedelta(seconds=5))],
                         outage=("2024-05-01T11:59:45.123456Z", "OperationalError: gone", as_of))
        self.assertEqual(page.text["outage"],
                         "Database unreachable since 2024-05-01 11:59:45 UTC: OperationalError: "
                         "gone. Showing the services as read at 2024-05-01 11:59:30 UTC.")
        self.assertEqual(page.rows[0][5], "up")
        self.assertIn(("time", {"datetime": "2024-05-01T11:59:45Z"}), page.tags)
        page = self.page([], outage=("?", "<b>", None))
        self.assertEqual(page.text["outage"], "Database unreachable since ?: <b>. "
                         "No earlier reading of the services is known.")
        self.assertEqual(page.errors, [])

    def test_refresh(self) -> None:
        """
        When refresh is not a positive integer, then ValueError.
        """
        for refresh in (0, -1, 1.5, "5"):
            self.assertRaises(ValueError, render, [], NOW, 60, refresh=refresh)
