"""`[tool.envmgr.moto]`: moto in server mode."""

from __future__ import annotations

from envmgr.services.aws.settings import AwsServiceSettings

__all__ = ["MotoSettings"]


class MotoSettings(AwsServiceSettings):
    """moto in server mode: every AWS service moto emulates, one server per xdist worker."""
