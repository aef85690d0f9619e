"""The HTML report (`--envmgr-report report.html`) as people see it (issue 22): a project of its own run three times
(its own pytest cache keeps the trend), the last with two xdist workers each running every test (a WireMock replica
each), its report opened
in Debian's headless chromium: one bar per service phase and replica with the JSON's durations, the trend's points
for the three runs, the wall time's parts, nothing fetched but the page itself, the tables there with scripts
disabled; a screenshot among the test's files. Then `envmgr report show` and `compare` on the project's cache."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from envmgr.engine.connection import Engine
from tests.conftest import REPO, in_namespace
from tests.integration.browser import Browser, chromium
from tests.integration.test_report_and_post_mortem import REPORT_TESTS

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

RUNS = 2
PYPROJECT = f"""
[project]
name = "reportdemo"

[tool.envmgr]
alembic_ini = "{REPO / "tests" / "example_app" / "alembic.ini"}"
seeds = "{REPO / "seeds"}"

[tool.envmgr.wiremock]
enabled = true
"""
TESTS = (
    REPORT_TESTS
    + """

import requests


@pytest.mark.parametrize("n", range(2))
def test_wiremock(wiremock_url, n):
    assert requests.get(f"{wiremock_url}/not-stubbed", timeout=10).status_code == 404  # the stubs answer anyone
"""
)
WIDTH = 1000


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Path:
    """The project after its runs (the last with -n 2), its report in out/report.html and out/report.json; the runs
    in a namespace of their own, which they leave empty."""
    folder = tmp_path_factory.mktemp("reportdemo")
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "test_demo.py").write_text(textwrap.dedent(TESTS))
    namespace = f"t{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVMGR_DAEMON_SOCKET", str(folder / "no-daemon.sock"))
        patch.setenv("ENVMGR_NAMESPACE", namespace)
        for run in range(RUNS):
            xdist = ["-n", "2", "--dist", "each"] if run == RUNS - 1 else []  # each worker reaches WireMock
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "no:randomly", "--envmgr-image-set", "local", *xdist,
                 "--envmgr-report", "out/report.html"],
                cwd=folder, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert in_namespace(engine, namespace) == []
    return folder


def report_of(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "out" / "report.json").read_text())
    return data


BARS = """[...document.querySelectorAll('#waterfall rect.bar')].map(r => ({
    service: r.dataset.service, phase: r.dataset.phase, replica: +r.dataset.replica, seconds: +r.dataset.seconds,
    width: r.getBoundingClientRect().width, left: r.getBoundingClientRect().left}))"""
POINTS = """[...document.querySelectorAll('#trend circle.point')].map(c => ({series: c.dataset.series,
    run: +c.dataset.run, seconds: +c.dataset.seconds, visible: c.getBoundingClientRect().width > 0}))"""
WALL = """[...document.querySelectorAll('#wall rect.wall')].map(r => ({part: r.dataset.part,
    seconds: +r.dataset.seconds, width: r.getBoundingClientRect().width}))"""
TABLES = """[...document.querySelectorAll('table')].map(t => t.innerText)"""


def test_a_browser_shows_the_waterfall_the_trend_and_the_wall_time(runs: Path, tmp_path: Path) -> None:
    chromium()  # skips only where Debian's chromium cannot be installed
    report = report_of(runs)
    page = runs / "out" / "report.html"
    assert page.stat().st_size < 40_000
    with Browser.started(tmp_path / "profile") as browser:
        browser.open(page.as_uri(), width=WIDTH, height=900)
        bars = browser.evaluate(BARS)
        points = browser.evaluate(POINTS)
        wall = browser.evaluate(WALL)
        shot = browser.screenshot(tmp_path / "report.png")
        assert browser.requests == [page.as_uri()], "self-contained: nothing fetched but the page itself"

    # one bar per phase of each replica, as the JSON's waterfall has them
    spans = report["waterfall"]
    assert sorted((b["service"], b["phase"], b["replica"]) for b in bars) == sorted(
        (s["service"], s["phase"], s["replica"]) for s in spans
    )
    replicas = {b["replica"] for b in bars if b["service"] == "wiremock"}
    assert replicas == {0, 1}, "the -n 2 run: a WireMock replica per worker"
    # each service phase the report counts is drawn, with the report's seconds (the slowest replica's)
    for service, entry in report["services"].items():
        for phase in ("create", "ready", "prepare", "migrate", "seed"):
            drawn = [b["seconds"] for b in bars if b["service"] == service and b["phase"] == phase]
            if entry[phase] > 0:
                assert drawn, (service, phase)
                assert max(drawn) == pytest.approx(entry[phase], abs=0.0015), (service, phase)
    assert {"postgres", "redis", "wiremock"} <= set(report["services"])
    # and drawn to scale: a bar's width is its seconds times one scale (bars under a pixel are drawn a pixel wide)
    widest = max(bars, key=lambda b: b["seconds"])
    scale = widest["width"] / widest["seconds"]
    for bar in bars:
        assert bar["width"] == pytest.approx(max(1.0, bar["seconds"] * scale), abs=1.0), bar

    # the trend: a point per run and figure, the same figures as the report's trend
    trend = report["trend"]
    assert trend["kept"]
    assert len(trend["runs"]) == RUNS
    for series in ("start_seconds", "reset_seconds", "test_seconds"):
        shown = sorted((p["run"], p["seconds"]) for p in points if p["series"] == series)
        assert [run for run, _ in shown] == list(range(RUNS)), series
        assert [seconds for _, seconds in shown] == pytest.approx([r[series] for r in trend["runs"]], abs=0.0001)
    assert all(p["visible"] for p in points)

    # the wall time's parts, as the JSON has them, side by side
    assert [w["part"] for w in wall] == ["pytest start", "collection", "tests", "teardown"]
    for part, key in zip(wall, ("pytest_start", "collection", "tests", "teardown"), strict=True):
        assert part["seconds"] == pytest.approx(report["wall"][key], abs=0.0001)
    assert sum(report["wall"][key] for key in ("pytest_start", "collection", "tests", "teardown")) == pytest.approx(
        report["wall"]["total"], abs=0.001
    )

    # the screenshot, among this test's files
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == WIDTH
    assert height > 900


def test_the_tables_read_without_scripts(runs: Path, tmp_path: Path) -> None:
    chromium()
    report = report_of(runs)
    page = runs / "out" / "report.html"
    with Browser.started(tmp_path / "profile") as browser:
        browser.open(page.as_uri(), width=WIDTH, height=900, scripts=False)
        tables = browser.evaluate(TABLES)  # the protocol's evaluation runs with the page's scripts disabled
    phases, resets = tables[1], tables[2]
    for service, entry in report["services"].items():
        assert service in phases
        assert f"{entry['create']:.2f} s" in phases
    assert f"postgres\t{report['services']['postgres']['resets']}\t" in resets  # the fresh databases
    assert report["services"]["postgres"]["resets"] == 4  # two in each of the two workers
    assert len(tables) == 4  # the wall time, the phases, the resets, the trend


def test_report_show_and_compare_read_the_projects_cache(runs: Path) -> None:
    report = report_of(runs)
    shown = subprocess.run([sys.executable, "-m", "envmgr", "report", "show"], cwd=runs, capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"environment {report['environment']}" in shown.stdout
    assert "postgres" in shown.stdout
    again = subprocess.run([sys.executable, "-m", "envmgr", "report", "show", "out/report.html"], cwd=runs,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1:] == shown.stdout.splitlines()[1:]  # the same report, from its file
    compared = subprocess.run([sys.executable, "-m", "envmgr", "report", "compare"], cwd=runs, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.startswith("last (")
    assert "against previous" in compared.stdout
    assert "slower:" in compared.stdout or "nothing got slower" in compared.stdout
