"""An open WebSocket over a blocking socket: what the client and the server both hand out.

Reading fills one reusable buffer with ``recv_into`` and hands every complete frame of that
read to the sans-I/O :class:`~wsfast.protocol.Connection` at once; the messages wait in a
deque. The rest of a large payload is read straight into the bytes object it will become
(the codec's payload window), which saves copying it. A plain socket stays in blocking
mode, so a plain ``recv()`` costs one system call per read; a timeout waits with ``poll``
first, which never busy-waits and leaves the socket's own timeout alone, so a thread
sending at the same time is not affected by it. A TLS socket is switched to non-blocking
mode instead: bytes to read may be only part of a TLS record, and a blocking read would
then wait for the rest past any timeout.
"""

from __future__ import annotations

import collections
import logging
import math
import select
import socket
import ssl as ssl_module
import threading
from time import monotonic

from .deflate import DeflateParams
from .exceptions import ConnectionClosedError, ConnectionClosedOK
from .protocol import Connection, State

__all__ = ["WebSocket"]

logger = logging.getLogger("wsfast")

# The read buffer starts at _READ_SIZE and doubles, up to _MAX_READ_SIZE, each time a
# read fills it: a fast feed then costs fewer reads (and splits fewer big frames), while
# a quiet connection keeps a small buffer.
_READ_SIZE = 256 * 1024
_MAX_READ_SIZE = 4 * 1024 * 1024
# Bytes read, in the same system call, after the rest of a large payload (see
# _read_into_window): enough that a feed of such payloads costs few reads, few enough
# that most payloads are still read straight into place (measured on 16 KiB-4 MiB ones).
_TAIL_SIZE = 1024 * 1024
_DATA_TYPES = frozenset((str, bytes))


def deadline_after(timeout: float | None) -> float:
    """The ``monotonic()`` time ``timeout`` seconds from now; infinity for None."""
    if timeout is None:
        return math.inf
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    return monotonic() + timeout


def time_left(deadline: float) -> float | None:
    """Seconds left until ``deadline`` (None when it is infinite, as ``settimeout`` wants);
    TimeoutError once it has passed."""
    if deadline == math.inf:
        return None
    left = deadline - monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _lock_timeout(deadline: float) -> float:
    return -1 if deadline == math.inf else max(deadline - monotonic(), 0)


if hasattr(select, "poll"):

    def _wait(sock, timeout: float | None, write: bool = False) -> bool:
        """Wait until ``sock`` is readable (or writable), at most ``timeout`` seconds
        (None: no limit); False on timeout."""
        poller = select.poll()
        poller.register(sock, select.POLLOUT if write else select.POLLIN)
        # poll() counts whole milliseconds; rounding up never wakes before the deadline.
        return bool(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))

else:  # Windows

    def _wait(sock, timeout: float | None, write: bool = False) -> bool:
        ready = select.select([], [sock], [], timeout)[1] if write else select.select([sock], [], [], timeout)[0]
        return bool(ready)


class WebSocket:
    """An open WebSocket connection: the base of :class:`wsfast.client.Client` and of the
    connections a :class:`wsfast.server.Server` hands to its handler.

    Receive with :meth:`recv`, :meth:`recv_many` or by iterating; or take raw frames with
    :meth:`recv_frame` — but use only one of the two styles on a connection. Pings are
    answered and the peer's close frame is handled while receiving, so keep receiving
    (another thread may send or close meanwhile).
    """

    def __init__(
        self,
        sock: socket.socket,
        connection: Connection,
        *,
        leftover: bytes = b"",
        subprotocol: str | None = None,
        deflate_params: DeflateParams | None = None,
        close_timeout: float | None = 10.0,
    ) -> None:
        self._sock = sock
        self._conn = connection
        self._tls = isinstance(sock, ssl_module.SSLSocket)
        if self._tls:
            sock.setblocking(False)  # see the module's docstring
        self._buffer = bytearray(_READ_SIZE)
        self._view = memoryview(self._buffer)
        self._scatter = not self._tls and hasattr(sock, "recvmsg_into")
        # Bytes that came with the handshake: the first read processes them, once it is
        # known whether messages or frames are wanted.
        self._leftover = leftover
        self._messages: collections.deque = collections.deque()
        self._frames: collections.deque = collections.deque()
        self._frame_mode = False
        # The Connection is shared by the reading and the sending threads; _conn_lock is
        # held only briefly. _write_lock keeps the socket's writes whole and in queue order
        # without stopping the reader while a big send blocks.
        self._conn_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()  # one thread reads the socket at a time
        self._lost = threading.Event()  # set once TCP is gone and the socket closed
        self._close_timeout = close_timeout
        # Once closing begins, the peer must end TCP by this time or the connection is dropped.
        self._closing_deadline: float | None = None
        self._write_closed = False  # TCP FIN sent
        self.subprotocol = subprotocol
        """The subprotocol agreed in the handshake, or None."""
        self.deflate_params = deflate_params
        """The permessage-deflate parameters agreed in the handshake (a
        :class:`~wsfast.deflate.DeflateParams`), or None when messages go uncompressed."""
        self.local_address = sock.getsockname()
        """This end's socket address, as ``socket.getsockname()`` returns it."""
        self.remote_address = sock.getpeername()
        """The peer's socket address, as ``socket.getpeername()`` returns it."""

    # Properties --------------------------------------------------------------------

    @property
    def state(self) -> State:
        """OPEN, CLOSING (a close frame was sent or received) or CLOSED (TCP is gone)."""
        return self._conn.state

    @property
    def close_code(self) -> int | None:
        """The code of the peer's close frame (1005 if it had none, 1006 if the connection
        dropped without one); None until then."""
        return self._conn.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason in the peer's close frame; None until it arrived."""
        return self._conn.close_reason

    @property
    def pending(self) -> int:
        """How many received messages (or frames) wait to be returned without reading."""
        return len(self._frames) if self._frame_mode else len(self._messages)

    # Receiving ---------------------------------------------------------------------

    def recv(self, timeout: float | None = None):
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Waits at most ``timeout`` seconds (None: no limit), then raises TimeoutError; the
        connection stays usable. Once the connection has closed and every message received
        before has been returned, raises :class:`~wsfast.ConnectionClosedOK` after a normal
        close, else :class:`~wsfast.ConnectionClosedError` (whose ``__cause__`` is the
        :class:`~wsfast.ProtocolError` when the peer broke the protocol).
        """
        messages = self._messages
        if not messages:
            self._fill(messages, timeout)
        return messages.popleft()

    def recv_many(self, timeout: float | None = None) -> list:
        """Return every message received so far as a list, waiting (like :meth:`recv`)
        only if there is none: the fastest way to consume a high-rate feed."""
        messages = self._messages
        if not messages:
            self._fill(messages, timeout)
        batch = list(messages)
        messages.clear()
        return batch

    def recv_frame(self, timeout: float | None = None):
        """Return the next frame as it came on the wire, control frames included.

        Pings are still answered and the protocol still checked. The peer's close frame
        is returned like any other; after it, :class:`~wsfast.ConnectionClosed` is raised
        as :meth:`recv` would. Do not mix with :meth:`recv` on one connection.
        """
        self._frame_mode = True
        frames = self._frames
        if not frames:
            self._fill(frames, timeout)
        return frames.popleft()

    def __iter__(self):
        return self

    def __next__(self):
        """The next message; iteration ends when the peer closes normally."""
        messages = self._messages
        if not messages:
            try:
                self._fill(messages, None)
            except ConnectionClosedOK:
                raise StopIteration from None
        return messages.popleft()

    def _fill(self, queue: collections.deque, timeout: float | None) -> None:
        """Read until ``queue`` holds something; raise TimeoutError or ConnectionClosed."""
        deadline = deadline_after(timeout)
        while not queue:
            if self._lost.is_set():
                raise self._closed_exception()
            if not self._read_lock.acquire(timeout=_lock_timeout(deadline)):
                raise TimeoutError("timed out waiting for a message")
            try:
                if queue or self._lost.is_set():
                    continue  # another thread read meanwhile
                closing = self._closing_deadline
                if closing is not None and closing <= deadline:
                    if not self._readable(closing):
                        self._abort("the peer did not close the connection in time")
                        continue
                elif not self._readable(deadline):
                    raise TimeoutError("timed out waiting for a message")
                self._read()
            finally:
                self._read_lock.release()

    def _readable(self, deadline: float) -> bool:
        """Wait until there are bytes to read, or until ``deadline``; False on timeout."""
        if self._leftover:
            return True
        if self._tls:
            if self._sock.pending():
                return True  # decrypted bytes already wait in the TLS layer
        elif deadline == math.inf:
            return True  # the blocking read itself waits
        return _wait(self._sock, None if deadline == math.inf else max(deadline - monotonic(), 0))

    def _read(self) -> None:
        """Read once from the socket and process what came. Needs ``_read_lock``."""
        data = self._leftover
        if data:
            self._leftover = b""
        else:
            window = self._conn.payload_window()
            try:
                size = self._sock.recv_into(self._buffer) if window is None else self._read_into_window(window)
            except ssl_module.SSLWantReadError:
                return  # only part of a TLS record came: wait for the rest
            except OSError as exc:  # a reset or a TLS error: the connection is gone
                logger.debug("read failed: %r", exc)
                size = 0
            if not size:
                self._connection_lost()
                return
            if window is None:
                data = self._view[:size]
                self._grow_if_filled(size)
            elif size > len(window):
                # The window is full; the tail holds what follows it.
                data = self._view[: size - len(window)]
                self._grow_if_filled(size - len(window))
                self._act(self._process, window, quiet=True)
                del window  # the parser may have to grow the payload it showed
            else:
                data = window[:size]
        self._act(self._process, data, quiet=True)
        conn = self._conn
        if self._closing_deadline is None and (conn.close_code is not None or conn.close_transport):
            self._start_closing()
        if conn.close_transport and not self._write_closed:
            # Our close frame is out (just above): tell the peer TCP is done too.
            self._shutdown_write()

    def _grow_if_filled(self, size: int) -> None:
        """Double the read buffer when a read filled it (the data read keeps the old one
        alive meanwhile)."""
        if size == len(self._buffer) and size < _MAX_READ_SIZE:
            self._buffer = bytearray(2 * size)
            self._view = memoryview(self._buffer)

    def _read_into_window(self, window: memoryview) -> int:
        """Read the rest of a large payload straight into its ``window``, and in the same
        system call what follows into the read buffer; return the bytes read in all.

        The kernel then copies the payload to its final place, and no copy is made here.
        TLS sockets and Windows have no ``recvmsg_into``: they read the window alone.
        """
        if self._scatter:
            return self._sock.recvmsg_into([window, self._view[:_TAIL_SIZE]])[0]
        return self._sock.recv_into(window)

    def _process(self, data) -> None:
        """Feed received bytes to the Connection and queue what it returns."""
        if self._frame_mode:
            frames = self._conn.receive_frames(data)
            if frames:
                self._frames.extend(frames)
            return
        events = self._conn.receive_data(data)
        if events:
            if _DATA_TYPES.issuperset(map(type, events)):
                self._messages.extend(events)
            else:  # pings, pongs and the close frame are handled by the Connection
                self._messages.extend([event for event in events if type(event) in _DATA_TYPES])

    def _closed_exception(self):
        exc = self._conn.closed_exception()
        exc.__cause__ = self._conn.error
        return exc

    # Sending -----------------------------------------------------------------------

    def send(self, message) -> None:
        """Send a message: text for a ``str``, binary for any bytes-like object.

        Raises :class:`~wsfast.ConnectionClosed` once closing has begun or the connection
        dropped, and TypeError for anything but str or a bytes-like object.
        """
        conn = self._conn
        if type(message) is bytes:
            self._act(conn.send_binary, message)
            return
        if isinstance(message, str):
            self._act(conn.send_text, message)
            return
        try:
            memoryview(message)
        except TypeError:
            raise TypeError(f"send() needs a str or a bytes-like object, not {type(message).__name__}") from None
        self._act(conn.send_binary, message)

    def ping(self, payload=b"") -> None:
        """Send a ping (at most 125 bytes; a str is sent as UTF-8). The peer's pong shows
        up in :meth:`recv_frame`; :meth:`recv` skips it."""
        self._act(self._conn.send_ping, payload)

    def pong(self, payload=b"") -> None:
        """Send an unsolicited pong (at most 125 bytes), e.g. as a heartbeat."""
        self._act(self._conn.send_pong, payload)

    def _act(self, action, argument, quiet: bool = False) -> None:
        """Call ``action(argument)`` on the Connection and send what it queued.

        A send that fails raises ConnectionClosedError, or with ``quiet`` is only logged:
        a reply the peer can no longer take shows up as EOF on the next read.
        """
        with self._conn_lock:
            action(argument)
            data = self._conn.data_to_send()
            if not data:
                return
            # Taken before the Connection is let go, so that sends leave in queue order.
            self._write_lock.acquire()
        try:
            self._send_all(data)
        except OSError as exc:
            logger.debug("send failed: %r", exc)
            if not quiet:
                conn = self._conn
                code = 1006 if conn.close_code is None else conn.close_code
                raise ConnectionClosedError(code, conn.close_reason or "", conn.close_sent_code) from exc
        finally:
            self._write_lock.release()

    def _send_all(self, data) -> None:
        """``sendall``, also on the non-blocking TLS socket: wait while it can take no more."""
        if not self._tls:
            self._sock.sendall(data)
            return
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view) :]
            except ssl_module.SSLWantWriteError:
                _wait(self._sock, None, write=True)
            except ssl_module.SSLWantReadError:  # the TLS layer must read first
                _wait(self._sock, None)

    # Closing -----------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` (cut to 123 UTF-8 bytes).

        Sends a close frame, then waits up to ``close_timeout`` seconds for the peer's
        close frame and for TCP to end, as RFC 6455 asks; past that the connection is
        dropped. Messages that arrived before the peer's close frame can still be
        received. Safe to call from another thread than the receiving one; closing a
        closed connection does nothing.
        """
        self._start_close(code, reason)
        while not self._lost.is_set():
            deadline = self._closing_deadline
            if not self._read_lock.acquire(timeout=_lock_timeout(deadline)):
                # Another thread is reading, and the peer did not end TCP in time.
                self._abort("the peer did not finish the close handshake in time")
                return
            try:
                if self._lost.is_set():
                    return
                if not self._readable(deadline):
                    self._abort("the peer did not finish the close handshake in time")
                    return
                self._read()
            finally:
                self._read_lock.release()

    def _start_close(self, code: int, reason: str) -> None:
        """Send a close frame unless one was sent, without waiting for the answer."""
        if self._conn.state is State.OPEN:
            logger.debug("closing with %s %r", code, reason)
            self._act(self._send_close, (code, reason), quiet=True)
        self._start_closing()

    def _send_close(self, code_and_reason) -> None:
        if self._conn.state is State.OPEN:  # checked again: another thread may have closed
            self._conn.send_close(*code_and_reason)

    def _start_closing(self) -> None:
        if self._closing_deadline is None:
            self._closing_deadline = deadline_after(self._close_timeout)

    def _shutdown_write(self) -> None:
        """Send TCP FIN, still reading until the peer ends its side too."""
        self._write_closed = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _abort(self, why: str) -> None:
        """Drop the connection now; this also wakes a thread blocked reading it."""
        logger.debug("dropping the connection: %s", why)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._connection_lost()

    def _connection_lost(self) -> None:
        with self._conn_lock:
            self._conn.receive_eof()
        with self._write_lock:
            self._sock.close()
        if not self._lost.is_set():
            self._lost.set()
            logger.debug("connection closed: %s %r", self._conn.close_code, self._conn.close_reason)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.state.name} {self.remote_address}>"
