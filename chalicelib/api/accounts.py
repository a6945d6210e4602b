"""Keys and usage: the calling key's own record and webhook secret, and GPU usage per key and day."""
from __future__ import annotations

import time
from typing import Any

from chalicelib.api.callers import Principal
from chalicelib.errors import Conflict, FieldProblem, NotFound, ValidationError
from chalicelib.jobs.models import iso
from chalicelib.jobs.schemas import civil_from_days, parse_date
from chalicelib.security.auth import ApiKey, KeyStore
from chalicelib.settings import Settings
from chalicelib.store.jobs import JobStore


def _day(name: str, value: str | None, problems: list[FieldProblem]) -> int | None:
    """A full date (``2026-11-28``) as its day number."""
    if value is None:
        return None
    day = parse_date(value)
    if day is None:
        problems.append(FieldProblem(name, "must be a date, such as 2026-11-28"))
    return day


class Accounts:
    """The calling key, and usage (the job store's per-day counters)."""

    def __init__(self, *, settings: Settings, keys: KeyStore, store: JobStore) -> None:
        self.settings = settings
        self.keys = keys
        self.store = store

    def _own_key(self, principal: Principal) -> ApiKey:
        if not principal.owner.startswith("key_"):
            raise Conflict("this caller has no API key record of its own (the static ADMIN_API_KEY, or no auth); "
                           "its jobs' webhooks are signed with WEBHOOK_SECRET")
        return self.keys.get(principal.owner)

    def me(self, principal: Principal) -> dict[str, Any]:
        """The calling key: its id, name, limits and whether it is an admin key."""
        if not principal.owner.startswith("key_"):
            return {"id": principal.owner, "admin": principal.admin}
        return self._own_key(principal).public()

    def webhook_secret(self, principal: Principal) -> dict[str, Any]:
        """The secret that signs the calling key's webhooks (and the previous one while it still does)."""
        record = self._own_key(principal)
        view: dict[str, Any] = {"webhook_secret": record.webhook_secret}
        if record.previous_webhook_secret and record.previous_valid_until > time.time():
            view["previous_webhook_secret"] = record.previous_webhook_secret
            view["previous_valid_until"] = iso(record.previous_valid_until)
        return view

    def rotate_webhook_secret(self, principal: Principal) -> dict[str, Any]:
        """A new secret for the calling key; the old one keeps signing for WEBHOOK_SECRET_OVERLAP_S."""
        record = self._own_key(principal)
        self.keys.rotate_secret(record.id, overlap_s=self.settings.webhook_secret_overlap_s)
        return self.webhook_secret(principal)

    def usage(self, *, principal: Principal, date_from: str | None = None,
              date_to: str | None = None) -> dict[str, Any]:
        """GPU usage per UTC day (``from``..``to``, full dates, inclusive; default today): jobs that ended
        on a worker, their GPU seconds and cost, for the calling key (admins: every key), and the
        key's budget for today. Days before the kept history (400 days) or after today are empty."""
        problems: list[FieldProblem] = []
        today = int(time.time() // 86400)
        first = _day("from", date_from, problems)
        last = _day("to", date_to, problems)
        if problems:
            raise ValidationError(problems)
        first = today if first is None and last is None else first if first is not None else last
        last = today if last is None else last
        assert first is not None
        days = [civil_from_days(d) for d in range(max(first, today - 399), min(last, today) + 1)]
        owners: set[str]
        if principal.admin:
            owners = set()
            for day in days:
                owners |= self.store.usage_owners(day.replace("-", ""))
        else:
            owners = {principal.owner}
        entries = [self._owner_usage(owner, days, today_seen=civil_from_days(today) in days)
                   for owner in sorted(owners)]
        price = self.settings.price_per_hour()
        total = {k: round(sum(e[k] for e in entries), 4) for k in ("jobs", "gpu_seconds")}
        total["cost"] = None if price is None else round(sum(e["cost"] or 0 for e in entries), 4)
        return {"from": civil_from_days(first), "to": civil_from_days(last), "price_per_hour": price,
                "keys": entries, "total": total}

    def _owner_usage(self, owner: str, days: list[str], *, today_seen: bool) -> dict[str, Any]:
        rows = []
        for day in days:
            used = self.store.usage(day.replace("-", ""), owner)
            if used["jobs"] or used["gpu_seconds"]:
                rows.append({"date": day, **used})
        entry: dict[str, Any] = {
            "key_id": owner, "jobs": sum(r["jobs"] for r in rows),
            "gpu_seconds": round(sum(r["gpu_seconds"] for r in rows), 3),
            "cost": None if self.settings.price_per_hour() is None else round(sum(r["cost"] or 0 for r in rows), 4),
            "days": rows}
        budget = 0.0
        entry["key_name"] = None
        if owner.startswith("key_"):
            try:
                record = self.keys.get(owner)
                budget, entry["key_name"] = record.gpu_seconds_per_day, record.name
            except NotFound:
                budget = 0.0
        if budget and today_seen:
            used_today = next((r["gpu_seconds"] for r in rows if r["date"] == rows[-1]["date"]
                               and r["date"] == civil_from_days(int(time.time() // 86400))), 0.0)
            pending = self.store.pending_gpu(owner)
            entry["budget"] = {"gpu_seconds_per_day": budget, "used_today": used_today,
                               "pending_gpu_seconds": round(pending, 3),
                               "remaining": round(max(0.0, budget - used_today - pending), 3),
                               "resets_at": iso((time.time() // 86400 + 1) * 86400)}
        return entry

    # -- health ---------------------------------------------------------------
