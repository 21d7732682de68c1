"""Like metrics_app, but takes METRICS_SLOW_IMPORT seconds to import, so the
workers stay 'starting' long enough to watch /healthz answer 503."""
import os
import time

time.sleep(float(os.environ.get("METRICS_SLOW_IMPORT", "2")))

from metrics_app import app  # noqa: E402,F401
