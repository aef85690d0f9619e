"""WireMock fixtures: this worker's own WireMock and its admin client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from envmgr.services.wiremock.admin import WireMockAdmin

if TYPE_CHECKING:
    from envmgr.pytest.shares import WorkerShares

__all__ = ["wiremock", "wiremock_url"]

CLEAN_FIXTURES = ("wiremock",)
"""fixtures that leave the service as they found it (reset after the test)"""

SERVICE = "wiremock"


@pytest.fixture(scope="session")
def wiremock_url(envmgr_shares: WorkerShares) -> str:
    """The base URL of this worker's own WireMock (point the code under test's API base URL here)."""
    return envmgr_shares.server(SERVICE).url


@pytest.fixture
def wiremock(envmgr_shares: WorkerShares, wiremock_url: str) -> Iterator[WireMockAdmin]:
    """The admin client of this worker's WireMock (logged in with `wiremock.admin_auth`); back to the seeded stubs,
    empty journal, no delay after."""
    try:
        yield WireMockAdmin.of(envmgr_shares.server(SERVICE))
    finally:
        envmgr_shares.reset(SERVICE)
