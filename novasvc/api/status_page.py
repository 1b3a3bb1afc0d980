# -*- test-case-name: tests.test_api_status_page -*-
"""
The HTML status page behind C{GET /}: the services of the C{services}
table, up or down, rendered on the server as one small, self-contained
HTML5 document (inline CSS, no script, no external resource), as an
operator's glance at Nova's C{openstack compute service list}.

L{render} is pure: the caller reads the records and the time, and serves
the bytes as C{text/html; charset=utf-8}.
"""

import datetime
import html
from typing import List, Optional, Sequence, Tuple

from novasvc.db.record import ServiceRecord
from novasvc.db.rules import naive_utc
from novasvc.core.servicegroup import is_up

__all__ = ["render", "CELL_LIMIT"]

#: The most characters of a value shown in a cell; a longer one is cut,
#: and its C{title} (a tooltip) holds up to L{_TITLE_LIMIT} of them.
CELL_LIMIT = 64
_TITLE_LIMIT = 255

_STYLE = """\
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}
h1,p{overflow-wrap:break-word}
p{margin:.3em 0}
table{border-collapse:collapse;margin-top:1em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.num{text-align:right}
span.up,td.up{color:#176f2c;font-weight:600}
span.down,td.down{color:#b00020;font-weight:600}
tr.disabled td{background:#f7f7f7}
.muted{color:#666}
.scroll{overflow-x:auto;max-width:100%}
@media (max-width:600px){body{margin:.5em;font-size:.9em}th,td{padding:.2em .35em}}
.outage{background:#fde8e8;border:2px solid #b00020;color:#5c0010;padding:.5em .8em;font-weight:600}"""

_COLUMNS = ("Id", "Binary", "Host", "Topic", "Status", "State", "Last report", "Disabled reason")


def _text(value: object, limit: int = CELL_LIMIT) -> str:
    """
    @return: C{value} as escaped HTML text, cut to C{limit} characters
        (with an ellipsis) and then wrapped in a C{span} whose C{title} has
        more of it.
    """
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return html.escape(text)
    title = text[:_TITLE_LIMIT] + ("\u2026" if len(text) > _TITLE_LIMIT else "")
    return f'<span title="{html.escape(title)}">{html.escape(text[:limit - 1])}\u2026</span>'


def _when(moment: datetime.datetime) -> str:
    """
    @return: a C{time} element for a naive UTC time.
    """
    return (f'<time datetime="{moment.strftime("%Y-%m-%dT%H:%M:%SZ")}">'
            f'{moment.strftime("%Y-%m-%d %H:%M:%S")} UTC</time>')


def _since(text: str) -> str:
    """
    @return: an ISO 8601 time (the API's C{down_since}) shown as the page
        shows its other times, to the second; any other text escaped.
    """
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return _text(text)
    return _when(naive_utc(moment))


def _age(moment: datetime.datetime, now: datetime.datetime) -> str:
    """
    @return: how long before C{now} C{moment} was, in whole seconds.
    """
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return f"{int(-seconds)} s ahead"
    return f"{int(seconds)} s ago"


def _row(record: ServiceRecord, now: datetime.datetime, up: bool) -> str:
    state = '<td class="up">up</td>' if up else (
        '<td class="down">down (forced)</td>' if record.forced_down else '<td class="down">down</td>')
    status = "disabled" if record.disabled else "enabled"
    last = record.last_seen_up
    if last is None:
        report = '<td class="muted">never</td>'
    else:
        last = naive_utc(last)
        report = f"<td>{_when(last)} ({_age(last, now)})</td>"
    css = " ".join(("up" if up else "down", status))
    return (f'<tr class="{css}"><td class="num">{_text(record.id)}</td><td>{_text(record.binary)}</td>'
            f"<td>{_text(record.host)}</td><td>{_text(record.topic)}</td><td>{status}</td>{state}{report}"
            f"<td>{_text(record.disabled_reason)}</td></tr>")


def render(records: Sequence[ServiceRecord], now: datetime.datetime, service_down_time: float, *,
           title: str = "novasvc services", refresh: Optional[int] = None,
           outage: Optional[Tuple[str, str, Optional[datetime.datetime]]] = None) -> bytes:
    """
    Render the status page.

    Each service is one row, the down ones first, then the disabled ones,
    then the rest, each group sorted by binary then host: its id, binary,
    host, topic, status (C{enabled} or C{disabled}), state (C{up} or
    C{down} by L{novasvc.core.servicegroup.is_up}; C{down (forced)} when
    C{forced_down}), last report (C{last_seen_up}, the heartbeat that
    decides the state, with how many seconds before C{now}; C{never} when
    it never reported) and disabled reason. Above the table, the counts:
    C{"N up, M down, K disabled"}. With no record, a sentence says so
    instead of the table.

    The table scrolls sideways in its own box on a narrow window (480
    pixels), and the heading and the banner wrap even a word without
    spaces, so the page itself never does (tests/test_api_browser.py
    checks it in Chromium). In a row only the state is coloured.

    Every value is HTML-escaped (hosts and reasons are operator or client
    data); a value longer than L{CELL_LIMIT} characters is cut, with more
    of it in a tooltip.

    @param records: the live rows of the C{services} table.
    @param now: the current time (naive UTC, or aware).
    @param service_down_time: B{seconds} without a report after which a
        service is down (the configuration's).
    @param title: the page's title and heading (escaped, cut).
    @param refresh: when given, the page asks the browser to reload it
        every C{refresh} B{seconds} (C{<meta http-equiv="refresh">}).
    @param outage: when the database cannot be read, C{(since, why, as_of)}:
        the page opens with a banner C{"Database unreachable since
        <since>"} (an ISO 8601 C{since} shown as the page's other times,
        C{2024-05-01 12:00:00 UTC}; other text as it is) and why, and C{records} are those read at C{as_of}
        (naive UTC; their states are judged at that time), or none when
        C{as_of} is C{None}.
    @return: the page, UTF-8 HTML.
    @raise ValueError: when C{refresh} is not a positive integer.
    """
    if refresh is not None and (type(refresh) is not int or refresh <= 0):
        raise ValueError(f"refresh must be a positive number of seconds, not {refresh!r}")
    now = naive_utc(now)
    banner = None
    if outage is not None:
        since, why, as_of = outage
        known = (f"Showing the services as read at {_when(naive_utc(as_of))}." if as_of is not None
                 else "No earlier reading of the services is known.")
        banner = (f'<p class="outage" role="alert">Database unreachable since {_since(since)}: '
                  f'{_text(why, _TITLE_LIMIT)}. {known}</p>')
        now = naive_utc(as_of) if as_of is not None else now
    # What needs a look first: down, then disabled, then the rest.
    ordered = sorted(records, key=lambda r: (is_up(r, now, service_down_time), r.disabled is False,
                                             r.binary, r.host, r.id))
    states = [is_up(record, now, service_down_time) for record in ordered]
    up = sum(states)
    disabled = sum(1 for record in ordered if record.disabled)
    heading = _text(title)
    parts: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
    ]
    if refresh is not None:
        parts.append(f'<meta http-equiv="refresh" content="{refresh}">')
    parts += [
        f"<title>{html.escape(title[:CELL_LIMIT])}</title>",
        f"<style>\n{_STYLE}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{heading}</h1>",
        *([banner] if banner else []),
        f'<p class="summary"><span class="up">{up} up</span>, <span class="down">{len(ordered) - up} down</span>, '
        f"{disabled} disabled</p>",
        f'<p class="muted">At {_when(now)}; a service is down after {service_down_time:g} s without a report.</p>',
    ]
    if ordered:
        parts.append('<div class="scroll"><table>')
        parts.append("<thead><tr>" + "".join(f'<th scope="col">{name}</th>' for name in _COLUMNS) + "</tr></thead>")
        parts.append("<tbody>")
        parts.extend(_row(record, now, state) for record, state in zip(ordered, states))
        parts.append("</tbody>")
        parts.append("</table></div>")
    else:
        parts.append('<p class="empty">No services are registered.</p>')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts).encode("utf-8")
