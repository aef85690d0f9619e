"""A second service that exists only in the tests, laid out as a real one (`envmgr/services/<name>/`): its settings
table with what it reads under the seeds folder (`settings.py`), its service (`service.py`) and its image (`image/`).
An object store, like MinIO: one server, a bucket folder per seed bucket."""
