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
import socket
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


def forbidden(address: IPAddress) -> str | None:
    """Why an address may not be reached, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return forbidden(address.ipv4_mapped)
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


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise UrlRefused(f"host {host} does not resolve") from err
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def vetted_addresses(url: str, *, allow_private: bool, resolve: bool = True) -> Target:
    """Parse ``url`` and vet where it leads. Raises :class:`UrlRefused` naming the reason.

    With ``resolve=False`` a name that does not resolve is accepted (its
    addresses are empty) so a submit does not depend on DNS; the check is
    repeated with ``resolve=True`` at the moment of use.
    """
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
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    elif not allow_private and (host in METADATA_HOSTS or host == "localhost" or host.endswith(".localhost")):
        raise UrlRefused(f"host {host} is internal")
    else:
        try:
            addresses = _resolve(host, port)
        except UrlRefused:
            if resolve:
                raise
            addresses = []
    if not allow_private:
        for address in addresses:
            why = forbidden(ipaddress.ip_address(address.split("%")[0]))
            if why:
                raise UrlRefused(f"host {host} {why}" if literal is None else f"{host} {why}")
    return Target(parts.scheme, host, port, path, tuple(addresses))


def check_field(field: str, url: str, *, allow_private: bool) -> None:
    """Submit-time check: raises :class:`ValidationError` naming ``field``."""
    try:
        vetted_addresses(url, allow_private=allow_private, resolve=False)
    except UrlRefused as err:
        raise ValidationError([FieldProblem(field, f"refused: {err}")]) from err
