"""Settings of the bookshop: the database and the cache come from the environment, as in production (envmgr points
them at each test worker's own database and Redis database; nothing here knows about tests)."""

import os

from redis.backoff import NoBackoff
from redis.retry import Retry

SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-example-key")
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "bookshop.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "catalog",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("POSTGRES_DB", "bookshop"),
        "HOST": os.environ.get("POSTGRES_HOST", "localhost"),
        "PORT": os.environ.get("POSTGRES_PORT", "5432"),
        "USER": os.environ.get("POSTGRES_USER", "bookshop"),
        "PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
        "TIMEOUT": 300,
        # A cache that is down must not slow every request down: fail fast, the views fall back on the database.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1, "retry": Retry(NoBackoff(), 0)},
    }
}
