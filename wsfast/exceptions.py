"""Every exception wsfast raises, in one hierarchy rooted at :class:`WebSocketError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .handshake import Headers

__all__ = [
    "WebSocketError",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
    "InvalidHandshake",
    "InvalidStatus",
    "InvalidHeader",
    "InvalidURI",
    "ProxyError",
    "HTTPProxyError",
    "SOCKSProxyError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "DecodeError",
]


class WebSocketError(Exception):
    """Base class of every wsfast exception."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455. ``code`` is the close code to answer with."""

    code = 1002
    # Set by the frame parser on what it raises: the frames (and, from feed_messages(),
    # the messages) that it completed before the violation; of either codec twin.
    frames: list[Any]

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class PayloadTooBig(ProtocolError):
    """A frame or message exceeds the configured limit (close code 1009)."""

    code = 1009


class InvalidUTF8(ProtocolError):
    """A text message or close reason is not valid UTF-8 (close code 1007)."""

    code = 1007


class InvalidHandshake(WebSocketError):
    """The opening handshake failed."""


class InvalidStatus(InvalidHandshake):
    """The server answered the upgrade request with a status other than 101."""

    def __init__(
        self, status: int, reason: str = "", headers: Headers | Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        super().__init__(f"server rejected WebSocket connection: HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.headers: Headers | Mapping[str, str] = headers if headers is not None else {}
        self.body = body


class InvalidHeader(InvalidHandshake):
    """A handshake header is missing, malformed or has the wrong value."""


class InvalidURI(WebSocketError, ValueError):
    """The URL is not a valid ws:// or wss:// URL, or a proxy URL is not valid."""


class ProxyError(WebSocketError, OSError):
    """Connecting through a proxy failed: the proxy could not be reached (the OSError is
    the ``__cause__``), closed the connection, or answered something that is not its
    protocol. The subclasses are for a proxy that answered but refused the tunnel.

    It is an OSError too, so code that handles network errors handles these.
    """


class HTTPProxyError(ProxyError):
    """The HTTP proxy answered CONNECT with a status other than 2xx: typically 407 for
    missing or wrong credentials, 403 for a target it forbids, 500, 502 or 504 for one it
    could not reach. ``status``, ``reason`` and ``headers`` are those of its answer."""

    def __init__(self, status: int, reason: str = "", headers: Headers | Mapping[str, str] | None = None) -> None:
        super().__init__(f"the proxy refused the tunnel: HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.headers: Headers | Mapping[str, str] = headers if headers is not None else {}


class SOCKSProxyError(ProxyError):
    """The SOCKS5 proxy refused: ``reply`` is its reply code (RFC 1928 §6: 1 general
    failure, 2 not allowed by its rules, 3 network unreachable, 4 host unreachable,
    5 connection refused, 6 TTL expired, 7 command not supported, 8 address type not
    supported), or None when it turned the authentication down (credentials wrong, or
    missing where it wants some)."""

    def __init__(self, message: str, reply: int | None = None) -> None:
        super().__init__(message)
        self.reply = reply


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` describe why.

    ``code`` is the close code received from the peer, 1005 when its close
    frame had none, or 1006 when the connection dropped without a close frame.
    ``sent_code`` is the code wsfast sent, or None.
    """

    def __init__(self, code: int = 1006, reason: str = "", sent_code: int | None = None) -> None:
        self.code = code
        self.reason = reason
        self.sent_code = sent_code
        text = f"connection closed: {code}"
        if reason:
            text += f" {reason}"
        super().__init__(text)


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed cleanly (1000 or 1001 both ways, or 1005)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed because of an error or without a clean close handshake."""


class DecodeError(WebSocketError, ValueError):
    """The ``decode`` function of a connection raised for a message: the application's
    error, not the peer's, so the connection stays open and the messages after this one
    can still be received.

    ``message`` is the raw payload that failed (``bytes``, text and binary alike); the
    decoder's exception is the ``__cause__``.
    """

    def __init__(self, message: bytes) -> None:
        super().__init__(f"decode failed on a message of {len(message)} bytes")
        self.message = message
