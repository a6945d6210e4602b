"""A key's voice library: a reference clip and its transcript, kept in the bucket, used by ``voice_id``.

``POST /voices`` copies the clip (an upload, a data URI or a URL) to ``voices/<key id>/<voice id>``,
so a voice outlives the URL it came from; a csm or portrait job then names ``voice_id`` instead
of sending ``audio_url`` and ``audio_text`` every time. Voices last until deleted.
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from chalicelib.errors import NotFound, StoreUnavailable
from chalicelib.jobs.models import iso
from chalicelib.store import keys
from chalicelib.store.redisio import RedisGuard

VOICE_ID = re.compile(r"^voice_[0-9a-f]{12}$")
_guard = RedisGuard(StoreUnavailable, "the voice library (Redis)")


@dataclass(frozen=True)
class Voice:
    id: str
    owner: str
    name: str
    key: str
    audio_text: str
    content_type: str
    size: int
    created_at: float

    def public(self) -> dict[str, Any]:
        return {"voice_id": self.id, "name": self.name, "audio_text": self.audio_text,
                "content_type": self.content_type, "size": self.size, "created_at": iso(self.created_at)}


class VoiceStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @staticmethod
    def new_id() -> str:
        return "voice_" + secrets.token_hex(6)

    def add(self, voice: Voice) -> Voice:
        def run() -> None:
            pipe = self.redis.pipeline()
            pipe.hset(keys.voice(voice.id), mapping={k: str(v) for k, v in voice.__dict__.items()})
            pipe.zadd(keys.owner_voices(voice.owner), {voice.id: voice.created_at})
            pipe.execute()
        _guard(run)
        return voice

    def get(self, voice_id: str, *, owner: str) -> Voice:
        """The owner's voice. Raises :class:`NotFound` (another key's voice does not exist for you)."""
        data = cast("dict[str, str]", _guard(lambda: self.redis.hgetall(keys.voice(voice_id))))
        if not data or data.get("owner") != owner:
            raise NotFound(f"no voice {voice_id}")
        return Voice(id=data["id"], owner=data["owner"], name=data["name"], key=data["key"],
                     audio_text=data["audio_text"], content_type=data["content_type"], size=int(data["size"]),
                     created_at=float(data["created_at"]))

    def list(self, *, owner: str) -> list[Voice]:
        ids = _guard(lambda: self.redis.zrevrange(keys.owner_voices(owner), 0, -1))
        found = []
        for voice_id in ids:
            try:
                found.append(self.get(str(voice_id), owner=owner))
            except NotFound:
                continue
        return found

    def delete(self, voice_id: str, *, owner: str) -> Voice:
        voice = self.get(voice_id, owner=owner)

        def run() -> None:
            pipe = self.redis.pipeline()
            pipe.delete(keys.voice(voice_id))
            pipe.zrem(keys.owner_voices(owner), voice_id)
            pipe.execute()
        _guard(run)
        return voice

    @staticmethod
    def now() -> float:
        return round(time.time(), 3)
