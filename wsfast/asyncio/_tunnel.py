"""The asyncio client's connection: straight to the server, or through a proxy."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

from .._tunnel import blame_proxy, logger
from ..proxy import Proxy

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

__all__ = ["create_connection"]


async def create_connection(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    host: str,
    port: int,
    *,
    proxy: Proxy | None,
) -> tuple[asyncio.Transport, _ProtocolT]:
    """``loop.create_connection`` to ``host``:``port``, through ``proxy`` unless it is None
    (the protocol runs TLS, if any, inside the tunnel).

    Raises :class:`~wsfast.ProxyError` (or a subclass) when the proxy cannot be reached,
    fails or refuses, or another OSError. The caller bounds the time it takes.
    """
    if proxy is None:
        return await loop.create_connection(protocol_factory, host, port)
    sock = await _open_tunnel(loop, host, port, proxy)
    try:
        return await loop.create_connection(protocol_factory, sock=sock)
    except BaseException:
        sock.close()
        raise


async def _open_tunnel(loop: asyncio.AbstractEventLoop, host: str, port: int, proxy: Proxy) -> socket.socket:
    """A non-blocking socket connected to ``host``:``port`` through ``proxy``."""
    logger.debug("opening a tunnel to %s port %d through the proxy %s", host, port, proxy)
    if not proxy.resolves_names:
        address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0][4][0]
        assert isinstance(address, str)  # an IPv4 or IPv6 address
        host = address
    tunnel = proxy.tunnel(host, port)
    with blame_proxy(proxy, "connecting to"):
        sock = await _connect(loop, proxy.host, proxy.port)
    try:
        with blame_proxy(proxy, "negotiating with"):
            while True:
                request = tunnel.data_to_send()
                if request:
                    await loop.sock_sendall(sock, request)
                if not tunnel.bytes_needed:
                    return sock
                tunnel.receive_data(await loop.sock_recv(sock, tunnel.bytes_needed))
    except BaseException:
        sock.close()
        raise


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A non-blocking socket connected to the first address of ``host`` that accepts."""
    for family, kind, protocol, _, address in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, protocol)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error  # getaddrinfo gives at least one address, or raises
