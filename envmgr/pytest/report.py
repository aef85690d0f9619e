"""What an environment cost a test run, per service, and the container logs kept after a failed run.

The report (`pytest --envmgr-report PATH`, and the one line at the end of the terminal summary):

    {"environment": "3f2a1b9c0d",
     "services": {"postgres": {"create": 0.52, "ready": 0.31, "prepare": 0.4, "migrate": 0.09, "seed": 0.11,
                               "reset": 0.02, "resets": 2}, ...},
     "template": {"name": "app_tpl_...", "created": true},
     "start_seconds": 1.9, "reset_seconds": 0.02, "total_seconds": 1.92,
     "engine": {"kind": "Docker", "version": "20.10.24", "api_version": "1.41", "url": "unix:///var/run/docker.sock",
                "remote": false, "tls": false, "reached_at": "127.0.0.1", "published_on": "127.0.0.1"}}

`create` and `ready` are wall time (the replicas of a per-worker service start concurrently: the slowest counts);
`prepare` includes `migrate` and `seed` (the template database built once per run); `reset` and `resets` add up
every reset made in every pytest process: `Environment.reset`, `envmgr_fresh_db` re-clones, S3/SQS account
resets, WireMock resets and Celery purges (a `db_session` rollback or a Redis FLUSHDB after a test is not one).
`start_seconds` is the wall time of starting (or attaching to) the environment; `total_seconds` adds the resets.
`engine` (`envmgr.engine.EngineInfo`) names the engine the environment runs on: Docker or Podman, local or remote,
and where its ports are reached; it is left out for an environment leased from the daemon (the daemon's engine).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envmgr.endpoints import Endpoints

if TYPE_CHECKING:
    from envmgr.engine.connection import Engine

__all__ = ["build_report", "merge_resets", "report_line", "resets_of", "write_container_logs", "write_report"]

PHASES = ("create", "ready", "prepare", "migrate", "seed", "reset")
RESET = "reset"
SHOWN_MINIMUM = 0.005
"""phases shorter than this are left out of the one-line report (the JSON has them all)"""

Resets = dict[str, dict[str, float]]
"""{service: {"seconds": s, "count": n}}: what crosses from an xdist worker to the controller (workeroutput)"""


def resets_of(phases: Mapping[str, Mapping[str, float]], counts: Mapping[str, Mapping[str, int]]) -> Resets:
    """The resets among measured phases (`Environment.timings.phases` and `.counts`)."""
    return {
        service: {"seconds": float(timing[RESET]), "count": float(counts.get(service, {}).get(RESET, 0))}
        for service, timing in phases.items()
        if RESET in timing
    }


def merge_resets(records: Iterable[Mapping[str, Mapping[str, float]]]) -> Resets:
    """Add up the resets of several processes."""
    merged: Resets = {}
    for record in records:
        for service, entry in record.items():
            total = merged.setdefault(service, {"seconds": 0.0, "count": 0.0})
            total["seconds"] += float(entry.get("seconds", 0.0))
            total["count"] += float(entry.get("count", 0))
    return merged


def build_report(
    endpoints: Endpoints,
    phases: Mapping[str, Mapping[str, float]],
    resets: Mapping[str, Mapping[str, float]],
    start_seconds: float = 0.0,
    *,
    started: Mapping[str, str] | None = None,
    skipped: Sequence[str] = (),
    discarded: Sequence[str] = (),
    engine: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of one run: the environment's phases per service, its template facts, every reset, its engine;
    with `started`, why each service was started (the fixture or setting that first asked for it), which
    enabled services were `skipped` because no test used them, and which were `discarded`: started ahead because
    the last run used them (envmgr.pytest.prediction), removed once collection showed no test uses them."""
    names = list(endpoints.services)
    names += [name for name in resets if name not in names]  # e.g. celery purges with an in-process worker
    services: dict[str, dict[str, float | int]] = {}
    for name in names:
        measured = phases.get(name, {})
        extra = endpoints.services[name].extra if name in endpoints.services else {}
        entry: dict[str, float | int] = {phase: round(float(measured.get(phase, 0.0)), 4) for phase in PHASES[:3]}
        entry["migrate"] = round(_seconds(extra.get("migrate_seconds")), 4)
        entry["seed"] = round(_seconds(extra.get("seed_seconds")), 4)
        entry["reset"] = round(float(resets.get(name, {}).get("seconds", 0.0)), 4)
        entry["resets"] = int(resets.get(name, {}).get("count", 0))
        services[name] = entry
    reset_seconds = sum(float(entry.get("seconds", 0.0)) for entry in resets.values())
    report: dict[str, Any] = {"environment": endpoints.id, "services": services}
    if "postgres" in endpoints.services and "template" in endpoints.services["postgres"].extra:
        extra = endpoints.services["postgres"].extra
        report["template"] = {"name": extra["template"], "created": extra.get("template_created") == "true"}
        if extra.get("template_cache"):
            report["template"]["cache"] = extra["template_cache"]
            report["template"]["restored"] = extra.get("template_restored") == "true"
    if started is not None:
        report["started"] = dict(started)
        report["skipped"] = list(skipped)
        if discarded:
            report["discarded"] = list(discarded)
    report["start_seconds"] = round(start_seconds, 4)
    report["reset_seconds"] = round(reset_seconds, 4)
    report["total_seconds"] = round(start_seconds + reset_seconds, 4)
    if engine is not None:
        report["engine"] = dict(engine)
    given = {name: e.redacted_url for name, e in endpoints.services.items() if e.extra.get("given")}
    if given:  # servers envmgr did not start (`url`): where the run's databases were
        report["given"] = given
    return report


def report_line(report: Mapping[str, Any]) -> str:
    """The report in one line: `envmgr: environment ID | template ... | postgres create 0.52s ... | resets N`."""
    parts = [f"envmgr: environment {report['environment']}"]
    template = report.get("template")
    if template is not None and template.get("restored"):
        parts.append(f"{template['cache']} (migrations and seeds skipped)")
    elif template is not None:
        parts.append(
            f"template {template['name']} built"
            if template["created"]
            else f"template {template['name']} reused (migrations and seeds skipped)"
        )
        if template.get("cache"):
            parts.append(template["cache"])
    if report.get("given"):
        parts.append("on servers envmgr did not start: " + ", ".join(report["given"]))
    if report.get("started"):
        parts.append("started for " + ", ".join(f"{name} ({why})" for name, why in report["started"].items()))
    if report.get("skipped"):
        parts.append("skipped (unused) " + ", ".join(report["skipped"]))
    if report.get("discarded"):
        parts.append("started ahead (the last run), removed (unused) " + ", ".join(report["discarded"]))
    for name, entry in report["services"].items():
        shown = [
            f"{phase} {entry[phase]:.2f}s"
            for phase in PHASES[:-1]
            if entry[phase] >= SHOWN_MINIMUM or (phase in {"create", "ready"} and entry[phase] > 0)
        ]
        if shown:
            parts.append(f"{name} {' '.join(shown)}")
    counts = {name: int(entry["resets"]) for name, entry in report["services"].items() if entry["resets"]}
    resets = f"resets {sum(counts.values())}"
    if counts:
        detail = ", ".join(f"{name} {count}" for name, count in counts.items())
        resets += f" in {report['reset_seconds'] * 1000:.0f} ms ({detail})"
    parts.append(resets)
    engine = report.get("engine")
    if engine is not None and (engine["remote"] or engine["kind"] != "Docker"):  # the usual local Docker goes unsaid
        parts.append(f"{engine['kind']} {engine['version']} at {engine['url']}")
    return " | ".join(parts)


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def write_container_logs(engine: Engine, endpoints: Endpoints, folder: Path) -> list[Path]:
    """Every container's full log (stdout and stderr) in `folder`, one file each: `postgres.log`,
    `wiremock-1.log` for the replica of worker gw1; a container already gone gets a note instead."""
    import docker.errors  # only a post-mortem needs the engine
    import requests.exceptions

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for endpoint in endpoints.all():
        name = endpoint.service if endpoint.replica == 0 else f"{endpoint.service}-{endpoint.replica}"
        target = folder / f"{name}.log"
        try:
            raw: bytes = engine.client.containers.get(endpoint.container).logs(stdout=True, stderr=True)
            text = raw.decode("utf-8", "replace")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:  # gone, or no engine
            text = f"(logs of {endpoint.container} unavailable: {exc})\n"
        target.write_text(text)
        written.append(target)
    return written


def _seconds(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
