"""Which ENVMGR_ENV_ID is the user's (a shell that sourced `envmgr up --env-file` output), and which an envmgr run's."""

from envmgr.pytest.source import sourced_env_id


def test_the_env_id_a_shell_sourced_is_the_users() -> None:
    assert sourced_env_id({"ENVMGR_ENV_ID": "4a575dada5", "DATABASE_URL": "postgresql://..."}) == "4a575dada5"
    assert sourced_env_id({"ENVMGR_ENV_ID": " 4a575dada5\n"}) == "4a575dada5"


def test_none_or_one_an_envmgr_run_exported_for_its_processes_is_not() -> None:
    assert sourced_env_id({}) is None
    assert sourced_env_id({"ENVMGR_ENV_ID": ""}) is None
    assert sourced_env_id({"ENVMGR_ENV_ID": "4a575dada5", "ENVMGR_RUN_CONTROLLER": "4242"}) is None
