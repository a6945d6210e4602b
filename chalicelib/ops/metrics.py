"""Prometheus metrics: what the API and the worker count, and what the cluster looks like.

Events are counted where they happen, by the process they happen in (the API counts
submits and requests; a worker counts the jobs it finished, its webhook attempts and
its GPU launches), so ``sum()`` over all processes is the service's total.

The cluster's state (queue depth, the oldest queued job, live workers, GPU nodes) is
read from Redis at scrape time by :class:`ClusterCollector`, which the API and every
worker serve (so they are there whatever is scaled down); every process reports the
same values, so rules take ``max()``.

Under gunicorn (several processes) ``PROMETHEUS_MULTIPROC_DIR`` is set before the
processes start: each writes its samples to files there and ``/metrics`` merges
them (see ``gunicorn.conf.py``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from chalicelib.store.jobs import JobStore
from chalicelib.store.outbox import Outbox
from chalicelib.store.pool import PoolStore, count_by_state

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "c3render"

# Jobs take from under a second (analyze) to many minutes (portrait).
JOB_SECONDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
REQUEST_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """Every counter and histogram the service has, on one registry.

    A process makes one (at start-up); parts that count take it as an argument.
    ``Metrics()`` without a registry makes a private one: counts go nowhere, which
    is what a library user or a unit test without Prometheus wants.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir  # PROMETHEUS_MULTIPROC_DIR: several processes, merged by render()
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_submitted = Counter(f"{PREFIX}_jobs_submitted", "Jobs accepted by the API", ["type"], registry=r)
        self.http_requests = Counter(f"{PREFIX}_http_requests", "API requests answered",
                                     ["route", "method", "code"], registry=r)
        self.http_seconds = Histogram(f"{PREFIX}_http_request_duration_seconds", "API request latency",
                                      ["route"], buckets=REQUEST_SECONDS, registry=r)
        self.jobs_finished = Counter(f"{PREFIX}_jobs_finished", "Jobs that reached a final status",
                                     ["type", "status"], registry=r)
        self.job_seconds = Histogram(f"{PREFIX}_job_duration_seconds", "Time from start to final status",
                                     ["type", "status"], buckets=JOB_SECONDS, registry=r)
        self.queue_wait = Histogram(f"{PREFIX}_job_queue_wait_seconds",
                                    "Time from submit to a worker starting the job (first attempt)",
                                    ["type"], buckets=JOB_SECONDS, registry=r)
        self.jobs_requeued = Counter(f"{PREFIX}_jobs_requeued", "Runs given back to the queue",
                                     ["type", "reason"], registry=r)
        self.engine_errors = Counter(f"{PREFIX}_engine_errors", "Failed runs by kind "
                                     "(input, node, engine, internal, config, max_time)", ["type", "kind"],
                                     registry=r)
        self.webhooks = Counter(f"{PREFIX}_webhook_deliveries", "Webhook attempts by outcome "
                                "(delivered, retrying, failed, gone, blocked)", ["outcome"], registry=r)
        self.gpu_launches = Counter(f"{PREFIX}_gpu_launches", "GPU node launches (ok, failed)", ["outcome"],
                                    registry=r)
        self.gpu_stops = Counter(f"{PREFIX}_gpu_node_stops", "GPU nodes stopped, by reason", ["reason"],
                                 registry=r)
        self.gpu_billed = Counter(f"{PREFIX}_gpu_billed_seconds",
                                  "Launch-to-stop seconds of the GPU nodes this process stopped", registry=r)
        self.gpu_reconcile_gone = Counter(f"{PREFIX}_gpu_reconcile_gone_nodes",
                                          "Pool nodes the provider no longer ran (found by the reconciliation)",
                                          registry=r)

        self._collectors: list[Collector] = []

    def add_collector(self, collector: Collector) -> None:
        """A collector read at scrape time (e.g. :class:`ClusterCollector`)."""
        self._collectors.append(collector)
        self.registry.register(collector)

    def render(self) -> bytes:
        """The exposition text of this process, or under gunicorn of all its processes."""
        if not self.multiproc_dir:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            merged.register(collector)
        return generate_latest(merged)


class ClusterCollector(Collector):
    """Reads the service's shared state from the stores on every scrape (reads only).

    ``queue_depth`` is the queue adapter's own count (Redis list or SQS attribute).
    Failures to read become ``c3render_cluster_scrape_ok 0`` rather than a failed scrape,
    so the process's own counters are still collected when Redis is down.
    """

    def __init__(self, *, store: JobStore, outbox: Outbox, pool: PoolStore, queue_depth: Callable[[], int],
                 live_within_s: float, idle_timeout_s: float, price_per_hour: float | None = None,
                 max_node_seconds_per_hour: float | None = None) -> None:
        self.price_per_hour = price_per_hour
        self.max_node_seconds_per_hour = max_node_seconds_per_hour
        self.store = store
        self.outbox = outbox
        self.pool = pool
        self.queue_depth = queue_depth
        self.live_within_s = live_within_s
        self.idle_timeout_s = idle_timeout_s

    def describe(self) -> Iterable[Metric]:
        return []  # collected fresh every time; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        ok = GaugeMetricFamily(f"{PREFIX}_cluster_scrape_ok", "1 when the shared state was read from Redis")
        try:
            families = list(self._families(time.time()))
        except Exception as err:  # any backend failure: report 0 (alertable), keep the scrape
            log.warning("cannot read the cluster state for metrics: %s", err)
            ok.add_metric([], 0)
            ok.documentation += f" (last error: {type(err).__name__})"
            yield ok
            return
        ok.add_metric([], 1)
        yield ok
        yield from families

    def _families(self, now: float) -> Iterable[Metric]:
        gauges = [
            (f"{PREFIX}_queue_depth", "Jobs waiting in the queue (adapter's count)", self.queue_depth()),
            (f"{PREFIX}_queue_oldest_age_seconds", "Age of the oldest queued job (0 if none)",
             self.store.oldest_queued_age(now)),
            (f"{PREFIX}_jobs_queued", "Jobs in the queued state (job store's count)", self.store.queued_count()),
            (f"{PREFIX}_workers_live", "Worker slots that sent a heartbeat recently",
             self.store.live_workers(self.live_within_s)),
            (f"{PREFIX}_webhook_outbox_due", "Webhook deliveries due now or overdue", self.outbox.due(now)),
        ]
        for name, doc, value in gauges:
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        yield from self._nodes(now)

    def _nodes(self, now: float) -> Iterable[Metric]:
        by_state = GaugeMetricFamily(f"{PREFIX}_gpu_nodes", "GPU nodes in the pool by state", labels=["state"])
        idle = GaugeMetricFamily(f"{PREFIX}_gpu_node_idle_seconds", "Seconds a ready node has run no job",
                                 labels=["node"])
        billed = GaugeMetricFamily(f"{PREFIX}_gpu_node_billed_seconds", "Seconds since a live node was launched",
                                   labels=["node"])
        nodes = self.pool.nodes()
        for node in nodes:
            state = node["state"]
            idle_since = node["idle_since"] or node["ready_at"]
            if state == "ready" and node["busy"] == 0 and idle_since and not node["static"]:
                idle.add_metric([node["node"]], max(0.0, now - idle_since))
            if node["launched_at"] and not node["static"]:
                billed.add_metric([node["node"]], max(0.0, now - node["launched_at"]))
        for state, count in sorted(count_by_state(nodes).items()):
            by_state.add_metric([state], count)
        timeout = GaugeMetricFamily(f"{PREFIX}_gpu_idle_timeout_seconds", "The configured GPU_IDLE_TIMEOUT")
        timeout.add_metric([], self.idle_timeout_s)
        yield from (by_state, idle, billed, timeout)
        yield from self._spend(now, nodes)

    def _spend(self, now: float, nodes: list[dict[str, Any]]) -> Iterable[Metric]:
        live = sum(max(0.0, now - n["launched_at"]) for n in nodes if n["launched_at"] and not n["static"])
        total = live + self.pool.billed_total()
        values = [
            (f"{PREFIX}_gpu_billed_seconds_all", "Launch-to-stop seconds of every node, live ones so far", total),
            (f"{PREFIX}_gpu_node_seconds_last_hour", "Node-seconds billed in the last hour",
             self.pool.billed_since(now - 3600, now)),
            (f"{PREFIX}_gpu_launch_held", "1 when MAX_NODE_SECONDS_PER_HOUR held back a launch in the last minute",
             1.0 if now - self.pool.held_at() < 60 else 0.0),
            (f"{PREFIX}_gpu_reconcile_unknown_workloads",
             "Running workloads of ours the pool did not know at the last reconciliation (billed for nothing)",
             self.pool.reconcile_state()["unknown"]),
        ]
        if self.max_node_seconds_per_hour:
            values.append((f"{PREFIX}_gpu_max_node_seconds_per_hour", "The configured MAX_NODE_SECONDS_PER_HOUR",
                           self.max_node_seconds_per_hour))
        if self.price_per_hour is not None:
            values.append((f"{PREFIX}_gpu_spend", "What every node has billed, at GPU_PRICE_PER_HOUR",
                           total * self.price_per_hour / 3600))
        for name, doc, value in values:
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
