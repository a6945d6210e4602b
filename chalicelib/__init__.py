"""C3 Render: the API's library, also used by the worker.

In rooms, each importing only the rooms below it (tests/test_structure.py holds this):

    api/        the service facade by resource, wiring, OpenAPI, docs, compat, the key CLI
    ops/        logs and metrics (shared with the worker)
    files/      object storage, uploads, voices
    security/   API keys and auth, the URL policy, safe HTTP, signed links, webhook signing
    queues/     the queue adapters (Redis, SQS) behind one interface
    store/      Redis: the job store, outbox, pool records, Redis key names, Lua scripts
    jobs/       the job model, the job types and their catalog, input schemas
    errors.py, settings.py   the base: every room may import them
"""
__version__ = "0.1.0"
