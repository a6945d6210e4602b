"""One translation of Redis connection failures into this project's errors."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from chalicelib.errors import Unavailable

T = TypeVar("T")


class RedisGuard:
    """Runs a Redis call; an unreachable or slow server becomes ``error(message)`` (a 503 in the API)."""

    def __init__(self, error: type[Unavailable], what: str) -> None:
        self.error = error
        self.message = f"{what} cannot be reached"

    def __call__(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise self.error(self.message) from err
