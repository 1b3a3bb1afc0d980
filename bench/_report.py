# -*- test-case-name: tests.test_bench -*-
"""
Turn the per-repetition measurements into the markdown report: one table of
medians (min-max) per system, one of ratios to the two floors (each computed
per repetition, then summarized): C{floor}, the bare pattern, and
C{floor-oslo}, oslo.messaging's protocol by hand; and the issue's targets
(#12) marked met or not met.

A measurement set is C{{system_key: [per-rep dict, ...]}}, each per-rep dict
holding the keys of L{METRICS}; every system has the same number of reps,
in the same interleaved order, so rep C{i} of two systems ran side by side.
"""

import math
import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["FLOORS", "METRICS", "RATIOS", "Summary", "render", "summarize"]

#: (system key, label) of the floors the ratios divide by, in column order.
FLOORS: Sequence[Tuple[str, str]] = (("floor", "floor"), ("floor-oslo", "oslo-protocol floor"))


def _int(value: float) -> str:
    return f"{value:,.0f}"


def _fixed(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:,.{digits}f}"


#: (key, label, formatter) of each measured quantity.
METRICS: Sequence[Tuple[str, str, Callable[[float], str]]] = (
    ("seq_p50_us", "(a) sequential call p50, µs", _int),
    ("seq_p99_us", "(a) sequential call p99, µs", _int),
    ("seq_rate", "(a) sequential calls/s", _int),
    ("inflight_rate", "(b) 64 in flight, calls/s", _int),
    ("cast_publish_rate", "(c) cast publish, msg/s", _int),
    ("cast_dispatch_rate", "(c) cast dispatch, msg/s", _int),
    ("drain_rate", "(c) drain of a pre-filled queue, msg/s", _int),
    ("cpu_calls", "(d) server CPU s per 10k calls (b)", _fixed(2)),
    ("cpu_casts", "(d) server CPU s per 10k casts (c)", _fixed(2)),
    ("client_cpu_calls", "client CPU s per 10k calls (b)", _fixed(2)),
    ("client_cpu_casts", "client CPU s per 10k casts (c)", _fixed(2)),
    ("broker_cpu_calls", "broker CPU s per 10k calls (b)", _fixed(2)),
    ("broker_cpu_casts", "broker CPU s per 10k casts (c)", _fixed(2)),
    ("total_cpu_calls", "server + client + broker CPU s per 10k calls (b)", _fixed(2)),
    ("total_cpu_casts", "server + client + broker CPU s per 10k casts (c)", _fixed(2)),
    ("rss_idle_mib", "(d) server RSS once serving (idle), MiB", _fixed(1)),
    ("rss_mib", "(d) server RSS after the run, MiB", _fixed(1)),
)

#: (key, label) of the quantities compared with the floors.
RATIOS: Sequence[Tuple[str, str]] = (
    ("seq_p50_us", "seq call p50 (lower is better)"),
    ("inflight_rate", "64-in-flight calls/s"),
    ("cast_publish_rate", "cast publish msg/s"),
    ("cast_dispatch_rate", "cast dispatch msg/s"),
    ("drain_rate", "drain msg/s"),
    ("cpu_calls", "server CPU per call (lower is better)"),
    ("cpu_casts", "server CPU per cast (lower is better)"),
    ("client_cpu_calls", "client CPU per call (lower is better)"),
    ("client_cpu_casts", "client CPU per cast (lower is better)"),
    ("broker_cpu_calls", "broker CPU per call (lower is better)"),
    ("broker_cpu_casts", "broker CPU per cast (lower is better)"),
    ("total_cpu_calls", "all three processes' CPU per call (lower is better)"),
    ("total_cpu_casts", "all three processes' CPU per cast (lower is better)"),
)


class Summary:
    """
    The median, minimum and maximum of some values.
    """

    def __init__(self, values: Sequence[float]) -> None:
        """
        @param values: at least one number.
        """
        self.values = list(values)
        self.median = statistics.median(self.values)
        self.low = min(self.values)
        self.high = max(self.values)

    def format(self, formatter: Callable[[float], str], suffix: str = "") -> str:
        """
        @return: C{"median (min–max)"}, or the single value for one rep;
            C{"n/a"} when a rep did not measure it (NaN).
        """
        if any(math.isnan(value) for value in self.values):
            return "n/a"
        if len(self.values) == 1:
            return f"{formatter(self.median)}{suffix}"
        return f"{formatter(self.median)}{suffix} ({formatter(self.low)}–{formatter(self.high)})"


def summarize(runs: Sequence[Dict[str, float]], key: str) -> Summary:
    """
    @return: the L{Summary} of C{key} over C{runs}.
    """
    return Summary([run.get(key, math.nan) for run in runs])


def ratio(runs: Dict[str, List[Dict[str, float]]], key: str, system: str, base: str) -> Optional[Summary]:
    """
    @return: the L{Summary} of C{system / base} for C{key}, computed per
        rep, or C{None} when one of them was not measured.
    """
    if system not in runs or base not in runs:
        return None
    values = []
    for mine, theirs in zip(runs[system], runs[base]):
        value, base_value = mine.get(key, math.nan), theirs.get(key, math.nan)
        if base_value and not math.isnan(base_value) and not math.isnan(value):
            values.append(value / base_value)
    return Summary(values) if values else None


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _times(value: float) -> str:
    return f"{value:.2f}"


def render(runs: Dict[str, List[Dict[str, float]]], titles: Dict[str, str],
           startup: Optional[Dict[str, Summary]] = None) -> str:
    """
    @param runs: the measurements (see the module docstring); keys among
        C{novasvc}, C{floor}, C{floor-oslo}, C{oslo}.
    @param titles: each system key's display name.
    @param startup: C{ready_s} and C{idle_rss_mib} L{Summary}s of
        C{twistd novasvc}, or C{None} when not measured.
    @return: the markdown tables (results, ratios, targets).
    """
    systems = list(runs)
    lines = ["### Measurements (median, min–max over reps)", ""]
    rows = [[label] + [summarize(runs[s], key).format(fmt) for s in systems] for key, label, fmt in METRICS]
    lines += _table(["metric"] + [titles[s] for s in systems], rows)

    # Each system beside each floor measured (but a floor beside itself, and
    # the bare floor beside the protocol floor: the inverse of the other).
    columns = [(s, floor, label) for s in systems for floor, label in FLOORS
               if floor in runs and s != floor and not (s == "floor" and floor == "floor-oslo")]
    if columns:
        lines += ["", "### Ratio to the floors (computed per rep; median, min–max)", ""]
        rows = []
        for key, label in RATIOS:
            row = [label]
            for s, floor, _ in columns:
                r = ratio(runs, key, s, floor)
                row.append(r.format(_times, "×") if r else "n/a")
            rows.append(row)
        lines += _table(["ratio"] + [f"{titles[s]} ÷ {label}" for s, _, label in columns], rows)

    lines += ["", "### Targets (novasvc; median of the per-rep ratios)", ""]
    lines += _table(["target", "measured", "result"], _targets(runs, startup))
    return "\n".join(lines) + "\n"


def _targets(runs: Dict[str, List[Dict[str, float]]], startup: Optional[Dict[str, Summary]]) -> List[List[str]]:
    rows: List[List[str]] = []

    def check(label: str, value: Optional[Summary], limit: float, at_most: bool, unit: str = "×",
              fmt: Callable[[float], str] = _times) -> None:
        if value is None:
            rows.append([label, "not measured", "n/a"])
            return
        met = value.median <= limit if at_most else value.median >= limit
        rows.append([label, value.format(fmt, unit), "**met**" if met else "**not met**"])

    check("server CPU per call ≤ 1.15× floor", ratio(runs, "cpu_calls", "novasvc", "floor"), 1.15, True)
    check("server CPU per cast ≤ 1.15× floor", ratio(runs, "cpu_casts", "novasvc", "floor"), 1.15, True)
    check("client CPU per call ≤ 1.15× floor", ratio(runs, "client_cpu_calls", "novasvc", "floor"), 1.15, True)
    check("seq call p50 ≤ 1.1× floor", ratio(runs, "seq_p50_us", "novasvc", "floor"), 1.1, True)
    check("64-in-flight calls/s ≥ 0.85× floor", ratio(runs, "inflight_rate", "novasvc", "floor"), 0.85, False)
    check("≥ 10× oslo.messaging on (b) 64-in-flight calls/s", ratio(runs, "inflight_rate", "novasvc", "oslo"), 10,
          False)
    check("≥ 10× oslo.messaging on (c) cast dispatch msg/s", ratio(runs, "cast_dispatch_rate", "novasvc", "oslo"),
          10, False)
    idle = Summary([run["rss_idle_mib"] for run in runs["novasvc"]]) if "novasvc" in runs else None
    check("idle server RSS ≤ 50 MiB (the benchmark's server: memory service store)", idle, 50, True, " MiB",
          _fixed(1))
    startup = startup or {}
    check("idle server RSS ≤ 50 MiB (`twistd novasvc`, SQLite service store, bench/startup.py)",
          startup.get("idle_rss_mib"), 50, True, " MiB", _fixed(1))
    check("`twistd novasvc` exec to consuming ≤ 1.0 s (bench/startup.py)", startup.get("ready_s"), 1.0, True, " s",
          _fixed(3))
    return rows


def describe_counts(counts: Dict[str, Any]) -> str:
    """
    @return: one line naming the counts a run used.
    """
    return (f"{counts['reps']} rep(s), interleaved; (a) {counts['seq']:,} sequential calls; "
            f"(b) {counts['inflight']:,} calls, {counts['window']} in flight; (c) {counts['casts']:,} casts, "
            f"drain of {counts['drain']:,}; argument {counts['payload']} bytes")
