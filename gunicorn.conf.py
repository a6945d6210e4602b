"""gunicorn settings for serving the API (``gunicorn wsgi:application`` picks this up).

Every value comes from the project's settings (BIND, WEB_CONCURRENCY, TLS_CERT_FILE,
TLS_KEY_FILE, ACCESS_LOG, PROMETHEUS_MULTIPROC_DIR: see .env.sample). TLS when
self-hosted: set TLS_CERT_FILE and TLS_KEY_FILE (PEM). On AWS, API Gateway
terminates TLS and this file is not used.
"""
import multiprocessing
import os
import shutil
import tempfile

from chalicelib.settings import Settings

_settings = Settings.from_env()
bind = _settings.bind
# gevent: every connection is a greenlet, so slow and waiting clients cost almost nothing, and
# keep-alive is cheap (bench/serving.py measures both). One process per core does the work.
worker_class = "serving.JsonGeventWorker"
workers = _settings.web_concurrency or multiprocessing.cpu_count()
worker_connections = 4000  # connections one process holds at once (slow, idle or waiting ones included)
keepalive = 5
timeout = 30
graceful_timeout = 20
certfile = _settings.tls_cert_file
keyfile = _settings.tls_key_file
accesslog = _settings.access_log

# Prometheus: every worker process writes its samples under PROMETHEUS_MULTIPROC_DIR and
# /metrics merges them (chalicelib/ops/metrics.py). The directory must be in the environment
# before the workers import prometheus_client (which reads it there), and emptied at start
# so a restart does not count twice.
_metrics_dir = _settings.prometheus_multiproc_dir
if _metrics_dir:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
else:
    _metrics_dir = tempfile.mkdtemp(prefix="c3render-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
