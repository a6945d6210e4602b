"""HTTP to URLs that passed the SSRF guard, and only to the addresses it vetted.

Every connection goes to an IP that :func:`vetted_addresses` approved a moment
before (TLS still checks the certificate for the host name), so a second DNS
answer cannot point it inside the network. :func:`fetch` follows redirects
itself, vetting each hop, and stops reading past a size cap.
"""
from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin

from chalicelib.security.urlpolicy import Target, UrlRefused, vetted_addresses

USER_AGENT = "c3-render/1.0"
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class UrlPolicy:
    allow_private: bool = False
    allow_hosts: frozenset[str] = frozenset()

    def vet(self, url: str) -> Target:
        return vetted_addresses(url, allow_private=self.allow_private, allow_hosts=self.allow_hosts)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def connect(target: Target, timeout_s: float) -> http.client.HTTPConnection:
    """A connection to the first vetted address of ``target`` (not yet opened)."""
    if not target.addresses:
        raise UrlRefused(f"host {target.host} does not resolve")
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    return cls(target.host, target.port, target.addresses[0], timeout_s)


def post(target: Target, headers: dict[str, str], body: bytes, timeout_s: float) -> tuple[int, str | None]:
    """POST without following redirects; returns (status, Retry-After header)."""
    conn = connect(target, timeout_s)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        reply = conn.getresponse()
        reply.read(64 * 1024)
        return reply.status, reply.getheader("Retry-After")
    finally:
        conn.close()


class FetchError(Exception):
    """An input could not be fetched; the message is fit for the job's error."""


class TooLarge(FetchError):
    pass


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str
    final_url: str


def fetch(url: str, *, policy: UrlPolicy, max_bytes: int, timeout_s: float) -> Fetched:
    """GET ``url``, vetting every redirect hop, reading at most ``max_bytes``.

    Raises :class:`UrlRefused` (a hop is not allowed), :class:`TooLarge` or
    :class:`FetchError` (unreachable, not 2xx, too many redirects).
    """
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        target = policy.vet(current)
        conn = connect(target, timeout_s)
        try:
            conn.request("GET", target.path, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
            reply = conn.getresponse()
            if reply.status in (301, 302, 303, 307, 308) and reply.getheader("Location"):
                current = urljoin(current, reply.getheader("Location", ""))
                continue
            if not 200 <= reply.status < 300:
                raise FetchError(f"answered HTTP {reply.status}")
            declared = reply.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(f"is {int(declared)} bytes; the limit is {max_bytes}")
            data = reply.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise TooLarge(f"is over the limit of {max_bytes} bytes")
            return Fetched(data, reply.getheader("Content-Type", "") or "", current)
        except (OSError, http.client.HTTPException) as err:
            raise FetchError(f"could not be fetched ({type(err).__name__}: {err})") from err
        finally:
            conn.close()
    raise FetchError(f"redirected more than {MAX_REDIRECTS} times")
