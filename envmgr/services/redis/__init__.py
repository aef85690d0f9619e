"""Redis: the service (`service.py`) and its fixtures (`fixtures.py`)."""

from envmgr.services.redis.service import RedisService

__all__ = ["RedisService"]
