"""TLS for the asyncio connection, run by wsfast itself over the event loop's plain TCP
transport instead of the loop's own TLS (asyncio's ``sslproto``, several Python calls per
read and per write).

A :class:`TLSTransport` is both the protocol of the loop's TCP transport and the transport
of a :class:`~wsfast.asyncio.WebSocket`: it runs the TLS handshake, then decrypts what
arrives straight into the connection's read buffer and encrypts what the connection
writes (the hot paths are its base, ``TLSCore``: compiled, or :mod:`wsfast._tls_core`).
The ``ssl`` module does the TLS itself (an ``SSLObject`` over two memory BIOs), with the
``SSLContext`` given: certificate checks, SNI and ALPN are the context's, as with the
loop's TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from .._codec import TLSCore
from .._stream_core import READ_SIZE

if TYPE_CHECKING:
    from .connection import WebSocket

__all__ = ["TLSTransport"]


class TLSTransport(TLSCore, asyncio.BufferedProtocol):
    """TLS between the loop's TCP transport and ``ws``, which gets it as its transport
    once the TLS handshake is done (a server's connection: at once). The handshake's
    failure (e.g. ``ssl.SSLCertVerificationError``) fails ``ws``'s opening with that
    error. ``read_buffer``: where the loop's transport reads (by default one of its own)."""

    __slots__ = ("_context", "_error", "_server_hostname", "_server_side", "_ssl_object", "_ws")

    def __init__(
        self,
        ws: WebSocket[Any],
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        read_buffer: memoryview | None = None,
    ) -> None:
        super().__init__()
        # Where the loop's transport reads: the records are copied out at once, so the
        # connections of a server share one.
        self._view = memoryview(bytearray(READ_SIZE)) if read_buffer is None else read_buffer
        self._ws: WebSocket[Any] | None = ws  # forgotten once the connection is lost: no cycle
        self._context = context
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._ssl_object: ssl.SSLObject | None = None
        self._error: BaseException | None = None  # why this dropped the connection

    def __repr__(self) -> str:
        return f"<wsfast TLSTransport over {self._raw!r}>"

    # As the protocol of the loop's transport ---------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = transport  # type: ignore[assignment]  # a stream connection's: a Transport
        ssl_object = self._ssl_object = self._context.wrap_bio(
            self._incoming, self._outgoing, server_side=self._server_side, server_hostname=self._server_hostname
        )
        self._tls = ssl_object._sslobj  # type: ignore[attr-defined]
        self._attach_socket(transport)
        if self._server_side and self._ws is not None:
            # A server's connection is its own at once: its time limit for opening, and
            # its shutdown, cover the TLS handshake too. (A client writes its request
            # once the handshake is done.)
            self._ws._connection_made(self)  # type: ignore[arg-type]  # a transport to it
        self._handshake_step()

    def _handshake_step(self) -> None:
        """Go on with the TLS handshake, with the peer's bytes received so far."""
        assert self._ssl_object is not None  # made on connecting
        try:
            self._ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()  # our part of the handshake, and wait for the peer's
            return
        except ssl.SSLError as exc:
            self._flush()  # the alert that says why, if OpenSSL made one
            self._opening_failed(exc)
            return
        self._flush()
        self._handshaking = False
        ws = self._ws
        assert ws is not None  # the connection is not lost: this runs in a read
        self._get_buffer = ws._read_buffer
        self._buffer_updated = ws._data_received
        if not self._server_side:
            ws._connection_made(self)  # type: ignore[arg-type]  # a transport to it
        self._decrypt()  # what came with the end of the handshake

    def _opening_failed(self, exc: BaseException) -> None:
        """Opening raises ``exc``; the connection goes (not kept as why it was lost: its
        traceback refers to the opening coroutine, which refers to the connection)."""
        ws = self._ws
        if ws is not None:
            ws._opening_failed(exc)
        self.abort()

    def eof_received(self) -> bool:
        # Reading may have paused with records left: the connection gets them all, then
        # the loop's transport closes and connection_lost follows.
        self._decrypt_all()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._detach_socket()
        # What refers to the connection, or to an error whose traceback may refer here,
        # goes: no cycle for the collector to free.
        ws, self._ws = self._ws, None
        error, self._error = self._error, None
        self._get_buffer = self._buffer_updated = None
        if ws is not None:
            ws._connection_lost(exc if exc is not None else error)

    def pause_writing(self) -> None:
        if self._ws is not None:
            self._ws._writing_paused = True

    def resume_writing(self) -> None:
        if self._ws is not None:
            self._ws._resume_writing()

    # As the connection's transport -------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        """Drop the connection for ``exc`` (a TLS error: bad records, a failed handshake)."""
        if self._error is None:
            self._error = exc
        self._closing = True
        self._raw.abort()

    def close(self) -> None:
        """Send TLS's close_notify after what was written, then close the connection."""
        if self._closing:
            return
        self._closing = True
        if self._ssl_object is not None and not self._handshaking:
            try:
                self._ssl_object.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the close_notify is made; the peer's is not awaited
            self._flush()
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._raw.abort()

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        ssl_object = self._ssl_object
        if name == "ssl_object":
            return ssl_object
        if name == "sslcontext":
            return self._context
        if name == "peercert":
            return None if ssl_object is None else ssl_object.getpeercert()
        if name == "cipher":
            return None if ssl_object is None else ssl_object.cipher()
        if name == "compression":
            return None if ssl_object is None else ssl_object.compression()
        return self._raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._reading_paused = True
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        self._raw.resume_reading()
        # Records decrypted no further when reading paused: from the loop, not from
        # inside the recv() that resumed reading.
        asyncio.get_running_loop().call_soon(self._decrypt_rest)

    def _decrypt_rest(self) -> None:
        if not self._handshaking and not self._closing and not self._reading_paused:
            self._decrypt()

    def is_reading(self) -> bool:
        return not self._reading_paused and not self._closing

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return False  # TLS has close_notify, which close() sends
