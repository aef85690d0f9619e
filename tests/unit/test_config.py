"""Settings: precedence, validation and the errors that name the key and its source."""

import re
from pathlib import Path

import pytest

from envmgr.config import NON_SETTING_VARIABLES, Settings, check_environment, load_settings
from envmgr.errors import ConfigError


def write_pyproject(folder: Path, table: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(f"[project]\nname = 'x'\n\n[tool.envmgr]\n{table}\n")
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ENVMGR_"):
            monkeypatch.delenv(name)


def test_defaults_enable_postgres_and_redis_with_official_images(tmp_path: Path) -> None:
    settings = load_settings(write_pyproject(tmp_path, ""))
    assert settings.enabled_services() == ["postgres", "redis"]
    assert settings.image_set == "official"
    assert settings.project_root == tmp_path.resolve()


def test_table_values_are_read(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, 'image_set = "local"\nstartup_timeout = 5\n[tool.envmgr.wiremock]\nenabled = true')
    settings = load_settings(path)
    assert settings.image_set == "local"
    assert settings.startup_timeout == 5
    assert "wiremock" in settings.enabled_services()


def test_environment_overrides_the_table_and_overrides_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_pyproject(tmp_path, 'image_set = "official"\n[tool.envmgr.postgres]\nimage = "a:1"')
    monkeypatch.setenv("ENVMGR_IMAGE_SET", "local")
    monkeypatch.setenv("ENVMGR_POSTGRES__IMAGE", "b:2")
    assert load_settings(path).image_set == "local"
    assert load_settings(path).postgres.image == "b:2"
    assert load_settings(path, image_set="official").image_set == "official"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "startup_timout = 5")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "startup_timout" in caught.value.cause
    assert str(path) in caught.value.cause
    assert caught.value.fix is not None
    assert "startup_timeout" in caught.value.fix


def test_unknown_nested_key_lists_the_service_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_pyproject(tmp_path, "[tool.envmgr.redis]\nimgae = 'x'"))
    assert "redis.imgae" in caught.value.cause
    assert caught.value.fix is not None
    assert "image" in caught.value.fix


def test_bad_value_from_the_environment_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVMGR_IMAGE_SET", "latest")
    with pytest.raises(ConfigError) as caught:
        load_settings(write_pyproject(tmp_path, ""))
    assert "ENVMGR_IMAGE_SET" in caught.value.cause
    assert "'latest'" in caught.value.cause


def test_negative_timeout_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="startup_timeout"):
        load_settings(write_pyproject(tmp_path, "startup_timeout = -1"))


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.envmgr\nx = ")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(path)


def test_paths_resolve_against_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "alembic.ini").write_text("[alembic]\n")
    settings = load_settings(write_pyproject(tmp_path, 'alembic_ini = "db/alembic.ini"\nseeds = "data"'))
    assert settings.alembic_ini_path() == (tmp_path / "db" / "alembic.ini").resolve()
    assert settings.seeds_path() == (tmp_path / "data").resolve()


def test_migrations_and_seeds_apply_only_when_configured(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "alembic.ini").write_text("[alembic]\n")
    settings = load_settings(write_pyproject(tmp_path, ""))
    assert settings.alembic_ini_path() is None
    assert settings.seeds_path() is None


# the environment ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "variable_hint"),
    [
        ("ENVMGR_POSTGRES", "{bad", '{"enabled": true}'),
        ("ENVMGR_POSTGRES__ENV", "{bad", '{"NAME": "value"}'),
        ("ENVMGR_LOCALSTACK__QUEUES", "[bad", '["a", "b"]'),
    ],
)
def test_bad_json_in_a_variable_blames_the_variable_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, variable_hint: str
) -> None:
    path = write_pyproject(tmp_path, "")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.cause.startswith(f"bad value in the environment variable {name}: not JSON (")
    assert str(path) not in caught.value.cause
    assert variable_hint in (caught.value.fix or "")


@pytest.mark.parametrize(
    ("name", "key", "suggestion"),
    [
        ("ENVMGR_POSTGRESS__IMAGE", "postgress.image", "ENVMGR_POSTGRES__IMAGE"),
        ("ENVMGR_FOO", "foo", None),
        ("ENVMGR_POSTGRES_IMAGE", "postgres_image", "ENVMGR_POSTGRES__IMAGE"),
        ("ENVMGR_REDIS__IMAGE__TAG", "redis.image.tag", None),
        ("ENVMGR_PROJECT_ROOT", "project_root", None),
        ("envmgr_startup_timout", "startup_timout", "ENVMGR_STARTUP_TIMEOUT"),
    ],
)
def test_an_unknown_envmgr_variable_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, key: str, suggestion: str | None
) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError) as caught:
        load_settings(write_pyproject(tmp_path, ""))
    assert caught.value.cause == f"unknown environment variable {name}: no setting {key!r}"
    if suggestion is not None:
        assert (caught.value.fix or "").startswith(f"did you mean {suggestion}? ")
    with pytest.raises(ConfigError, match=name):  # direct construction reads the environment the same way
        Settings(project_root=tmp_path)


def test_variables_envmgr_uses_for_other_things_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NON_SETTING_VARIABLES:
        monkeypatch.setenv(name, "x")
    for name in ("ENVMGR_POSTGRES_PORT", "ENVMGR_LOCALSTACK_PORT", "ENVMGR_WIREMOCK_HTTPS_PORT"):
        monkeypatch.setenv(name, "5432")
    monkeypatch.setenv("ENVMGR_POSTGRES__ENV__TZ", "UTC")
    monkeypatch.setenv("ENVMGR_CELERY__QUEUES", '["a", "b"]')
    settings = load_settings(write_pyproject(tmp_path, ""))
    assert settings.celery.queues == ["a", "b"]
    assert settings.postgres.env  # the entry arrived


def test_the_allow_list_covers_every_non_setting_variable_the_repository_uses() -> None:
    """Every ENVMGR_* name the repository uses (outside the tests, which set wrong ones on purpose) is a setting, a
    compose port or allow-listed."""
    repo = Path(__file__).resolve().parents[2]
    tests = [repo / "tests" / "unit", repo / "tests" / "integration"]
    found: set[str] = set()
    for path in repo.rglob("*"):
        if ".git" in path.parts or not path.is_file() or any(path.is_relative_to(folder) for folder in tests):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found.update(re.findall(r"\bENVMGR_[A-Z0-9_]*[A-Z0-9]\b", text))
    found -= {"ENVMGR_SEEDS"}  # the compose seed job's own variable, inside its container: the setting's name too
    unexplained = []
    for name in sorted(found):
        try:
            check_environment({name: "{}"})
        except ConfigError:
            unexplained.append(name)
    assert unexplained == []
