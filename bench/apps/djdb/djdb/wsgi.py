"""WSGI entry point: `gallop --chdir bench/apps/djdb djdb.wsgi:application`.
Creates the table on first start (no migrations to run)."""
import os

import django
from django.core.wsgi import get_wsgi_application
from django.db import DatabaseError, connection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djdb.settings")
application = get_wsgi_application()


def _create_table():
    from .models import Hit
    if Hit._meta.db_table in connection.introspection.table_names():
        return
    try:
        with connection.schema_editor() as editor:
            editor.create_model(Hit)
    except DatabaseError:
        pass  # another worker created it first


_create_table()
connection.close()  # each thread opens its own
