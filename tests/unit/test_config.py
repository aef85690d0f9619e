"""Settings: precedence, validation and the errors that name the key and its source."""

from pathlib import Path

import pytest

from envmgr.config import load_settings
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
