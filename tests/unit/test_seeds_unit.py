"""Seeds and template identity without Docker: file order, SQL splitting, checks of malformed files, content hash."""

from __future__ import annotations

import operator
import shutil
from pathlib import Path
from typing import SupportsIndex

import pytest

from envmgr.config import Settings
from envmgr.errors import ConfigError, SeedError
from envmgr.services.postgres.seed_files import postgres_seed_files
from envmgr.services.postgres.template.alembic_upgrade import alembic_config, head_revisions, script_folders
from envmgr.services.postgres.template.build import building_name, template_name
from envmgr.services.postgres.template.content_hash import content_hash
from envmgr.services.postgres.template.seeds import check_postgres_seeds
from envmgr.services.postgres.template.sql import split_sql
from envmgr.services.postgres.urls import sqlalchemy_url

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_APP = REPO / "tests" / "example_app"


def _project(root: Path) -> Settings:
    """A copy of the repository's example project (alembic.ini, migrations, seeds) under `root`."""
    shutil.copytree(EXAMPLE_APP, root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "seeds", root / "seeds", ignore=shutil.ignore_patterns("__pycache__"))
    return Settings(project_root=root, alembic_ini=Path("app/alembic.ini"), seeds=Path("seeds"))


def _seeds(root: Path, files: dict[str, str]) -> Path:
    folder = root / "seeds" / "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return root / "seeds"


# file order ----------------------------------------------------------------------------------------------------


def test_seed_files_are_applied_in_file_name_order_and_helpers_are_skipped(tmp_path: Path) -> None:
    seeds = _seeds(
        tmp_path,
        {
            "010_late.sql": "",
            "002_users.yaml": "",
            "001_first.py": "",
            "003_rows.json": "",
            "004_more.yml": "",
            "_helpers.py": "",
            ".editor.sql": "",
            "README.md": "",
        },
    )
    (seeds / "postgres" / "005_folder.sql").mkdir()
    names = [path.name for path in postgres_seed_files(seeds)]
    assert names == ["001_first.py", "002_users.yaml", "003_rows.json", "004_more.yml", "010_late.sql"]


def test_no_postgres_folder_means_no_seed_files(tmp_path: Path) -> None:
    assert postgres_seed_files(tmp_path) == []
    assert check_postgres_seeds(tmp_path / "missing") == []


def test_repository_seeds_are_well_formed() -> None:
    checked = check_postgres_seeds(REPO / "seeds")
    assert [seed.shown for seed in checked] == [
        "seeds/postgres/001_users.yaml",
        "seeds/postgres/002_releases.sql",
        "seeds/postgres/003_extra.py",
    ]
    users = dict(checked[0].tables)["users"]
    assert [row["email"] for row in users] == ["ada@example.com", "kofi@example.com", "ines@example.com"]
    assert len(checked[1].statements) == 3
    assert checked[2].code is not None


# SQL splitting -------------------------------------------------------------------------------------------------


def _texts(sql: str) -> list[str]:
    return [statement.text for statement in split_sql(sql)]


def test_split_plain_statements_and_a_last_one_without_semicolon() -> None:
    assert _texts("SELECT 1; SELECT 2;\nSELECT 3") == ["SELECT 1", "SELECT 2", "SELECT 3"]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("INSERT INTO t VALUES ('a;b', 'it''s; fine'); SELECT 2", ["INSERT INTO t VALUES ('a;b', 'it''s; fine')"]),
        ("SELECT E'back\\'slash;'; SELECT 2", ["SELECT E'back\\'slash;'"]),
        ('SELECT 1 AS "odd;name"; SELECT 2', ['SELECT 1 AS "odd;name"']),
        ("SELECT 1 -- not here; really\n; SELECT 2", ["SELECT 1 -- not here; really"]),
        ("SELECT /* a; /* nested; */ b; */ 1; SELECT 2", ["SELECT /* a; /* nested; */ b; */ 1"]),
        ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT 2",
         ["CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql"]),
        ("DO $body$ BEGIN PERFORM $$;$$; END $body$; SELECT 2", ["DO $body$ BEGIN PERFORM $$;$$; END $body$"]),
        ("PREPARE p AS SELECT $1; SELECT 2", ["PREPARE p AS SELECT $1"]),
        ("SELECT a$b FROM t; SELECT 2", ["SELECT a$b FROM t"]),
        ("SELECT 'it''s'; SELECT 2", ["SELECT 'it''s'"]),
        ("SELECT 'a\\'; SELECT 2", ["SELECT 'a\\'"]),  # standard strings: a backslash is no escape
    ],
)  # fmt: skip
def test_split_respects_quotes_comments_and_dollar_quoting(sql: str, expected: list[str]) -> None:
    assert _texts(sql) == [*expected, "SELECT 2"]


def test_split_drops_empty_and_comment_only_statements() -> None:
    assert _texts(";;\n-- only a comment;\n/* and; another */ ;SELECT 1;  ;") == ["SELECT 1"]
    assert _texts("-- nothing\n") == []


def test_statement_lines_point_at_the_first_token() -> None:
    sql = "-- header\n\nINSERT INTO a VALUES (1);\n\n/* about b */\nINSERT INTO b\nVALUES (2);"
    statements = split_sql(sql)
    assert [s.line for s in statements] == [3, 6]
    assert statements[1].describe(2) == 'statement 2 (line 6) "INSERT INTO b VALUES (2)"'
    long = split_sql("SELECT " + ", ".join(f"column_{i}" for i in range(40)))[0]
    assert long.describe(1).endswith('..."')
    assert len(long.describe(1)) < 90


def test_unterminated_literal_keeps_the_rest_in_one_statement() -> None:
    assert _texts("SELECT 'open; SELECT 2") == ["SELECT 'open; SELECT 2"]


class _CountingText(str):
    """A SQL text that adds up how many characters `str.count` scans: how the splitter finds line numbers."""

    scanned = 0

    def count(self, sub: str, start: SupportsIndex | None = None, end: SupportsIndex | None = None) -> int:
        first = 0 if start is None else operator.index(start)
        last = len(self) if end is None else operator.index(end)
        type(self).scanned += max(0, last - first)
        return super().count(sub, start, end)


def _generated_sql(megabytes: float) -> tuple[str, list[int]]:
    """INSERTs with comments, literals holding `;` and multi-line statements; the line of each statement."""
    parts: list[str] = []
    lines: list[int] = []
    line = 1
    size = 0
    number = 0
    while size < megabytes * 1_000_000:
        if number % 100 == 0:
            chunk = f"-- block {number}; not a statement\n/* a; b\n c */\n"
            parts.append(chunk)
            line += chunk.count("\n")
        chunk = f"INSERT INTO t (id, note)\n  VALUES ({number}, 'x; -- y ''{number}''');\n"
        lines.append(line)
        parts.append(chunk)
        line += chunk.count("\n")
        size += len(chunk)
        number += 1
    return "".join(parts), lines


def test_split_counts_lines_once_over_the_text() -> None:
    text, lines = _generated_sql(0.2)
    counting = _CountingText(text)
    _CountingText.scanned = 0
    statements = split_sql(counting)
    assert [statement.line for statement in statements] == lines
    assert _CountingText.scanned <= len(text)  # counting from the file's start for each statement: ~n²/2


def test_split_of_a_5_mb_text_gives_every_statement_and_its_line() -> None:
    text, lines = _generated_sql(5)
    statements = split_sql(text)
    assert len(statements) == len(lines) > 40_000
    assert [statement.line for statement in statements] == lines
    last = len(lines) - 1
    assert statements[-1].text == f"INSERT INTO t (id, note)\n  VALUES ({last}, 'x; -- y ''{last}''')"
    assert statements[-1].describe(len(lines)).startswith(f"statement {len(lines)} (line {lines[-1]}) ")


@pytest.mark.parametrize(
    "statement",
    ["BEGIN", "commit", "END", "ROLLBACK", "/* c */ START TRANSACTION", "SAVEPOINT a", "RELEASE a", "abort"],
)
def test_transaction_control_in_a_sql_seed_is_refused_before_anything_runs(tmp_path: Path, statement: str) -> None:
    seeds = _seeds(tmp_path, {"001.sql": f"INSERT INTO t VALUES (1);\n{statement};\nSELECT 2;\n"})
    with pytest.raises(SeedError) as caught:
        check_postgres_seeds(seeds)
    assert caught.value.cause.startswith("seed file seeds/postgres/001.sql failed at statement 2 (line 2) ")
    assert caught.value.cause.endswith(": transaction control in a seed file")


def test_words_that_only_start_like_transaction_control_are_fine(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, {"001.sql": "SELECT endpoints();\nSELECT 'COMMIT';\nDO $$ BEGIN NULL; END $$;\n"})
    assert len(check_postgres_seeds(seeds)[0].statements) == 3


# malformed files -----------------------------------------------------------------------------------------------


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, {"001_users.yaml": "users:\n  - id: 1\n    email: [unclosed\n"})
    with pytest.raises(SeedError) as caught:
        check_postgres_seeds(seeds)
    cause = caught.value.cause
    assert cause.startswith("seed file seeds/postgres/001_users.yaml failed at line ")
    assert "invalid YAML" in cause
    assert caught.value.fix == "fix the seed file seeds/postgres/001_users.yaml"


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("001.yaml", "- just\n- a list\n", "the top level: expected a mapping of table name to a list of rows"),
        ("001.yaml", "users: {id: 1}\n", "table users: expected a list of rows, got dict"),
        ("001.yaml", "users:\n  - 7\n", "table users row 1: expected a mapping of column to value, got int"),
        ("001.yml", "users:\n  - {1: x}\n", "table users row 1: column names must be strings"),
        ("001.json", '{"users": [{"id": 1},]}', "line 1: invalid JSON"),
        ("001.py", "def seed(connection)\n    pass\n", "line 1: SyntaxError"),
    ],
)  # fmt: skip
def test_malformed_seed_files_raise_seed_error(tmp_path: Path, name: str, text: str, where: str) -> None:
    seeds = _seeds(tmp_path, {name: text})
    with pytest.raises(SeedError) as caught:
        check_postgres_seeds(seeds)
    assert caught.value.cause.startswith(f"seed file seeds/postgres/{name} failed at {where}")


def test_empty_data_files_are_fine(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, {"001.yaml": "# nothing yet\n", "002.json": "", "003.yaml": "users:\n"})
    assert [seed.tables for seed in check_postgres_seeds(seeds)] == [(), (), (("users", ()),)]


# URLs, names -----------------------------------------------------------------------------------------------------


def test_sqlalchemy_url_selects_psycopg3() -> None:
    assert sqlalchemy_url("postgresql://u:p@127.0.0.1:5432/app") == "postgresql+psycopg://u:p@127.0.0.1:5432/app"
    assert sqlalchemy_url("postgresql+psycopg2://h/db") == "postgresql+psycopg://h/db"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_template_and_building_names_fit_postgres_identifiers() -> None:
    digest = "0123456789abcdef" * 4
    assert template_name(Settings(), digest) == "app_tpl_0123456789ab"
    assert building_name("app_tpl_0123456789ab") == "app_tpl_0123456789ab_building"
    long_db = Settings(postgres={"database": "a" * 41})
    name = template_name(long_db, digest)
    building = building_name(name)
    assert len(building) == 63
    assert building.endswith("_tpl_0123456789ab_building")


# content hash ----------------------------------------------------------------------------------------------------


def test_content_hash_is_stable_and_independent_of_location(tmp_path: Path) -> None:
    first = _project(tmp_path / "one")
    second = _project(tmp_path / "elsewhere" / "two")
    digest = content_hash(first)
    assert len(digest) == 64
    assert content_hash(first) == digest
    assert content_hash(second) == digest
    repo = Settings(project_root=REPO, alembic_ini=Path("tests/example_app/alembic.ini"), seeds=Path("seeds"))
    assert content_hash(repo) == digest


def test_content_hash_ignores_line_endings_and_bytecode(tmp_path: Path) -> None:
    settings = _project(tmp_path)
    digest = content_hash(settings)
    migration = tmp_path / "app" / "migrations" / "versions" / "0002_tracks.py"
    migration.write_bytes(migration.read_bytes().replace(b"\n", b"\r\n"))
    cache = migration.parent / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "0002_tracks.cpython-311.pyc").write_bytes(b"\x00compiled")
    assert content_hash(settings) == digest


@pytest.mark.parametrize(
    "change",
    [
        "edit a migration",
        "add a migration",
        "edit alembic.ini",
        "edit a seed",
        "add a seed",
        "rename a seed",
        "edit a seed helper",
    ],
)
def test_content_hash_changes_with_migrations_and_seeds(tmp_path: Path, change: str) -> None:
    settings = _project(tmp_path)
    before = content_hash(settings)
    versions = tmp_path / "app" / "migrations" / "versions"
    seeds = tmp_path / "seeds" / "postgres"
    if change == "edit a migration":
        path = versions / "0002_tracks.py"
        path.write_text(path.read_text().replace('"ix_releases_artist_title"', '"ix_releases_artist"'))
    elif change == "add a migration":
        (versions / "0003_more.py").write_text('revision = "0003"\ndown_revision = "0002"\n')
    elif change == "edit alembic.ini":
        path = tmp_path / "app" / "alembic.ini"
        path.write_text(path.read_text() + "\n# a comment\n")
    elif change == "edit a seed":
        path = seeds / "001_users.yaml"
        path.write_text(path.read_text().replace("Ada Lindqvist", "Ada Lovelace"))
    elif change == "add a seed":
        (seeds / "004_more.sql").write_text("SELECT 1;\n")
    elif change == "rename a seed":
        (seeds / "003_extra.py").rename(seeds / "009_extra.py")
    else:
        (seeds / "_helpers.py").write_text("ARTISTS = ['Nina Simone']\n")
    assert content_hash(settings) != before


def test_content_hash_without_migrations_or_seeds(tmp_path: Path) -> None:
    bare = content_hash(Settings(project_root=tmp_path))
    assert bare == content_hash(Settings(project_root=tmp_path / "other"))
    _seeds(tmp_path, {"001.sql": "SELECT 1;"})
    assert content_hash(Settings(project_root=tmp_path, seeds=Path("seeds"))) != bare


# alembic configuration -------------------------------------------------------------------------------------------


def test_alembic_config_anchors_relative_paths_at_the_ini_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # far from the ini's folder
    ini = EXAMPLE_APP / "alembic.ini"
    cfg = alembic_config(ini, "postgresql://envmgr:p%40ss@127.0.0.1:5432/app_tpl_x")
    assert cfg.get_main_option("script_location") == str(EXAMPLE_APP / "migrations")
    assert cfg.get_prepend_sys_paths_list() == [str(EXAMPLE_APP)]
    assert cfg.get_main_option("sqlalchemy.url") == "postgresql+psycopg://envmgr:p%40ss@127.0.0.1:5432/app_tpl_x"
    assert cfg.attributes["sqlalchemy.url"] == "postgresql+psycopg://envmgr:p%40ss@127.0.0.1:5432/app_tpl_x"
    assert script_folders(ini) == [EXAMPLE_APP / "migrations"]
    assert head_revisions(ini) == ("0002",)


def test_missing_alembic_ini_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        content_hash(Settings(project_root=tmp_path, alembic_ini=Path("nope/alembic.ini")))
    assert caught.value.cause.startswith("alembic_ini: ")
    assert str(tmp_path / "nope" / "alembic.ini") in caught.value.cause
    assert caught.value.exit_code == 2  # a configuration error, not a failed migration (6)
