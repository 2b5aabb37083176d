"""The hot paths of the asyncio connection, between its transport and its queue: the pure
twin of the compiled codec's ``StreamCore``, the base of :class:`wsfast.asyncio.WebSocket`.

The transport reads into the connection's buffer (``_read_buffer`` is the protocol's
``get_buffer``, ``_data_received`` its ``buffer_updated``); received bytes go to the
sans-I/O Connection, and complete messages to the queue behind ``recv()`` or to the
``on_message`` callback. :meth:`StreamCore.send_nowait` frames a message and hands it to
the transport. The compiled twin does the same without a Python frame on the way, parses
plain frames without the Connection, and writes to a TCP socket itself when the
transport holds nothing (the transport then never learns of those bytes).

What is rare stays in the subclass: the handshake (``_handshake_received``), batches
(``_receive_batch``), control frames and violations (``_messages_only``,
``_after_receiving``) and a callback that raised (``_callback_failed``).
"""

from __future__ import annotations

import logging
import math
from time import monotonic
from typing import TYPE_CHECKING, Any

from ._backlog import Backlog
from ._receiver import Receiver
from ._typing import M
from .exceptions import ConnectionClosed, DecodeError

if TYPE_CHECKING:
    import asyncio

    from typing_extensions import Buffer

    from .protocol import Connection, _Event

__all__ = ["BURST_BYTES", "MAX_READ_SIZE", "MESSAGE_OVERHEAD", "READ_SIZE", "SEND_TIMEOUT", "StreamCore"]

logger = logging.getLogger("wsfast")

# A connection's read buffer doubles, up to MAX_READ_SIZE, each time a read fills it:
# fewer, bigger reads for a fast feed. Bigger reads would bring more small messages at
# once than the allocator keeps memory for (100-byte messages came 40% more slowly with
# 4 MiB). A client starts at READ_SIZE; a server's connections start in a buffer they
# share (see wsfast.asyncio.server).
READ_SIZE = 256 * 1024
MAX_READ_SIZE = 1024 * 1024
# Each queued message also costs a Python object and a queue slot; counting this
# keeps a flood of tiny messages within the read limit too.
MESSAGE_OVERHEAD = 64
# Reading pauses when this much waits for a recv() woken by an earlier read that has not
# run yet: uvloop reads up to 32 times in a row before it runs, and it would then find
# its first messages out of the cache. Reading resumes once it took three quarters.
BURST_BYTES = 512 * 1024

# Stands for "the connection's send_timeout" in send(), where None means no limit (typed
# as the float | None it stands for).
SEND_TIMEOUT: Any = object()


class StreamCore(Receiver[M]):
    """The receive and send paths of an asyncio connection (see the module)."""

    __slots__ = (
        "_backlog",
        "_batching",
        "_callback_error",
        "_compressed",
        "_conn",
        "_handshaking",
        "_high_water",
        "_last_read",
        "_on_message",
        "_receiving",
        "_transport",
        "_unqueued",
        "_view",
        "_waiter",
        "_window",
        "_writing_paused",
    )

    _on_message: Any  # Callable[[Self, M], object] | None, typed by the subclass

    def __init__(self) -> None:
        super().__init__()
        # Set by the subclass's __init__, _attach() and _start_frames() before use.
        self._conn: Connection = None  # type: ignore[assignment]
        self._transport: asyncio.Transport = None  # type: ignore[assignment]
        self._view = memoryview(b"")
        self._window: memoryview | None = None  # the read buffer when it is a large payload's own place
        self._handshaking = True
        self._compressed = False  # messages may be compressed: their lengths are not what was read
        self._last_read = monotonic()  # when bytes last arrived (the keepalive asks)
        self._unqueued = 0  # bytes read since the last read that queued messages
        self._waiter: asyncio.Future[None] | None = None  # of the coroutine waiting for a message
        self._backlog = Backlog()  # bytes of the queued messages and their overhead, or more
        self._high_water = math.inf  # the most bytes queued before reading pauses
        self._receiving = True  # False once no more messages can arrive
        self._writing_paused = False  # the transport's buffer is over its high-water mark
        self._batching = False  # messages are parsed into batches (recv_batch)
        self._on_message = None
        self._callback_error: Exception | None = None  # what on_message raised

    # Set up ------------------------------------------------------------------------

    def _attach(self, transport: asyncio.Transport) -> None:
        """The transport connected: reads come through it, and sends go to it."""
        self._transport = transport

    def _detach(self) -> None:
        """The transport is gone (its socket may be closed, and its number reused)."""

    def _start_frames(self, connection: Connection) -> None:
        """The handshake succeeded: from now on, bytes are frames for ``connection``."""
        self._conn = connection
        self._compressed = connection._deflate is not None
        self._handshaking = False

    # Receiving ---------------------------------------------------------------------

    def _read_buffer(self, sizehint: int) -> memoryview:
        """Where the transport reads next: straight into a large payload arriving (the
        codec's payload window, which saves copying it), else the read buffer."""
        self._window = None  # a window not filled must go before the next one is made
        if not self._handshaking:
            window = self._conn.payload_window()
            if window is not None:
                self._window = window
                return window
        return self._view

    def _data_received(self, nbytes: int) -> None:
        self._last_read = monotonic()
        self._unqueued += nbytes
        window = self._window
        if window is not None:
            self._window = None
            self._process(window[:nbytes])
            return
        view = self._view
        if self._handshaking:
            self._handshake_received(bytes(view[:nbytes]))
        else:
            self._process(view[:nbytes])
        if nbytes == len(view) and nbytes < MAX_READ_SIZE:
            self._view = memoryview(bytearray(2 * nbytes))

    def _process(self, data: Buffer) -> None:
        """Feed received bytes to the Connection and act on what it returns."""
        if self._batching:
            self._receive_batch(data)
        else:
            events = self._conn.receive_data(data)
            if events:
                if self._on_message is None:
                    self._queue(events)
                else:
                    self._deliver(events)
        conn = self._conn
        if conn.last_controls or conn.error is not None:  # else there is nothing to answer
            self._after_receiving()

    def _queue(self, events: list[_Event]) -> None:
        queued: list[str | bytes]
        queued = self._messages_only(events) if self._conn.last_controls else events  # type: ignore[assignment]  # no control event
        if not queued:
            return
        messages = self._messages
        messages.extend(queued)
        count = len(queued)
        # Uncompressed, the bytes read since the last messages bound the payloads they
        # completed: cheaper than adding up lengths.
        nbytes = sum(map(len, queued)) if self._compressed else self._unqueued
        self._unqueued = 0
        backlog = self._backlog
        backlog.charge(count, nbytes + MESSAGE_OVERHEAD * count)
        waiter = self._waiter  # done: woken by an earlier read, recv() has not run since
        limit = min(self._high_water, BURST_BYTES) if waiter is not None and waiter.done() else self._high_water
        if backlog.settle(len(messages)) > limit and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True
            self._resume_below = len(messages) // 4
        self._wake_receiver()

    def _deliver(self, events: list[_Event]) -> None:
        """Hand each message to on_message; a callback that raises closes with 1011."""
        delivered: list[str | bytes]
        delivered = self._messages_only(events) if self._conn.last_controls else events  # type: ignore[assignment]  # no control event
        deliver(self, delivered)

    def _wake_receiver(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Sending -----------------------------------------------------------------------

    async def send(self, message: str | Buffer, timeout: float | None = SEND_TIMEOUT) -> None:
        """Send a message: text for a ``str``, binary for any bytes-like object.

        The frame goes whole to the transport at once; then, if the transport's write
        buffer is full, this waits until it drains. ``timeout`` (by default the
        connection's ``send_timeout``; None: no limit) bounds that wait: past it the
        peer counts as gone, the connection is dropped and TimeoutError raised (part of
        the message may have left). Cancelling the wait never leaves a partial frame.
        Raises :class:`~wsfast.ConnectionClosed` once closing has begun.
        """
        self.send_nowait(message)
        if self._writing_paused:
            await self._drain(self._send_timeout if timeout is SEND_TIMEOUT else timeout)

    def send_nowait(self, message: str | Buffer) -> None:
        """Send a message as :meth:`send` does, without waiting: what the socket cannot
        take yet waits in the transport's buffer, however much that is.

        For plain functions such as an ``on_message`` callback; elsewhere prefer
        ``await send()``, which lets a full buffer drain first.
        """
        conn = self._conn
        conn.send(message)
        self._transport.write(conn.data_to_send())

    # What the subclass provides ----------------------------------------------------

    def _handshake_received(self, data: bytes) -> None:
        raise NotImplementedError

    def _receive_batch(self, data: Buffer) -> None:
        raise NotImplementedError

    def _messages_only(self, events: list[_Event]) -> list[str | bytes]:
        raise NotImplementedError

    def _after_receiving(self) -> None:
        raise NotImplementedError

    def _callback_failed(self, exc: Exception) -> None:
        raise NotImplementedError

    _send_timeout: float | None

    async def _drain(self, timeout: float | None) -> None:
        raise NotImplementedError


def deliver(ws: StreamCore[Any], messages: list[str | bytes]) -> None:
    """Hand each of ``messages`` to ``ws``'s on_message (decoded with its decode); a
    callback that raises closes with 1011. The compiled twin calls this too, for the
    messages of a read that brought many: from Python, each call of a Python callback
    costs less than from C (it needs no new run of the interpreter's loop)."""
    on_message = ws._on_message
    decode = ws._decode
    remaining = iter(messages)  # where to go on from after a callback raised
    event: Any  # bytes with decode, then decoded: M, as each message is without decode
    while ws._callback_error is None:
        try:
            for event in remaining:
                if decode is not None:
                    try:
                        event = decode(event)  # text comes as bytes with decode
                    except Exception as exc:  # noqa: BLE001 - the application's decoder
                        log_decode_failure(event, exc)
                        continue
                on_message(ws, event)
            return
        except Exception as exc:  # noqa: BLE001 - the application's callback: any failure closes with 1011
            if not (isinstance(exc, ConnectionClosed) and ws._conn.state is not _open_state()):
                ws._callback_failed(exc)
            # else it answered a message that came just before the close: go on


def _open_state() -> Any:
    # wsfast.protocol imports the codec, which imports this module: State comes later.
    from .protocol import State

    return State.OPEN


def log_decode_failure(message: bytes, exc: Exception) -> None:
    """Report a message that ``decode`` failed on, which no on_message gets: the
    connection stays open, as it does when recv() raises the DecodeError."""
    failure = DecodeError(message)
    failure.__cause__ = exc
    logger.error("decode failed; the message is dropped", exc_info=failure)
