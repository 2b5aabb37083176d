"""Every exception wsfast raises, in one hierarchy rooted at :class:`WebSocketError`."""

from __future__ import annotations

__all__ = [
    "WebSocketError",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
    "InvalidHandshake",
    "InvalidStatus",
    "InvalidHeader",
    "InvalidURI",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
]


class WebSocketError(Exception):
    """Base class of every wsfast exception."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455. ``code`` is the close code to answer with."""

    code = 1002

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

    def __init__(self, status: int, reason: str = "", headers=None, body: bytes = b"") -> None:
        super().__init__(f"server rejected WebSocket connection: HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.headers = headers if headers is not None else {}
        self.body = body


class InvalidHeader(InvalidHandshake):
    """A handshake header is missing, malformed or has the wrong value."""


class InvalidURI(WebSocketError, ValueError):
    """The URL is not a valid ws:// or wss:// URL."""


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
