"""envmgr's pytest plugin: `plugin.py` holds the hooks (the entry point), `run.py` the process's state as data,
`coordinator.py` the controller's side (source, starts, the workers' socket), `fixtures.py` and `shares.py` what the
tests get. The services' own fixtures are in their folders (`envmgr/services/<name>/fixtures.py`)."""
