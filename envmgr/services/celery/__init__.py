"""Celery: the worker service (`service.py`), the apps (`app.py`) and the fixtures (`fixtures.py`)."""

from envmgr.services.celery.app import broker_app, load_app
from envmgr.services.celery.service import CeleryService

__all__ = ["CeleryService", "broker_app", "load_app"]
