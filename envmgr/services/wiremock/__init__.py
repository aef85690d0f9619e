"""WireMock: the service (`service.py`), its admin client (`admin.py`) and its fixtures (`fixtures.py`)."""

from envmgr.services.wiremock.admin import WireMockAdmin
from envmgr.services.wiremock.service import WireMockService

__all__ = ["WireMockAdmin", "WireMockService"]
