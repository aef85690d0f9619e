"""`envmgr report show` and `envmgr report compare`: the run reports pytest wrote, and the last ones it kept in its
cache folder (envmgr.reports.trend: `.pytest_cache/v/envmgr/runs`, found from the project's pyproject.toml, or its
`cache_dir` setting; `--cache-dir` says where else).

    envmgr report show                   the last run's report, as text
    envmgr report show --open            ... as the HTML page, in a browser
    envmgr report show out/report.html   a report written by --envmgr-report (.json or .html)
    envmgr report compare                the run before the last against the last: what got slower
    envmgr report compare A B            two reports (paths, or `last` and `previous`)
"""

from __future__ import annotations

import tempfile
import tomllib
import webbrowser
from pathlib import Path
from typing import Annotated, Any

import typer

from envmgr.cli.app import err_console, out_console, run_command
from envmgr.config import find_pyproject
from envmgr.errors import ConfigError, EnvmgrError
from envmgr.reports.html import read_report, write_html
from envmgr.reports.text import compare_lines, describe
from envmgr.reports.trend import read_runs, trend_until

__all__ = ["report_compare", "report_show"]

NAMED = {"last": -1, "previous": -2}
CacheDirOption = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="pytest's cache folder (default: .pytest_cache of the project, or its cache_dir)"),
]


def report_show(
    report: Annotated[
        str, typer.Argument(help="a report written by --envmgr-report (.json or .html), or last, previous")
    ] = "last",
    open_: Annotated[bool, typer.Option("--open", help="open it as an HTML page in a browser")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="write it as an HTML page here")] = None,
    cache_dir: CacheDirOption = None,
) -> None:
    """Print a run report (by default the last run's, from pytest's cache), or open it in a browser."""

    def body() -> None:
        found, name = _report(report, cache_dir)
        if html is not None:
            write_html(html, found)
            err_console().print(f"written to {html}")
        if open_:
            page = html or _page_of(report, found)
            if not webbrowser.open(page.resolve().as_uri()):
                err_console().print(f"no browser to open it here: {page}")
            return
        console = out_console()
        console.print(f"report {name}", soft_wrap=True)
        for line in describe(found):
            console.print(line, soft_wrap=True)

    run_command(body)


def report_compare(
    before: Annotated[str, typer.Argument(help="the earlier report: a path, or last, previous")] = "previous",
    after: Annotated[str, typer.Argument(help="the later report: a path, or last, previous")] = "last",
    cache_dir: CacheDirOption = None,
) -> None:
    """Say what got slower (and faster) from one run report to another (by default: the last two runs)."""

    def body() -> None:
        old, old_name = _report(before, cache_dir)
        new, new_name = _report(after, cache_dir)
        console = out_console()
        for line in compare_lines(old, new, (old_name, new_name)):
            console.print(line, soft_wrap=True)

    run_command(body)


def _report(given: str, cache_dir: Path | None) -> tuple[dict[str, Any], str]:
    """The report `given` names (a path, or a run kept in the cache), and how to name it."""
    if given not in NAMED:
        path = Path(given)
        try:
            return read_report(path), str(path)
        except OSError as exc:
            raise EnvmgrError(f"cannot read report {path}: {exc.strerror or exc}", "give a report's path") from None
        except ValueError as exc:
            raise ConfigError(f"{exc}", "give the .json or .html file --envmgr-report wrote") from None
    folder = cache_dir or cache_folder()
    stored = read_runs(folder)
    reports = stored["reports"]
    index = NAMED[given]
    if len(reports) < -index:
        raise EnvmgrError(
            f"pytest's cache ({folder}) keeps {len(reports)} envmgr run{'s' if len(reports) != 1 else ''}: no "
            f"{given} run to show",
            "run pytest with envmgr (pytest's cache enabled: no -p no:cacheprovider) in this project, give "
            "--cache-dir, or a report's path",
        )
    found = {**reports[index]}
    found["trend"] = trend_until(stored, found)
    return found, f"{given} ({found.get('at', '?')}, environment {found.get('environment', '?')})"


def cache_folder(start: Path | None = None) -> Path:
    """pytest's cache folder of the project around `start`: its pyproject.toml's `cache_dir` (ini options), else
    .pytest_cache beside it; without a pyproject.toml, .pytest_cache here."""
    pyproject = find_pyproject(start)
    if pyproject is None:
        return (start or Path.cwd()) / ".pytest_cache"
    try:
        options = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
    except (OSError, tomllib.TOMLDecodeError):
        options = {}
    configured = options.get("ini_options", {}).get("cache_dir") if isinstance(options, dict) else None
    return pyproject.parent / (configured if isinstance(configured, str) else ".pytest_cache")


def _page_of(given: str, report: dict[str, Any]) -> Path:
    """An HTML page of the report to open: the file itself when it is one, else one written to a temporary file."""
    if given not in NAMED and Path(given).suffix.lower() in {".html", ".htm"}:
        return Path(given)
    with tempfile.NamedTemporaryFile("w", prefix="envmgr-report-", suffix=".html", delete=False) as handle:
        page = Path(handle.name)
    write_html(page, report)
    return page
