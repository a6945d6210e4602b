"""Read-only view of the shared GPU pool (written by worker/pool.py), for the API."""
from __future__ import annotations

from typing import Any, cast

import redis

from chalicelib import keys


def node_view(name: str, data: dict[str, str]) -> dict[str, Any]:
    def num(field: str) -> float | None:
        value = data.get(field)
        return float(value) if value not in (None, "") else None
    return {"node": name, "state": data.get("state"), "busy": int(data.get("busy") or 0),
            "jobs_run": int(data.get("jobs_run") or 0), "gpu_seconds": round(num("gpu_seconds") or 0, 3),
            "idle_since": num("idle_since"), "ready_at": num("ready_at"), "launched_at": num("launched_at"),
            "expires": num("expires") or None, "static": data.get("static") == "1",
            "workload": data.get("workload") or None}


STATES = ("launching", "starting", "ready", "stopping")  # see chalicelib/lua/pool_*.lua


def count_by_state(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """How many nodes are in each state (every known state present, 0 when none)."""
    counts = dict.fromkeys(STATES, 0)
    for node in nodes:
        state = str(node["state"] or "unknown")
        counts[state] = counts.get(state, 0) + 1
    return counts


def pool_nodes(client: redis.Redis) -> list[dict[str, Any]]:
    names = sorted(str(n) for n in client.smembers(keys.POOL_NODES))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.pool_node(name))
    records = cast("list[dict[str, str]]", pipe.execute())
    return [node_view(name, data) for name, data in zip(names, records, strict=True) if data]
