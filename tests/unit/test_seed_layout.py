"""The seeds folder's layout and its rule for symbolic links, checked by Settings.seeds_path() (no Docker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envmgr import Environment
from envmgr.config import Settings
from envmgr.errors import ConfigError, SeedError
from envmgr.services.aws.seeds import s3_seed_buckets
from envmgr.services.postgres.template.content_hash import content_hash
from envmgr.services.wiremock.seeds import wiremock_seed_dirs


def _project(root: Path, *, follow_symlinks: bool = False) -> Settings:
    """A project under `root` whose seeds folder holds one file of every kind, laid out as envmgr reads them."""
    seeds = root / "seeds"
    (seeds / "postgres").mkdir(parents=True)
    (seeds / "postgres" / "001_users.sql").write_text("SELECT 1;\n")
    (seeds / "s3" / "artwork").mkdir(parents=True)
    (seeds / "s3" / "artwork" / "cover.txt").write_text("cover")
    (seeds / "wiremock" / "mappings").mkdir(parents=True)
    (seeds / "wiremock" / "mappings" / "hello.json").write_text("{}")
    (seeds / "wiremock" / "__files").mkdir()
    (seeds / "sqs.yaml").write_text("queues: [deliveries]\n")
    return Settings(project_root=root, seeds=Path("seeds"), follow_symlinks=follow_symlinks)


def _outside(root: Path) -> Path:
    """A folder beside the project, with a file and a sub-folder in it."""
    folder = root.parent / f"{root.name}-outside"
    (folder / "bucket").mkdir(parents=True)
    (folder / "bucket" / "secret.txt").write_text("not part of the project")
    (folder / "stub.json").write_text("{}")
    return folder


def test_the_documented_layout_passes_with_notes_and_hidden_files(tmp_path: Path) -> None:
    settings = _project(tmp_path)
    seeds = tmp_path / "seeds"
    for note in ("README", "README.md", "notes.txt", "layout.rst", ".gitkeep"):
        (seeds / note).write_text("how the seeds are laid out")
    (seeds / ".idea").mkdir()
    (seeds / "postgres" / "_helpers").mkdir()
    (seeds / "postgres" / "__pycache__").mkdir()
    (seeds / "wiremock" / "README.md").write_text("stubs")
    assert settings.seeds_path() == seeds


def test_no_seeds_folder_set_means_no_seeds(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()  # not read unless the setting names it
    assert Settings(project_root=tmp_path).seeds_path() is None
    assert s3_seed_buckets(None) == {}


def test_a_seeds_folder_that_was_set_and_does_not_exist_is_a_seed_error(tmp_path: Path) -> None:
    settings = Settings(project_root=tmp_path, seeds=Path("seed"))
    with pytest.raises(SeedError) as caught:
        settings.seeds_path()
    assert caught.value.cause == f"the seeds folder {tmp_path / 'seed'} does not exist"
    assert "correct or remove the setting seeds" in (caught.value.fix or "")


def test_a_seeds_path_that_is_a_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "seeds.sql").write_text("SELECT 1;\n")
    settings = Settings(project_root=tmp_path, seeds=Path("seeds.sql"))
    with pytest.raises(ConfigError) as caught:
        settings.seeds_path()
    assert caught.value.cause == f"seeds: {tmp_path / 'seeds.sql'} is a file, not a folder"
    assert "set seeds in [tool.envmgr]" in (caught.value.fix or "")
    assert caught.value.exit_code == 2


def test_a_sql_file_in_the_seeds_root_names_the_file_and_where_it_goes(tmp_path: Path) -> None:
    settings = _project(tmp_path)
    (tmp_path / "seeds" / "001.sql").write_text("SELECT 1;\n")
    with pytest.raises(SeedError) as caught:
        settings.seeds_path()
    assert caught.value.cause == (
        "seed path seeds/001.sql is not where envmgr reads seeds: Postgres seed files go in seeds/postgres/ "
        "(seeds/postgres/001.sql)"
    )
    assert "postgres/, s3/<bucket>/, sqs.yaml and wiremock/{mappings,__files}/" in (caught.value.fix or "")
    with pytest.raises(SeedError, match=r"seeds/001\.sql"):
        content_hash(settings)  # what a template build calls first


@pytest.mark.parametrize(
    ("relative", "folder", "expected"),
    [
        ("data.csv", False, "seed path seeds/data.csv is not where envmgr reads seeds: a file there is not read"),
        ("users.yaml", False, "(seeds/postgres/users.yaml)"),
        ("buckets", True, "a folder there is not read; the seeds folder holds postgres/, s3/<bucket>/"),
        ("postgres/v2", True, "only the files directly in seeds/postgres/ are applied"),
        ("s3/loose.png", False, "S3 objects go in a bucket folder (seeds/s3/<bucket>/loose.png)"),
        ("wiremock/stub.json", False, "WireMock stubs go in seeds/wiremock/mappings/"),
        ("wiremock/files", True, "seed path seeds/wiremock/files is not where envmgr reads seeds"),
        ("sqs.yaml.bak", False, "seed path seeds/sqs.yaml.bak is not where envmgr reads seeds"),
    ],
)
def test_entries_envmgr_would_not_read_are_seed_errors(
    tmp_path: Path, relative: str, folder: bool, expected: str
) -> None:
    settings = _project(tmp_path)
    path = tmp_path / "seeds" / relative
    if folder:
        path.mkdir()
    else:
        path.write_text("x")
    with pytest.raises(SeedError) as caught:
        settings.seeds_path()
    assert expected in caught.value.cause
    assert f"seeds/{relative}" in caught.value.cause


def test_a_known_folder_name_that_is_a_file_is_a_seed_error(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "postgres").write_text("SELECT 1;\n")
    with pytest.raises(SeedError, match="seeds/postgres must be a folder"):
        Settings(project_root=tmp_path, seeds=Path("seeds")).seeds_path()


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("postgres/002_more.sql", "stub.json"),  # a Postgres seed file
        ("s3/private", "bucket"),  # an S3 bucket folder
        ("s3/artwork/secret.txt", "bucket/secret.txt"),  # one S3 object
        ("wiremock/mappings/outside.json", "stub.json"),  # a WireMock stub
        ("wiremock/__files", "bucket"),  # the WireMock bodies folder
    ],
)
def test_links_out_of_the_seeds_folder_are_refused_naming_the_link(tmp_path: Path, link: str, target: str) -> None:
    root = tmp_path / "project"
    settings = _project(root)
    outside = _outside(root)
    path = root / "seeds" / link
    if path.is_dir():
        path.rmdir()
    path.symlink_to(outside / target)
    with pytest.raises(SeedError) as caught:
        settings.seeds_path()
    assert caught.value.cause == (
        f"seed path seeds/{link} is a symbolic link to {(outside / target).resolve()}, outside the seeds folder "
        f"{(root / 'seeds').resolve()}"
    )
    assert "follow_symlinks = true" in (caught.value.fix or "")


def test_follow_symlinks_lets_links_lead_out_and_the_readers_follow_them(tmp_path: Path) -> None:
    root = tmp_path / "project"
    settings = _project(root, follow_symlinks=True)
    outside = _outside(root)
    (root / "seeds" / "s3" / "private").symlink_to(outside / "bucket")
    (root / "seeds" / "wiremock" / "__files").rmdir()
    (root / "seeds" / "wiremock" / "__files").symlink_to(outside / "bucket")
    seeds = settings.seeds_path()
    assert seeds is not None
    assert s3_seed_buckets(seeds)["private"] == [("secret.txt", seeds / "s3" / "private" / "secret.txt")]
    assert seeds / "wiremock" / "__files" in wiremock_seed_dirs(seeds)


def test_links_that_stay_inside_the_seeds_folder_are_fine(tmp_path: Path) -> None:
    settings = _project(tmp_path)
    seeds = tmp_path / "seeds"
    (seeds / "s3" / "artwork-copy").symlink_to(seeds / "s3" / "artwork")
    os.symlink("001_users.sql", seeds / "postgres" / "002_again.sql")  # relative, inside
    assert settings.seeds_path() == seeds
    assert sorted(s3_seed_buckets(seeds)) == ["artwork", "artwork-copy"]


def test_follow_symlinks_is_a_setting_with_a_description() -> None:
    field = Settings.model_fields["follow_symlinks"]
    assert field.default is False
    assert field.description


@pytest.mark.parametrize("name", ["002_more.csv", "003_notes.sql.bak", "004_rows.tsv"])
def test_a_postgres_seed_file_of_a_kind_envmgr_does_not_load_is_a_seed_error(tmp_path: Path, name: str) -> None:
    """It was skipped without a word: the template lacked those rows."""
    settings = _project(tmp_path)
    (tmp_path / "seeds" / "postgres" / name).write_text("id,name\n1,a\n")
    with pytest.raises(SeedError) as caught:
        settings.seeds_path()
    assert caught.value.cause.startswith(f"seed path seeds/postgres/{name} is not where envmgr reads seeds")
    assert "*.sql, *.dump, *.py, *.json, *.yaml, *.yml" in caught.value.cause
    assert f"a helper: _{name}" in caught.value.cause


@pytest.mark.parametrize("backend", ["moto", "localstack"])
@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("Cover_Art", "lowercase letters, digits, dots and hyphens"),
        ("cover..art", "lowercase letters"),
        ("ab", "3 to 58 characters"),
        ("a" * 59, "3 to 58 characters"),
        ("192.168.1.1", "lowercase letters"),
    ],
)
def test_a_seed_bucket_folder_that_is_no_bucket_name_stops_the_environment_before_it_starts(
    tmp_path: Path, backend: str, name: str, rule: str
) -> None:
    """LocalStack refused `seeds/s3/Cover_Art/` at start; moto took it, so a suite that passed with moto broke with
    LocalStack or AWS: for both, a SeedError naming the folder and the rule, before anything is planned."""
    (tmp_path / "seeds" / "s3" / name).mkdir(parents=True)
    settings = Settings(project_root=tmp_path, seeds=Path("seeds"), aws={"backend": backend})
    with pytest.raises(SeedError) as caught:
        Environment([backend], settings=settings)
    assert caught.value.cause.startswith(f"seed path seeds/s3/{name} is not where envmgr reads seeds")
    assert "is no S3 bucket name" in caught.value.cause
    assert rule in caught.value.cause


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (
            '{"request": {"method": "GET", "url": "/x"},\n "response": {"status": 200,}}',
            "line 2, column",
            "not valid JSON",
        ),
        ('["not", "a", "stub"]', "the top level", '"mappings": [...]'),
        ('{"request": "GET /x", "response": {"status": 200}}', "the stub", '"request" is an object'),
        ('{"mappings": [{"request": {"url": "/a"}}, "GET /b"]}', "stub 2", "expected a stub object"),
        ('{"request": {"url": "/a"}, "response": {"bodyFileName": "gone.json"}}', "the stub", "'gone.json' is not in"),
    ],
)
def test_a_wiremock_mapping_wiremock_would_refuse_is_a_seed_error_naming_the_file(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    """WireMock refused to start with it (exit 5, "check the image", the container's path in its log tail): the
    mapping is checked before anything starts."""
    settings = _project(tmp_path)
    (tmp_path / "seeds" / "wiremock" / "mappings" / "bad.json").write_text(text)
    with pytest.raises(SeedError) as caught:
        settings.seeds_path()
    assert caught.value.cause.startswith(f"seed file seeds/wiremock/mappings/bad.json failed at {where}")
    assert problem in caught.value.cause
    assert caught.value.exit_code == 7


def test_a_mapping_whose_body_is_in_the_files_folder_passes(tmp_path: Path) -> None:
    settings = _project(tmp_path)
    (tmp_path / "seeds" / "wiremock" / "__files" / "release.json").write_text("{}")
    stub = '{"request": {"url": "/r"}, "response": {"bodyFileName": "release.json"}}'
    (tmp_path / "seeds" / "wiremock" / "mappings" / "release.json").write_text(stub)
    assert settings.seeds_path() == tmp_path / "seeds"
