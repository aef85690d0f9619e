"""Celery: the worker service (`service.py`), the apps (`app.py`) and the fixtures (`fixtures.py`)."""
