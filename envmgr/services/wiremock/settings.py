"""`[tool.envmgr.wiremock]`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from envmgr.exports import Part
from envmgr.services.settings import ServiceSettings, check_given_url, given_url_field
from envmgr.services.wiremock.seeds import SEED_ENTRY

__all__ = ["WireMockSettings"]


class WireMockSettings(ServiceSettings):
    """WireMock: one server per xdist worker, with the seeded stubs."""

    image_variables = ("ENVMGR_JAVA_OPTS",)
    seed_entries = (SEED_ENTRY,)
    export_parts = {"admin_url": Part(extra="admin_url")}

    url: str | None = given_url_field('url = "${WIREMOCK_URL}"; one run at -n 0 or 1 only')
    admin_auth: bool = Field(
        default=True,
        description="the admin API (/__admin) asks for HTTP basic auth: user envmgr, a password new per "
        "environment (WIREMOCK_ADMIN_USER, WIREMOCK_ADMIN_PASSWORD; envmgr's admin client, fixture, probe, reset "
        "and compose health check use them); the stubs stay open. false: anyone on the machine can read the "
        "journal and change the stubs",
    )

    @field_validator("url")
    @classmethod
    def _given_url(cls, value: Any) -> Any:
        return check_given_url(value)
