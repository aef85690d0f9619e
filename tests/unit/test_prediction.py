"""The prediction of what a run reaches (pure): its cache key and what it keeps."""

from envmgr.pytest.prediction import Prediction, load, prediction_key, save


class Cache:
    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def get(self, key: str, default: object) -> object:
        return self.values.get(key, default)

    def set(self, key: str, value: object) -> None:
        self.values[key] = value


def test_the_key_ignores_a_temporary_folder_but_not_what_selects_tests() -> None:
    plain = prediction_key(["-n", "2", "tests"], "/p", 2, "worker")
    assert prediction_key(["--basetemp=/tmp/a", "-n", "2", "tests"], "/p", 2, "worker") == plain
    assert prediction_key(["-n", "2", "--basetemp", "/tmp/b", "tests"], "/p", 2, "worker") == plain
    assert prediction_key(["-n", "2", "tests", "-k", "not aws"], "/p", 2, "worker") != plain
    assert prediction_key(["-n", "2", "tests"], "/q", 2, "worker") != plain
    assert prediction_key(["-n", "2", "tests"], "/p", 4, "worker") != plain


def test_what_tests_waited_for_round_trips_through_the_cache() -> None:
    cache = Cache()
    used = {"postgres": {"gw0", "gw1"}, "wiremock": {"gw1"}}
    save(cache, "k", Prediction.of(used, per_worker={"wiremock"}))
    loaded = load(cache, "k")
    assert loaded == Prediction(services=("postgres",), replicas={"wiremock": ("gw1",)})
    assert loaded is not None
    assert loaded.names() == {"postgres", "wiremock"}
    assert load(cache, "other") is None
    assert load(None, "k") is None


def test_only_the_replicas_of_this_runs_workers_are_predicted() -> None:
    prediction = Prediction(replicas={"wiremock": ("gw0", "gw3"), "celery": ("gw5",)})
    assert prediction.replicas_within(2) == {"wiremock": ["gw0"]}
    assert prediction.replicas_within(0) == {}
    assert Prediction(replicas={"wiremock": ("main",)}).replicas_within(0) == {"wiremock": ["main"]}


def test_a_cache_entry_of_another_shape_predicts_nothing() -> None:
    for value in ({"services": "postgres"}, ["postgres"], {"services": [], "replicas": {"w": [1]}}, None):
        assert Prediction.from_json(value) is None
