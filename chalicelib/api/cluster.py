"""Nodes and health: the GPU pool as billed, and whether the API's backends answer."""
from __future__ import annotations

import time
from typing import Any

from chalicelib.api.callers import Principal
from chalicelib.errors import Forbidden, RenderError
from chalicelib.queues.base import JobQueue
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore
from chalicelib.store.pool import PoolStore, count_by_state


class Cluster:
    """The pool's records and the health of Redis, the queue and the workers."""

    def __init__(self, *, settings: Settings, store: JobStore, pool: PoolStore, queue: JobQueue) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.queue = queue

    def nodes(self, *, principal: Principal) -> dict[str, Any]:
        """The GPU pool (admins): every node with state, slots in use, jobs run, times, and what it has
        billed so far and cost; the total, and the node-seconds billed in the last hour."""
        if not principal.admin:
            raise Forbidden("listing GPU nodes needs an admin key")
        now = time.time()
        price = self.settings.price_per_hour()
        nodes = []
        for node in self.pool.nodes():
            billed = max(0.0, now - node["launched_at"]) if node["launched_at"] and not node["static"] else 0.0
            nodes.append({**node, "billed_s": round(billed, 1),
                          "spend": None if price is None else round(billed * price / 3600, 4)})
        live = sum(n["billed_s"] for n in nodes)
        stopped = self.pool.billed_total()
        hour = self.pool.billed_since(now - 3600, now)
        return {"nodes": nodes, "total": {
            "billed_s": round(live + stopped, 1), "live_billed_s": round(live, 1),
            "spend": None if price is None else round((live + stopped) * price / 3600, 4),
            "billed_s_last_hour": round(hour, 1), "max_node_seconds_per_hour": self.settings.max_node_seconds_per_hour,
            "price_per_hour": price}}

    def health(self) -> tuple[dict[str, Any], bool]:
        """Returns ``(report, healthy)``; never raises for a backend being down."""
        report: dict[str, Any] = {"status": "ok"}
        healthy = True
        try:
            self.store.ping()
            report["redis"] = "ok"
            report["workers"] = {"live": self.store.live_workers(within_s=self.settings.worker_heartbeat_s * 3)}
            report["gpu_nodes"] = {state: n for state, n in count_by_state(self.pool.nodes()).items() if n}
        except RenderError as err:
            report["redis"] = str(err)
            healthy = False
        try:
            report["queue"] = {"backend": self.queue.backend, "depth": self.queue.depth()}
        except RenderError as err:
            report["queue"] = {"backend": self.queue.backend, "error": str(err)}
            healthy = False
        if not healthy:
            report["status"] = "unavailable"
        return report, healthy
