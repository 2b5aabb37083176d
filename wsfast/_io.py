"""An open WebSocket over a blocking socket: what the client and the server both hand out.

Reading fills one reusable buffer and hands every complete frame of that read to the
sans-I/O :class:`~wsfast.protocol.Connection` at once; the messages wait in a deque. The
rest of a large payload is read straight into the bytes object it will become (the codec's
payload window), which saves copying it. The socket underneath is a non-blocking
:class:`~wsfast._stream.Stream` (TLS for ``wss://``): every wait is a ``poll`` with a
deadline, and no thread holds a lock while it waits, so a thread stuck sending to a peer
that stopped reading holds up neither a reader nor :meth:`WebSocket.close`.

Keepalive pings, the answers to the peer's pings and the close handshake all run in the
thread that receives (or closes): a connection nobody reads from sends nothing by itself.

Its base, :class:`~wsfast._blocking_core.BlockingCore`, holds the state its hot paths
share; the compiled twin reads and sends plain messages there (over plain TCP and TLS),
without the Python methods here, which take over for everything else.
"""

from __future__ import annotations

import collections
import logging
import math
import socket
import threading
from time import monotonic
from typing import TYPE_CHECKING, Any

from ._blocking_core import SEND_TIMEOUT as _SEND_TIMEOUT
from ._codec import BlockingCore
from ._stream import READ_SLICE, Stream, seconds_until, wait
from ._typing import M
from .batch import DEFAULT_MAX_BYTES, Batch
from .deflate import DeflateParams
from .enums import CloseCode
from .exceptions import ConnectionClosedError
from .keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, Keepalive
from .protocol import Connection, Pong, State

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence, Sized
    from typing import TypeVar

    from typing_extensions import Buffer, Self

    from ._codec import Frame
    from .exceptions import ConnectionClosed, ProtocolError
    from .protocol import _Event

    _A = TypeVar("_A")

__all__ = ["DEFAULT_SEND_TIMEOUT", "WebSocket"]

logger = logging.getLogger("wsfast")

DEFAULT_SEND_TIMEOUT = 60.0

# The read buffer starts at _READ_SIZE and doubles, up to _MAX_READ_SIZE, each time a
# read fills it: a fast feed then costs fewer reads (and splits fewer big frames), while
# a quiet connection keeps a small buffer. Past 1 MiB a read brings so many small
# messages that their memory no longer fits what the allocator keeps at hand: 100-byte
# messages came twice as slowly with 4 MiB reads.
_READ_SIZE = 256 * 1024
_MAX_READ_SIZE = 1024 * 1024
# Bytes read, in the same system call, after the rest of a large payload (see
# _read_into_window): enough that a feed of such payloads costs few reads, few enough
# that most payloads are still read straight into place (measured on 16 KiB-4 MiB ones).
_TAIL_SIZE = 1024 * 1024


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


class WebSocket(BlockingCore[M]):
    """An open WebSocket connection: the base of :class:`wsfast.client.Client` and of the
    connections a :class:`wsfast.server.Server` hands to its handler.

    Receive with :meth:`recv`, :meth:`recv_many`, :meth:`recv_batch` or by iterating; or
    take raw frames with :meth:`recv_frame` — but do not mix frames and messages on a
    connection. Pings are answered, keepalive pings sent and the peer's close frame
    handled while receiving, so keep receiving (another thread may send or close
    meanwhile).

    It is generic over the messages it hands out: ``WebSocket[str | bytes]`` (what a
    bare ``WebSocket`` means) without ``decode``, ``WebSocket[T]`` with a ``decode``
    function that returns ``T``.
    """

    # Slots keep attribute reads as fast as on a plain class, which a subclass of the
    # compiled BlockingCore with a __dict__ would not be.
    __slots__ = (
        "_batching",
        "_close_timeout",
        "_closing_deadline",
        "_conn_lock",
        "_frame_mode",
        "_frames",
        "_keepalive",
        "_leftover",
        "_lost",
        "_reader_free",
        "_reader_lock",
        "_send_timeout",
        "_stream",
        "_view",
        "_write_closed",
        "deflate_params",
        "local_address",
        "remote_address",
        "subprotocol",
    )

    def __init__(
        self,
        stream: Stream | socket.socket,
        connection: Connection,
        *,
        leftover: bytes = b"",
        subprotocol: str | None = None,
        deflate_params: DeflateParams | None = None,
        close_timeout: float | None = 10.0,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        decode: Callable[[bytes], Any] | None = None,
    ) -> None:
        if decode is not None and not connection.text_as_bytes:
            raise ValueError("decode takes bytes: it needs a Connection(text_as_bytes=True)")
        if not isinstance(stream, Stream):
            stream = Stream(stream)
        stream.wait_in_reads()  # the handshake is done: reads may wait in recv() itself
        self._stream = stream
        self._conn = connection
        self._keepalive = Keepalive(ping_interval, ping_timeout, monotonic())
        self._last_read = self._keepalive.last_received
        self._due = 0.0  # the keepalive's next deadline, unknown until the first read
        self._settled = False
        self._buffer = bytearray(_READ_SIZE)
        self._view = memoryview(self._buffer)
        self._full = False  # the last read filled the buffer: more is likely waiting
        # Bytes that came with the handshake: the first read processes them, once it is
        # known whether messages or frames are wanted.
        self._leftover = leftover
        super().__init__()  # the queue of received messages, behind recv() and iteration
        self._decode = decode  # what recv(), recv_many() and iteration hand out goes through it
        self._frames: collections.deque[Frame] = collections.deque()
        self._frame_mode = False
        self._batching = False  # the reading thread parses messages into batches (recv_batch)
        # The Connection is shared by the reading and the sending threads; _conn_lock is
        # held only briefly, and what it queues goes to the stream before it is let go,
        # so that frames leave in queue order.
        self._conn_lock = threading.Lock()
        # One thread reads at a time: it owns the reading (_reader_busy) without holding
        # a lock while it waits for the socket; the others wait on _reader_free, and
        # count themselves so that a reader done with nobody waiting need not notify.
        self._reader_lock = threading.Lock()
        self._reader_free = threading.Condition(self._reader_lock)
        self._reader_busy = False
        self._readers_waiting = 0
        self._lost = threading.Event()  # set once TCP is gone and the socket closed
        self._close_timeout = close_timeout
        self._send_timeout = send_timeout
        # Once closing begins, the peer must end TCP by this time or the connection is dropped.
        self._closing_deadline: float | None = None
        self._write_closed = False  # TCP FIN sent
        self.subprotocol = subprotocol
        """The subprotocol agreed in the handshake, or None."""
        self.deflate_params = deflate_params
        """The permessage-deflate parameters agreed in the handshake (a
        :class:`~wsfast.deflate.DeflateParams`), or None when messages go uncompressed."""
        self.local_address = stream.getsockname()
        """This end's socket address, as ``socket.getsockname()`` returns it."""
        self.remote_address = stream.getpeername()
        """The peer's socket address, as ``socket.getpeername()`` returns it."""
        self._start_core()

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
        return len(self._frames) if self._frame_mode else len(self._messages) + self._conn.batched

    @property
    def latency(self) -> float | None:
        """Seconds the last keepalive ping took to be answered; None before the first pong
        (or with keepalive off)."""
        return self._keepalive.latency

    # Receiving ---------------------------------------------------------------------

    def recv_batch(self, timeout: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Batch:
        """Return every message received so far as one :class:`~wsfast.Batch`: their
        payloads back to back in one buffer, with no Python object per message. Waits
        (like :meth:`recv`) only if there is none.

        A batch holds at most ``max_bytes`` payload bytes, unless a single message is
        larger: that one then comes alone, and what does not fit waits for the next
        call. Messages already queued by :meth:`recv` or :meth:`recv_many` come first.
        Timeout and closing work as for :meth:`recv`.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._decode is not None:
            raise RuntimeError("recv_batch() hands out raw payloads: not on a connection with decode")
        conn = self._conn
        while True:
            if self._messages:
                batch = Batch._from_queue(self._messages, max_bytes)
                if batch is not None:  # else a recv() in another thread took them first
                    return batch
            with self._conn_lock:
                conn.batches.max_bytes = max_bytes
                batch = conn.take_batch(max_bytes)
            if batch is not None:
                return batch
            self._fill(conn.batches, timeout, batching=True)

    def _unbatch(self) -> None:
        """Queue for recv() the messages that were parsed into batches: they came first."""
        with self._conn_lock:
            taken: list[str | bytes] = []
            while True:
                batch = self._conn.take_batch()
                if batch is None:
                    break
                taken.extend(batch)
            self._messages.extendleft(reversed(taken))

    def recv_frame(self, timeout: float | None = None) -> Frame:
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

    def _fill(self, queue: Sized, timeout: float | None, batching: bool = False) -> None:
        """Read until ``queue`` (a deque, or the Connection's batches when ``batching``)
        holds something; raise TimeoutError or ConnectionClosed."""
        deadline = deadline_after(timeout)
        while not queue:
            if batching and self._messages:
                return  # another thread read them meanwhile: they come first
            if not batching and queue is self._messages and self._conn.batched:
                self._unbatch()
                continue
            if self._lost.is_set():
                raise self._closed_exception()
            if not self._start_reading(deadline):
                if self._lost.is_set():
                    continue
                raise TimeoutError("timed out waiting for a message")
            try:
                if queue or self._lost.is_set():
                    continue  # another thread read meanwhile
                self._batching = batching
                if self._conn.error is not None and not self._conn.close_transport:
                    self._fail()  # every message received before the violation is handed out
                if not self._read_or_tick(deadline):
                    raise TimeoutError("timed out waiting for a message")
            finally:
                self._stop_reading()

    def _start_reading(self, deadline: float) -> bool:
        """Become the thread that reads, waiting for another one to finish until
        ``deadline``; False if it did not (or if the connection is gone: check _lost)."""
        with self._reader_lock:  # the Condition's lock: cheaper to take than the Condition
            if self._claim_reading():
                return True
            self._readers_waiting += 1
            try:
                while not self._claim_reading():
                    if self._lost.is_set() or not self._reader_free.wait(seconds_until(deadline)):
                        return False
            finally:
                self._readers_waiting -= 1
            return True

    def _stop_reading(self) -> None:
        with self._reader_lock:
            self._reader_busy = False
            if self._readers_waiting:
                self._reader_free.notify_all()

    def _read_or_tick(self, deadline: float) -> bool:
        """Read once, until ``deadline`` at most, doing the keepalive and closing work that
        falls due meanwhile; False if ``deadline`` came first."""
        keepalive = self._keepalive
        while True:
            if self._last_read > keepalive.last_received:  # reads note the time here
                keepalive.last_received = self._last_read
            closing = self._closing_deadline
            self._due = keepalive.deadline
            limit = min(deadline, self._due, math.inf if closing is None else closing)
            if self._read(limit):
                return True
            now = monotonic()
            if closing is not None and now >= closing:
                self._abort("the peer did not finish the close handshake in time")
                return True
            if keepalive.expired(now):
                self._fail_keepalive()
                return True
            payload = keepalive.ping_due(now)
            if payload is not None:
                with self._conn_lock:
                    if self._conn.state is State.OPEN:
                        self._conn.send_ping(payload)
                self._send_replies()
            if now >= deadline:
                return False

    def _read(self, deadline: float) -> bool:
        """Read once from the stream, waiting until ``deadline`` at most, and process what
        came; False if nothing came in time. Only the reading thread calls it."""
        data: bytes | memoryview
        self._settled = False  # the Connection may move
        data = self._leftover
        if data:
            self._leftover = b""
            self._process(data)
            return True
        stream = self._stream
        window = self._conn.payload_window()
        # Wait first, unless the last read suggests more is there: one system call fewer.
        ready = self._full or stream.buffered
        while True:
            wait = False  # the read itself waits (a slice at most)
            if not ready:
                # Replies that could not go out yet leave once the socket takes them.
                unsent = stream.unsent
                timeout = seconds_until(deadline)
                if stream.waits_in_read and not unsent and (timeout is None or timeout >= READ_SLICE):
                    wait = True
                elif not stream.wait_readable(timeout, write=unsent > 0 and not stream.write_needs_read):
                    return False
                elif unsent:
                    self._send_replies()
            try:
                if window is None:
                    size = stream.read_into(self._buffer, wait=wait)
                else:
                    size = stream.read_into_pair(window, self._view[:_TAIL_SIZE], wait=wait)
            except OSError as exc:  # a reset or a TLS error: the connection is gone
                logger.debug("read failed: %r", exc)
                size = 0
            if size is not None:
                break
            ready = False  # nothing after all (or part of a TLS record): wait
        if not size:
            self._full = False
            self._connection_lost()
            return True
        self._last_read = monotonic()
        if window is None:
            self._full = size == len(self._buffer)
            data = self._view[:size]
            self._grow_if_filled(size)
        elif size > len(window):
            # The window is full; the tail holds what follows it.
            tail = size - len(window)
            self._full = tail == _TAIL_SIZE
            data = self._view[:tail]
            self._grow_if_filled(tail)
            self._process(window)
            del window  # the parser may have to grow the payload it showed
        else:
            self._full = False
            data = window[:size]
        self._process(data)
        return True

    def _grow_if_filled(self, size: int) -> None:
        """Double the read buffer when a read filled it (the data read keeps the old one
        alive meanwhile)."""
        if size == len(self._buffer) and size < _MAX_READ_SIZE:
            self._buffer = bytearray(2 * size)
            self._view = memoryview(self._buffer)

    def _process(self, data: Buffer) -> None:
        """Feed received bytes to the Connection, queue what it returns, send its replies."""
        conn = self._conn
        self._settled = False
        with self._conn_lock:
            if self._frame_mode:
                frames = conn.receive_frames(data)
                if frames:
                    self._frames.extend(frames)
                    for frame in frames:
                        if frame.opcode == 0xA:
                            self._keepalive.pong_received(frame.payload, monotonic())
            elif self._batching:
                controls = conn.receive_batch(data)  # the messages wait in batches
                if controls:
                    self._queue_messages(controls)
            elif self._queued(conn.receive_data(data)):
                return  # nothing to answer, and closing has not begun
        self._after_read()

    def _parsed_read(self, items: list[Any] | None, failure: ProtocolError | None) -> None:
        """The rest of a read the compiled twin parsed itself (see _process): ``items`` are
        what the parser returned, or ``failure`` what it raised."""
        conn = self._conn
        with self._conn_lock:
            conn.last_controls = 0
            events = conn._failed(failure, conn._events) if failure is not None else conn._parsed(items or [])
            if self._queued(events):
                return
        self._after_read()

    def _queued(self, events: list[_Event]) -> bool:
        """Queue the messages among the Connection's ``events``; True when there were only
        messages: nothing to answer, and closing has not begun."""
        if not events:
            return False
        if not self._conn.last_controls:  # messages only: the usual case
            self._messages.extend(events)  # type: ignore[arg-type]  # no control event among them
            return True
        self._queue_messages(events)
        return False

    def _after_read(self) -> None:
        """Begin closing once the peer's close frame came (or it broke the protocol), and
        send what the Connection has to answer."""
        conn = self._conn
        if self._closing_deadline is None and (conn.close_code is not None or conn.close_transport):
            self._start_closing()
        self._send_replies()

    def _queue_messages(self, events: Sequence[_Event]) -> None:
        """Queue the messages among ``events``; pongs go to the keepalive, and the other
        control events were handled by the Connection."""
        event: Any  # told apart by type(), through `kind`, which mypy does not follow
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                self._messages.append(event)
            elif kind is Pong:
                self._keepalive.pong_received(event.payload, monotonic())

    def _closed_exception(self) -> ConnectionClosed:
        exc = self._conn.closed_exception()
        exc.__cause__ = self._conn.error
        return exc

    # Sending -----------------------------------------------------------------------

    def ping(self, payload: str | Buffer = b"", timeout: float | None = _SEND_TIMEOUT) -> None:
        """Send a ping (at most 125 bytes; a str is sent as UTF-8). The peer's pong shows
        up in :meth:`recv_frame`; :meth:`recv` skips it. ``timeout`` as for :meth:`send`."""
        self._send(self._conn.send_ping, payload, timeout)

    def pong(self, payload: str | Buffer = b"", timeout: float | None = _SEND_TIMEOUT) -> None:
        """Send an unsolicited pong (at most 125 bytes), e.g. as a heartbeat."""
        self._send(self._conn.send_pong, payload, timeout)

    def _send(self, action: Callable[[_A], None], argument: _A, timeout: float | None) -> None:
        """Call ``action(argument)`` on the Connection and wait, until the send timeout at
        most, for the kernel to take what it queued."""
        deadline = deadline_after(self._send_timeout if timeout is _SEND_TIMEOUT else timeout)
        stream = self._stream
        with self._conn_lock:
            action(argument)
            data = self._conn.data_to_send()
            if not data:
                return
            # Queued before the Connection is let go, so that frames leave in queue order.
            end = stream.write(data)
        self._wait_until_sent(end, deadline)

    def _wait_sent(self, end: int, timeout: float | None) -> None:
        """Wait, until the send timeout at most, for the kernel to take the queued bytes up
        to stream position ``end`` (what the compiled twin's send() could not hand over)."""
        self._wait_until_sent(end, deadline_after(self._send_timeout if timeout is _SEND_TIMEOUT else timeout))

    def _wait_until_sent(self, end: int, deadline: float) -> None:
        stream = self._stream
        try:
            while stream.sent < end and not stream.flush():
                needs_read = stream.write_needs_read
                if not wait(stream.sock, seconds_until(deadline), read=needs_read, write=not needs_read):
                    break
        except OSError as exc:
            raise self._send_failure(exc) from exc
        if stream.sent < end:
            self._abort("a send timed out: the peer takes no more")
            raise TimeoutError("timed out sending; the connection was dropped")

    def _send_failure(self, exc: OSError) -> ConnectionClosedError:
        """What a send that met ``exc`` (the connection broke) raises."""
        logger.debug("send failed: %r", exc)
        conn = self._conn
        code = 1006 if conn.close_code is None else conn.close_code
        return ConnectionClosedError(code, conn.close_reason or "", conn.close_sent_code)

    def _send_replies(self) -> None:
        """Hand the Connection's automatic replies (pongs, the close reply) to the stream,
        without waiting. While the peer takes nothing they stay in the Connection, which
        keeps only the pong of the latest ping: a ping flood cannot grow memory. Once the
        close handshake is done and our close frame is out, send TCP FIN."""
        stream = self._stream
        conn = self._conn
        try:
            if stream.unsent and not stream.flush():
                return
            with self._conn_lock:
                data = conn.data_to_send()
                if data:
                    stream.write(data)
            if data and not stream.flush():
                return
        except OSError as exc:  # the next read finds the connection gone
            logger.debug("send failed: %r", exc)
            return
        if conn.close_transport and not self._write_closed and not self._lost.is_set():
            self._shutdown_write()

    # Closing -----------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` (cut to 123 UTF-8 bytes).

        Sends a close frame, then waits up to ``close_timeout`` seconds for the peer's
        close frame and for TCP to end, as RFC 6455 asks; past that the connection is
        dropped. Messages that arrived before the peer's close frame can still be
        received. Safe to call from any thread, also while others send or receive:
        it returns within ``close_timeout`` whatever the peer does. Closing a closed
        connection does nothing.
        """
        self._start_close(code, reason)
        while not self._lost.is_set():
            deadline = self._closing_deadline
            assert deadline is not None  # _start_close() set it
            if not self._start_reading(deadline):
                if not self._lost.is_set():
                    # Another thread reads, and the peer did not end TCP in time.
                    self._abort("the peer did not finish the close handshake in time")
                return
            try:
                if self._lost.is_set():
                    return
                if not self._read(deadline):
                    self._abort("the peer did not finish the close handshake in time")
                    return
            finally:
                self._stop_reading()

    def _start_close(self, code: int, reason: str) -> None:
        """Queue a close frame unless one was sent, without waiting for the answer."""
        with self._conn_lock:
            if self._conn.state is State.OPEN:
                logger.debug("closing with %s %r", code, reason)
                self._conn.send_close(code, reason)
        self._send_replies()
        self._start_closing()

    def _start_closing(self) -> None:
        self._settled = False  # reads take the Python way, which watches the deadline
        if self._closing_deadline is None:
            self._closing_deadline = deadline_after(self._close_timeout)

    def _fail(self) -> None:
        """The peer broke the protocol: send the close frame that says so, then close."""
        with self._conn_lock:
            self._conn.fail()
        self._start_closing()
        self._send_replies()

    def _fail_keepalive(self) -> None:
        """The peer answered nothing for ping_timeout seconds: send 1011 and drop it."""
        logger.debug("keepalive ping timeout: the peer answers no more")
        with self._conn_lock:
            if self._conn.state is State.OPEN:
                self._conn.send_close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._send_replies()
        self._abort("keepalive ping timeout")

    def _shutdown_write(self) -> None:
        """Send TCP FIN, still reading until the peer ends its side too."""
        self._write_closed = True
        self._stream.shutdown_write()

    def _abort(self, why: str) -> None:
        """Drop the connection now; this also wakes a thread waiting on it."""
        logger.debug("dropping the connection: %s", why)
        self._stream.abort()
        self._connection_lost()

    def _connection_lost(self) -> None:
        self._fd = -1  # before the socket closes: its number may be reused
        with self._conn_lock:
            self._conn.receive_eof()
        self._stream.close()
        if not self._lost.is_set():
            self._lost.set()
            logger.debug("connection closed: %s %r", self._conn.close_code, self._conn.close_reason)
        self._wake_readers()  # close() may wait for the reader: it is done

    def _wake_readers(self) -> None:
        """Wake the threads waiting to read: the reader is done (or gone)."""
        with self._reader_free:
            self._reader_free.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.state.name} {self.remote_address}>"
