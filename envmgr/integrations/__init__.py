"""envmgr with other tools: `django` (the pytest-django integration, registered by envmgr's pytest plugin when
pytest-django runs with Django settings) and `django_migrate` (Django's migrate in a subprocess, for
`migrate = "django"`)."""
