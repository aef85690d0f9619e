"""envmgr with other tools, one module each: `django` (the pytest-django integration, registered by envmgr's pytest
plugin when pytest-django runs with Django settings) and `django_migrate` (Django's migrate in a subprocess, for
`migrate = "django"`); `flask` (Flask-SQLAlchemy's session as the test's, the app context Flask-Migrate's env.py
needs) and its pytest fixtures, `flask_fixtures`."""
