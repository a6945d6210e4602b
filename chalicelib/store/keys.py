"""Every Redis key name the project uses, in one place."""
from __future__ import annotations


def job(job_id: str) -> str:
    return f"job:{job_id}"


def job_events(job_id: str) -> str:
    """A job's timeline: a list of JSON events (chalicelib/store/lua/_lib.lua)."""
    return f"job:{job_id}:events"


def job_channel(job_id: str) -> str:
    """Pub/sub channel: every change to the job is published here (waiting clients listen)."""
    return f"job:{job_id}:changed"


def owner_index(owner: str) -> str:
    """Sorted set of an owner's job ids, scored by submit sequence number."""
    return f"jobs:owner:{owner}"


ALL_JOBS = "jobs:all"
JOB_SEQ = "jobs:seq"  # INCR per submit: a job's place in line
JOB_HEAD = "jobs:head"  # highest seq a worker has started: position = seq - head - 1


QUEUED_BY_OWNER = "jobs:queued_by_owner"  # hash owner -> jobs queued now (the per-key cap)
QUEUED_SINCE = "jobs:queued"  # sorted set job id -> when it last entered the queue (unix s): the oldest's age


def rate_state(owner: str) -> str:
    """GCRA state (theoretical arrival time) of an owner's rate limit."""
    return f"rate:{owner}"


def api_key(digest: str) -> str:
    """An API key's record, by the SHA-256 of the key (the key itself is never stored)."""
    return f"apikey:{digest}"


def api_key_id(key_id: str) -> str:
    """Maps a key's public id to its digest (for list and revoke)."""
    return f"apikey-id:{key_id}"


API_KEYS = "apikeys"  # sorted set key id -> created


def idempotency(owner: str, key: str) -> str:
    return f"idem:{owner}:{key}"


# Worker liveness: sorted set of worker id -> last heartbeat (unix s).
WORKERS = "workers:alive"

# Webhook outbox (see chalicelib/store/lua/_lib.lua and worker/notifier.py).
WEBHOOK_DUE = "webhooks:due"  # sorted set delivery id -> due time (unix s)


WEBHOOK_PREFIX = "webhook:"
WEBHOOK_INFLIGHT = "webhooks:inflight:"  # + host:<host> / owner:<owner>: deliveries in flight (see _inflight.lua)


def webhook(delivery_id: str) -> str:
    return f"{WEBHOOK_PREFIX}{delivery_id}"


def webhook_attempts(delivery_id: str) -> str:
    return f"webhook:{delivery_id}:attempts"


class PoolKeys:
    """The shared GPU pool's keys, all built from one prefix (the Lua scripts get the same prefix:
    chalicelib/store/lua/_pool.lua documents each key)."""

    def __init__(self, prefix: str = "pool:") -> None:
        self.prefix = prefix
        self.nodes = f"{prefix}nodes"  # set of node names
        self.leases = f"{prefix}leases"  # zset "<node>|<token>" -> lease expiry (unix s)
        self.waiting = f"{prefix}waiting"  # zset acquire token -> expiry (unix s): jobs waiting for a node
        self.janitor = f"{prefix}janitor"  # lock: one janitor at a time
        self.billed = f"{prefix}billed"  # float: launch-to-stop seconds of every node stopped so far
        self.stopped = f"{prefix}stopped"  # zset "<node>|<launched_at>|<stopped_at>" -> stopped_at (the last 2 h)
        self.held = f"{prefix}held_at"  # when MAX_NODE_SECONDS_PER_HOUR last held back a launch (unix s)
        self.reconciled = f"{prefix}reconciled"  # hash: the janitor's last comparison with the provider

    def node(self, name: str) -> str:
        """A node's record: state, busy slots, expiry, idle since, jobs run, GPU seconds."""
        return f"{self.prefix}node:{name}"

    def seen(self, workload: str) -> str:
        """When the janitor first saw a running workload the pool does not know (unix s)."""
        return f"{self.prefix}seen:{workload}"


def queue(name: str) -> str:
    return f"queue:{name}"


def queue_leases(name: str) -> str:
    return f"queue:{name}:leases"


def queue_tokens(name: str) -> str:
    return f"queue:{name}:tokens"


def queue_delayed(name: str) -> str:
    return f"queue:{name}:delayed"


def queue_wake(name: str) -> str:
    return f"queue:{name}:wake"


# Uploads (chalicelib/files/uploads.py) and voices (chalicelib/files/voices.py).
def upload(upload_id: str) -> str:
    return f"upload:{upload_id}"


def upload_count(owner: str, day: str) -> str:
    """Uploads a key made on a UTC day (YYYYMMDD)."""
    return f"uploads:count:{owner}:{day}"


UPLOADS_EXPIRING = "uploads:expiring"  # zset object key -> when it may be deleted (unix s)
RESULTS_EXPIRING = "results:expiring"  # zset job id -> when its results/<id>/ objects may be deleted


def voice(voice_id: str) -> str:
    return f"voice:{voice_id}"


def owner_voices(owner: str) -> str:
    """Sorted set of a key's voice ids, scored by creation time."""
    return f"voices:owner:{owner}"


def lock(name: str) -> str:
    """A housekeeping lock (one sweeper at a time, say)."""
    return f"lock:{name}"


# GPU usage and budgets. The job scripts (create.lua, finish.lua, _lib.lua) build these same names.
def usage(day: str, owner: str) -> str:
    """Hash {jobs, gpu_seconds, cost}: what the owner's jobs that ended that UTC day (YYYYMMDD) used."""
    return f"usage:{day}:{owner}"


def usage_owners(day: str) -> str:
    """Set: the owners with usage that day."""
    return f"usage-owners:{day}"


def gpu_pending(owner: str) -> str:
    """The estimated GPU seconds of the owner's queued and running jobs (each at its type's mean)."""
    return f"gpu:pending:{owner}"


def gpu_mean(job_type: str) -> str:
    """A moving mean of the GPU seconds a job of this type uses."""
    return f"gpu:mean:{job_type}"


FILE_LINK_SECRET = "secrets:file-links"  # the HMAC key of lasting result links, when none is configured
