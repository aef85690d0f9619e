"""WireMock: the service (`service.py`), its admin client (`admin.py`) and its fixtures (`fixtures.py`)."""
