"""The template cache without a server: what its key holds, how an entry is checked before use, and that a damaged or
foreign entry is never restored (the restore program is a stand-in that records what it was asked)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint
from envmgr.services.base import CommandResult
from envmgr.services.postgres.template.cache import CacheKey, entry_paths, restore_entry, save_entry, tool_versions
from envmgr.services.postgres.template.django_strategy import DjangoMigrate
from envmgr.services.postgres.template.strategies import AlembicMigrate, CommandMigrate
from envmgr.services.postgres.tools import PgTools

KEY = CacheKey(template="app_tpl_1a81a223a92b", digest="ab" * 32, major=15, owner="envmgr", tools={"django": "5.2"})


class Recorder:
    """A container that runs pg_dump (writes `dump` bytes) and pg_restore (exit code `restore_exit`)."""

    def __init__(self, dump: bytes = b"PGDMP dump", restore_exit: int = 0) -> None:
        self.dump = dump
        self.restore_exit = restore_exit
        self.calls: list[list[str]] = []

    def run_in_container(self, container: str, command: list[str], **files: dict[str, Path]) -> CommandResult:
        self.calls.append(command)
        if command[0] == "pg_dump":
            for target in files.get("outputs", {}).values():
                target.write_bytes(self.dump)
            return CommandResult(0, "")
        if self.restore_exit:
            return CommandResult(self.restore_exit, 'pg_restore: error: could not execute query: ERROR:  role "x"')
        return CommandResult(0, "")


def _tools(recorder: Recorder) -> PgTools:
    endpoint = ServiceEndpoint(service="postgres", scheme="postgresql", host="127.0.0.1", port=5432,
                               internal_host="postgres", internal_port=5432, username="envmgr", password="pw",
                               container="c1")  # fmt: skip
    return PgTools(endpoint, recorder)


@pytest.mark.parametrize(
    "change",
    [{"template": "app_tpl_ffffffffffff"}, {"digest": "cd" * 32}, {"major": 16}, {"owner": "other"},
     {"tools": {"django": "5.3"}}, {"server_settings": {"TimeZone": "UTC"}}, {"format": 2}],
)  # fmt: skip
def test_every_part_of_the_key_names_another_entry(change: dict[str, object]) -> None:
    other = replace(KEY, **change)  # type: ignore[arg-type]
    assert other.id != KEY.id
    assert other.stem != KEY.stem


def test_the_entry_is_named_by_template_major_and_key() -> None:
    assert KEY.stem == f"app_tpl_1a81a223a92b-pg15-{KEY.id}"
    assert len(KEY.id) == 16
    settings = Settings(project_root=Path("."), postgres={"user": "owner", "settings": {"jit": False}})
    key = CacheKey.of("t", "d", 150010, settings)
    assert (key.major, key.owner, key.tools, key.server_settings) == (15, "owner", {}, {"jit": "False"})


def test_the_migration_tools_versions_are_part_of_the_key(tmp_path: Path) -> None:
    django = tool_versions(DjangoMigrate(tmp_path, "s", (), ()))
    alembic = tool_versions(AlembicMigrate(tmp_path / "alembic.ini", tmp_path, None))
    assert set(django) == {"django"}
    assert set(alembic) == {"alembic", "sqlalchemy"}
    assert tool_versions(CommandMigrate("make migrate", tmp_path, ())) == {}
    assert tool_versions(None) == {}


def test_a_saved_entry_is_restored(tmp_path: Path) -> None:
    recorder = Recorder()
    saved = save_entry(tmp_path, KEY, _tools(recorder), "app_tpl_building")
    assert saved.state == "saved"
    assert saved.line.startswith(f"template cache: {KEY.template} saved in {tmp_path} (0.0 MB, ")
    dump, manifest = entry_paths(tmp_path, KEY)
    assert dump.read_bytes() == b"PGDMP dump"
    assert json.loads(manifest.read_text())["key"]["digest"] == KEY.digest
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([dump.name, manifest.name]), "no partial file"
    restored = restore_entry(tmp_path, KEY, _tools(recorder), "app_tpl_building")
    assert restored.state == "hit"
    assert restored.line.startswith(f"template cache: {KEY.template} restored from {tmp_path} in ")
    assert recorder.calls[-1][0] == "pg_restore"
    assert "--single-transaction" in recorder.calls[-1]
    assert "--no-owner" not in recorder.calls[-1], "the template's owners and grants are part of it"


def test_no_entry_is_a_miss_and_another_keys_entry_is_not_read(tmp_path: Path) -> None:
    recorder = Recorder()
    save_entry(tmp_path, KEY, _tools(recorder), "db")
    other = replace(KEY, digest="cd" * 32)
    assert restore_entry(tmp_path, other, _tools(recorder), "db").state == "miss"
    assert [call[0] for call in recorder.calls] == ["pg_dump"]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda dump, manifest: dump.write_bytes(b"PGDMP dumq"), "its dump is not the one saved: 10 bytes"),
        (lambda dump, manifest: dump.write_bytes(b"PGDMP"), "its dump is not the one saved: 5 bytes"),
        (lambda dump, manifest: dump.unlink(), "its dump cannot be read"),
        (lambda dump, manifest: manifest.write_text("{"), "its manifest cannot be read"),
        (lambda dump, manifest: manifest.write_text(manifest.read_text().replace('"envmgr"', '"x"')),
         "its manifest names another key"),
    ],
)  # fmt: skip
def test_a_damaged_entry_is_ignored_with_one_line_and_never_restored(tmp_path: Path, damage: object, why: str) -> None:
    recorder = Recorder()
    save_entry(tmp_path, KEY, _tools(recorder), "db")
    dump, manifest = entry_paths(tmp_path, KEY)
    damage(dump, manifest)  # type: ignore[operator]
    outcome = restore_entry(tmp_path, KEY, _tools(recorder), "db")
    assert outcome.state == "ignored"
    assert outcome.line.startswith(f"template cache: ignored {manifest.name} ({why}")
    assert outcome.line.endswith("; building from the migrations and saving it again")
    assert "\n" not in outcome.line
    assert [call[0] for call in recorder.calls] == ["pg_dump"], "pg_restore never ran"


def test_a_restore_that_fails_is_ignored_with_pg_restores_error(tmp_path: Path) -> None:
    save_entry(tmp_path, KEY, _tools(Recorder()), "db")
    outcome = restore_entry(tmp_path, KEY, _tools(Recorder(restore_exit=1)), "db")
    assert outcome.state == "ignored"
    assert "(pg_restore failed: pg_restore: error: could not execute query" in outcome.line


def test_no_pg_restore_to_run_is_an_ignored_entry_and_no_pg_dump_a_template_not_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server envmgr did not start, and no client programs on this machine: the cache never fails the build."""
    save_entry(tmp_path, KEY, _tools(Recorder()), "db")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    on_host = PgTools(_tools(Recorder()).endpoint)  # no container
    restored = restore_entry(tmp_path, KEY, on_host, "db")
    assert restored.state == "ignored"
    assert "(pg_restore is needed and there is no pg_restore to run" in restored.line
    saved = save_entry(tmp_path / "other", KEY, on_host, "db")
    assert saved.state == "not saved"
    assert "pg_dump is needed and there is no pg_dump to run" in saved.line


def test_a_folder_that_cannot_be_written_is_not_saved_with_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    outcome = save_entry(blocked / "cache", KEY, _tools(Recorder()), "db")
    assert outcome.state == "not saved"
    assert outcome.line.startswith(f"template cache: {KEY.template} not saved in {blocked / 'cache'}: ")
