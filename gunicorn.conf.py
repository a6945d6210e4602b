"""gunicorn settings for serving the API (``gunicorn wsgi:application`` picks this up).

TLS when self-hosted: set TLS_CERT_FILE and TLS_KEY_FILE (PEM). On AWS, API
Gateway terminates TLS and this file is not used. This is deployment
configuration, so it reads its own environment variables.
"""
import multiprocessing
import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * multiprocessing.cpu_count())))
worker_class = "sync"  # measured fastest for this app (bench/api_submit.py); no keep-alive: a sync
# worker holding an idle connection would starve the others
timeout = 30
graceful_timeout = 20
certfile = os.environ.get("TLS_CERT_FILE") or None
keyfile = os.environ.get("TLS_KEY_FILE") or None
accesslog = os.environ.get("ACCESS_LOG") or None
