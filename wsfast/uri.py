"""Parsing of ``ws://`` and ``wss://`` URLs (RFC 6455 §3)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from .exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443}

# Characters left as they are when percent-encoding the resource: RFC 3986
# unreserved, sub-delims, ":", "@", "/", "?" and "%" (already-encoded octets stay intact).
_RESOURCE_SAFE = "!$&'()*+,;=:@/?%~-._"


@dataclass(frozen=True)
class WebSocketURI:
    """The parts of a WebSocket URL that opening a connection needs.

    ``host`` has no brackets, even for an IPv6 address, so it can go straight to
    ``socket.create_connection``; ``resource`` is the path and query sent in the request
    line. ``user_info`` is ``(user, password)`` from ``ws://user:password@host/``, meant
    for an ``Authorization: Basic`` header, or None.
    """

    secure: bool
    host: str
    port: int
    resource: str = "/"
    user_info: tuple[str, str] | None = None

    @property
    def default_port(self) -> bool:
        """True when ``port`` is the scheme's default (80 for ws, 443 for wss)."""
        return self.port == (443 if self.secure else 80)


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a ``ws://`` or ``wss://`` URL; raise :class:`InvalidURI` for anything else."""
    if not isinstance(uri, str):
        raise InvalidURI(f"URL must be a str, not {type(uri).__name__}")
    if any(ch <= " " or ch == "\x7f" for ch in uri):
        raise InvalidURI(f"{uri!r} contains whitespace or control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURI(f"{uri!r} is not a WebSocket URL (scheme must be ws or wss)")
    if "#" in uri:
        raise InvalidURI(f"{uri!r} has a fragment, which WebSocket URLs must not have")
    if parts.netloc.count("@") > 1:
        raise InvalidURI(f"{uri!r} has an unescaped '@' in its user info")
    host = _parse_host(uri, parts.netloc.rpartition("@")[2])
    if port is None:
        if parts.netloc.endswith(":"):
            raise InvalidURI(f"{uri!r} has an empty port")
        port = _DEFAULT_PORTS[scheme]
    elif port == 0:
        raise InvalidURI(f"{uri!r} has port 0")
    resource = quote(parts.path or "/", safe=_RESOURCE_SAFE)
    if parts.query:
        resource += "?" + quote(parts.query, safe=_RESOURCE_SAFE)
    user_info = None
    if "@" in parts.netloc:
        user_info = (unquote(parts.username or ""), unquote(parts.password or ""))
    return WebSocketURI(scheme == "wss", host, port, resource, user_info)


def _parse_host(uri: str, hostport: str) -> str:
    """Return the host of ``host[:port]`` without brackets, IDNA-encoded if needed."""
    if hostport.startswith("["):
        literal, bracket, rest = hostport[1:].partition("]")
        if not bracket or rest[:1] not in ("", ":"):
            raise InvalidURI(f"{uri!r} has a malformed IPv6 literal")
        try:
            # A zone identifier is written "%25" in URLs (RFC 6874).
            ipaddress.IPv6Address(literal.replace("%25", "%"))
        except ValueError:
            raise InvalidURI(f"{uri!r} has an invalid IPv6 address {literal!r}") from None
        return literal.replace("%25", "%")
    host = hostport.rpartition(":")[0] if ":" in hostport else hostport
    if not host:
        raise InvalidURI(f"{uri!r} has no host")
    host = unquote(host)
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURI(f"{uri!r} has an invalid international host name") from None
    if any(ch in host for ch in ":/\\?#[]@%<>\"'`{}|^"):
        raise InvalidURI(f"{uri!r} has an invalid host {host!r}")
    return host
