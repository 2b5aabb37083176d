"""The hot paths of the TLS that the asyncio connection runs itself over the event loop's
plain TCP transport: the pure twin of the compiled codec's ``TLSCore``, the base of
:class:`wsfast.asyncio._tls.TLSTransport`.

The loop's transport reads the peer's TLS records into ``_view`` (``get_buffer``,
``buffer_updated``); they go to OpenSSL through a memory BIO and come out decrypted
straight into the connection's own read buffer (its ``_read_buffer`` and
``_data_received``), as many records at once as fit. :meth:`TLSCore.write` encrypts what the connection
sends and hands the records to the loop's transport. The compiled twin does the same
without a Python frame on the way, and writes the records to the socket itself while the
transport holds nothing, as the connection does over plain TCP.

What is rare stays in the subclass: the TLS handshake (``_handshake_step``), closing,
and a failure (``_failed``), which drops the connection.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from typing_extensions import Buffer

__all__ = ["TLSCore"]


class TLSCore:
    """Decrypts what the loop's transport reads into the connection's buffer, and
    encrypts what the connection writes (see the module)."""

    __slots__ = (
        "_buffer_updated",
        "_closing",
        "_get_buffer",
        "_handshaking",
        "_incoming",
        "_outgoing",
        "_raw",
        "_reading_paused",
        "_tls",
        "_view",
    )

    def __init__(self) -> None:
        self._raw: asyncio.Transport = None  # type: ignore[assignment]  # the loop's, once connected
        self._tls: Any = None  # the ssl module's TLS object behind the SSLObject, once connected
        self._incoming = ssl.MemoryBIO()  # records received, not yet decrypted
        self._outgoing = ssl.MemoryBIO()  # records made, not yet written
        self._view = memoryview(b"")  # where the loop's transport reads, set by the subclass
        # The connection's get_buffer and buffer_updated: decrypted bytes go there.
        self._get_buffer: Callable[[int], memoryview] | None = None
        self._buffer_updated: Callable[[int], None] | None = None
        self._handshaking = True
        self._closing = False  # close() or abort() was called, or the connection failed
        self._reading_paused = False  # the connection asked not to get more for now

    def _attach_socket(self, transport: asyncio.BaseTransport) -> None:
        """The loop's transport connected (the compiled twin writes to its socket)."""

    def _detach_socket(self) -> None:
        """The loop's transport is gone: its socket may be closed, and its number reused."""

    # The loop's transport reads ----------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._incoming.write(self._view[:nbytes])
        if self._handshaking:
            self._handshake_step()
        else:
            self._decrypt()

    def _decrypt(self) -> None:
        """Hand the connection what the records received so far hold, into its own
        buffer, until they are used up (the rest of a record may still be on its way) or
        the connection pauses reading or closes."""
        while not self._closing and not self._reading_paused and self._undecrypted():
            assert self._get_buffer is not None and self._buffer_updated is not None  # set while connected
            target = self._get_buffer(-1)
            filled = self._fill(target, len(target))
            if filled > 0:
                self._buffer_updated(filled)
            elif filled < 0:
                return
        if not self._closing and self._outgoing.pending:  # e.g. the answer to a key update
            self._flush()

    def _decrypt_all(self) -> None:
        """Hand the connection every record received, paused or not: the peer sent its
        last bytes (they are at most one read)."""
        while not self._handshaking and not self._closing and self._undecrypted():
            self._reading_paused = False
            self._decrypt()

    def _undecrypted(self) -> bool:
        """Records received are not all decrypted, or their bytes not all handed out."""
        return bool(self._incoming.pending or self._tls.pending())

    def _fill(self, target: memoryview, size: int) -> int:
        """Decrypt records into ``target`` (``size`` bytes) until it is full or they are
        used up: one call of the connection for many records, and frames that cross
        records arrive whole. How many bytes it holds; -1 when the connection is done
        (the peer's close_notify, or a TLS error), once the bytes before are handed out."""
        filled = 0
        try:
            while filled < size:
                nbytes: int = self._tls.read(size - filled, target[filled:] if filled else target)
                if not nbytes:  # the peer's close_notify: it sends no more
                    break
                filled += nbytes
                if not self._undecrypted():
                    return filled
        except ssl.SSLWantReadError:
            return filled  # the rest of a record has not arrived
        except ssl.SSLError as exc:
            self._end(exc, filled)
            return -1
        if filled < size:
            self._end(None, filled)
            return -1
        return filled

    def _end(self, exc: ssl.SSLError | None, filled: int) -> None:
        """The TLS stream ended (``exc`` None: the peer's close_notify) after ``filled``
        bytes, which the connection gets first."""
        if filled:
            assert self._buffer_updated is not None  # set while connected
            self._buffer_updated(filled)
        if exc is None:
            self.close()
        else:
            self._failed(exc)

    # The connection writes ---------------------------------------------------------

    def write(self, data: Buffer) -> None:
        """Encrypt ``data`` and hand the records to the loop's transport."""
        if self._closing or not memoryview(data).nbytes:
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            self._failed(exc)
            return
        self._raw.write(self._outgoing.read())

    def _flush(self) -> None:
        """Hand the loop's transport the records OpenSSL made on its own."""
        data = self._outgoing.read()
        if data:
            self._raw.write(data)

    # What the subclass provides ----------------------------------------------------

    def _handshake_step(self) -> None:
        raise NotImplementedError

    def _failed(self, exc: BaseException) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
