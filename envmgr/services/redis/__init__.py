"""Redis: the service (`service.py`) and its fixtures (`fixtures.py`)."""
