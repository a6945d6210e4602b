"""Metrics and probes: a real Prometheus scrapes the API (gunicorn, several processes) and a
worker while jobs run; the worker's liveness and readiness probes; JSON log lines about a job."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from chalicelib.ops.metrics import ClusterCollector, Metrics
from chalicelib.store import keys
from chalicelib.store.jobs import JobStore
from chalicelib.store.keys import PoolKeys
from chalicelib.store.outbox import Outbox
from chalicelib.store.pool import PoolStore
from devtools import servers
from tests.helpers import Stack

AUDIO = "https://media.example.com/a.mp3"  # the echo engine does not fetch it
RULES = Path(__file__).resolve().parent.parent / "infra" / "prometheus" / "alerts.yml"


def query(prometheus: servers.Server, expr: str) -> list[dict[str, Any]]:
    reply = requests.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert reply["status"] == "success", reply
    return list(reply["data"]["result"])


def value(prometheus: servers.Server, expr: str) -> float | None:
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def wait_value(prometheus: servers.Server, expr: str, want: float, timeout_s: float = 30.0) -> float | None:
    deadline = time.monotonic() + timeout_s
    got = None
    while time.monotonic() < deadline:
        got = value(prometheus, expr)
        if got == want:
            return got
        time.sleep(0.5)
    return got


@pytest.fixture
def observed(make_stack: Callable[..., Stack], log_dir: Path) -> Iterator[tuple[Stack, int, servers.Server]]:
    stack = make_stack("redis", ECHO_DELAY_S="0.05")
    stack.start_api()  # gunicorn with two processes: counts must add up across them
    metrics_port = servers.free_port()
    # An API setting inherited by the worker must not send its samples into a missing directory.
    worker = stack.start_worker(METRICS_PORT=str(metrics_port), LOG_FORMAT="json",
                                PROMETHEUS_MULTIPROC_DIR="/nonexistent/c3render-metrics")
    servers.wait_http(f"http://127.0.0.1:{metrics_port}/healthz", proc=worker.proc)
    assert stack.api is not None
    prometheus = servers.start_prometheus(
        {"c3render-api": [f"127.0.0.1:{stack.api.port}"], "c3render-worker": [f"127.0.0.1:{metrics_port}"]},
        rule_files=[RULES], log_dir=log_dir)
    yield stack, metrics_port, prometheus
    prometheus.stop()


def test_prometheus_counts_the_jobs_that_ran(observed: tuple[Stack, int, servers.Server]) -> None:
    stack, _, prometheus = observed
    bodies = {"whisper": {"audio_url": AUDIO}, "csm": {"text": "hello"},
              "analyze": {"image_url": "https://media.example.com/p.jpg"}}
    ids = [stack.submit(kind, bodies[kind]).json()["id"] for kind in ("whisper", "csm", "whisper", "analyze",
                                                                      "whisper", "csm", "whisper")]
    cancelled = stack.submit("csm", {"text": "never mind"}, **{"Idempotency-Key": "k-1"}).json()["id"]
    stack.http.post(f"{stack.url}/jobs/{cancelled}/cancel")  # may be queued or already done: both are fine
    for job_id in ids:
        assert stack.wait_status(job_id, {"success"})["status"] == "success"
    final = stack.wait_status(cancelled, {"success", "cancelled"})["status"]
    stack.submit("csm", {"text": "never mind"}, **{"Idempotency-Key": "k-1"})  # a replay is not a new job
    stack.submit("csm", {"speaker": 9})  # refused: not counted as submitted

    assert wait_value(prometheus, 'sum(up{job=~"c3render-.*"})', 2) == 2
    success = len(ids) + (final == "success")
    assert wait_value(prometheus, 'sum(c3render_jobs_finished_total{status="success"})', success) == success
    assert wait_value(prometheus, "sum(c3render_jobs_submitted_total)", 8) == 8
    assert value(prometheus, 'sum(c3render_jobs_submitted_total{type="whisper"})') == 4
    assert value(prometheus, 'sum(c3render_jobs_finished_total{type="csm",status="success"})') == 2 + (
        final == "success")
    # Every finished job was timed; queue wait is counted once per job.
    assert value(prometheus, "sum(c3render_job_duration_seconds_count)") == success
    assert value(prometheus, "sum(c3render_job_queue_wait_seconds_count)") == success
    # The API's request counter has the route template, not the job id.
    routes = {r["metric"]["route"] for r in query(prometheus, "c3render_http_requests_total")}
    assert "/status/{job_id}" in routes and not any(job_id in route for route in routes for job_id in ids)
    assert value(prometheus, 'sum(c3render_http_requests_total{route="/csm",code="400"})') == 1
    # Cluster gauges from Redis; the worker is alive, nothing is queued, so no alert fires.
    assert value(prometheus, "max(c3render_workers_live)") == 1
    assert value(prometheus, "max(c3render_queue_depth)") == 0
    assert value(prometheus, "max(c3render_cluster_scrape_ok)") == 1
    assert query(prometheus, 'ALERTS{alertstate="firing"}') == []


def test_worker_logs_json_lines_that_name_the_job(observed: tuple[Stack, int, servers.Server]) -> None:
    stack, _, _ = observed
    job_id = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    stack.wait_status(job_id, {"success"})
    deadline = time.monotonic() + 5  # the status is visible a moment before the line is logged
    while '"job success"' not in stack.workers[0].log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in stack.workers[0].log().splitlines() if line.startswith("{")]
    about = [line for line in lines if line.get("job_id") == job_id]
    assert {line["msg"] for line in about} >= {"job started", "job success"}
    assert all(line["job_type"] == "whisper" and line["attempt"] == 1 and line["worker_id"] for line in about)
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)


def test_worker_probes(observed: tuple[Stack, int, servers.Server]) -> None:
    stack, port, _ = observed
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    text = requests.get(f"{base}/metrics", timeout=5).text
    assert "c3render_workers_live 1.0" in text and "c3render_gpu_idle_timeout_seconds 300.0" in text
    assert requests.get(f"{base}/nope", timeout=5).status_code == 404


def cluster_metrics(client: Any, queue_depth: int) -> Metrics:
    """Metrics with the cluster collector over the stores on ``client``."""
    metrics = Metrics()
    metrics.add_collector(ClusterCollector(
        store=JobStore(client, result_ttl_s=3600), outbox=Outbox(client, record_ttl_s=3600), pool=PoolStore(client),
        queue_depth=lambda: queue_depth, live_within_s=10, idle_timeout_s=300))
    return metrics


def test_cluster_gauges_follow_the_job_store(store: Any, rds: Any) -> None:
    metrics = cluster_metrics(rds, 7)
    pool = PoolKeys()

    def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("c3render_queue_oldest_age_seconds") == 0 and sample("c3render_queue_depth") == 7
    store.create(job_id="old", job_type="csm", owner="o", params={"text": "x"}, max_attempts=3)
    rds.zadd(keys.QUEUED_SINCE, {"old": time.time() - 120})  # as if submitted two minutes ago
    store.create(job_id="new", job_type="csm", owner="o", params={"text": "y"}, max_attempts=3)
    assert 119 < (sample("c3render_queue_oldest_age_seconds") or 0) < 125
    assert sample("c3render_jobs_queued") == 2
    store.start("old", run_token="t", lease_s=30, worker_id="w")
    assert (sample("c3render_queue_oldest_age_seconds") or 99) < 5 and sample("c3render_jobs_queued") == 1
    store.requeue("old", run_token="t")  # back in line: waits from now
    assert sample("c3render_jobs_queued") == 2
    store.cancel("new")
    rds.delete(keys.job("old"))  # a record that expired while queued does not hold the gauge up
    assert sample("c3render_queue_oldest_age_seconds") == 0 and sample("c3render_jobs_queued") == 0
    store.record_worker("w-1")
    assert sample("c3render_workers_live") == 1 and sample("c3render_cluster_scrape_ok") == 1
    # GPU nodes as the pool's scripts record them: one idle for a minute, one being stopped.
    now = time.time()
    rds.sadd(pool.nodes, "n-idle", "n-going")
    rds.hset(pool.node("n-idle"), mapping={"state": "ready", "busy": 0, "idle_since": now - 60,
                                                "launched_at": now - 200, "static": 0})
    rds.hset(pool.node("n-going"), mapping={"state": "stopping", "busy": 0, "launched_at": now - 900})
    assert sample("c3render_gpu_nodes", {"state": "ready"}) == 1
    assert sample("c3render_gpu_nodes", {"state": "stopping"}) == 1
    assert sample("c3render_gpu_nodes", {"state": "launching"}) == 0  # every state the pool uses, and only those
    assert sample("c3render_gpu_nodes", {"state": "retiring"}) is None
    assert 59 < (sample("c3render_gpu_node_idle_seconds", {"node": "n-idle"}) or 0) < 65
    assert sample("c3render_gpu_node_idle_seconds", {"node": "n-going"}) is None
    assert 899 < (sample("c3render_gpu_node_billed_seconds", {"node": "n-going"}) or 0) < 905


def test_cluster_gauges_report_an_unreachable_redis_instead_of_failing_the_scrape() -> None:
    dead = redis.Redis(port=servers.free_port(), socket_connect_timeout=0.2)
    metrics = cluster_metrics(dead, 0)
    metrics.jobs_submitted.labels("csm").inc()
    text = metrics.render().decode()
    assert "c3render_cluster_scrape_ok 0.0" in text and 'c3render_jobs_submitted_total{type="csm"} 1.0' in text


def test_the_api_metrics_ask_for_the_token_when_one_is_set(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis")
    stack.start_api(METRICS_TOKEN="scrape-me-please")
    anonymous = requests.get(f"{stack.url}/metrics", timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    wrong = requests.get(f"{stack.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    good = requests.get(f"{stack.url}/metrics", headers={"Authorization": "Bearer scrape-me-please"}, timeout=5)
    assert good.status_code == 200 and good.headers["Content-Type"].startswith("text/plain")
    assert "c3render_http_requests_total" in good.text and "c3render_workers_live" in good.text
