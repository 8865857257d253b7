"""Where a webhook may be sent: http(s) URLs on public addresses (no SSRF into the LAN).

Loopback, private, link-local (cloud metadata at 169.254.169.254), shared, reserved and
multicast addresses are refused unless the operator allows private targets. The check runs
when a subscription is saved and again before every delivery (DNS can change).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL = 2000


class TargetRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_form(url: str) -> str:
    """The URL, if it is an absolute http(s) URL with a host; else ``TargetRefused``."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise TargetRefused(f"at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("must start with http:// or https://")
    if not parts.hostname:
        raise TargetRefused("must name a host")
    if parts.username or parts.password:
        raise TargetRefused("must not carry a user name or password")
    del port
    return url


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def check_address(url: str, *, allow_private: bool, must_resolve: bool) -> None:
    """Refuse a URL whose host is (or resolves to) a non-public address."""
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise TargetRefused("points at this machine (private targets are not allowed)")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except OSError:
            if must_resolve:
                raise TargetRefused(f"the host {host} does not resolve") from None
            return
        addresses = [str(info[4][0]) for info in infos]
    if any(_private(a) for a in addresses):
        raise TargetRefused("points at a private or local address (not allowed)")
