"""The worker's GPU side: the nodes it rents and the pool that shares them.

- ``nodes``: what a node is, its service URL templates, the provider interface and the static provider;
- ``comput3``: the Comput3.ai provider (launch, list, stop over its HTTP API);
- ``pool``: one pool for all workers (slots, launches, reuse, idle stops, the janitor, spend guards),
  its state in Redis behind ``chalicelib.store.pool``.

It imports chalicelib's lower rooms (settings, errors, models, the pool's store) and nothing of
the worker above it: the engines, the node protocol clients (``worker.clients``, ``worker.comfy``)
and the runner use it, never the reverse.
"""
