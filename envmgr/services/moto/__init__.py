"""moto in server mode: a free AWS emulator, one server per xdist worker (`service.py`); it serves the same fixtures
as LocalStack (`envmgr.services.aws`) when `[tool.envmgr.aws] backend = "moto"`."""
