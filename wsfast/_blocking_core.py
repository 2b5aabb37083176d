"""The hot paths of the blocking connection: the pure twin of the compiled codec's
``BlockingCore``, the base of :class:`wsfast._io.WebSocket`.

Here it holds the state both twins share and sends through the subclass's ``_send``. The
compiled twin adds fast paths: a ``recv()`` with no timeout that finds no message reads
itself (the GIL let go while the socket waits, a slice at a time; over TLS the ssl
module's TLS object decrypts) and parses plain frames with the Connection's parser, and
``send()`` frames a ``str`` or ``bytes`` message and writes it to the socket (or the TLS
object) while nothing else waits to be sent. Both stand aside for the subclass's Python
methods whenever something else is to be done: a control frame, a fragment, a frame
arriving in pieces, a violation, closing, a keepalive deadline within a slice, another
thread inside the Connection's lock, a socket that takes only part of a frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._receiver import BlockingReceiver
from ._typing import M

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from typing_extensions import Buffer

    from .protocol import Connection

    _A = TypeVar("_A")

__all__ = ["SEND_TIMEOUT", "BlockingCore"]

# Stands for "the connection's send_timeout" in send(), where None means no limit (typed
# as the float | None it stands for).
SEND_TIMEOUT: Any = object()


class BlockingCore(BlockingReceiver[M]):
    """The read and send paths of a blocking connection."""

    __slots__ = (
        "_buffer",  # the read buffer (a bytearray)
        "_conn",
        "_due",  # monotonic() time of the next keepalive work: reads near it take the Python way
        "_fd",  # the socket the compiled twin reads and writes itself, or -1
        "_full",  # the last read filled the buffer: more is likely waiting
        "_last_read",  # monotonic() time of the last read, for the keepalive
        "_reader_busy",  # a thread reads (see _claim_reading)
        "_readers_waiting",
        "_settled",  # the compiled twin's fast reads may go on
    )

    _conn: Connection
    _buffer: bytearray
    _full: bool
    _reader_busy: bool
    _readers_waiting: int
    _last_read: float
    _due: float
    _settled: bool
    _fd: int

    def _start_core(self) -> None:
        """Called once the subclass has its connection, stream and locks: the compiled
        twin sets up its fast paths."""
        self._fd = -1

    def _claim_reading(self) -> bool:
        """Become the reading thread if none is; called with the reader lock held."""
        if self._reader_busy:
            return False
        self._reader_busy = True
        return True

    def send(self, message: str | Buffer, timeout: float | None = SEND_TIMEOUT) -> None:
        """Send a message: text for a ``str``, binary for any bytes-like object.

        Returns once the kernel took the whole message. ``timeout`` (by default the
        connection's ``send_timeout``; None: no limit) bounds that wait: past it, part of
        the message may be on the wire already, so the connection is dropped and
        TimeoutError raised. Raises :class:`~wsfast.ConnectionClosed` once closing has
        begun or the connection dropped, and TypeError for anything but str or a
        bytes-like object.
        """
        self._send(self._conn.send, message, timeout)

    def _send(self, action: Callable[[_A], None], argument: _A, timeout: float | None) -> None:
        raise NotImplementedError
