"""Which URLs the service may reach: the SSRF guard for webhooks and input URLs.

http(s) only; a host that is, or resolves to, a loopback, private, link-local,
multicast, reserved or cloud-metadata address is refused unless private URLs
are explicitly allowed (local development). Checked at submit and again at the
moment of use, since a name may resolve differently later; callers then connect
to the vetted address (see :func:`vetted_addresses`) so a second lookup cannot
swap it (DNS rebinding).
"""
from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.errors import FieldProblem, ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                                ipaddress.ip_address("100.100.100.200")})


class UrlRefused(ValueError):
    """The URL may not be fetched or called; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path + query, ready for the request line
    addresses: tuple[str, ...]  # vetted IPs to connect to


NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
    (::a.b.c.d), 6to4 (2002:AABB:CCDD::/48), Teredo (2001:0::/32, server and client) and NAT64
    (64:ff9b::/96, 64:ff9b:1::/48). A packet to one of these may reach that IPv4 address."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped:
        found.append(address.ipv4_mapped)
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    if any(address in prefix for prefix in NAT64_PREFIXES):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if 1 < int(address) <= 0xFFFFFFFF:  # ::a.b.c.d (but :: and ::1 are themselves)
        found.append(ipaddress.IPv4Address(int(address)))
    return found


def forbidden(address: IPAddress) -> str | None:
    """Why an address may not be reached, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in embedded_ipv4(address):
            why = forbidden(inner)
            if why:
                return f"embeds {inner}, which {why}"
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    checks = (("is_loopback", "loopback"), ("is_private", "private"), ("is_link_local", "link-local"),
              ("is_multicast", "multicast"), ("is_reserved", "reserved"), ("is_unspecified", "unspecified"))
    for attribute, label in checks:
        if getattr(address, attribute):
            return f"is a {label} address"
    if not address.is_global:
        return "is not a public address"
    return None


_CACHE_TTL_S = 60.0
_CACHE_MAX = 4096
_answers: dict[tuple[str, int], tuple[float, list[str] | None]] = {}


def _resolve(host: str, port: int, *, cached: bool = False) -> list[str]:
    """The host's addresses. ``cached`` answers from a 60 s per-process cache.

    The submit path uses the cache so a slow resolver never holds up the API;
    the moment of use (webhook delivery, input fetch) always resolves afresh.
    """
    now = time.monotonic()
    if cached:
        hit = _answers.get((host, port))
        if hit is not None and hit[0] > now:
            if hit[1] is None:
                raise UrlRefused(f"host {host} does not resolve")
            return hit[1]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        answer: list[str] | None = list(dict.fromkeys(str(info[4][0]) for info in infos))
    except (socket.gaierror, UnicodeError):
        answer = None
    if len(_answers) >= _CACHE_MAX:
        _answers.clear()
    _answers[(host, port)] = (now + _CACHE_TTL_S, answer)
    if answer is None:
        raise UrlRefused(f"host {host} does not resolve")
    return answer


def _parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL; raises :class:`UrlRefused`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise UrlRefused("is not a valid URL") from err
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("must be an http or https URL")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UrlRefused("must name a host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def _addresses(host: str, port: int, *, check: bool, resolve: bool) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    if check and (host in METADATA_HOSTS or host == "localhost" or host.endswith(".localhost")):
        raise UrlRefused(f"host {host} is internal")
    try:
        return _resolve(host, port, cached=not resolve)
    except UrlRefused:
        if resolve:
            raise
        return []


def vetted_addresses(url: str, *, allow_private: bool, allow_hosts: frozenset[str] = frozenset(),
                     resolve: bool = True) -> Target:
    """Parse ``url`` and vet where it leads. Raises :class:`UrlRefused` naming the reason.

    ``allow_hosts`` lists ``host`` or ``host:port`` entries an operator lets through
    although they are private (an internal MinIO, say). With ``resolve=False`` a
    name that does not resolve is accepted (its addresses are empty) so a submit
    does not depend on DNS; the check is repeated with ``resolve=True`` at the
    moment of use.
    """
    scheme, host, port, path = _parse(url)
    check = not (allow_private or host in allow_hosts or f"{host}:{port}" in allow_hosts)
    addresses = _addresses(host, port, check=check, resolve=resolve)
    if check:
        for address in addresses:
            why = forbidden(ipaddress.ip_address(address.split("%")[0]))
            if why:
                raise UrlRefused(f"{host} {why}" if address == host else f"host {host} {why}")
    return Target(scheme, host, port, path, tuple(addresses))


_USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")


def redact_url(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it replaced by ``***@``."""
    return _USERINFO.sub("***@", text)


def check_field(field: str, url: str, *, allow_private: bool, allow_hosts: frozenset[str] = frozenset()) -> None:
    """Submit-time check: raises :class:`ValidationError` naming ``field``."""
    try:
        vetted_addresses(url, allow_private=allow_private, allow_hosts=allow_hosts, resolve=False)
    except UrlRefused as err:
        raise ValidationError([FieldProblem(field, f"refused: {err}")]) from err
