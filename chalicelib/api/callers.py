"""Who is calling: authentication of a request's key, and the rate limits it is charged to."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.jobs.models import Admission, RateState
from chalicelib.security.auth import KeyStore, presented_key, static_admin
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore


@dataclass(frozen=True)
class Principal:
    """Who is calling: the owner of the jobs they create; admins see every owner's jobs."""

    owner: str
    admin: bool = False
    admission: Admission | None = None  # the key's limits; None: unlimited
    compat: str = ""  # "v1": answered as the first version answered (chalicelib/api/compat.py)


ANONYMOUS = Principal(owner="anonymous")
ADMIN = Principal(owner="admin", admin=True)


class Callers:
    """Authenticates requests (the static admin key, the first version's key, API keys) and charges them."""

    def __init__(self, *, settings: Settings, keys: KeyStore, store: JobStore) -> None:
        self.settings = settings
        self.keys = keys
        self.store = store
        self._v1_imported = False

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Who sent these headers. Raises :class:`Unauthorized` (401)."""
        if not self.settings.auth_required:
            return ANONYMOUS
        key = presented_key(headers)
        if static_admin(key, self.settings.admin_api_key):
            return ADMIN
        if not self._v1_imported and static_admin(key, self.settings.c3_render_key):
            # The first version's static key: recorded as a v1 key the first time it is used.
            self.keys.create(name="first version (C3_RENDER_KEY)", compat="v1", key=key)
            self._v1_imported = True
        record = self.keys.authenticate(key)
        return Principal(owner=record.id, admin=record.admin, admission=record.admission, compat=record.compat)

    def charge(self, principal: Principal) -> RateState | None:
        """Charge one request to the caller's rate limit. Raises :class:`RateLimited` (429)."""
        if principal.admission is None or principal.admission.rate_per_s <= 0:
            return None
        return self.store.charge(principal.owner, principal.admission)

    def charge_address(self, address: str) -> None:
        """Charge a request that carried no valid key to the client's address (``UNAUTHENTICATED_RATE_PER_S``).
        Raises :class:`RateLimited` (429) once the address is past its limit."""
        rate = self.settings.unauthenticated_rate_per_s
        if rate > 0:
            self.store.charge(f"address:{address}", Admission(rate_per_s=rate,
                                                              burst=self.settings.unauthenticated_burst))
