"""Seeds from real dumps against a real Postgres server: a plain `pg_dump` (COPY blocks, pg_dump's SET and
set_config lines, \\restrict) and a custom-format one (`pg_dump -Fc`, restored by pg_restore in the server's container
or on this machine), with their errors; the template of an environment seeded by a dump on both image sets."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, SeedError, ServiceEndpoint
from envmgr.engine.commands import EngineCommands
from envmgr.engine.connection import Engine
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.seeds import load_postgres_seeds
from envmgr.services.postgres.tools import PgTools
from tests.conftest import labelled
from tests.integration.test_seed_loading import _bare as _settings

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SOURCE_SQL = """
CREATE TABLE artists (id serial PRIMARY KEY, name text NOT NULL, born date, tags jsonb);
CREATE TABLE notes (id int PRIMARY KEY, artist int REFERENCES artists, body text);
INSERT INTO artists (name, born, tags) VALUES
  ('Nina; Simone', '1933-02-21', '{"genre": "jazz"}'), (E'tab\\there \\\\ back', NULL, NULL),
  ('it''s -- not a comment', '1941-05-24', '[1, 2]'), ('$$ no body $$', NULL, '"x"');
INSERT INTO notes SELECT i, 1 + i % 4, repeat('n', i) FROM generate_series(1, 500) AS i;
CREATE INDEX artists_name ON artists (name);
CREATE VIEW named AS SELECT name FROM artists;
"""
CONTENT = "SELECT (SELECT array_agg(name || coalesce(tags::text, '-') ORDER BY id) FROM artists), " \
          "(SELECT sum(length(body)) FROM notes), (SELECT last_value FROM artists_id_seq)"  # fmt: skip


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    with Environment(["postgres"], settings=_settings(tmp_path_factory.mktemp("bare"))) as env:
        env_id = env.id
        yield env.endpoints["postgres"]
    assert labelled(engine, env_id) == []


@pytest.fixture(scope="module")
def tools(server: ServiceEndpoint, engine: Engine) -> PgTools:
    """pg_dump and pg_restore in the server's container."""
    return PgTools(server, EngineCommands(engine.client))


@pytest.fixture(scope="module")
def source(server: ServiceEndpoint) -> Iterator[str]:
    """A database with tables, rows that need quoting, a sequence, an index and a view; its content."""
    with Janitor(server) as janitor:
        janitor.create("dump_source")
        with psycopg.connect(janitor.url("dump_source"), autocommit=True) as connection:
            connection.execute(SOURCE_SQL)  # type: ignore[call-overload]
            row = connection.execute(CONTENT).fetchone()
        yield str(row)
        janitor.drop("dump_source")


@pytest.fixture
def database(server: ServiceEndpoint) -> Iterator[str]:
    name = f"seeds_{uuid.uuid4().hex[:10]}"
    with Janitor(server) as janitor:
        janitor.create(name)
        yield janitor.url(name)
        janitor.drop(name)


def _dump(tools: PgTools, target: Path, *options: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    result = tools.dump("dump_source", target, options)
    assert result.exit_code == 0, result.output
    return target


def _content(url: str) -> str:
    with psycopg.connect(url) as connection:
        return str(connection.execute(CONTENT).fetchone())


def test_a_plain_pg_dump_is_a_seed_as_it_is(tools: PgTools, source: str, database: str, tmp_path: Path) -> None:
    dump = _dump(tools, tmp_path / "seeds" / "postgres" / "001_prod.sql")
    text = dump.read_text()
    for written in ("COPY public.artists", "\\restrict", "set_config('search_path', ''"):
        assert written in text
    assert load_postgres_seeds(database, tmp_path / "seeds") == 1
    assert _content(database) == source


def test_a_dumps_search_path_ends_with_its_file(tools: PgTools, source: str, database: str, tmp_path: Path) -> None:
    """pg_dump sets search_path to '' for the session: a later seed file naming `artists` would not find it."""
    _dump(tools, tmp_path / "seeds" / "postgres" / "001_prod.sql")
    (tmp_path / "seeds" / "postgres" / "002_more.yaml").write_text("artists:\n  - {name: Later}\n")
    (tmp_path / "seeds" / "postgres" / "003_more.sql").write_text("INSERT INTO notes VALUES (900, 1, 'x');\n")
    assert load_postgres_seeds(database, tmp_path / "seeds") == 3
    with psycopg.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM artists WHERE name = 'Later'").fetchone() == (1,)


def test_a_bad_row_of_a_copy_block_is_named_by_its_line_and_nothing_is_left(
    tools: PgTools, source: str, database: str, tmp_path: Path
) -> None:
    dump = _dump(tools, tmp_path / "seeds" / "postgres" / "001_prod.sql")
    lines = dump.read_text().splitlines(keepends=True)
    copy = next(number for number, line in enumerate(lines, start=1) if line.startswith("COPY public.notes"))
    lines[copy + 2] = "3\tnot-a-number\tbody\n"  # the third row, on line copy + 3
    dump.write_text("".join(lines))
    with pytest.raises(SeedError) as caught:
        load_postgres_seeds(database, tmp_path / "seeds")
    assert f'(line {copy}) "COPY public.notes (id, artist, body) FROM stdin", row 3 (line {copy + 3})' in (
        caught.value.cause
    )
    assert caught.value.cause.endswith('InvalidTextRepresentation: invalid input syntax for type integer: '
                                       '"not-a-number"')  # fmt: skip
    with psycopg.connect(database) as connection:
        assert connection.execute("SELECT to_regclass('public.artists')").fetchone() == (None,)


def test_a_missing_owner_role_says_how_to_dump_without_owners(database: str, tmp_path: Path) -> None:
    folder = tmp_path / "seeds" / "postgres"
    folder.mkdir(parents=True)
    (folder / "001.sql").write_text("CREATE TABLE t (id int);\nALTER TABLE public.t OWNER TO prod_owner;\n")
    with pytest.raises(SeedError) as caught:
        load_postgres_seeds(database, tmp_path / "seeds")
    assert 'UndefinedObject: role "prod_owner" does not exist' in caught.value.cause
    assert "--no-owner --no-privileges" in caught.value.fix


def test_a_custom_format_dump_is_restored_in_the_servers_container(
    tools: PgTools, source: str, database: str, tmp_path: Path
) -> None:
    _dump(tools, tmp_path / "seeds" / "postgres" / "001_prod.dump", "--format=custom")
    assert load_postgres_seeds(database, tmp_path / "seeds", tools=tools) == 1
    assert _content(database) == source


def test_a_custom_format_dump_is_restored_by_the_hosts_pg_restore_without_a_container(
    tools: PgTools, source: str, database: str, tmp_path: Path
) -> None:
    if shutil.which("pg_restore") is None:
        pytest.skip("no pg_restore on PATH (postgresql-client): the host's way cannot be tried here")
    _dump(tools, tmp_path / "seeds" / "postgres" / "001_prod.dump", "--format=custom")
    assert load_postgres_seeds(database, tmp_path / "seeds") == 1  # no tools: the pg_restore on PATH
    assert _content(database) == source


def test_seed_files_before_a_dump_are_committed_for_it_and_after_it_see_it(
    tools: PgTools, source: str, database: str, tmp_path: Path
) -> None:
    """A data-only dump needs the tables a SQL seed before it made (pg_restore has its own connection)."""
    folder = tmp_path / "seeds" / "postgres"
    folder.mkdir(parents=True)
    (folder / "001_schema.sql").write_text(
        "CREATE TABLE artists (id serial PRIMARY KEY, name text NOT NULL, born date, tags jsonb);\n"
        "CREATE TABLE notes (id int PRIMARY KEY, artist int REFERENCES artists, body text);\n"
    )
    _dump(tools, folder / "002_data.dump", "--format=custom", "--data-only")
    (folder / "003_after.sql").write_text("UPDATE notes SET body = 'x' WHERE id = 1;\n")
    assert load_postgres_seeds(database, tmp_path / "seeds", tools=tools) == 3
    with psycopg.connect(database) as connection:
        assert connection.execute("SELECT count(*), min(body) FROM notes").fetchone() == (500, "nn")


def test_a_failing_dump_names_its_toc_entry_and_pg_restores_error(
    tools: PgTools, source: str, database: str, tmp_path: Path
) -> None:
    folder = tmp_path / "seeds" / "postgres"
    folder.mkdir(parents=True)
    (folder / "001_schema.sql").write_text("CREATE TABLE artists (id int);\n")  # the dump makes it again
    _dump(tools, folder / "002_prod.dump", "--format=custom")
    with pytest.raises(SeedError) as caught:
        load_postgres_seeds(database, tmp_path / "seeds", tools=tools)
    cause = caught.value.cause
    assert cause.startswith("seed file seeds/postgres/002_prod.dump failed at TOC entry ")
    assert ' "TABLE artists envmgr": ' in cause
    assert cause.endswith('pg_restore: error: could not execute query: ERROR:  relation "artists" already exists')
    with psycopg.connect(database) as connection:  # one transaction: nothing of the dump
        assert connection.execute("SELECT to_regclass('public.notes')").fetchone() == (None,)


@pytest.mark.parametrize("image_set", ["local", "official"])
def test_an_environment_seeded_by_both_kinds_of_dump_on_each_image_set(
    tools: PgTools, source: str, tmp_path: Path, image_set: str
) -> None:
    """The template's build restores the custom dump in the server's own container (either image)."""
    folder = tmp_path / "seeds" / "postgres"
    _dump(tools, folder / "001_prod.dump", "--format=custom")
    _dump(tools, folder / "002_more.sql", "--data-only", "--table=notes")
    more = folder / "002_more.sql"
    more.write_text(more.read_text().replace("COPY public.notes", "TRUNCATE public.notes;\nCOPY public.notes"))
    settings = _settings(tmp_path, seeds=tmp_path / "seeds", image_set=image_set)
    with Environment(["postgres"], settings=settings) as env:
        endpoint = env.endpoints["postgres"]
        assert endpoint.extra["template_created"] == "true"
        assert _content(endpoint.url) == source
