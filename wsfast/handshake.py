"""The HTTP/1.1 opening handshake of RFC 6455 §4, for both sides, without any I/O.

Feed the bytes you read to ``receive_data`` until it returns True, send the bytes that
``request()`` / ``response()`` return, then hand ``leftover`` (the first frame bytes, if
they came in the same read) to a :class:`wsfast.protocol.Connection`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol, TypeVar, overload

from .exceptions import InvalidHandshake, InvalidHeader, InvalidStatus

if TYPE_CHECKING:
    from typing_extensions import Buffer, TypeIs

    from .deflate import DeflateOptions, DeflateParams

__all__ = [
    "DEFAULT_MAX_HEADER_SIZE",
    "ClientHandshake",
    "Headers",
    "ServerHandshake",
    "accept_key",
    "basic_credentials",
    "with_basic_auth",
]

DEFAULT_MAX_HEADER_SIZE = 64 * 1024

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 7230 §3.2.6: header names and the words of list-valued headers.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters that may not appear in a header value (horizontal tab may).
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 7230 §3.5 lets a recipient accept a bare LF as a line ending.
_LINE_END = re.compile(r"\r?\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?")
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) (HTTP/\d\.\d)")

_T = TypeVar("_T")


class _HeaderItems(Protocol):
    """Headers given as an object with ``items()``: a dict, a :class:`Headers`, ..."""

    def items(self) -> Iterable[tuple[str, str]]: ...


HeadersLike = _HeaderItems | Iterable[tuple[str, str]]
"""Headers as the API takes them: a dict, a :class:`Headers`, or (name, value) pairs."""


def _has_items(headers: HeadersLike) -> TypeIs[_HeaderItems]:
    return hasattr(headers, "items")


def _header_pairs(headers: HeadersLike) -> Iterable[tuple[str, str]]:
    """The (name, value) pairs of ``headers``."""
    return headers.items() if _has_items(headers) else headers


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value that answers the ``Sec-WebSocket-Key`` ``key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def basic_credentials(user: str, password: str) -> str:
    """The value of an ``Authorization`` (or ``Proxy-Authorization``) header for HTTP
    Basic authentication (RFC 7617), in UTF-8."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def with_basic_auth(headers: HeadersLike | None, user: str, password: str) -> list[tuple[str, str]]:
    """``headers`` as pairs, plus an Authorization header from the URL's credentials
    unless one was given."""
    pairs = list(_header_pairs(headers) if headers is not None else ())
    if not any(name.lower() == "authorization" for name, _ in pairs):
        pairs.append(("Authorization", basic_credentials(user, password)))
    return pairs


class Headers:
    """HTTP headers: a case-insensitive multi-dict that keeps every (name, value) pair in order.

    ``headers[name]`` joins repeated headers with ", " (RFC 7230 §3.2.2) and raises KeyError
    when absent; ``get_all(name)`` lists the separate values; ``items()`` gives the pairs
    as received; iterating yields the names.
    """

    __slots__ = ("_items",)

    def __init__(self, items: HeadersLike | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items is not None:
            for name, value in _header_pairs(items):
                self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append one header, keeping any earlier one with the same name."""
        self._items.append((name, value))

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order; [] when absent."""
        name = name.lower()
        return [v for n, v in self._items if n.lower() == name]

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: _T) -> str | _T: ...

    def get(self, name: str, default: object = None) -> object:
        """The combined value of ``name``, or ``default`` when absent."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """The (name, value) pairs, in the order received."""
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._items] == [(n.lower(), v) for n, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _HeadReader:
    """Collects bytes until the blank line ending an HTTP head, within a size limit."""

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_header_size must be positive")
        self.max_size = max_size
        self.buffer = bytearray()

    def feed(self, data: Buffer) -> tuple[bytes, bytes] | None:
        """Add ``data``; return (head, leftover) once the head is complete, else None."""
        buffer = self.buffer
        # Resume the search a little before the new bytes: the terminator may straddle reads.
        start = max(len(buffer) - 3, 0)
        buffer += data
        match = _HEAD_END.search(buffer, start)
        if match is None:
            if len(buffer) > self.max_size:
                raise InvalidHandshake(f"HTTP head is larger than max_header_size ({self.max_size} bytes)")
            return None
        if match.start() > self.max_size:
            raise InvalidHandshake(f"HTTP head is larger than max_header_size ({self.max_size} bytes)")
        return bytes(buffer[: match.start()]), bytes(buffer[match.end() :])


def _parse_head(head: bytes) -> tuple[str, Headers]:
    """Split a head into its first line and its headers."""
    lines = _LINE_END.split(head.decode("latin-1"))
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise InvalidHeader(f"malformed header line {line!r}")
        value = value.strip(" \t")
        if _BAD_VALUE_CHAR.search(value):
            raise InvalidHeader(f"control character in header {name}: {value!r}")
        headers.add(name, value)
    return lines[0], headers


def _tokens(headers: Headers, name: str) -> list[str]:
    """The comma-separated words of a list-valued header, in order."""
    words = (word.strip(" \t") for value in headers.get_all(name) for word in value.split(","))
    return [word for word in words if word]


def _require_token(headers: Headers, name: str, token: str) -> None:
    """Raise InvalidHeader unless ``token`` is one of the words of header ``name``."""
    if token not in (word.lower() for word in _tokens(headers, name)):
        found = headers.get(name)
        if found is None:
            raise InvalidHeader(f"missing {name} header")
        raise InvalidHeader(f"{name} header {found!r} does not contain {token!r}")


def _check_subprotocols(subprotocols: Iterable[str] | None) -> list[str]:
    if subprotocols is None:
        return []
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols must be a list of names, not a str")
    names = list(subprotocols)
    for name in names:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid subprotocol name {name!r}")
    return names


def _header_lines(headers: HeadersLike | None) -> list[str]:
    """Validate user-supplied headers (dict, Headers or pairs) and format them."""
    if headers is None:
        return []
    lines = []
    for name, value in _header_pairs(headers):
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        value = str(value)
        if _BAD_VALUE_CHAR.search(value) or value != value.strip(" \t"):
            raise ValueError(f"invalid value for header {name}: {value!r}")
        lines.append(f"{name}: {value}\r\n")
    return lines


class ClientHandshake:
    """The client side: builds the upgrade request and validates the server's answer.

    ``host`` and ``port`` form the Host header (the port only when it is not the scheme's
    default; an IPv6 address gets brackets). ``headers`` (a dict or a list of pairs) are
    sent after the standard ones. After ``receive_data`` returns True, ``status`` is 101,
    ``response_headers`` is a :class:`Headers`, ``subprotocol`` is the server's choice or
    None, and ``leftover`` holds any bytes that followed the head.
    """

    def __init__(
        self,
        host: str,
        port: int,
        resource: str = "/",
        *,
        secure: bool = False,
        origin: str | None = None,
        headers: HeadersLike | None = None,
        subprotocols: Iterable[str] | None = None,
        deflate: DeflateOptions | None = None,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    ) -> None:
        if not isinstance(host, str) or not host or any(ch <= " " or ch in "/?#@\x7f" for ch in host):
            raise ValueError(f"invalid host {host!r}")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"invalid port {port!r}")
        if not isinstance(resource, str) or not resource.startswith("/") or not resource.isascii():
            raise ValueError(f"resource must be an ASCII path starting with '/', not {resource!r}")
        if any(ch <= " " or ch == "\x7f" for ch in resource):
            raise ValueError(f"resource {resource!r} contains whitespace or control characters")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        if port != (443 if secure else 80):
            host = f"{host}:{port}"
        self.subprotocols = _check_subprotocols(subprotocols)
        extra: list[str] = []
        if origin is not None:
            extra += _header_lines([("Origin", origin)])
        if self.subprotocols:
            extra.append(f"Sec-WebSocket-Protocol: {', '.join(self.subprotocols)}\r\n")
        self.deflate = deflate
        self.deflate_params: DeflateParams | None = None
        if deflate is not None:
            extra.append(f"Sec-WebSocket-Extensions: {deflate.client_offer()}\r\n")
        extra += _header_lines(headers)
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._request = "".join(
            [
                f"GET {resource} HTTP/1.1\r\n",
                f"Host: {host}\r\n",
                "Upgrade: websocket\r\n",
                "Connection: Upgrade\r\n",
                f"Sec-WebSocket-Key: {self.key}\r\n",
                "Sec-WebSocket-Version: 13\r\n",
                *extra,
                "\r\n",
            ]
        ).encode("utf-8")
        self.status: int | None = None
        self.reason: str | None = None
        self.response_headers: Headers | None = None
        self.subprotocol: str | None = None
        self.leftover = b""
        self.max_header_size = max_header_size
        self._reader = _HeadReader(max_header_size)
        self._body_length: int | None = None  # Content-Length of a non-101 response
        self._awaiting_body = False
        self._error: InvalidHandshake | None = None
        self._done = False

    def request(self) -> bytes:
        """The upgrade request to send."""
        return self._request

    def receive_data(self, data: Buffer) -> bool:
        """Feed response bytes; True once the handshake succeeded.

        Raises :class:`InvalidStatus` when the server answered with another status than 101
        (with the body announced by Content-Length, once it has arrived),
        :class:`InvalidHeader` for a bad or missing header, and :class:`InvalidHandshake`
        for a malformed or oversized response head.
        """
        if self._error is not None:
            raise self._error
        if self._done:
            self.leftover += data
            return True
        if self._awaiting_body:
            self.leftover += data
            assert self._body_length is not None  # set when awaiting a body
            if len(self.leftover) >= self._body_length:
                raise self._fail(self._rejection())
            return False
        try:
            parsed = self._reader.feed(data)
        except InvalidHandshake as exc:
            raise self._fail(exc) from None
        if parsed is None:
            return False
        head, self.leftover = parsed
        self._reader = None  # type: ignore[assignment]  # its buffer is no longer needed
        try:
            self._process(head)
        except InvalidHandshake as exc:
            raise self._fail(exc) from None
        return self._done

    def receive_eof(self) -> None:
        """The server closed the connection before the handshake completed: raise why."""
        if self._error is not None:
            raise self._error
        if self._done:
            return
        if self._awaiting_body:
            raise self._fail(self._rejection())
        raise self._fail(InvalidHandshake("connection closed before the handshake response arrived"))

    def _fail(self, exc: InvalidHandshake) -> InvalidHandshake:
        """Remember ``exc`` so that later calls raise it again, and return it."""
        self._error = exc
        return exc

    def _rejection(self) -> InvalidStatus:
        # Without a usable Content-Length, the body is whatever came with the head.
        limit = self.max_header_size if self._body_length is None else self._body_length
        body = self.leftover[:limit]
        assert self.status is not None  # the status line has been parsed
        return InvalidStatus(self.status, self.reason or "", self.response_headers, body)

    def _process(self, head: bytes) -> None:
        status_line, headers = _parse_head(head)
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise InvalidHandshake(f"malformed HTTP status line {status_line!r}")
        version, status, reason = match.groups()
        self.status = int(status)
        self.reason = reason or ""
        self.response_headers = headers
        if self.status != 101:
            self._body_length = self._content_length(headers)
            if self._body_length is not None and len(self.leftover) < self._body_length:
                self._awaiting_body = True
                return
            raise self._rejection()
        if version != "HTTP/1.1":
            raise InvalidHandshake(f"unsupported HTTP version {version!r} in the 101 response")
        _require_token(headers, "Upgrade", "websocket")
        _require_token(headers, "Connection", "upgrade")
        accept = headers.get_all("Sec-WebSocket-Accept")
        if not accept:
            raise InvalidHeader("missing Sec-WebSocket-Accept header")
        if accept != [accept_key(self.key)]:
            raise InvalidHeader(f"wrong Sec-WebSocket-Accept {headers['Sec-WebSocket-Accept']!r}")
        extensions = headers.get_all("Sec-WebSocket-Extensions")
        if extensions:
            if self.deflate is None:
                raise InvalidHeader(
                    f"server enabled extensions that were not offered: {headers['Sec-WebSocket-Extensions']!r}"
                )
            self.deflate_params = self.deflate.client_accept(extensions)
        protocol = headers.get("Sec-WebSocket-Protocol")
        if protocol is not None:
            if protocol not in self.subprotocols:
                raise InvalidHeader(f"server chose subprotocol {protocol!r}, which was not offered")
            self.subprotocol = protocol
        self._done = True

    def _content_length(self, headers: Headers) -> int | None:
        """The announced body size, or None when absent, malformed or over max_header_size."""
        value = headers.get("Content-Length", "")
        if value.isdigit() and int(value) <= self.max_header_size:
            return int(value)
        return None


class ServerHandshake:
    """The server side: validates the client's upgrade request and builds the answer.

    ``subprotocols`` lists the ones this server speaks; the first one the client offers
    that is in that list is chosen. After ``receive_data`` returns True, ``path`` is the
    request target (path and query), ``request_headers`` a :class:`Headers`,
    ``subprotocol`` the choice or None, and ``leftover`` any bytes after the head; send
    ``response()``. When ``receive_data`` raises, send ``reject()`` and close.
    """

    def __init__(
        self,
        *,
        subprotocols: Iterable[str] | None = None,
        deflate: DeflateOptions | None = None,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    ) -> None:
        self.subprotocols = _check_subprotocols(subprotocols)
        self.deflate = deflate
        self.deflate_params: DeflateParams | None = None
        self._extensions_answer: str | None = None
        self.max_header_size = max_header_size
        self.path: str | None = None
        self.request_headers: Headers | None = None
        self.key: str | None = None
        self.subprotocol: str | None = None
        self.leftover = b""
        self._reader = _HeadReader(max_header_size)
        self._error: InvalidHandshake | None = None
        self._error_status: int = HTTPStatus.BAD_REQUEST
        self._done = False

    def receive_data(self, data: Buffer) -> bool:
        """Feed request bytes; True once a valid upgrade request has arrived.

        Raises :class:`InvalidHeader` for a bad or missing header and
        :class:`InvalidHandshake` for a malformed or oversized request head.
        """
        if self._error is not None:
            raise self._error
        if self._done:
            self.leftover += data
            return True
        try:
            parsed = self._reader.feed(data)
            if parsed is None:
                return False
            head, self.leftover = parsed
            self._reader = None  # type: ignore[assignment]  # its buffer is no longer needed
            self._process(head)
        except InvalidHandshake as exc:
            self._error = exc
            raise
        self._done = True
        return True

    def _process(self, head: bytes) -> None:
        request_line, headers = _parse_head(head)
        match = _REQUEST_LINE.fullmatch(request_line)
        if match is None:
            raise InvalidHandshake(f"malformed HTTP request line {request_line!r}")
        method, target, version = match.groups()
        if method != "GET":
            raise InvalidHandshake(f"WebSocket handshake needs a GET request, not {method}")
        if version < "HTTP/1.1":
            raise InvalidHandshake(f"WebSocket handshake needs HTTP/1.1, not {version}")
        if not target.startswith("/"):
            raise InvalidHandshake(f"request target must be a path, not {target!r}")
        self.path = target
        self.request_headers = headers
        if "Host" not in headers:
            raise InvalidHeader("missing Host header")
        _require_token(headers, "Upgrade", "websocket")
        _require_token(headers, "Connection", "upgrade")
        ws_version = headers.get("Sec-WebSocket-Version")
        if ws_version != "13":
            # RFC 6455 §4.4: answer 426 and name the version we speak.
            self._error_status = HTTPStatus.UPGRADE_REQUIRED
            if ws_version is None:
                raise InvalidHeader("missing Sec-WebSocket-Version header")
            raise InvalidHeader(f"unsupported Sec-WebSocket-Version {ws_version!r}; only 13 is supported")
        keys = headers.get_all("Sec-WebSocket-Key")
        if not keys:
            raise InvalidHeader("missing Sec-WebSocket-Key header")
        if len(keys) != 1 or not _is_valid_key(keys[0]):
            raise InvalidHeader(f"invalid Sec-WebSocket-Key {headers['Sec-WebSocket-Key']!r}")
        self.key = keys[0]
        offered = _tokens(headers, "Sec-WebSocket-Protocol")
        self.subprotocol = next((name for name in offered if name in self.subprotocols), None)
        if self.deflate is not None:
            accepted = self.deflate.server_accept(headers.get_all("Sec-WebSocket-Extensions"))
            if accepted is not None:
                self.deflate_params, self._extensions_answer = accepted

    def response(self, headers: HeadersLike | None = None) -> bytes:
        """The 101 Switching Protocols answer, with any extra ``headers`` (dict or pairs)."""
        if not self._done or self.key is None:
            raise RuntimeError("no valid upgrade request has been received")
        lines = [
            "HTTP/1.1 101 Switching Protocols\r\n",
            "Upgrade: websocket\r\n",
            "Connection: Upgrade\r\n",
            f"Sec-WebSocket-Accept: {accept_key(self.key)}\r\n",
        ]
        if self.subprotocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n")
        if self._extensions_answer is not None:
            lines.append(f"Sec-WebSocket-Extensions: {self._extensions_answer}\r\n")
        lines += _header_lines(headers)
        lines.append("\r\n")
        return "".join(lines).encode("utf-8")

    def reject(
        self,
        status: int | None = None,
        reason: str | None = None,
        body: str | Buffer = b"",
        headers: HeadersLike | None = None,
    ) -> bytes:
        """An HTTP error response that refuses the upgrade; close the connection after it.

        ``status`` defaults to what the last failure calls for: 426 for an unsupported
        WebSocket version (the response then names version 13), else 400. ``reason``
        defaults to the standard phrase; ``body`` (bytes or str) is sent as plain text.
        """
        status = self._error_status if status is None else status
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"invalid HTTP status {status!r}")
        if reason is None:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        if _BAD_VALUE_CHAR.search(reason):
            raise ValueError(f"invalid reason phrase {reason!r}")
        if isinstance(body, str):
            body = body.encode("utf-8")
        body = bytes(body)
        lines = [f"HTTP/1.1 {status} {reason}\r\n"]
        if status == HTTPStatus.UPGRADE_REQUIRED:
            lines += ["Upgrade: websocket\r\n", "Sec-WebSocket-Version: 13\r\n"]
        lines += _header_lines(headers)
        if body:
            lines.append("Content-Type: text/plain; charset=utf-8\r\n")
        lines += [f"Content-Length: {len(body)}\r\n", "Connection: close\r\n", "\r\n"]
        return "".join(lines).encode("utf-8") + body


def _is_valid_key(key: str) -> bool:
    """A Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 §4.1)."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False
