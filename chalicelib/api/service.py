"""What the API does, behind the routes: one facade over its parts, by resource.

Routes (``app.py`` and its blueprints in ``chalicelib/api/routes/``) parse the HTTP request, call one
method of one part, and turn the returned dict (or a :class:`RenderError`) into a response:

- ``callers``: who is calling (authentication) and their rate limits;
- ``jobs``: submit, status, result, wait, events, cancel, retry, delete, list, a job's webhooks;
- ``files``: uploads, voices and lasting result links;
- ``accounts``: the calling key and its webhook secret, GPU usage per key and day;
- ``cluster``: the GPU nodes and health.

Each part is given only the stores it uses (see :func:`chalicelib.api.wiring.build_service`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.api.accounts import Accounts
from chalicelib.api.callers import Callers
from chalicelib.api.cluster import Cluster
from chalicelib.api.files import Files
from chalicelib.api.jobs import Jobs
from chalicelib.files.storage import ObjectStorage
from chalicelib.jobs.spec import Catalog
from chalicelib.ops.metrics import Metrics
from chalicelib.settings import Settings


@dataclass(frozen=True)
class RenderService:
    """The API's parts, built once per process."""

    settings: Settings
    catalog: Catalog
    metrics: Metrics
    callers: Callers
    jobs: Jobs
    files: Files
    accounts: Accounts
    cluster: Cluster
    storage_factory: Callable[[], ObjectStorage]

    @property
    def storage(self) -> ObjectStorage:
        """The object storage, connected on first use (the same client every part uses)."""
        return self.storage_factory()
