"""GPU spend: what jobs cost, usage per key and day, budgets, the hourly guard, the reconciliation."""
from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests

from chalicelib.errors import NodeError
from chalicelib.jobs.models import JobStatus
from chalicelib.ops.metrics import ClusterCollector, Metrics
from chalicelib.store.jobs import JobStore
from chalicelib.store.outbox import Outbox
from chalicelib.store.pool import PoolStore
from devtools import servers
from tests.helpers import Stack, job_ctx
from tests.test_pool import Emulator, c3_pool, emulator  # noqa: F401 - the fixture

AUDIO = "https://media.example.com/talk.mp3"
PRICE = 3.6  # per hour: 0.001 a second


def run_on_a_gpu(store: JobStore, job_id: str, gpu_seconds: float) -> None:
    """What a worker does with a job: start it, and end it having held a node ``gpu_seconds``."""
    assert store.start(job_id, run_token="t", lease_s=30, worker_id="w").action == "run"
    assert store.finish(job_id, run_token="t", status=JobStatus.SUCCESS, result={"text": "hello"},
                        gpu_seconds=gpu_seconds)


def test_costs_usage_and_a_daily_budget(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("redis", GPU_PRICE_PER_HOUR=f"media:fast={PRICE}", ADMIN_API_KEY="admin-key")
    stack.start_api()
    store = JobStore.from_url(stack.env["REDIS_URL"], result_ttl_s=3600, gpu_price_per_hour=PRICE)
    out = subprocess.run([sys.executable, "-m", "chalicelib.api.cli", "keys", "create", "--name", "budgeted",
                          "--gpu-seconds-per-day", "100"], capture_output=True, text=True, timeout=30, check=True,
                         env={**stack.env, "PATH": "/usr/bin:/bin"})
    key = next(line.split('"')[3] for line in out.stdout.splitlines() if '"key"' in line)
    budgeted = {"Authorization": f"Bearer {key}"}

    def submit() -> requests.Response:
        return requests.post(f"{stack.url}/whisper", json={"audio_url": AUDIO}, headers=budgeted, timeout=10)

    # A whisper job held a node 30 s: it costs 0.03, and whisper jobs now count 30 s each.
    first = submit().json()["id"]
    run_on_a_gpu(store, first, 30.0)
    view = requests.get(f"{stack.url}/jobs/{first}", headers=budgeted, timeout=10).json()
    assert view["gpu_seconds"] == 30.0 and view["cost"] == pytest.approx(0.03)
    # 30 used + 30 for each queued job: two more fit in 100; a third would pass it.
    queued = [submit() for _ in range(2)]
    assert all(r.status_code == 202 for r in queued)
    refused = submit()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded", refused.text
    retry_after = int(refused.headers["Retry-After"])
    assert abs(retry_after - (86400 - time.time() % 86400)) < 5  # at 00:00 UTC
    usage = requests.get(f"{stack.url}/usage", headers=budgeted, timeout=10).json()
    [mine] = usage["keys"]
    assert (mine["jobs"], mine["gpu_seconds"], mine["cost"]) == (1, 30.0, pytest.approx(0.03))
    assert mine["key_name"] == "budgeted"  # the dashboard shows names, not key ids
    assert mine["budget"]["used_today"] == 30.0 and mine["budget"]["pending_gpu_seconds"] == 60.0
    assert mine["budget"]["remaining"] == 10.0 and usage["price_per_hour"] == PRICE
    # A queued job cancelled gives its estimate back: a submit fits again. Jobs admitted run on.
    requests.post(f"{stack.url}/jobs/{queued[0].json()['id']}/cancel", headers=budgeted, timeout=10)
    assert submit().status_code == 202
    run_on_a_gpu(store, queued[1].json()["id"], 20.0)  # admitted before: it finishes, whatever the budget
    usage = requests.get(f"{stack.url}/usage", headers=budgeted, timeout=10).json()
    assert usage["keys"][0]["gpu_seconds"] == 50.0
    # Another key's usage: its own only; an admin's: every key's.
    other = stack.submit("whisper", {"audio_url": AUDIO}).json()["id"]
    run_on_a_gpu(store, other, 5.0)
    assert [k["gpu_seconds"] for k in stack.http.get(f"{stack.url}/usage").json()["keys"]] == [5.0]
    everyone = requests.get(f"{stack.url}/usage", headers={"Authorization": "Bearer admin-key"}, timeout=10).json()
    assert sorted(k["gpu_seconds"] for k in everyone["keys"]) == [5.0, 50.0]
    assert everyone["total"]["cost"] == pytest.approx(0.055)
    # Ranges: full dates; days to come are empty; a bad date is named.
    today = time.strftime("%Y-%m-%d", time.gmtime())
    ranged = requests.get(f"{stack.url}/usage", params={"from": "2026-01-01", "to": "2099-12-31"},
                          headers=budgeted, timeout=10).json()
    assert [d["date"] for d in ranged["keys"][0]["days"]] == [today]
    bad = requests.get(f"{stack.url}/usage", params={"from": "2026-02-30"}, headers=budgeted, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["fields"][0]["field"] == "from"
    # /nodes: what the pool has billed, and its cost.
    PoolStore(store.redis).stopped("n-1", launched_at=time.time() - 100, now=time.time())
    nodes = requests.get(f"{stack.url}/nodes", headers={"Authorization": "Bearer admin-key"}, timeout=10).json()
    assert nodes["total"]["billed_s"] == pytest.approx(100, abs=1)
    assert nodes["total"]["spend"] == pytest.approx(0.1, abs=0.002)
    assert nodes["total"]["billed_s_last_hour"] == pytest.approx(100, abs=1)


def scrape(rds: redis.Redis, **options: Any) -> dict[str, float]:
    store = JobStore(rds, result_ttl_s=60)
    metrics = Metrics()
    metrics.add_collector(ClusterCollector(store=store, outbox=Outbox(rds, record_ttl_s=60), pool=PoolStore(rds),
                                           queue_depth=lambda: 0, live_within_s=10, idle_timeout_s=0, **options))
    values = {}
    for line in metrics.render().decode().splitlines():
        if line.startswith("c3render_gpu") and "{" not in line:
            name, value = line.split(" ")
            values[name] = float(value)
    return values


def test_the_hourly_guard_holds_launches_back(rds: redis.Redis, devnode: servers.Server,
                                              emulator: Emulator) -> None:  # noqa: F811
    pool = c3_pool(rds, devnode, idle_timeout_s=0, surplus_idle_s=0, launch_estimate_s=1, acquire_timeout_s=2)
    lease = pool.acquire(job_ctx())
    pool.release(lease)
    pool.janitor(force=True)  # idle: stopped
    assert pool.store.nodes() == [] and emulator.stats()["stops"] == 1
    billed = pool.store.billed_since(time.time() - 3600, time.time())
    assert 0.3 < billed < 10  # launched, ran, stopped: its launch-to-stop time
    # A cap the next node (1 s at least) would pass: no launch, the job waits, the guard says so.
    pool.config = dataclasses.replace(pool.config, max_node_seconds_per_hour=billed + 0.5)
    with pytest.raises(NodeError, match="MAX_NODE_SECONDS_PER_HOUR"):
        pool.acquire(job_ctx())
    assert emulator.stats()["launches"] == 1
    figures = scrape(rds, price_per_hour=PRICE, max_node_seconds_per_hour=billed + 0.5)
    assert figures["c3render_gpu_launch_held"] == 1.0
    assert figures["c3render_gpu_node_seconds_last_hour"] == pytest.approx(billed, abs=0.5)
    assert figures["c3render_gpu_spend"] == pytest.approx(billed * PRICE / 3600, abs=0.001)
    # With room for it, the next job gets a node.
    pool.config = dataclasses.replace(pool.config, max_node_seconds_per_hour=billed + 30)
    pool.release(pool.acquire(job_ctx()))
    assert emulator.stats()["launches"] == 2


def test_the_reconciliation_reports_unknown_and_gone_nodes(rds: redis.Redis, devnode: servers.Server,
                                                           emulator: Emulator,  # noqa: F811
                                                           caplog: pytest.LogCaptureFixture) -> None:
    pool = c3_pool(rds, devnode, unknown_grace_s=60, reconcile_every_s=3600, janitor_every_s=0)
    lease = pool.acquire(job_ctx())
    pool.release(lease)
    pool.janitor()  # the first sweep compares with the provider: all as it should be
    assert pool.store.reconcile_state()["unknown"] == 0 and pool.store.reconcile_state()["at"] > 0
    stray = requests.post(f"{emulator.api}/launch", json={"type": "media:fast", "expires": time.time() + 600},
                          headers=emulator.headers, timeout=5).json()  # billed, unknown to the pool
    requests.post(f"{emulator.api}/stop", json={"workload": lease.node.workload}, headers=emulator.headers,
                  timeout=5)  # the pool's node, gone behind its back
    with caplog.at_level(logging.WARNING, logger="worker.gpu.pool"):
        pool.janitor()  # the next sweep: not due for a comparison yet (RECONCILE_EVERY_S)
        assert pool.store.reconcile_state()["unknown"] == 0
        pool.janitor(force=True)
    assert pool.store.reconcile_state()["unknown"] == 1 and pool.store.reconcile_state()["gone"] == 1
    assert any(stray["workload"] in r.getMessage() and "not in the pool" in r.getMessage() for r in caplog.records)
    assert any(lease.node.name in r.getMessage() and "no longer running" in r.getMessage() for r in caplog.records)
    assert pool.store.nodes() == [] and pool.store.billed_total() > 0  # forgotten, its time on the bill
    assert scrape(rds)["c3render_gpu_reconcile_unknown_workloads"] == 1.0
