"""Redis: the job store, the webhook outbox, the GPU pool's records, job watchers, the Redis I/O
helpers, every Redis key name (``keys``) and the Lua scripts (``lua/``) that change them atomically.

May import jobs and the base modules (errors, settings); never queues, security, files, ops or api.
"""
