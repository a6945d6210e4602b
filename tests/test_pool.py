"""The shared GPU pool against the devnode's Comput3 emulator: launches, sharing, scaling, crashes."""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import requests

from chalicelib.store.keys import PoolKeys
from chalicelib.store.pool import PoolStore
from devtools import servers
from tests.helpers import DEVNODE_KEY, Stack, job_ctx, pool_config
from tests.media_fixtures import FileServer
from worker.gpu.comput3 import Comput3Provider
from worker.gpu.nodes import Node, NodeTemplates, StaticProvider
from worker.gpu.pool import GpuPool

KEY = DEVNODE_KEY


COUNTS = ("launches", "stops", "stop_calls")


class Emulator:
    def __init__(self, node: servers.Server) -> None:
        self.api = f"{node.url}/api/v0"
        self.comfy = f"http://127.0.0.1:{node.comfy_port}"
        self.headers = {"X-C3-API-KEY": KEY}

    def stats(self) -> dict[str, Any]:
        """Launches and stops since this test began, and the workloads running now."""
        raw = dict(requests.get(f"{self.api}/_devnode/stats", headers=self.headers, timeout=5).json())
        base = getattr(self, "base", dict.fromkeys(COUNTS, 0))
        return {**raw, **{k: raw[k] - base[k] for k in COUNTS}}

    def reset_counts(self) -> None:
        self.base = dict.fromkeys(COUNTS, 0)
        self.base = {k: self.stats()[k] for k in COUNTS}

    def config(self, **body: Any) -> None:
        requests.post(f"{self.api}/_devnode/config", json=body, headers=self.headers, timeout=5)

    def render_delay(self, seconds: float) -> None:
        requests.post(f"{self.comfy}/_devnode/config", json={"render_delay_s": seconds}, headers=self.headers,
                      timeout=5)

    def kill(self, node: str) -> None:
        requests.post(f"{self.api}/_devnode/kill", json={"node": node}, headers=self.headers, timeout=5)

    def stop_all(self) -> None:
        for workload in self.stats()["running"]:
            requests.post(f"{self.api}/stop", json={"workload": workload["workload"]}, headers=self.headers,
                          timeout=5)


@pytest.fixture
def emulator(devnode: servers.Server) -> Iterator[Emulator]:
    emu = Emulator(devnode)
    emu.stop_all()
    emu.config(launch_delay_s=0.5, faults=[], stop_faults=[])
    emu.render_delay(0)
    emu.reset_counts()
    yield emu
    emu.render_delay(0)
    emu.config(faults=[], stop_faults=[])
    emu.stop_all()


def c3_stack(make_stack: Callable[..., Stack], devnode: servers.Server, workers: int, **env: str) -> Stack:
    stack = make_stack("redis", **{**servers.comput3_env(devnode, KEY), "WORKER_LEASE_S": "4", **env})
    stack.start_api()
    for _ in range(workers):
        stack.start_worker()
    return stack


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def pool_workloads(stack: Stack) -> set[str]:
    rds = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    pool = PoolKeys()
    return {rds.hget(pool.node(n), "workload") or "" for n in rds.smembers(pool.nodes)}


def test_ten_jobs_three_workers_one_node_cap_launch_exactly_one(make_stack: Callable[..., Stack],
                                                                devnode: servers.Server, emulator: Emulator,
                                                                inputs: FileServer) -> None:
    stack = c3_stack(make_stack, devnode, 3, MAX_GPU_NODES="1", GPU_IDLE_TIMEOUT="60")
    ids = [stack.submit("analyze", {"image_url": inputs.url("red.png")}).json()["id"] for _ in range(10)]
    views = [stack.wait_status(job_id, {"success", "failed"}, timeout_s=60) for job_id in ids]
    assert [v["status"] for v in views] == ["success"] * 10, views
    assert emulator.stats()["launches"] == 1
    assert len({v["node"] for v in views}) == 1
    admin, _ = stack.new_key("ops", admin=True)
    nodes = requests.get(f"{stack.url}/nodes", headers={"Authorization": f"Bearer {admin}"}, timeout=5).json()
    assert [(n["state"], n["jobs_run"]) for n in nodes["nodes"]] == [("ready", 10)]
    assert requests.get(f"{stack.url}/nodes", headers={"Authorization": f"Bearer {stack.key}"}).status_code == 403
    assert stack.http.get(f"{stack.url}/health").json()["gpu_nodes"] == {"ready": 1}


def test_a_burst_scales_up_to_the_cap_then_idle_nodes_stop(make_stack: Callable[..., Stack],
                                                           devnode: servers.Server, emulator: Emulator,
                                                           inputs: FileServer) -> None:
    emulator.render_delay(1.5)
    stack = c3_stack(make_stack, devnode, 3, MAX_GPU_NODES="3", SCALE_UP_QUEUE_PER_NODE="1", GPU_IDLE_TIMEOUT="3")
    ids = [stack.submit("portrait", {"image_url": inputs.url("face.jpg"), "text": f"Burst {i}."}).json()["id"]
           for i in range(9)]
    views = [stack.wait_status(job_id, {"success", "failed"}, timeout_s=120) for job_id in ids]
    assert all(v["status"] == "success" for v in views), views
    launches = emulator.stats()["launches"]
    assert 2 <= launches <= 3, launches
    assert len({v["node"] for v in views}) == launches
    wait_for(lambda: not emulator.stats()["running"], 30, "idle nodes to stop")
    assert emulator.stats()["stops"] == launches
    assert pool_workloads(stack) == set()


def test_a_worker_killed_holding_a_node_loses_nothing(make_stack: Callable[..., Stack], devnode: servers.Server,
                                                      emulator: Emulator, inputs: FileServer) -> None:
    emulator.render_delay(6)
    stack = c3_stack(make_stack, devnode, 1, MAX_GPU_NODES="2", GPU_IDLE_TIMEOUT="3")
    job_id = stack.submit("portrait", {"image_url": inputs.url("face.jpg"), "text": "Kill my worker."}).json()["id"]
    stack.wait_status(job_id, {"running"}, timeout_s=30)
    wait_for(lambda: bool(stack.status(job_id).get("node")), 30, "the job to hold a node")
    time.sleep(1)
    stack.workers[0].kill()
    emulator.render_delay(0)
    stack.start_worker()
    view = stack.wait_status(job_id, {"success", "failed"}, timeout_s=90)
    assert view["status"] == "success" and view["attempt"] == 2, view
    running = {w["workload"] for w in emulator.stats()["running"]}
    assert running <= pool_workloads(stack)  # nothing runs that the pool does not know
    wait_for(lambda: not emulator.stats()["running"], 30, "the pool to stop its idle nodes")


def test_launch_failures_are_retried_then_fail_clearly(make_stack: Callable[..., Stack], devnode: servers.Server,
                                                       emulator: Emulator, inputs: FileServer) -> None:
    emulator.config(faults=[{"kind": "html502"}, {"kind": "html502"}])
    stack = c3_stack(make_stack, devnode, 1, GPU_LAUNCH_RETRIES="3", MAX_ATTEMPTS="1", GPU_IDLE_TIMEOUT="1")
    first = stack.submit("analyze", {"image_url": inputs.url("red.png")}).json()["id"]
    assert stack.wait_status(first, {"success", "failed"}, timeout_s=60)["status"] == "success"
    assert emulator.stats()["launches"] == 1
    wait_for(lambda: not emulator.stats()["running"], 30, "the idle node to stop")
    emulator.config(faults=[{"kind": "html502"}] * 10)
    started = time.monotonic()
    second = stack.submit("analyze", {"image_url": inputs.url("red.png")}).json()["id"]
    view = stack.wait_status(second, {"success", "failed"}, timeout_s=60)
    assert view["status"] == "failed" and time.monotonic() - started < 30
    assert view["error"] == ("could not launch a media:fast GPU node after 4 tries: "
                             "Comput3 answered HTTP 502 (an HTML error page)")


def test_a_wrong_comput3_key_fails_jobs_with_a_clear_error(make_stack: Callable[..., Stack],
                                                           devnode: servers.Server, emulator: Emulator,
                                                           inputs: FileServer) -> None:
    stack = c3_stack(make_stack, devnode, 1, C3_API_KEY="not-the-key", NODE_API_KEY=KEY)
    job_id = stack.submit("analyze", {"image_url": inputs.url("red.png")}).json()["id"]
    view = stack.wait_status(job_id, {"success", "failed"}, timeout_s=30)
    assert view["status"] == "failed" and "Comput3 refused C3_API_KEY (HTTP 401)" in view["error"]
    assert view["attempt"] == 1 and emulator.stats()["launches"] == 0


def test_a_node_dying_mid_job_sends_the_job_to_another_node(make_stack: Callable[..., Stack],
                                                            devnode: servers.Server, emulator: Emulator,
                                                            inputs: FileServer) -> None:
    emulator.render_delay(5)
    stack = c3_stack(make_stack, devnode, 1, MAX_GPU_NODES="2")
    job_id = stack.submit("portrait", {"image_url": inputs.url("face.jpg"), "text": "My node dies."}).json()["id"]
    wait_for(lambda: bool(stack.status(job_id).get("node")), 30, "the job to hold a node")
    doomed = stack.status(job_id)["node"]
    time.sleep(1.5)
    emulator.kill(doomed)
    emulator.render_delay(0)
    view = stack.wait_status(job_id, {"success", "failed"}, timeout_s=90)
    assert view["status"] == "success" and view["attempt"] == 2, view
    assert view["node"] != doomed
    assert emulator.stats()["launches"] == 2


class SpyStatic(StaticProvider):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: list[str] = []

    def launch(self) -> Node:
        self.calls.append("launch")
        return super().launch()

    def stop(self, node: Node) -> None:
        self.calls.append("stop")
        super().stop(node)


def test_the_static_provider_never_launches_or_stops(rds: redis.Redis, inputs: FileServer) -> None:
    # "Nodes" that answer health (the file server), shared by four concurrent takers.
    host = inputs.url("").split("//")[1].rstrip("/")
    templates = NodeTemplates(urls={"health": "http://{node}/red.png"})
    provider = SpyStatic((host,), templates)
    pool = GpuPool(store=PoolStore(rds), provider=provider,
                   config=pool_config(can_launch=False, max_nodes=1, idle_timeout_s=0, acquire_timeout_s=20,
                                      lease_s=5))

    def take_and_give() -> None:
        for _ in range(5):
            lease = pool.acquire(job_ctx("analyze"))
            time.sleep(0.01)
            pool.release(lease, gpu_seconds=0.01)

    threads = [threading.Thread(target=take_and_give) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    pool.janitor(force=True)
    time.sleep(0.1)
    pool.janitor(force=True)
    assert provider.calls == []
    assert [(n["state"], n["jobs_run"], n["busy"], n["static"]) for n in pool.store.nodes()] == [
        ("ready", 20, 0, True)]


def test_a_job_never_starts_on_a_node_that_expires_first(rds: redis.Redis, devnode: servers.Server,
                                                         emulator: Emulator) -> None:
    pool = c3_pool(rds, devnode, lifetime_s=100, idle_timeout_s=600, expiry_margin_s=10)
    assert isinstance(pool.provider, Comput3Provider) and pool.provider.balance() == 100.0
    short = pool.acquire(job_ctx(max_time_s=30))
    pool.release(short)
    again = pool.acquire(job_ctx(max_time_s=30))  # fits in the node's remaining 100 s: reused
    pool.release(again)
    assert again.node.name == short.node.name and emulator.stats()["launches"] == 1
    long = pool.acquire(job_ctx(max_time_s=300))  # would outlive the first node: another one is launched
    assert long.node.name != short.node.name and emulator.stats()["launches"] == 2
    pool.release(long)
    # Near expiry (here: within the 600 s margin), idle nodes are stopped to be replaced on demand.
    pool.config = pool_config(max_nodes=3, idle_timeout_s=600, expiry_margin_s=600)
    pool.janitor(force=True)
    assert emulator.stats()["running"] == [] and pool.store.nodes() == []


def c3_pool(rds: redis.Redis, devnode: servers.Server, *, lifetime_s: float = 3600, **config: Any) -> GpuPool:
    templates = NodeTemplates(urls={"health": devnode.url + "/n/{node}/"}, api_key=KEY)
    provider = Comput3Provider(base_url=f"{devnode.url}/api/v0", api_key=KEY, node_type="media:fast",
                               lifetime_s=lifetime_s, templates=templates, retries=1, backoff_s=0.1)
    return GpuPool(store=PoolStore(rds), provider=provider,
                   config=pool_config(**{"max_nodes": 3, "ready_timeout_s": 10, "acquire_timeout_s": 20, **config}))


def test_a_lone_job_waits_for_a_busy_node_rather_than_launching(rds: redis.Redis, devnode: servers.Server,
                                                                emulator: Emulator) -> None:
    """A launch takes longer than most jobs and then idles: one job waiting is not a burst."""
    pool = c3_pool(rds, devnode, scale_up_after_s=30)
    first = pool.acquire(job_ctx())
    threading.Timer(1.0, pool.release, args=(first,)).start()
    started = time.monotonic()
    second = pool.acquire(job_ctx(), queue_depth=0)
    assert second.node.name == first.node.name and 0.9 < time.monotonic() - started < 5
    assert emulator.stats()["launches"] == 1


def test_a_job_that_waited_too_long_or_a_burst_gets_a_launch(rds: redis.Redis, devnode: servers.Server,
                                                             emulator: Emulator) -> None:
    pool = c3_pool(rds, devnode, scale_up_after_s=0.5, scale_up_queue_per_node=2)
    first = pool.acquire(job_ctx())
    started = time.monotonic()
    second = pool.acquire(job_ctx(), queue_depth=0)  # the first node stays busy: after 0.5 s, a launch
    assert second.node.name != first.node.name and time.monotonic() - started > 0.5
    assert emulator.stats()["launches"] == 2
    pool.config = pool_config(max_nodes=3, scale_up_after_s=30, scale_up_queue_per_node=2, ready_timeout_s=10,
                              acquire_timeout_s=20)
    third = pool.acquire(job_ctx(), queue_depth=6)  # both busy and 6 more queued: 7 per 2 slots > 2
    assert third.node.name not in (first.node.name, second.node.name)
    assert emulator.stats()["launches"] == 3


def test_a_launch_outlives_the_cancelled_job_that_asked_for_it(rds: redis.Redis, devnode: servers.Server,
                                                               emulator: Emulator) -> None:
    from chalicelib.errors import Cancelled

    emulator.config(launch_delay_s=1.5)
    pool = c3_pool(rds, devnode)
    ctx = job_ctx()
    threading.Timer(0.3, ctx.stop, args=("cancelled",)).start()
    with pytest.raises(Cancelled):
        pool.acquire(ctx)
    wait_for(lambda: [n["state"] for n in pool.store.nodes()] == ["ready"], 15, "the launched node to become ready")
    again = pool.acquire(job_ctx())  # the node was not wasted: the next job takes it
    assert again.node.name == pool.store.nodes()[0]["node"] and emulator.stats()["launches"] == 1
    assert rds.zcard(pool.store.keys.waiting) == 0  # neither job is counted as waiting any more


def test_after_a_burst_surplus_idle_nodes_stop_first_and_one_stays_warm(rds: redis.Redis, devnode: servers.Server,
                                                                          emulator: Emulator) -> None:
    pool = c3_pool(rds, devnode, idle_timeout_s=3, surplus_idle_s=0.5, scale_up_after_s=0)
    first = pool.acquire(job_ctx())
    second = pool.acquire(job_ctx())  # the first is busy: a launch right away (scale_up_after_s=0)
    assert first.node.name != second.node.name
    pool.release(first)
    time.sleep(0.2)
    pool.release(second)  # went idle last: the warm one
    time.sleep(0.8)
    pool.janitor(force=True)  # both idle for over 0.5 s: only the surplus one stops
    assert [n["node"] for n in pool.store.nodes()] == [second.node.name]
    time.sleep(1.0)
    pool.janitor(force=True)  # the warm one keeps the full idle timeout
    assert [n["node"] for n in pool.store.nodes()] == [second.node.name]
    time.sleep(2.0)
    pool.janitor(force=True)
    assert pool.store.nodes() == [] and emulator.stats()["stops"] == 2


def test_a_node_whose_launcher_died_is_adopted_not_wasted(rds: redis.Redis, devnode: servers.Server,
                                                          emulator: Emulator) -> None:
    pool = c3_pool(rds, devnode)
    node = pool.provider.launch()  # launched and recorded, then its worker died before the node was ready
    pool.store.launched("launch-dead", node.name, workload=node.workload or "", expires=node.expires or 0,
                        now=time.time())
    wait_for(lambda: pool._healthy(node, fresh=True), 10, "the node to answer")
    pool.janitor(force=True)
    assert [(n["node"], n["state"], n["busy"]) for n in pool.store.nodes()] == [(node.name, "ready", 0)]
    lease = pool.acquire(job_ctx())
    assert lease.node.name == node.name and emulator.stats()["launches"] == 1
    # The launcher's own (late) "ready" must not free the slot the job now holds.
    assert pool.store.ready(node.name, now=time.time(), launched_for="late", idle_since=time.time()) is False
    assert pool.store.nodes()[0]["busy"] == 1


@pytest.mark.parametrize("placement", ["spread", "pack"])
def test_placement_spreads_jobs_over_the_nodes_up_or_packs_them_onto_one(rds: redis.Redis, devnode: servers.Server,
                                                                        emulator: Emulator, placement: str) -> None:
    pool = c3_pool(rds, devnode, placement=placement, scale_up_after_s=0)
    first = pool.acquire(job_ctx())
    second = pool.acquire(job_ctx())  # the first is busy: a second node right away
    pool.release(first)
    pool.release(second)
    used = []
    for _ in range(4):
        lease = pool.acquire(job_ctx())
        used.append(lease.node.name)
        pool.release(lease)
    a, b = first.node.name, second.node.name
    # spread: the least recently used free node, so both stay warm; pack: the latest used,
    # so the other goes idle and stops after the idle timeout.
    assert used == ([a, b, a, b] if placement == "spread" else [b, b, b, b])
    assert emulator.stats()["launches"] == 2


def test_a_spent_node_is_replaced_by_one_that_keeps_its_idle_clock(rds: redis.Redis, devnode: servers.Server,
                                                                   emulator: Emulator) -> None:
    """A node that could no longer take a job of the default max_time (here 4 s, margin 2 s) is
    stopped once idle and replaced at once; unused, the replacement stops when the old node would have."""
    pool = c3_pool(rds, devnode, lifetime_s=8, idle_timeout_s=600, expiry_margin_s=2, typical_job_s=4)
    lease = pool.acquire(job_ctx(max_time_s=1))
    pool.release(lease)
    idle_since = float(pool.store.record(lease.node.name)["idle_since"])
    pool.janitor(force=True)  # about 8 s left: enough for a 4 s job and the margin; kept
    assert [n["node"] for n in pool.store.nodes()] == [lease.node.name] and emulator.stats()["stops"] == 0

    def replaced() -> bool:
        pool.janitor(force=True)
        return [(n["state"], n["node"] != lease.node.name) for n in pool.store.nodes()] == [("ready", True)]

    wait_for(replaced, 15, "the spent node to be replaced")
    [new] = pool.store.nodes()
    assert emulator.stats()["launches"] == 2 and emulator.stats()["stops"] == 1
    record = pool.store.record(new["node"])
    assert float(record["idle_since"]) == idle_since  # the old node's idle clock
    # A timeout between the replacement's own age and the old clock's: only the old clock stops it.
    old_clock, own_age = time.time() - idle_since, time.time() - float(record["ready_at"])
    assert own_age < old_clock - 0.2
    pool.config = dataclasses.replace(pool.config, idle_timeout_s=(old_clock + own_age) / 2)
    pool.janitor(force=True)  # idle past the timeout by the inherited clock: stopped, not replaced
    assert pool.store.nodes() == [] and emulator.stats()["stops"] == 2 and emulator.stats()["launches"] == 2


def test_nodes_launched_too_short_lived_for_a_default_job_serve_short_jobs_and_are_not_replaced(
        rds: redis.Redis, devnode: servers.Server, emulator: Emulator) -> None:
    """With GPU_LIFETIME_S below a default job's needs, nodes still serve the jobs they fit, stop
    within the expiry margin only, and are not replaced in a loop (a fresh one would be as short)."""
    pool = c3_pool(rds, devnode, lifetime_s=6, idle_timeout_s=600, expiry_margin_s=2, typical_job_s=60)
    lease = pool.acquire(job_ctx(max_time_s=1))
    pool.release(lease)
    pool.janitor(force=True)  # over 2 s left: kept for short jobs
    assert [n["node"] for n in pool.store.nodes()] == [lease.node.name]

    def stopped() -> bool:
        pool.janitor(force=True)
        return pool.store.nodes() == []

    wait_for(stopped, 10, "the node to be stopped near its expiry")
    time.sleep(0.5)
    assert pool.store.nodes() == [] and emulator.stats()["launches"] == 1 and emulator.stats()["stops"] == 1


def test_a_node_gone_behind_the_pools_back_is_dropped_not_spun_on(rds: redis.Redis, devnode: servers.Server,
                                                                  emulator: Emulator) -> None:
    """After an unclean stop, a recorded node may be gone (Comput3 answers /stop with 404): the next
    job finds it dead, stops it once, drops it, and gets a new node at once."""
    pool = c3_pool(rds, devnode)
    lease = pool.acquire(job_ctx())
    pool.release(lease)
    requests.post(f"{emulator.api}/stop", json={"workload": lease.node.workload}, headers=emulator.headers,
                  timeout=5)  # gone, without the pool knowing
    pool._healthy_until.clear()  # as after a restart: nothing cached
    emulator.reset_counts()
    started = time.monotonic()
    again = pool.acquire(job_ctx())
    assert again.node.name != lease.node.name and time.monotonic() - started < 5
    assert emulator.stats()["stop_calls"] == 1 and emulator.stats()["launches"] == 1
    assert [n["node"] for n in pool.store.nodes()] == [again.node.name]


def test_a_failing_stop_keeps_the_node_out_of_service_and_backs_off(rds: redis.Redis, devnode: servers.Server,
                                                                    emulator: Emulator) -> None:
    pool = c3_pool(rds, devnode, idle_timeout_s=0)
    lease = pool.acquire(job_ctx())
    pool.release(lease)
    emulator.config(stop_faults=[{"kind": "html502"}] * 100)
    emulator.reset_counts()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # a janitor sweeping as often as it can
        pool.janitor(force=True)
        time.sleep(0.05)
    # Comput3 refuses every stop: one attempt (with its retries inside the provider), then it waits 5 s.
    calls = emulator.stats()["stop_calls"]
    assert 1 <= calls <= 3, calls
    [node] = pool.store.nodes()
    assert node["state"] == "stopping"  # never back in service: no job is placed on it
    record = pool.store.record(node["node"])
    assert int(record["stop_failures"]) == 1 and float(record["retry_stop_at"]) > time.time() + 1
    emulator.config(stop_faults=[])
    rds.hset(pool.store.keys.node(node["node"]), "retry_stop_at", time.time())  # its retry is due
    pool.janitor(force=True)
    assert pool.store.nodes() == [] and emulator.stats()["stops"] == 1


def test_a_burst_launches_the_nodes_its_queue_needs_at_once(rds: redis.Redis, devnode: servers.Server,
                                                            emulator: Emulator) -> None:
    """Jobs piling up: one look at the pool launches as many nodes as the queue needs (here the cap, 3),
    not one per scale-up step; the extra ones join the pool for whichever job comes."""
    emulator.config(launch_delay_s=1.0)
    pool = c3_pool(rds, devnode)
    started = time.monotonic()
    lease = pool.acquire(job_ctx(), queue_depth=5)
    assert emulator.stats()["launches"] == 3  # at once: the job got its node in about one launch time
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 5
    while sum(n["state"] == "ready" for n in pool.store.nodes()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    others = [pool.acquire(job_ctx()) for _ in range(2)]  # the other two are ready for any job
    assert {lease.node.name, *(o.node.name for o in others)} == {n["node"] for n in pool.store.nodes()}
    assert emulator.stats()["launches"] == 3
