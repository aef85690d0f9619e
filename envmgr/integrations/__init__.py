"""envmgr with other tools, one module each: `flask` (Flask-SQLAlchemy's session as the test's, the app context
Flask-Migrate's env.py needs) and its pytest fixtures, `flask_fixtures`."""
