"""A small Django project whose one view writes a row to sqlite: the
tail-latency benchmark of --threads (docs/benchmarks.md). The database file
is $DJDB_PATH (default /tmp/gallop-djdb.sqlite3)."""
import os

SECRET_KEY = "gallop-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djdb.urls"
INSTALLED_APPS = ["djdb"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJDB_PATH", "/tmp/gallop-djdb.sqlite3"),
        "OPTIONS": {"timeout": 20},
    }
}
USE_TZ = True
TEMPLATES = []
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
