"""The blocking client's TCP connection: straight to the server, or through a proxy."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

from ._io import time_left
from .exceptions import ProxyError
from .proxy import Proxy, Tunnel

__all__ = ["blame_proxy", "open_socket"]

logger = logging.getLogger("wsfast")


def open_socket(host: str, port: int, proxy: Proxy | None, deadline: float) -> socket.socket:
    """A socket connected to ``host``:``port`` by the ``monotonic()`` ``deadline``: directly
    when ``proxy`` is None, else through a tunnel that ``proxy`` opens.

    Raises :class:`~wsfast.ProxyError` (or a subclass) when the proxy cannot be reached,
    fails or refuses, TimeoutError (``socket.timeout``), or another OSError.
    """
    if proxy is None:
        return socket.create_connection((host, port), timeout=time_left(deadline))
    logger.debug("opening a tunnel to %s port %d through the proxy %s", host, port, proxy)
    if not proxy.resolves_names:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
        assert isinstance(address, str)  # an IPv4 or IPv6 address
        host = address
    tunnel = proxy.tunnel(host, port)
    with blame_proxy(proxy, "connecting to"):
        sock = socket.create_connection((proxy.host, proxy.port), timeout=time_left(deadline))
    try:
        with blame_proxy(proxy, "negotiating with"):
            _negotiate(sock, tunnel, deadline)
    except BaseException:
        sock.close()
        raise
    return sock


def _negotiate(sock: socket.socket, tunnel: Tunnel, deadline: float) -> None:
    while True:
        request = tunnel.data_to_send()
        if request:
            sock.settimeout(time_left(deadline))
            sock.sendall(request)
        if not tunnel.bytes_needed:
            return
        sock.settimeout(time_left(deadline))
        tunnel.receive_data(sock.recv(tunnel.bytes_needed))


@contextlib.contextmanager
def blame_proxy(proxy: Proxy, doing: str) -> Iterator[None]:
    """Report an OSError inside as a :class:`~wsfast.ProxyError` naming ``proxy`` (and
    caused by it); a ProxyError or a timeout goes through as it is."""
    try:
        yield
    except (ProxyError, TimeoutError):
        raise
    except OSError as exc:
        raise ProxyError(f"{doing} the proxy {proxy} failed: {exc}") from exc
