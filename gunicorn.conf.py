"""gunicorn settings for serving the API (``gunicorn wsgi:application`` picks this up).

TLS when self-hosted: set TLS_CERT_FILE and TLS_KEY_FILE (PEM). On AWS, API
Gateway terminates TLS and this file is not used. This is deployment
configuration, so it reads its own environment variables.
"""
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * multiprocessing.cpu_count())))
worker_class = "sync"  # measured fastest for this app (bench/api_submit.py); no keep-alive: a sync
# worker holding an idle connection would starve the others
timeout = 30
graceful_timeout = 20
certfile = os.environ.get("TLS_CERT_FILE") or None
keyfile = os.environ.get("TLS_KEY_FILE") or None
accesslog = os.environ.get("ACCESS_LOG") or None

# Prometheus: every worker process writes its samples under PROMETHEUS_MULTIPROC_DIR and
# /metrics merges them (chalicelib/metrics.py). The directory must be set before the
# workers import prometheus_client, and emptied at start so a restart does not count twice.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
else:
    _metrics_dir = tempfile.mkdtemp(prefix="c3render-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
