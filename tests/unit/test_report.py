"""The run report: wall time of replicas, resets of every process added up, the JSON shape and the one line."""

import json
import threading
import time
from pathlib import Path

import pytest

from envmgr.endpoints import Endpoints, ServiceEndpoint
from envmgr.pytest.report import build_report, merge_resets, report_line, resets_of, write_report
from envmgr.timings import Timings


def endpoint(service: str, extra: dict[str, str] | None = None) -> ServiceEndpoint:
    return ServiceEndpoint(
        service=service, scheme="x", host="127.0.0.1", port=1, internal_host=service, internal_port=1,
        container=f"ns-e1-{service}", extra=extra or {},
    )  # fmt: skip


POSTGRES_EXTRA = {"template": "app_tpl_ab12", "template_created": "true", "migrate_seconds": "0.090",
                  "seed_seconds": "0.110"}  # fmt: skip
ENDPOINTS = Endpoints(
    id="e1",
    network="n",
    services={
        "postgres": endpoint("postgres", POSTGRES_EXTRA),
        "redis": endpoint("redis"),
        "wiremock": endpoint("wiremock"),
    },
    replicas=(endpoint("wiremock").model_copy(update={"replica": 1, "container": "ns-e1-wiremock-1"}),),
)


def test_replicas_count_their_slowest_and_repeats_add_up() -> None:
    timings = Timings()

    def replica(index: int, seconds: float) -> None:
        with timings.measure("wiremock", "create", index):
            time.sleep(seconds)

    threads = [threading.Thread(target=replica, args=(i, s)) for i, s in enumerate((0.05, 0.15, 0.1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(3):
        with timings.measure("postgres", "reset"):
            time.sleep(0.01)
    assert 0.15 <= timings.phases["wiremock"]["create"] < 0.25  # the slowest replica, not the 0.3 s sum
    assert timings.counts["wiremock"]["create"] == 3
    assert timings.phases["postgres"]["reset"] >= 0.03
    assert timings.counts["postgres"]["reset"] == 3


def test_resets_of_every_process_add_up() -> None:
    timings = Timings()
    with timings.measure("postgres", "reset"):
        pass
    with timings.measure("postgres", "create"):
        pass
    own = resets_of(timings.phases, timings.counts)
    assert set(own) == {"postgres"}
    assert own["postgres"]["count"] == 1
    workers = [{"wiremock": {"seconds": 0.2, "count": 4}}, {"wiremock": {"seconds": 0.1, "count": 2}}]
    merged = merge_resets([own, *workers])
    assert merged["wiremock"] == {"seconds": pytest.approx(0.3), "count": 6}
    assert merged["postgres"]["count"] == 1


def report() -> dict[str, object]:
    phases = {"postgres": {"create": 0.52, "ready": 0.31, "prepare": 0.4}, "redis": {"create": 0.2, "ready": 0.002}}
    resets = {"postgres": {"seconds": 0.03, "count": 2}, "wiremock": {"seconds": 0.01, "count": 1},
              "celery": {"seconds": 0.005, "count": 1}}  # fmt: skip
    return build_report(ENDPOINTS, phases, resets, start_seconds=1.5)


def test_the_json_has_the_documented_shape(tmp_path: Path) -> None:
    data = report()
    write_report(tmp_path / "deep" / "out.json", data)
    again = json.loads((tmp_path / "deep" / "out.json").read_text())
    assert again["environment"] == "e1"
    assert list(again["services"]) == ["postgres", "redis", "wiremock", "celery"]  # replicas are not services
    assert again["services"]["postgres"] == {
        "create": 0.52, "ready": 0.31, "prepare": 0.4, "migrate": 0.09, "seed": 0.11, "reset": 0.03, "resets": 2,
    }  # fmt: skip
    assert again["services"]["redis"]["resets"] == 0
    assert again["template"] == {"name": "app_tpl_ab12", "created": True}
    assert again["reset_seconds"] == 0.045
    assert again["total_seconds"] == 1.545


def test_the_line_is_concise() -> None:
    line = report_line(report())
    assert "\n" not in line
    assert line == (
        "envmgr: environment e1 | template app_tpl_ab12 built "
        "| postgres create 0.52s ready 0.31s prepare 0.40s migrate 0.09s seed 0.11s "
        "| redis create 0.20s ready 0.00s "
        "| resets 4 in 45 ms (postgres 2, wiremock 1, celery 1)"
    )


def test_a_reused_template_and_no_resets() -> None:
    extra = {**POSTGRES_EXTRA, "template_created": "false", "migrate_seconds": "0.000", "seed_seconds": "0.000"}
    endpoints = Endpoints(id="e2", network="n", services={"postgres": endpoint("postgres", extra)})
    line = report_line(build_report(endpoints, {"postgres": {"prepare": 0.05}}, {}))
    assert line == (
        "envmgr: environment e2 | template app_tpl_ab12 reused (migrations and seeds skipped) "
        "| postgres prepare 0.05s | resets 0"
    )


def test_a_template_restored_from_the_cache_says_so_in_the_line_and_the_json() -> None:
    said = "template cache: app_tpl_ab12 restored from /ci/cache in 0.81 s"
    extra = {**POSTGRES_EXTRA, "migrate_seconds": "0.000", "seed_seconds": "0.000", "template_cache": said,
             "template_restored": "true"}  # fmt: skip
    endpoints = Endpoints(id="e4", network="n", services={"postgres": endpoint("postgres", extra)})
    report = build_report(endpoints, {"postgres": {"prepare": 0.9}}, {})
    assert report["template"] == {"name": "app_tpl_ab12", "created": True, "cache": said, "restored": True}
    assert report_line(report) == (
        f"envmgr: environment e4 | {said} (migrations and seeds skipped) | postgres prepare 0.90s | resets 0"
    )
    saved = "template cache: app_tpl_ab12 saved in /ci/cache (1.1 MB, 0.52 s)"
    extra = {**POSTGRES_EXTRA, "template_cache": saved}
    endpoints = Endpoints(id="e5", network="n", services={"postgres": endpoint("postgres", extra)})
    assert f"| template app_tpl_ab12 built | {saved} |" in report_line(build_report(endpoints, {}, {}))


LOCAL_DOCKER = {"kind": "Docker", "version": "20.10.24", "api_version": "1.41", "url": "unix:///var/run/docker.sock",
                "remote": False, "tls": False, "reached_at": "127.0.0.1", "published_on": "127.0.0.1"}  # fmt: skip


def test_the_engine_is_in_the_json_and_in_the_line_when_it_is_not_the_usual_local_docker() -> None:
    endpoints = Endpoints(id="e3", network="n", services={"redis": endpoint("redis")})
    local = build_report(endpoints, {"redis": {"create": 0.2}}, {}, engine=LOCAL_DOCKER)
    assert local["engine"] == LOCAL_DOCKER
    assert report_line(local) == "envmgr: environment e3 | redis create 0.20s | resets 0"
    remote = {**LOCAL_DOCKER, "url": "tcp://10.213.0.2:2375", "remote": True, "reached_at": "10.213.0.2"}
    assert report_line(build_report(endpoints, {"redis": {"create": 0.2}}, {}, engine=remote)).endswith(
        "| resets 0 | Docker 20.10.24 at tcp://10.213.0.2:2375"
    )
    podman = {**LOCAL_DOCKER, "kind": "Podman", "version": "4.3.1", "url": "unix:///run/podman/podman.sock"}
    assert report_line(build_report(endpoints, {}, {}, engine=podman)).endswith(
        "| Podman 4.3.1 at unix:///run/podman/podman.sock"
    )
    assert "engine" not in build_report(endpoints, {}, {})  # leased from the daemon: its engine is not known here
