"""The run report as one self-contained HTML page (`pytest --envmgr-report report.html`): no script, no font, no
network at view time; its tables read without anything else, its charts are inline SVG (envmgr.reports.charts);
the JSON report it shows is inside it (`<script type="application/json" id="envmgr-report">`), so that `envmgr
report show` and `compare` read an HTML report as they read a JSON one. About 20 KB.

Sections: the summary; where the wall time went (pytest start, collection, tests, teardown; when the environment
was starting); the waterfall of the environment's phases per service and replica (image, create, ready, prepare,
and the template's migrate and seed); the phases per service (the JSON's figures); the resets; the trend of the
project's last runs (start, reset and test time) with the figures that grew past the threshold flagged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from envmgr.reports.charts import COLORS, environment_intervals, trend_chart, wall_chart, waterfall

__all__ = ["TREND_SERIES", "page", "read_report", "write_html"]

TREND_SERIES = ("start_seconds", "reset_seconds", "test_seconds")
PHASES = ("create", "ready", "prepare", "migrate", "seed")
EMBEDDED = '<script type="application/json" id="envmgr-report">'
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:920px;color:#1c2833;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5d8dc;
padding-bottom:4px}
.sub{color:#5d6d7e;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0 10px}th,td{padding:3px 12px 3px 0;text-align:right;
font-variant-numeric:tabular-nums}th:first-child,td:first-child{text-align:left}th{border-bottom:1px solid #abb2b9}
.figures{display:flex;gap:24px;flex-wrap:wrap;margin:10px 0}.figure b{display:block;font-size:20px}
.figure span{color:#5d6d7e}
.flag{background:#fdedec;border-left:4px solid #c0392b;padding:4px 10px;margin:4px 0}
.ok{color:#5d6d7e}
svg text{font:11px system-ui,sans-serif;fill:#34495e}svg .row{text-anchor:end}svg .inner{fill:#7f8c8d}
svg .tick{text-anchor:middle;fill:#7f8c8d}svg .axis{stroke:#abb2b9}svg .grid{stroke:#eaecee}
svg rect.failed{stroke:#c0392b;stroke-width:2}svg .on-bar{text-anchor:middle;fill:#fff;pointer-events:none}
td.why,th.why{text-align:left}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:10px;height:10px;
margin-right:4px;vertical-align:baseline}
"""


def page(report: Mapping[str, Any]) -> str:
    """The HTML page of one report (see the module's documentation)."""
    spans = list(report.get("waterfall") or [])
    wall = report.get("wall") or {}
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>envmgr report {escape(str(report.get('environment', '')))}</title>",
        f"<style>{STYLE}</style></head><body>",
        *_summary(report, wall),
        *_flags(report),
        "<h2>Where the wall time went</h2>",
        *_wall(wall, spans),
        "<h2>Waterfall of the environment's phases</h2>",
        *_waterfall(spans),
        "<h2>Phases per service</h2>",
        _phase_table(report),
        "<h2>Resets</h2>",
        _resets_table(report),
        "<h2>Trend of the last runs</h2>",
        *_trend(report),
        EMBEDDED + _embedded(report) + "</script>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def write_html(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(report), encoding="utf-8")


def read_report(path: Path) -> dict[str, Any]:
    """A report from its JSON file or its HTML page (the JSON inside it). ValueError when it holds none."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".html", ".htm"} or text.lstrip().startswith("<"):
        start = text.find(EMBEDDED)
        if start < 0:
            raise ValueError(f"{path} is not an envmgr HTML report (no embedded report)")
        text = text[start + len(EMBEDDED) : text.index("</script>", start)]
    data = json.loads(text)
    if not isinstance(data, dict) or "services" not in data:
        raise ValueError(f"{path} is not an envmgr report")
    return data


def _embedded(report: Mapping[str, Any]) -> str:
    """The report as JSON that cannot end the script element early."""
    return json.dumps(report, separators=(",", ":")).replace("</", "<\\/")


def _seconds(value: Any) -> str:
    return f"{float(value):.2f} s"


def _summary(report: Mapping[str, Any], wall: Mapping[str, Any]) -> list[str]:
    template = report.get("template")
    facts = [f"environment <b>{escape(str(report.get('environment', '?')))}</b>"]
    if template:
        state = "built" if template.get("created") else "reused"
        facts.append(f"template {escape(str(template.get('name')))} {state}")
    engine = report.get("engine")
    if engine:
        facts.append(f"{escape(str(engine.get('kind')))} {escape(str(engine.get('version')))}")
    if report.get("at"):
        facts.append(escape(str(report["at"])))
    figures = [("start", report.get("start_seconds", 0.0)), ("resets", report.get("reset_seconds", 0.0))]
    if wall:
        figures += [("tests", wall.get("tests", 0.0)), ("wall", wall.get("total", 0.0))]
    return [
        "<h1>envmgr run report</h1>",
        f'<p class="sub">{" · ".join(facts)}</p>',
        '<div class="figures">'
        + "".join(f'<div class="figure"><b>{_seconds(value)}</b><span>{name}</span></div>' for name, value in figures)
        + "</div>",
    ]


def _flags(report: Mapping[str, Any]) -> list[str]:
    flags = (report.get("trend") or {}).get("flags") or []
    return [f'<p class="flag">{escape(str(flag.get("text", flag)))} since the last run</p>' for flag in flags]


def _wall(wall: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> list[str]:
    if not wall:
        return ['<p class="ok">Not measured in this run.</p>']
    rows = [("pytest start", "pytest_start", "interpreter, plugins, conftest files, up to the session's start"),
            ("collection", "collection", "collecting the tests (xdist: starting the workers)"),
            ("tests", "tests", "running them, waits for services included"),
            ("teardown", "teardown", "the session's end: the environment removed, the report written")]  # fmt: skip
    total = float(wall.get("total", 0.0)) or 1.0
    body = "".join(
        f"<tr><td>{name}</td><td>{_seconds(wall.get(key, 0.0))}</td><td>{float(wall.get(key, 0.0)) / total:.0%}</td>"
        f'<td style="text-align:left">{what}</td></tr>'
        for name, key, what in rows
    )
    starting = sum(end - start for start, end in environment_intervals(spans))
    waited = wall.get("waited")
    extra = f"<tr><td>environment starting</td><td>{_seconds(starting)}</td><td>{starting / total:.0%}</td>"
    extra += '<td style="text-align:left">while the parts above went on (in the background, or tests waiting)</td></tr>'
    if waited is not None:
        extra += (f"<tr><td>tests waiting for it</td><td>{_seconds(waited)}</td><td></td>"
                  '<td style="text-align:left">summed over the processes that ran tests</td></tr>')  # fmt: skip
    return [
        wall_chart(wall, spans),
        f"<table><tr><th>part</th><th>seconds</th><th>share</th><th></th></tr>{body}{extra}"
        f"<tr><th>wall</th><th>{_seconds(total)}</th><th></th><th></th></tr></table>",
    ]


def _waterfall(spans: Sequence[Mapping[str, Any]]) -> list[str]:
    if not spans:
        return ['<p class="ok">Nothing started in this run (an environment attached to, or leased from the daemon, '
                "started elsewhere).</p>"]  # fmt: skip
    shown = list(dict.fromkeys(str(span["phase"]) for span in spans))
    legend = "".join(f'<span><i style="background:{COLORS.get(phase, "#7f8c8d")}"></i>{phase}</span>' for phase in
                     sorted(shown, key=lambda p: list(COLORS).index(p) if p in COLORS else 99))  # fmt: skip
    return [f'<p class="legend">{legend}</p>', waterfall(spans)]


def _phase_table(report: Mapping[str, Any]) -> str:
    services: Mapping[str, Mapping[str, Any]] = report.get("services") or {}
    head = "".join(f"<th>{phase}</th>" for phase in PHASES)
    rows = "".join(
        f"<tr><td>{escape(name)}</td>"
        + "".join(f"<td>{_seconds(entry.get(phase, 0.0))}</td>" for phase in PHASES)
        + f'<td class="why">{escape(str((report.get("started") or {}).get(name, "")))}</td></tr>'
        for name, entry in services.items()
    )
    note = ""
    if report.get("skipped"):
        note = f'<p class="ok">Not started (no test used them): {escape(", ".join(report["skipped"]))}.</p>'
    explained = '<p class="ok">create and ready: the slowest replica; prepare includes migrate and seed.</p>'
    return f'<table><tr><th>service</th>{head}<th class="why">why</th></tr>{rows}</table>{explained}{note}'


def _resets_table(report: Mapping[str, Any]) -> str:
    services: Mapping[str, Mapping[str, Any]] = report.get("services") or {}
    rows = []
    for name, entry in services.items():
        count, seconds = int(entry.get("resets", 0)), float(entry.get("reset", 0.0))
        if count:
            rows.append(f"<tr><td>{escape(name)}</td><td>{count}</td><td>{_seconds(seconds)}</td>"
                        f"<td>{seconds / count * 1000:.1f} ms</td></tr>")  # fmt: skip
    if not rows:
        return '<p class="ok">No reset in this run (a rolled-back session or a Redis FLUSHDB is not one).</p>'
    total = float(report.get("reset_seconds", 0.0))
    return ("<table><tr><th>service</th><th>resets</th><th>seconds</th><th>each</th></tr>" + "".join(rows)
            + f"<tr><th>all</th><th></th><th>{_seconds(total)}</th><th></th></tr></table>")  # fmt: skip


def _trend(report: Mapping[str, Any]) -> list[str]:
    trend = report.get("trend") or {}
    runs: list[Mapping[str, Any]] = list(trend.get("runs") or [])
    if not runs:
        return ['<p class="ok">No trend: this report was written without one.</p>']
    notes = []
    if not trend.get("kept", True):
        notes.append('<p class="ok">pytest\'s cache is disabled (-p no:cacheprovider): only this run is shown.</p>')
    legend = "".join(f'<span><i style="background:{COLORS[name]}"></i>{name.replace("_seconds", "")} time</span>'
                     for name in TREND_SERIES)  # fmt: skip
    rows = "".join(
        f"<tr><td>{index}</td><td>{escape(str(run.get('at', '')))}</td>"
        + "".join(f"<td>{_seconds(run.get(name, 0.0))}</td>" for name in (*TREND_SERIES, "wall_seconds"))
        + "</tr>"
        for index, run in enumerate(runs, start=1)
    )
    return [
        *notes,
        f'<p class="legend">{legend}</p>',
        trend_chart(runs, TREND_SERIES),
        f"<table><tr><th>run</th><th>at (UTC)</th><th>start</th><th>resets</th><th>tests</th><th>wall</th></tr>{rows}"
        "</table>",
    ]
