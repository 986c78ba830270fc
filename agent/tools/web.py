"""The `fetch` tool: an HTTP GET with size and time caps that refuses private addresses.

Every hop (redirects included) resolves the host, refuses it if any address is loopback, private,
link-local or otherwise not global, and then connects to the checked address itself, so a DNS
answer that changes between the check and the connection cannot reach an internal service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from pydantic_ai import RunContext, ToolFailed
from typing_extensions import TypedDict

from agent.context import ToolContext

_MAX_REDIRECTS = 5
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


class FetchResult(TypedDict):
    url: str
    status: int
    content_type: str
    content: str
    truncated: bool


async def _checked_address(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve `host` and return an address to connect to, refusing non-global ones."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolFailed(f"cannot resolve {host}: {exc}") from exc
    # IPv4 first: many hosts resolve AAAA records without having an IPv6 route.
    addresses = sorted({str(info[4][0]) for info in infos}, key=lambda address: ":" in address)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global and not allow_private:
            raise ToolFailed(
                f"{host} resolves to the non-public address {ip}; fetching it is not allowed"
            )
    return addresses[0]


def _pinned_url(url: str, address: str) -> str:
    """`url` with its host replaced by the already-checked `address`."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _decode(body: bytes, content_type: str, encoding: str | None) -> str:
    if not content_type or content_type.startswith(_TEXT_TYPES) or "+json" in content_type:
        return body.decode(encoding or "utf-8", errors="replace")
    return f"<{len(body)} bytes of {content_type} not shown>"


async def _get(client: httpx.AsyncClient, url: str, ctx: RunContext[ToolContext]) -> FetchResult:
    """Follow up to `_MAX_REDIRECTS` redirects, checking each target, and read a capped body."""
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ToolFailed(f"only http(s) URLs can be fetched, not {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await _checked_address(
            parts.hostname, port, allow_private=ctx.deps.fetch_allow_private
        )
        request = client.build_request(
            "GET",
            _pinned_url(url, address),
            headers={"Host": parts.netloc.rsplit("@", 1)[-1]},
            # TLS must still present and verify the real host name, not the pinned address.
            extensions={"sni_hostname": parts.hostname},
        )
        response = await client.send(request, stream=True)
        try:
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            body, truncated = bytearray(), False
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > ctx.deps.fetch_max_bytes:
                    del body[ctx.deps.fetch_max_bytes :]
                    truncated = True
                    break
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            return FetchResult(
                url=url,
                status=response.status_code,
                content_type=content_type,
                content=_decode(bytes(body), content_type, response.charset_encoding),
                truncated=truncated,
            )
        finally:
            await response.aclose()
    raise ToolFailed(f"more than {_MAX_REDIRECTS} redirects")


async def fetch(ctx: RunContext[ToolContext], url: str) -> FetchResult:
    """Fetch a public web page or file with HTTP GET (size and time limited).

    Args:
        url: The absolute http(s) URL to get.
    """
    timeout = ctx.deps.fetch_timeout_s
    # trust_env=False: a proxy from the environment would bypass the address checks.
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        try:
            async with asyncio.timeout(timeout):
                return await _get(client, url, ctx)
        except TimeoutError as exc:
            raise ToolFailed(f"fetching {url} took longer than {timeout:.0f} s") from exc
        except httpx.HTTPError as exc:
            raise ToolFailed(f"fetching {url} failed: {exc}") from exc
