"""The fresh mark of a worker's database (`envmgr.services.postgres.janitor.fresh_mark`) and which databases under
the environment's prefix are workers' (`WORKER_DATABASE`): a mark only matches the same template and settings."""

from __future__ import annotations

import pytest

from envmgr.endpoints import Worker
from envmgr.services.postgres.janitor import fresh_mark
from envmgr.services.postgres.service import WORKER_DATABASE


def test_a_mark_names_its_template_and_the_settings_whatever_their_order() -> None:
    mark = fresh_mark("app_tpl_1", {"work_mem": "8MB", "search_path": ["app", "public"]})
    assert mark.startswith("envmgr fresh app_tpl_1 ")
    assert mark == fresh_mark("app_tpl_1", {"search_path": ["app", "public"], "work_mem": "8MB"})
    assert mark != fresh_mark("app_tpl_2", {"work_mem": "8MB", "search_path": ["app", "public"]})
    assert mark != fresh_mark("app_tpl_1", {"work_mem": "16MB", "search_path": ["app", "public"]})
    assert fresh_mark("app_tpl_1") == fresh_mark("app_tpl_1", {}) != mark


@pytest.mark.parametrize("worker_id", ["gw0", "gw17", "main"])
def test_every_worker_database_is_recognised(worker_id: str) -> None:
    name = Worker(worker_id, isolated=True).database("app")
    assert WORKER_DATABASE.fullmatch(name.removeprefix("app_"))


@pytest.mark.parametrize("suffix", ["gw0_snap_before", "tpl_0123abcd", "gw", "mainly", "other"])
def test_snapshots_templates_and_others_are_not(suffix: str) -> None:
    assert not WORKER_DATABASE.fullmatch(suffix)
