"""Redis plumbing shared by the stores: the Lua scripts, and one translation of connection failures.

Every ``chalicelib/store/lua/<name>.lua`` (but the ``_``-prefixed preludes) is loaded
and registered by :class:`Scripts`; a script pulls a prelude in with a line
``--! include _name``. Each script's header documents its KEYS and ARGV.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import redis

from chalicelib.errors import Unavailable

T = TypeVar("T")
LUA_DIR = Path(__file__).parent / "lua"
_INCLUDE = re.compile(r"^--! include (\w+)$", re.MULTILINE)


@cache
def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua`` with its ``--! include`` lines replaced by the preludes."""
    text = (LUA_DIR / f"{name}.lua").read_text()
    return _INCLUDE.sub(lambda m: lua_source(m.group(1)), text)


def script_names() -> list[str]:
    return sorted(p.stem for p in LUA_DIR.glob("*.lua") if not p.stem.startswith("_"))


class Scripts:
    """Every Lua script, registered on one client (EVALSHA, loaded on first use)."""

    def __init__(self, client: redis.Redis) -> None:
        self._scripts = {name: client.register_script(lua_source(name)) for name in script_names()}

    def __call__(self, name: str, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        return self._scripts[name](keys=list(keys), args=list(args))


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


def text(value: Any) -> str:
    """A Redis reply as str (bytes decoded)."""
    return value.decode() if isinstance(value, bytes) else str(value)
