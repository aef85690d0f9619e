"""`[tool.envmgr.wiremock]`."""

from __future__ import annotations

from pydantic import Field

from envmgr.exports import Part
from envmgr.services.settings import ServiceSettings
from envmgr.services.wiremock.seeds import SEED_ENTRY

__all__ = ["WireMockSettings"]


class WireMockSettings(ServiceSettings):
    """WireMock: one server per xdist worker, with the seeded stubs."""

    image_variables = ("ENVMGR_JAVA_OPTS",)
    seed_entries = (SEED_ENTRY,)
    export_parts = {"admin_url": Part(extra="admin_url")}

    admin_auth: bool = Field(
        default=True,
        description="the admin API (/__admin) asks for HTTP basic auth: user envmgr, a password new per "
        "environment (WIREMOCK_ADMIN_USER, WIREMOCK_ADMIN_PASSWORD; envmgr's admin client, fixture, probe, reset "
        "and compose health check use them); the stubs stay open. false: anyone on the machine can read the "
        "journal and change the stubs",
    )
