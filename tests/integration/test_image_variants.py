"""The two variants of the images built from the services' image folders: `local` (envmgr's extras) and
`official-lookalike` (tagged with the official names, without the extras), and the guard that never builds over a
pulled official image.

The lookalikes are built by `.ci/setup` (`envmgr images build --official-lookalike`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from envmgr import Environment, Settings
from envmgr.engine.connection import Engine
from envmgr.errors import ImageError
from envmgr.images import (
    OFFICIAL_LOOKALIKE,
    VARIANT_LABEL,
    LocalImage,
    build_image,
    foreign_image,
    local_images,
    official_lookalikes,
)
from envmgr.services.aws.accounts import gate_headers

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

OFFICIAL_VOLUMES = {
    "postgres": ["/var/lib/postgresql/data"],
    "redis": ["/data"],
    "localstack": ["/var/lib/localstack"],
    "moto": [],
    "wiremock": [],
}
"""what the official images declare as VOLUME"""


def with_image_set(settings: Settings, image_set: str) -> Settings:
    return settings.model_copy(update={"image_set": image_set})


def test_every_official_image_but_celerys_has_a_lookalike_labelled_as_such(engine: Engine) -> None:
    lookalikes = official_lookalikes()
    assert sorted(lookalikes) == sorted(OFFICIAL_VOLUMES)
    for context, image in lookalikes.items():
        assert image.tag.split("/")[0] != "envmgr-local", image.tag
        assert engine.has_image(image.tag), f"{image.tag} missing: envmgr images build --official-lookalike {context}"
        assert not foreign_image(engine, image.tag)
        attrs = engine.client.images.get(image.tag).attrs["Config"]
        assert (attrs.get("Labels") or {}).get(VARIANT_LABEL) == OFFICIAL_LOOKALIKE
        assert engine.image_volumes(image.tag) == OFFICIAL_VOLUMES[context]


@pytest.mark.parametrize(
    ("image_set", "init_message"),
    [
        ("local", "PostgreSQL init process complete (prebuilt cluster)"),
        ("official", "PostgreSQL init process complete; ready for start up."),
    ],
)
def test_postgres_lookalike_runs_initdb_at_start_and_local_uses_the_baked_cluster(
    settings: Settings, engine: Engine, image_set: str, init_message: str
) -> None:
    with Environment(["postgres"], settings=with_image_set(settings, image_set)) as env:
        endpoint = env.endpoints["postgres"]
        logs = engine.client.containers.get(endpoint.container).logs().decode()
    assert init_message in logs
    assert ("The files belonging to this database system" in logs) == (image_set == "official")  # initdb's output


@pytest.mark.parametrize("image_set", ["local", "official"])
def test_an_unknown_path_gets_localstacks_empty_200_on_the_lookalike(settings: Settings, image_set: str) -> None:
    """The official image has no /_envmgr routes: LocalStack answers POST there with 200 and an EMPTY body. (Past
    the access-key gate, as envmgr's reset asks: with the environment's key.)"""
    with Environment(["localstack"], settings=with_image_set(settings, image_set)) as env:
        endpoint = env.endpoints["localstack"]
        response = requests.post(
            endpoint.url + "/_envmgr/state/reset", json={}, headers=gate_headers(endpoint), timeout=10
        )
    assert response.status_code == 200
    if image_set == "official":
        assert response.content == b""
    else:
        assert set(response.json()["services"]) == {"s3", "sqs", "sns"}


@pytest.fixture
def foreign_tag(engine: Engine) -> Iterator[str]:
    """An image envmgr did not build (the Debian base, unlabelled) under a name of this test's own."""
    unlabelled = next(
        image for image in engine.client.images.list() if image.tags and VARIANT_LABEL not in (image.labels or {})
    )
    tag = f"envmgr-test-foreign/redis:{uuid.uuid4().hex[:10]}"
    unlabelled.tag(tag)
    try:
        yield tag
    finally:
        engine.client.images.remove(tag)


def test_a_lookalike_is_never_built_over_an_image_envmgr_did_not_build(engine: Engine, foreign_tag: str) -> None:
    before = engine.client.images.get(foreign_tag).id
    assert foreign_image(engine, foreign_tag)
    with pytest.raises(ImageError) as caught:
        build_image(engine, LocalImage("redis", local_images()["redis"].folder, foreign_tag, OFFICIAL_LOOKALIKE))
    assert "not built by envmgr" in caught.value.cause
    assert f"docker rmi {foreign_tag}" in caught.value.fix
    assert engine.client.images.get(foreign_tag).id == before
    assert not foreign_image(engine, f"envmgr-test-foreign/absent:{uuid.uuid4().hex[:10]}")
