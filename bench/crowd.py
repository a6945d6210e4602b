"""A crowd of clients on one asyncio loop, run as its own process by bench/serving.py.

    python -m bench.crowd slow URL N          N connections each sending one header byte a second (a
                                              connection the server drops is opened again at once)
    python -m bench.crowd wait URL N KEY S    N submits with "Prefer: wait=S", held open until answered

It prints "ready" once every connection is open (and, for wait, every request sent),
then holds them until killed; for wait it prints how many answered and how.
"""
from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlsplit


async def one_slow(host: str, port: int, opened: list[int]) -> None:
    """One slow client, for ever: a header byte a second and never the end of the headers; when the
    server gives up on it (gunicorn drops a request not read within its keep-alive time), again."""
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            opened[0] += 1
            writer.write(b"POST /csm HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            while not reader.at_eof():
                await asyncio.sleep(1.0)
                writer.write(b"a")
                await writer.drain()
        except OSError:
            pass
        await asyncio.sleep(0.1)


async def slow(host: str, port: int, count: int) -> None:
    opened = [0]
    clients = [asyncio.create_task(one_slow(host, port, opened)) for _ in range(count)]
    while opened[0] < count:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.gather(*clients)


async def wait(host: str, port: int, count: int, key: str, seconds: int) -> None:
    body = json.dumps({"audio_url": "https://media.example.com/talk.mp3"}).encode()
    request = (f"POST /whisper HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nPrefer: wait={seconds}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    readers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        readers.append(reader)
    print("ready", flush=True)
    lines = await asyncio.gather(*(r.readline() for r in readers), return_exceptions=True)
    codes: dict[str, int] = {}
    for line in lines:
        code = line.split()[1].decode() if isinstance(line, bytes) and line else "error"
        codes[code] = codes.get(code, 0) + 1
    print(json.dumps(codes), flush=True)
    await asyncio.sleep(3600)


def main() -> None:
    mode, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if mode == "slow":
        asyncio.run(slow(host, port, count))
    else:
        asyncio.run(wait(host, port, count, sys.argv[4], int(sys.argv[5])))


if __name__ == "__main__":
    main()
