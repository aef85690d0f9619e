"""The report for people: the trend in pytest's cache, the HTML page (self-contained, its JSON inside), its charts,
and the text of `envmgr report show` and `compare`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from envmgr.reports.charts import environment_intervals, trend_chart, waterfall
from envmgr.reports.html import page, read_report, write_html
from envmgr.reports.text import changes, compare_lines, describe
from envmgr.reports.trend import KEPT_RUNS, KEY, Flag, flags, read_runs, remember, trend_until


class Cache:
    """pytest's config.cache, as the trend uses it, over a folder laid out as pytest lays it out."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str, default: Any) -> Any:
        path = self.folder / "v" / key
        return json.loads(path.read_text()) if path.exists() else default

    def set(self, key: str, value: object) -> None:
        path = self.folder / "v" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def report(start: float = 2.0, tests: float = 10.0, environment: str = "e1") -> dict[str, Any]:
    return {
        "environment": environment,
        "at": f"2025-01-01T00:00:0{int(start)}+00:00",
        "services": {
            "postgres": {
                "create": 0.5,
                "ready": 1.0,
                "prepare": 0.5,
                "migrate": 0.3,
                "seed": 0.1,
                "reset": 0.04,
                "resets": 2,
            },
            "wiremock": {
                "create": 0.4,
                "ready": 0.6,
                "prepare": 0.0,
                "migrate": 0.0,
                "seed": 0.0,
                "reset": 0.0,
                "resets": 0,
            },
        },
        "template": {"name": "app_tpl_ab", "created": True},
        "start_seconds": start,
        "reset_seconds": 0.04,
        "total_seconds": start + 0.04,
        "wall": {
            "pytest_start": 1.0,
            "collection": 0.5,
            "tests": tests,
            "teardown": 0.5,
            "total": 2.0 + tests,
            "origin": 0.9,
        },
        "waterfall": [
            {"service": "postgres", "phase": "create", "replica": 0, "start": 1.0, "seconds": 0.5, "ok": True},
            {"service": "wiremock", "phase": "create", "replica": 0, "start": 1.0, "seconds": 0.4, "ok": True},
            {"service": "wiremock", "phase": "create", "replica": 1, "start": 1.1, "seconds": 0.3, "ok": True},
            {"service": "postgres", "phase": "ready", "replica": 0, "start": 1.5, "seconds": 1.0, "ok": True},
            {"service": "postgres", "phase": "prepare", "replica": 0, "start": 2.5, "seconds": 0.5, "ok": True},
            {"service": "postgres", "phase": "migrate", "replica": 0, "start": 2.55, "seconds": 0.3, "ok": True},
        ],
    }


def test_the_trend_keeps_the_last_runs_in_pytests_cache_and_flags_growth(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    first = remember(cache, report(start=2.0))
    assert first["kept"]
    assert len(first["runs"]) == 1
    assert first["flags"] == []
    second = remember(cache, report(start=3.0, tests=10.1, environment="e2"))
    assert [flag["figure"] for flag in second["flags"]] == ["start_seconds"]  # tests +1%: noise, not a slowdown
    assert second["flags"][0]["text"] == "start time grew from 2.00 s to 3.00 s (+1.00 s, +50%)"
    stored = read_runs(tmp_path)  # as the CLI reads it, without pytest
    assert [run["environment"] for run in stored["runs"]] == ["e1", "e2"]
    assert stored["reports"][-1]["environment"] == "e2"
    assert trend_until(stored, stored["reports"][0])["runs"] == stored["runs"][:1]  # as the first run showed it
    assert trend_until(stored, stored["reports"][-1]) == {"runs": stored["runs"], "flags": second["flags"],
                                                          "kept": True}  # fmt: skip
    for _ in range(KEPT_RUNS + 5):
        remember(cache, report())
    assert len(read_runs(tmp_path)["runs"]) == KEPT_RUNS
    assert len(read_runs(tmp_path)["reports"]) == 5
    assert (tmp_path / "v" / KEY).is_file()


def test_without_pytests_cache_the_trend_is_this_run() -> None:
    trend = remember(None, report())
    assert trend == {"runs": [trend["runs"][0]], "flags": [], "kept": False}


def test_growth_must_pass_both_the_share_and_the_floor() -> None:
    assert flags(None, {"start_seconds": 9.0}) == []
    assert flags({"start_seconds": 0.1}, {"start_seconds": 0.3}) == []  # +200% of nothing much
    assert flags({"test_seconds": 100.0}, {"test_seconds": 110.0}) == []  # +10 s, but +10%
    assert flags({"test_seconds": 100.0}, {"test_seconds": 130.0}) == [Flag("test_seconds", 100.0, 130.0)]


def test_the_page_is_self_contained_and_holds_its_json(tmp_path: Path) -> None:
    data = report()
    data["trend"] = {"runs": [{"at": "t1", "start_seconds": 1.0, "reset_seconds": 0.0, "test_seconds": 3.0},
                              {"at": "t2", "start_seconds": 2.0, "reset_seconds": 0.1, "test_seconds": 2.0}],
                     "flags": [{"text": "start time grew from 1.00 s to 2.00 s (+1.00 s, +100%)"}]}  # fmt: skip
    data["started"] = {"postgres": "db_session </script><b>"}
    html = page(data)
    assert "<script src" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "<link" not in html
    assert "@import" not in html
    assert "db_session &lt;/script&gt;&lt;b&gt;" in html  # text escaped in the tables
    assert "start time grew from 1.00 s to 2.00 s" in html
    path = tmp_path / "report.html"
    write_html(path, data)
    assert read_report(path) == data  # the JSON inside survives `</script>` in a value
    json_path = tmp_path / "report.json"
    json_path.write_text(json.dumps(data))
    assert read_report(json_path) == data
    assert len(html) < 40_000


def test_a_file_that_is_no_report_says_so(tmp_path: Path) -> None:
    other = tmp_path / "other.html"
    other.write_text("<html></html>")
    with pytest.raises(ValueError, match="not an envmgr HTML report"):
        read_report(other)


def test_the_waterfall_has_a_bar_per_phase_and_replica_with_its_seconds() -> None:
    svg = waterfall(report()["waterfall"])
    bars = re.findall(r'<rect class="bar" [^>]*data-service="(\w+)" data-phase="(\w+)" data-replica="(\d)" '
                      r'data-start="([\d.]+)" data-seconds="([\d.]+)"', svg)  # fmt: skip
    assert sorted((s, p, int(r), float(sec)) for s, p, r, _, sec in bars) == sorted(
        (w["service"], w["phase"], w["replica"], w["seconds"]) for w in report()["waterfall"]
    )
    pattern = r'width="([\d.]+)" height="16" fill="#\w+" data-service="(\w+)" data-phase="(\w+)"'
    widths = {(m[1], m[2]): float(m[0]) for m in re.findall(pattern, svg)}
    assert widths[("postgres", "ready")] == pytest.approx(2 * widths[("postgres", "prepare")], rel=0.01)
    assert "wiremock-1" in svg
    assert "postgres template" in svg
    assert waterfall([]) == ""


def test_the_environment_intervals_merge_overlapping_spans() -> None:
    assert environment_intervals(report()["waterfall"]) == [(1.0, 3.0)]


def test_the_trend_chart_has_a_point_per_run_and_series() -> None:
    runs = [{"start_seconds": float(i), "test_seconds": 2.0 * i} for i in range(7)]
    svg = trend_chart(runs, ("start_seconds", "test_seconds"))
    assert len(re.findall(r'class="point"[^>]*data-series="start_seconds"', svg)) == 7
    assert len(re.findall(r'class="point"[^>]*data-series="test_seconds"', svg)) == 7


def test_compare_says_what_got_slower_first() -> None:
    before, after = report(start=2.0, tests=10.0), report(start=2.6, tests=20.0)
    slower, faster = changes(before, after)
    assert [change.figure for change in slower] == ["wall tests", "wall total", "start", "environment"]
    assert faster == []
    lines = compare_lines(before, after, ("a.json", "b.json"))
    assert lines[0].startswith("b.json against a.json")
    assert lines[2] == "  wall tests: 10.00 s -> 20.00 s (+10.00 s, +100%)"
    assert compare_lines(after, after, ("a", "b"))[1] == "nothing got slower"


def test_describe_prints_the_figures() -> None:
    lines = describe({**report(), "at": "2025-01-01T00:00:00+00:00"})
    assert lines[0] == "environment e1 (2025-01-01T00:00:00+00:00)"
    assert any(line.startswith("postgres ") and line.rstrip().endswith("2") for line in lines)
