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
    (tmp_path / "data").mkdir()
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
            check_environment({name: "{}"}, Settings)
        except ConfigError:
            unexplained.append(name)
    assert unexplained == []


SERVER_SETTINGS = """
[tool.envmgr.postgres]
database_settings = {statement_timeout = "5s", search_path = ["app", "public"]}
extensions = ["hstore", "uuid-ossp"]
locale = "C.UTF-8"
encoding = "UTF8"
app_role = "app_user"
[tool.envmgr.postgres.settings]
max_prepared_transactions = 10
jit = false
work_mem = "8MB"
fsync = true
random_page_cost = 1.5
"auto_explain.log_min_duration" = "1s"
[tool.envmgr.redis]
password = false
settings = {maxmemory = "64mb", maxmemory-policy = "allkeys-lru", lazyfree-lazy-eviction = true}
"""


def test_server_settings_keep_their_types(tmp_path: Path) -> None:
    settings = load_settings(write_pyproject(tmp_path, SERVER_SETTINGS))
    pg = settings.postgres
    assert pg.settings["max_prepared_transactions"] == 10
    assert pg.settings["jit"] is False
    assert pg.settings["random_page_cost"] == 1.5
    assert pg.database_settings == {"statement_timeout": "5s", "search_path": ["app", "public"]}
    assert (pg.extensions, pg.locale, pg.encoding, pg.app_role) == (
        ["hstore", "uuid-ossp"],
        "C.UTF-8",
        "UTF8",
        "app_user",
    )
    assert settings.redis.password is False
    assert settings.redis.settings["lazyfree-lazy-eviction"] is True


def test_postgres_settings_go_on_the_command_line_over_the_test_tuning(tmp_path: Path) -> None:
    from envmgr.services.postgres.service import server_command

    command = server_command(load_settings(write_pyproject(tmp_path, SERVER_SETTINGS)).postgres)
    assert command is not None
    assert command[0] == "postgres"
    pairs = [command[i + 1] for i in range(1, len(command), 2) if command[i] == "-c"]
    assert len(pairs) * 2 + 1 == len(command)
    assert "fsync=on" in pairs  # the user's value wins over the tuning's fsync=off
    assert "fsync=off" not in pairs
    assert {"synchronous_commit=off", "max_prepared_transactions=10", "jit=off", "work_mem=8MB",
            "random_page_cost=1.5", "auto_explain.log_min_duration=1s"} <= set(pairs)  # fmt: skip


def test_untuned_postgres_without_settings_runs_the_images_command(tmp_path: Path) -> None:
    from envmgr.services.postgres.service import server_command

    assert (
        server_command(load_settings(write_pyproject(tmp_path, "[tool.envmgr.postgres]\ntuned = false")).postgres)
        is None
    )
    untuned = load_settings(write_pyproject(tmp_path, "[tool.envmgr.postgres]\ntuned = false\nsettings = {jit = true}"))
    assert server_command(untuned.postgres) == ["postgres", "-c", "jit=on"]


def test_redis_settings_go_on_the_command_line(tmp_path: Path) -> None:
    from envmgr.services.redis.service import server_command

    redis = load_settings(write_pyproject(tmp_path, SERVER_SETTINGS)).redis
    command = server_command(redis, None)
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--maxmemory"] == "64mb"
    assert options["--maxmemory-policy"] == "allkeys-lru"
    assert options["--lazyfree-lazy-eviction"] == "yes"
    assert options["--databases"] == "1024"
    assert "--requirepass" not in options
    assert server_command(redis, "secret")[-2:] == ["--requirepass", "secret"]


@pytest.mark.parametrize(
    ("table", "key", "fix"),
    [
        ('[tool.envmgr.postgres]\nsettings = {"Work-Mem" = "8MB"}', "postgres.settings.Work-Mem", "spell it"),
        ("[tool.envmgr.postgres]\nsettings = {work_mem = [1, 2]}", "postgres.settings.work_mem", "one value"),
        ("[tool.envmgr.postgres]\nsettings = {work_mem = {a = 1}}", "postgres.settings.work_mem", "one value"),
        ('[tool.envmgr.postgres]\nsettings = {work_mem = "8MB\\nport = 1"}', "postgres.settings.work_mem", "one value"),
        ("[tool.envmgr.postgres]\nsettings = {port = 5433}", "postgres.settings.port", "remove it"),
        ("[tool.envmgr.postgres]\ndatabase_settings = {search_path = [1]}", "postgres.database_settings.search_path",
         "one value"),
        ('[tool.envmgr.postgres]\nextensions = ["hstore; drop"]', "postgres.extensions.0", "CREATE EXTENSION"),
        ('[tool.envmgr.postgres]\napp_role = "envmgr"', "postgres.app_role", "another name"),
        ('[tool.envmgr.postgres]\nlocale = "en US"', "postgres.locale", "correct the value"),
        ('[tool.envmgr.redis]\nsettings = {requirepass = "x"}', "redis.settings.requirepass", "redis.password"),
        ("[tool.envmgr.redis]\nsettings = {databases = 16}", "redis.settings.databases", "1024"),
        ("[tool.envmgr.redis]\nsettings = {max_memory = 1}", "redis.settings.max_memory", "spell it"),
        ('[tool.envmgr.redis]\npassword = "hunter2"', "redis.password", "correct the value"),
    ],
)  # fmt: skip
def test_a_bad_server_setting_is_one_line_naming_the_key_and_the_fix(
    tmp_path: Path, table: str, key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_pyproject(tmp_path, table))
    assert f"'{key}'" in caught.value.cause
    assert "\n" not in caught.value.cause
    assert caught.value.fix is not None
    assert fix in caught.value.fix
    assert "\n" not in caught.value.fix


def test_a_bad_server_setting_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVMGR_REDIS__SETTINGS", '{"maxmemory": null}')
    with pytest.raises(ConfigError) as caught:
        load_settings(write_pyproject(tmp_path, ""))
    assert "'redis.settings.maxmemory'" in caught.value.cause
    assert "ENVMGR_REDIS__SETTINGS" in caught.value.cause


def test_template_options_change_the_template_only_when_set(tmp_path: Path) -> None:
    from envmgr.services.postgres.template.build import template_digest
    from envmgr.services.postgres.template.content_hash import content_hash

    bare = load_settings(write_pyproject(tmp_path, ""))
    assert template_digest(bare) == content_hash(bare)
    tuned = load_settings(write_pyproject(tmp_path, '[tool.envmgr.postgres]\nsettings = {jit = false}\n'
                                          'database_settings = {statement_timeout = "5s"}'))  # fmt: skip
    assert template_digest(tuned) == content_hash(bare)  # server and per-database settings are not in the template
    digests = {
        template_digest(load_settings(write_pyproject(tmp_path, f"[tool.envmgr.postgres]\n{line}")))
        for line in ('extensions = ["hstore"]', 'locale = "C.UTF-8"', 'encoding = "UTF8"', 'app_role = "app_user"')
    }
    assert len(digests) == 4
    assert content_hash(bare) not in digests


def test_an_unknown_key_of_a_service_names_its_table_and_the_key_it_is_close_to(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.envmgr.wiremock]\nstartup_timout = 30")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert (
        raised.value.cause == f"unknown configuration key 'wiremock.startup_timout' in [tool.envmgr.wiremock] in {path}"
    )
    assert raised.value.fix.startswith("did you mean 'startup_timeout'? remove it or use one of: ")


def test_an_unknown_key_close_to_none_gets_no_guess(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "colour = 'blue'")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert raised.value.cause == f"unknown configuration key 'colour' in [tool.envmgr] in {path}"
    assert raised.value.fix.startswith("remove it or use one of: ")
