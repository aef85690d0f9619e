"""Dump seeds without a database: a plain pg_dump's COPY blocks and meta-commands as the splitter reads them, the
meta-commands a seed may not hold, a custom-format dump's header, and pg_restore's errors read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmgr.errors import SeedError
from envmgr.services.postgres.template.dump_seeds import restore_error
from envmgr.services.postgres.template.seeds import check_postgres_seeds, load_postgres_seeds
from envmgr.services.postgres.template.sql import split_sql
from envmgr.services.postgres.template.sql_seeds import _batches

PLAIN_DUMP = """--
-- PostgreSQL database dump
--

\\restrict 5KslgbK2HQtU7BG9CBK3EIahCP

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.a (id integer NOT NULL, t text);

--
-- Data for Name: a; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.a (id, t) FROM stdin;
1\tx;y'z -- not a comment
2\t$$ not a body
\\.


COPY public.b (id) FROM stdin;
\\.

SELECT pg_catalog.setval('public.a_id_seq', 2, true);

\\unrestrict 5KslgbK2HQtU7BG9CBK3EIahCP
"""


def _seeds(root: Path, files: dict[str, str | bytes]) -> Path:
    folder = root / "seeds" / "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content)
    return root / "seeds"


def test_a_plain_dump_splits_into_statements_copy_data_and_meta_commands() -> None:
    statements = split_sql(PLAIN_DUMP)
    kinds = [("meta" if s.meta else "copy" if s.data is not None else "sql", s.line) for s in statements]
    assert kinds == [("meta", 5), ("sql", 7), ("sql", 8), ("sql", 10), ("copy", 16), ("copy", 22), ("sql", 25),
                     ("meta", 27)]  # fmt: skip
    copy = statements[4]
    assert copy.text.endswith("COPY public.a (id, t) FROM stdin")
    assert copy.data == "1\tx;y'z -- not a comment\n2\t$$ not a body\n"
    assert copy.data_line == 17
    assert statements[5].data == ""
    assert statements[0].text == "\\restrict 5KslgbK2HQtU7BG9CBK3EIahCP"


def test_copy_data_run_to_the_end_of_the_text_without_a_terminator() -> None:
    statements = split_sql("SELECT 1;\ncopy t from STDIN;\n1\n2")
    assert [s.data for s in statements] == [None, "1\n2"]


def test_copy_to_stdout_and_from_a_file_are_plain_statements() -> None:
    statements = split_sql("COPY t TO stdout;\nCOPY t FROM '/tmp/x';\nSELECT 1;")
    assert [s.data for s in statements] == [None, None, None]
    assert [s.line for s in statements] == [1, 2, 3]


def test_a_copy_splits_the_batches_and_meta_commands_are_left_out() -> None:
    statements = split_sql(PLAIN_DUMP)
    batches = [(first, [s.line for s in batch]) for first, batch in _batches(statements)]
    assert batches == [(2, [7, 8, 10]), (5, [16]), (6, [22]), (7, [25])]


def test_a_plain_dump_is_a_well_formed_seed(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, {"001_dump.sql": PLAIN_DUMP})
    assert len(check_postgres_seeds(seeds)[0].statements) == 8


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        ("\\connect other", "dump one database, without --create"),
        ("\\c other", "dump one database, without --create"),
        ("\\copy a FROM 'a.csv'", "use COPY ... FROM stdin with the rows after it"),
        ("\\i other.sql", "runs no psql meta-command"),
        ("\\! rm -rf /", "runs no psql meta-command"),
        ("\\set ON_ERROR_STOP on", "runs no psql meta-command"),
        ("\\.", "end a COPY ... FROM stdin block with it"),
    ],
)
def test_a_meta_command_a_seed_cannot_run_is_refused_before_anything_is_sent(
    tmp_path: Path, line: str, fix: str
) -> None:
    seeds = _seeds(tmp_path, {"001_dump.sql": f"SELECT 1;\n\n{line}\nSELECT 2;\n"})
    with pytest.raises(SeedError) as caught:
        check_postgres_seeds(seeds)
    name = line[1:].split(maxsplit=1)[0]
    assert caught.value.cause == (
        f'seed file seeds/postgres/001_dump.sql failed at meta-command 2 (line 3) "{line}": psql meta-command \\{name}'
    )
    assert fix in caught.value.fix


def test_text_after_copy_from_stdin_on_its_line_is_refused(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, {"001.sql": "COPY a FROM stdin; SELECT 1;\n1\n\\.\n"})
    with pytest.raises(SeedError) as caught:
        check_postgres_seeds(seeds)
    assert "statement 1 (line 1)" in caught.value.cause
    assert "text after `FROM stdin;` on its line" in caught.value.cause
    comment = _seeds(tmp_path / "c", {"001.sql": "COPY a FROM stdin; -- rows\n1\n\\.\n"})
    assert check_postgres_seeds(comment)[0].statements[0].data == "1\n"


def test_a_dump_seed_must_be_a_custom_format_dump(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, {"001_prod.dump": "CREATE TABLE a ();\n"})
    with pytest.raises(SeedError) as caught:
        check_postgres_seeds(seeds)
    assert caught.value.cause == (
        "seed file seeds/postgres/001_prod.dump failed at reading: not a custom-format dump (it does not start with "
        "PGDMP)"
    )
    assert "001_prod.sql" in caught.value.fix
    good = _seeds(tmp_path / "good", {"001_prod.dump": b"PGDMP\x01\x0f\x00"})
    assert check_postgres_seeds(good)[0].dump


def test_pg_restore_errors_name_the_toc_entry_and_pg_restores_own_line() -> None:
    output = (
        "pg_restore: connecting to database for restore\n"
        'pg_restore: processing data for table "public.a"\n'
        "pg_restore: while PROCESSING TOC:\n"
        "pg_restore: from TOC entry 3318; 0 16390 TABLE DATA a envmgr\n"
        'pg_restore: error: COPY failed for table "a": ERROR:  invalid input syntax for type integer: "x"\n'
        'CONTEXT:  COPY a, line 3, column id: "x"\n'
    )
    error = restore_error("seeds/postgres/002.dump", output, "in container c")
    assert error.cause == (
        'seed file seeds/postgres/002.dump failed at TOC entry 3318 "TABLE DATA a envmgr": pg_restore: error: '
        'COPY failed for table "a": ERROR:  invalid input syntax for type integer: "x" (COPY a, line 3, column id: '
        '"x")'
    )


def test_a_dump_newer_than_pg_restore_says_how_to_make_one_it_reads() -> None:
    output = "pg_restore: error: unsupported version (1.16) in file header\n"
    error = restore_error("seeds/postgres/002.dump", output, "in container c")
    assert error.cause == (
        "seed file seeds/postgres/002.dump failed at pg_restore: pg_restore: error: unsupported version (1.16) in "
        "file header (pg_restore in container c)"
    )
    assert "plain SQL" in error.fix


def test_a_dump_seed_with_no_pg_restore_to_run_names_the_file_and_the_plain_sql_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server envmgr did not start (no container) and no client programs on this machine."""
    seeds = _seeds(tmp_path, {"001_prod.dump": b"PGDMP\x01\x0f\x00"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SeedError) as caught:
        load_postgres_seeds("postgresql://u:p@127.0.0.1:1/db", seeds)
    assert caught.value.cause == (
        "seed file seeds/postgres/001_prod.dump is a custom-format dump and pg_restore is needed and there is no "
        "pg_restore to run: the server runs in no container envmgr started, and pg_restore is not on PATH"
    )
    assert caught.value.fix.endswith(
        "or turn it into a plain SQL seed once: `pg_restore -f 001_prod.sql 001_prod.dump`"
    )
