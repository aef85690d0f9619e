"""An environment's state, as `envmgr status` shows it, from its containers' statuses."""

from envmgr.engine.records import environment_state


def test_an_environment_is_running_stopped_partial_or_empty_by_its_containers() -> None:
    assert environment_state(["running", "running"]) == "running"
    assert environment_state(["exited", "created"]) == "stopped"
    assert environment_state(["running", "exited"]) == "partial"
    assert environment_state(["running", "paused"]) == "partial"
    assert environment_state([]) == "empty"
