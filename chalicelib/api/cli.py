"""``c3render``: operator commands. ``c3render keys create --name NAME`` prints a new key once.

    c3render keys create --name NAME [--admin] [--rate 20] [--burst 40] [--max-queued 1000] [--compat v1]
                         [--gpu-seconds-per-day N]
    c3render keys import-v1 [--name NAME]     the first version's C3_RENDER_KEY, as a v1 key
    c3render keys list
    c3render keys revoke KEY_ID
    c3render keys rotate-secret KEY_ID [--overlap SECONDS]
"""
from __future__ import annotations

import argparse
import json
import sys

import redis

from chalicelib.errors import RenderError
from chalicelib.security.auth import KeyStore
from chalicelib.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="c3render", description="C3 Render operator commands")
    sub = parser.add_subparsers(dest="area", required=True)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="sees every tenant's jobs")
    create.add_argument("--rate", type=float, default=20.0, help="requests per second (sustained)")
    create.add_argument("--burst", type=int, default=40, help="requests allowed at once")
    create.add_argument("--max-queued", type=int, default=1000, help="queued jobs at most")
    create.add_argument("--compat", choices=["v1"], default="",
                        help="v1: the first version's behaviour for this key (docs/compatibility.md)")
    create.add_argument("--gpu-seconds-per-day", type=float, default=0.0,
                        help="GPU budget per UTC day (0: none); past it submits get 429 budget_exceeded")
    imported = keys.add_parser("import-v1", help="record the first version's static key (C3_RENDER_KEY) as a v1 key")
    imported.add_argument("--name", default="first version (C3_RENDER_KEY)")
    keys.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    rotate = keys.add_parser("rotate-secret", help="give a key a new webhook secret (printed)")
    rotate.add_argument("key_id")
    rotate.add_argument("--overlap", type=float, default=None,
                        help="seconds the old secret keeps signing beside the new (default WEBHOOK_SECRET_OVERLAP_S)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    store = KeyStore(redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=5))
    try:
        if args.action == "create":
            key, record = store.create(name=args.name, admin=args.admin, rate_per_s=args.rate, burst=args.burst,
                                       max_queued=args.max_queued, compat=args.compat,
                                       gpu_seconds_per_day=args.gpu_seconds_per_day)
            print(json.dumps({"key": key, **record.public(), "webhook_secret": record.webhook_secret}, indent=2))
            print("Store the key now: it is shown only once.", file=sys.stderr)
        elif args.action == "import-v1":
            if not settings.c3_render_key:
                print("c3render: C3_RENDER_KEY is not set (the first version's static key)", file=sys.stderr)
                return 1
            _, record = store.create(name=args.name, compat="v1", key=settings.c3_render_key)
            print(json.dumps({**record.public(), "webhook_secret": record.webhook_secret}, indent=2))
        elif args.action == "list":
            print(json.dumps([k.public() for k in store.list()], indent=2))
        elif args.action == "rotate-secret":
            overlap = settings.webhook_secret_overlap_s if args.overlap is None else args.overlap
            record = store.rotate_secret(args.key_id, overlap_s=overlap)
            print(json.dumps({"id": record.id, "webhook_secret": record.webhook_secret,
                              "previous_valid_until": record.previous_valid_until}, indent=2))
        else:
            print(json.dumps(store.revoke(args.key_id).public(), indent=2))
    except RenderError as err:
        print(f"c3render: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
