"""PostgreSQL: the service (`service.py`), the janitor (`janitor.py`), the template (`template.py`), the fixtures."""
