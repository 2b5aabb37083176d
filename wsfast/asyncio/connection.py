"""The open asyncio WebSocket connection, as the client and the server both hand it out.

Received bytes land in one reusable buffer (``asyncio.BufferedProtocol``) and go straight
to the sans-I/O :class:`wsfast.protocol.Connection`; complete messages wait in a queue for
:meth:`WebSocket.recv`, or go to an ``on_message`` callback as soon as they are parsed.
The rest runs in event-loop callbacks whether or not anyone receives: the answers to
pings, keepalive pings (a loop timer), the close handshake and its time limit.

Both directions apply backpressure: reading pauses while too much is queued, and
:meth:`WebSocket.send` waits, within its send timeout, while the transport's write buffer
is full. While it is full the peer reads nothing, so the answers to its pings stay in the
Connection, which keeps only the latest few: a ping flood cannot grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import struct
import sys
from typing import TYPE_CHECKING, Any, cast

from .._codec import DEFAULT_MAX_SIZE, StreamCore
from .._io import DEFAULT_SEND_TIMEOUT
from .._stream_core import MESSAGE_OVERHEAD, READ_SIZE
from .._typing import M
from ..batch import DEFAULT_MAX_BYTES, Batch
from ..enums import CloseCode
from ..exceptions import ConnectionClosed
from ..keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, Keepalive
from ..protocol import Close, Connection, Ping, Pong, State

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from types import ModuleType
    from typing import Protocol, TypeVar

    from typing_extensions import Buffer, Self

    from ..client import _ConnectionOptions
    from ..deflate import DeflateParams
    from ..handshake import ClientHandshake, ServerHandshake
    from ..protocol import _Event

    _T = TypeVar("_T")

    class _GetBuffer(Protocol):
        def __call__(self, sizehint: int) -> memoryview: ...

    class _BufferUpdated(Protocol):
        def __call__(self, nbytes: int) -> None: ...


__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "WebSocket"]

logger = logging.getLogger("wsfast")

DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024

# A message in a batch costs only its offset and its text flag.
_BATCHED_OVERHEAD = 9

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 seconds: close with a reset


class _Protocol(asyncio.BufferedProtocol):
    """Forwards asyncio's transport callbacks to a WebSocket, keeping them out of its API."""

    __slots__ = ("_ws", "buffer_updated", "get_buffer")

    # Instance attributes in place of BufferedProtocol's methods.
    get_buffer: _GetBuffer
    buffer_updated: _BufferUpdated

    def __init__(self, ws: WebSocket[Any]) -> None:
        self._ws = ws
        # Called for every read: the transport calls the connection's methods directly.
        self.get_buffer = ws._read_buffer
        self.buffer_updated = ws._data_received

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport: asyncio gives a Transport.
        self._ws._connection_made(cast("asyncio.Transport", transport))

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._ws._connection_lost(exc)

    def pause_writing(self) -> None:
        self._ws._writing_paused = True

    def resume_writing(self) -> None:
        self._ws._resume_writing()


class WebSocket(StreamCore[M]):
    """An open WebSocket connection: the base of :class:`wsfast.asyncio.Client` and of
    the :class:`wsfast.asyncio.ServerConnection` a server's handler receives.

    Iterate over it (``async for message in ws``) or call :meth:`recv` to receive
    messages: ``str`` for text, ``bytes`` for binary (:meth:`recv_batch` returns many at
    once, as a :class:`~wsfast.Batch`). Iteration ends when the peer
    closes the connection normally and raises :class:`~wsfast.ConnectionClosedError`
    when it closes with an error or the connection drops. ``async with`` closes it on
    the way out. One coroutine at a time may receive; any number may send.

    Pings are answered, keepalive pings sent and the close handshake completed in the
    event loop, whether or not a coroutine receives.

    Given ``on_message``, the connection calls ``on_message(ws, message)`` from the
    event loop for each message as soon as it is parsed, instead of queuing it for
    :meth:`recv`: no task switch per message, the lowest latency asyncio allows. The
    callback may answer with :meth:`send_nowait`; :meth:`wait_closed` waits for the end.

    Given ``decode``, every message's payload goes through ``decode(payload: bytes)`` and
    what it returns is handed out instead (see :func:`wsfast.asyncio.connect`). It is
    generic over the messages it hands out: ``WebSocket[str | bytes]`` (what a bare
    ``WebSocket`` means) without ``decode``, ``WebSocket[T]`` with one that returns ``T``.
    """

    # A server holds thousands of these: without slots, each would carry a 1.6 KB dict.
    __slots__ = (
        "_abort_timer",
        "_close_timeout",
        "_closed",
        "_connection_options",
        "_drain_waiters",
        "_handshake",
        "_keepalive",
        "_keepalive_timer",
        "_loop",
        "_lost_reason",
        "_opened",
        "_pings",
        "_send_timeout",
        "_time",
        "_unsent_ping",
        "_unsent_pong",
    )

    _on_message: Callable[[Self, M], object] | None

    def __init__(
        self,
        handshake: ClientHandshake | ServerHandshake,
        *,
        client: bool,
        max_message_size: int | None = DEFAULT_MAX_SIZE,
        max_frame_size: int | None = None,
        max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
        close_timeout: float | None = 10.0,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        codec: ModuleType | None = None,
        on_message: Callable[[Self, Any], object] | None = None,
        read_buffer: memoryview | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> None:
        if max_queued_bytes is not None and max_queued_bytes < 0:
            raise ValueError("max_queued_bytes must be >= 0 or None")
        super().__init__()  # the queue of received messages, behind recv() and async for, and the I/O paths
        loop = self._loop = asyncio.get_running_loop()
        self._handshake = handshake
        self._connection_options: _ConnectionOptions = {
            "max_message_size": max_message_size,
            "max_frame_size": max_frame_size,
            "codec": codec,
            "text_as_bytes": decode is not None,
        }
        # Replaced once the handshake tells whether messages are compressed.
        self._conn = Connection(client=client, **self._connection_options)
        # A memoryview, not the bytearray: the TLS transport fills it in slices, and
        # slicing a bytearray would copy.
        self._view = memoryview(bytearray(READ_SIZE)) if read_buffer is None else read_buffer
        self._opened: asyncio.Future[None] = loop.create_future()  # the peer's half of the handshake arrived
        self._closed: asyncio.Future[None] = loop.create_future()
        self._lost_reason: BaseException | None = None
        self._close_timeout = close_timeout
        self._abort_timer: asyncio.TimerHandle | None = None
        self._time = loop.time
        self._keepalive = Keepalive(ping_interval, ping_timeout, loop.time())
        self._keepalive_timer: asyncio.TimerHandle | None = None

        # Receiving: messages wait in the Receiver's _messages; _waiter wakes the coroutine
        # that waits for one; _receiving is False once no more messages can arrive.
        self._high_water = math.inf if max_queued_bytes is None else max_queued_bytes
        self._on_message = on_message
        self._decode = decode  # what recv(), recv_many(), async for and on_message get goes through it

        # Sending: _writing_paused while the transport's buffer is over its high-water
        # mark; sends then wait in _drain_waiters.
        self._send_timeout = send_timeout
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._pings: list[tuple[bytes, float, asyncio.Future[float]]] = []  # in sending order
        # A ping and a pong written while the buffer was full: until it drains, later
        # ones would only queue behind them.
        self._unsent_ping: asyncio.Future[float] | None = None
        self._unsent_pong = False

    # Properties --------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Where the connection is: CONNECTING, OPEN, CLOSING or CLOSED."""
        return State.CONNECTING if self._handshaking else self._conn.state

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or None."""
        return self._handshake.subprotocol

    @property
    def deflate_params(self) -> DeflateParams | None:
        """The permessage-deflate parameters agreed in the handshake (a
        :class:`~wsfast.deflate.DeflateParams`), or None when messages go uncompressed."""
        return self._handshake.deflate_params

    @property
    def close_code(self) -> int | None:
        """The code of the peer's close frame (1005 if it had none, 1006 for a dropped
        connection); None while the connection is open."""
        return self._conn.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason in the peer's close frame; None while the connection is open."""
        return self._conn.close_reason

    @property
    def pending(self) -> int:
        """How many received messages wait to be returned."""
        return len(self._messages) + self._conn.batched

    @property
    def latency(self) -> float | None:
        """Seconds the last keepalive ping took to be answered; None before the first pong
        (or with keepalive off)."""
        return self._keepalive.latency

    @property
    def local_address(self) -> Any:
        """This end's socket address, as ``socket.getsockname()`` returns it."""
        return self._transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's socket address, as ``socket.getpeername()`` returns it."""
        return self._transport.get_extra_info("peername")

    # Receiving ---------------------------------------------------------------------

    async def recv_many(self, timeout: float | None = None) -> list[M]:
        """Return every message received so far as a list, waiting only if there is none.

        The fastest way to consume a high-rate feed. Timeout and closing work as for
        :meth:`recv`. With ``decode``, at most 256 messages, decoded (the next call
        returns the rest without waiting: a read's worth of decoded objects would not
        fit in the CPU's caches), and a message it fails on ends the list: the next call
        raises its :class:`~wsfast.DecodeError` (at once when it comes first).
        """
        messages = self._messages
        batch: list[Any]  # M: as received without decode, else decoded
        if self._decode is None:
            if not messages:
                await self._wait_for_messages(timeout)
            batch = list(messages)
            messages.clear()
            self._backlog.reset()
        else:  # up to a message that fails to decode, whose failure the next call raises
            if not messages and self._decode_failure is None:
                await self._wait_for_messages(timeout)
            batch = self._take_all()
            self._backlog.settle(len(messages))
        if self._reading_paused:
            self._resume_reading()
        return batch

    async def recv_batch(self, timeout: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Batch:
        """Return every message received so far as one :class:`~wsfast.Batch`: their
        payloads back to back in one buffer, with no Python object per message. Waits
        only if there is none.

        From the first call on, messages are parsed straight into batches. A batch
        holds at most ``max_bytes`` payload bytes, unless a single message is larger:
        that one then comes alone, and what does not fit waits for the next call.
        Messages already queued for :meth:`recv` come first. Timeout and closing work
        as for :meth:`recv`.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._decode is not None:
            raise RuntimeError("recv_batch() hands out raw payloads: not on a connection with decode")
        conn = self._conn
        if not self._messages and not conn.batched:
            conn.batches.max_bytes = max_bytes
            await self._wait_for_messages(timeout, batching=True)
        batch: Batch | None
        if self._messages:  # one task takes them: nothing else pops meanwhile
            batch = Batch._from_queue(self._messages, max_bytes)
            assert batch is not None
        else:
            batch = conn.take_batch(max_bytes)
            assert batch is not None  # messages were batched
        self._batching = True
        conn.batches.max_bytes = max_bytes
        if (
            self._reading_paused
            and self._batched_bytes() <= self._high_water / 4
            and len(self._messages) <= self._resume_below
        ):
            self._resume_reading()
        return batch

    def _batched_bytes(self) -> int:
        batches = self._conn.batches
        return batches.nbytes + _BATCHED_OVERHEAD * len(batches)

    def _unbatch(self) -> None:
        """Queue for recv() the messages parsed into batches: they came first."""
        taken: list[str | bytes] = []
        while True:
            batch = self._conn.take_batch()
            if batch is None:
                break
            taken.extend(batch)
        messages = self._messages
        messages.extendleft(reversed(taken))
        self._backlog.reset(len(messages), sum(map(len, messages)) + MESSAGE_OVERHEAD * len(messages))

    async def _wait_for_messages(self, timeout: float | None, batching: bool = False) -> None:
        """Return once a message is queued (into batches when ``batching``, which
        decides where the messages go from now on); raise if none will ever come."""
        if self._on_message is not None:
            raise RuntimeError("messages go to on_message; await wait_closed() instead")
        if not batching and self._conn.batched:
            self._unbatch()
            self._batching = False
            return
        self._batching = batching
        if not self._receiving:
            self._fail_after_messages()
            raise self._closed_exception()
        if self._waiter is not None:
            raise RuntimeError("another coroutine is already waiting for a message")
        self._waiter = waiter = self._loop.create_future()
        try:
            if timeout is None:
                await waiter  # without wait_for's wrapper: this is the hot path
            else:
                await wait_for(waiter, timeout)
        finally:
            self._waiter = None
        if not self._messages and not self._conn.batched:
            raise self._closed_exception()

    def _closed_exception(self) -> ConnectionClosed:
        exc = self._conn.closed_exception()
        exc.__cause__ = self._conn.error or self._lost_reason
        return exc

    # Sending -----------------------------------------------------------------------

    def ping(self, payload: str | Buffer = b"") -> asyncio.Future[float]:
        """Send a ping; return a future that resolves with the round-trip time in seconds
        when the matching pong arrives (``latency = await ws.ping()``).

        ``payload`` is at most 125 bytes (a ``str`` is sent as UTF-8). A pong answers
        its own ping and every earlier one still waiting. While the peer reads nothing
        (the transport's write buffer is full), one ping waits there and stands for the
        later ones: they return its future instead of piling up.
        """
        payload = _control_payload(payload)
        conn = self._conn
        if self._unsent_ping is not None and conn.state is State.OPEN:
            return self._unsent_ping
        conn.send_ping(payload)
        self._transport.write(conn.data_to_send())
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._pings.append((payload, self._time(), waiter))
        if self._writing_paused:
            self._unsent_ping = waiter
        return waiter

    def pong(self, payload: str | Buffer = b"") -> None:
        """Send an unsolicited pong (at most 125 bytes), e.g. as a heartbeat. While the
        peer reads nothing, one pong waits in the transport and later ones are dropped."""
        payload = _control_payload(payload)
        conn = self._conn
        if self._unsent_pong and conn.state is State.OPEN:
            return
        conn.send_pong(payload)
        self._transport.write(conn.data_to_send())
        self._unsent_pong = self._writing_paused

    async def _drain(self, timeout: float | None) -> None:
        """Wait until the transport's buffer drains; drop the connection after ``timeout``."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        if timeout is None:
            await waiter
            return
        try:
            await wait_for(waiter, timeout)
        except TimeoutError:
            self._abort("a send timed out: the peer takes no more")
            raise TimeoutError("timed out sending; the connection was dropped") from None

    def _resume_writing(self) -> None:
        """The transport's buffer drained: send what waited, wake the senders."""
        self._writing_paused = False
        self._unsent_ping = None
        self._unsent_pong = False
        data = self._conn.data_to_send()  # the answers to pings that came meanwhile
        if data:
            self._transport.write(data)
            if self._writing_paused:
                return  # full again already
        waiters = self._drain_waiters
        self._drain_waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        """Hand what the Connection queued to the transport, even while it is full: only
        for what is bounded (a close frame, a keepalive ping, the latest pongs)."""
        data = self._conn.data_to_send()
        if data:
            self._transport.write(data)

    # Closing -----------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` (cut to 123 UTF-8 bytes).

        Sends a close frame, then waits for the peer's close frame and for TCP to end, as
        RFC 6455 asks, but never longer than ``close_timeout`` seconds: past that, or if
        this is cancelled, the connection is dropped. That holds whatever the peer does
        (it may read nothing) and while other coroutines are stuck in :meth:`send`
        (they then raise :class:`~wsfast.ConnectionClosed`). Messages that arrived before
        the peer's close frame can still be received. Closing a closed connection does
        nothing. Raises ValueError for a code that may not be sent (see
        :func:`wsfast.is_valid_close_code`).
        """
        self._start_close(code, reason)
        try:
            await asyncio.shield(self._closed)
        except asyncio.CancelledError:
            if not self._closed.done():
                self._abort("closing was cancelled")
            raise

    def _start_close(self, code: int, reason: str) -> None:
        """Send a close frame unless one was sent, and drop the connection if it is not
        closed within close_timeout; without waiting."""
        conn = self._conn
        if conn.state is State.OPEN and not self._handshaking:
            logger.debug("closing with %s %r", code, reason)
            conn.send_close(code, reason)  # after a protocol violation, with its code
            self._flush()
            if conn.close_transport:
                self._transport.close()
        # The peer's close frame may be behind unread messages: read on regardless.
        self._high_water = math.inf
        if self._reading_paused:
            self._resume_reading()
        self._drop_after_close_timeout()

    async def wait_closed(self) -> None:
        """Wait until the connection has closed (the peer ended TCP, or it dropped).

        Raises the exception an ``on_message`` callback raised, if one did: that
        exception closed the connection with 1011 (internal error).
        """
        await asyncio.shield(self._closed)
        if self._callback_error is not None:
            raise self._callback_error

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _drop_after_close_timeout(self) -> None:
        """Give the peer close_timeout to end TCP, then drop the connection."""
        if self._abort_timer is None and self._close_timeout is not None and not self._closed.done():
            self._abort_timer = self._loop.call_later(
                self._close_timeout, self._abort, "the peer did not finish the close handshake in time"
            )

    def _abort(self, why: str) -> None:
        """Drop the connection now; connection_lost follows."""
        if self._closed.done():
            return
        logger.debug("dropping the connection: %s", why)
        self._conn.receive_eof()  # sending stops here, not once connection_lost comes
        reset(self._transport)

    def _fail_keepalive(self) -> None:
        """The peer sent nothing for ping_timeout seconds after a ping: try to tell it
        with 1011, and drop it."""
        conn = self._conn
        if conn.state is State.OPEN:
            conn.send_close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
        self._abort("keepalive ping timeout")

    # Keepalive ---------------------------------------------------------------------

    def _schedule_keepalive(self) -> None:
        deadline = self._keepalive.deadline
        if deadline != math.inf:
            self._keepalive_timer = self._loop.call_at(deadline, self._keepalive_due)

    def _keepalive_due(self) -> None:
        """The keepalive's deadline came: ping, or give up on a peer that went silent."""
        self._keepalive_timer = None
        keepalive = self._keepalive
        now = self._time()
        # Reads note their time here, the keepalive's only when it asks.
        keepalive.last_received = max(keepalive.last_received, self._last_read)
        if self._reading_paused:
            keepalive.last_received = now  # unread messages wait: the peer's silence proves nothing
        if keepalive.expired(now):
            self._fail_keepalive()
            return
        payload = keepalive.ping_due(now)
        conn = self._conn
        if payload is not None and conn.state is State.OPEN:
            conn.send_ping(payload)
            self._flush()  # even to a full buffer: one ping at a time waits for a pong
        self._schedule_keepalive()

    # Transport callbacks -----------------------------------------------------------

    def _new_protocol(self) -> _Protocol:
        """The asyncio protocol that forwards the transport's callbacks here. It is not
        kept: it refers to this connection, and a reference back would make a cycle, which
        only the garbage collector frees (and with it the read buffer and deflate state)."""
        return _Protocol(self)

    def _connection_made(self, transport: asyncio.Transport) -> None:
        self._attach(transport)

    def _handshake_received(self, data: bytes) -> None:
        """Bytes of the peer's half of the opening handshake (the role decides)."""
        raise NotImplementedError

    def _opening_failed(self, exc: BaseException) -> None:
        """The connection could not open (the TLS handshake failed): opening raises
        ``exc`` itself."""
        if not self._opened.done():
            self._opened.set_exception(exc)
            self._opened.exception()  # whoever waited for it may be gone: no warning

    def _forget_opening(self) -> None:
        """Opening failed, and its caller has the error: the future that holds it goes,
        as the error's traceback refers back here (a cycle only the collector frees)."""
        opened = self._opened
        if opened.done() and not opened.cancelled():
            self._opened = self._loop.create_future()
            self._opened.cancel()

    def _handshake_lost(self, exc: BaseException | None) -> BaseException:
        """Why the handshake failed, when TCP ended in its middle."""
        error = ConnectionResetError("the connection closed during the opening handshake")
        error.__cause__ = exc
        return error

    def _handshake_done(self, connection: Connection, leftover: bytes) -> None:
        """The handshake succeeded: from now on, bytes are frames for ``connection``
        (the first ones may have come with the handshake: ``leftover``)."""
        self._start_frames(connection)
        self._schedule_keepalive()
        if leftover:
            self._process(leftover)

    def _receive_batch(self, data: Buffer) -> None:
        """Parse received bytes into the Connection's batches (for recv_batch)."""
        conn = self._conn
        self._unqueued = 0  # batches count their own bytes
        events = conn.receive_batch(data)
        if events:
            self._messages_only(events)  # only control events: the messages wait in batches
        if conn.batched:
            if not self._reading_paused and self._batched_bytes() > self._high_water:
                self._transport.pause_reading()
                self._reading_paused = True
                self._resume_below = len(self._messages) // 4
            self._wake_receiver()

    def _messages_only(self, events: Sequence[_Event]) -> list[str | bytes]:
        """The messages among ``events``; pongs go to the ping waiters, and the other
        control events were handled by the Connection."""
        messages: list[str | bytes] = []
        event: Any  # told apart by type(), through `kind`, which mypy does not follow
        for event in events:
            kind = type(event)
            if kind is Pong:
                self._pong_received(event.payload)
            elif kind is not Ping and kind is not Close:
                messages.append(event)
        return messages

    def _callback_failed(self, exc: Exception) -> None:
        logger.error("on_message raised; closing with 1011", exc_info=exc)
        self._callback_error = exc
        conn = self._conn
        if conn.state is State.OPEN:
            conn.send_close(CloseCode.INTERNAL_ERROR, "")
            self._flush()
        self._drop_after_close_timeout()

    def _after_receiving(self) -> None:
        """After control frames or a violation: send the automatic replies unless the
        peer reads nothing, and act when it closed or broke the protocol."""
        conn = self._conn
        if conn.error is not None:
            self._fail_after_messages()
        if conn.last_controls and not self._writing_paused:
            data = conn.data_to_send()
            if data:
                self._transport.write(data)
        if self._receiving and (conn.close_code is not None or conn.error is not None):
            self._receiving = False
            self._wake_receiver()
            self._flush()  # the close frame: the last thing to send
            # Either we failed the connection, or the close handshake is complete and the
            # server should now close TCP: in both cases, give it close_timeout to go.
            if conn.close_transport:
                self._transport.close()
            self._drop_after_close_timeout()

    def _fail_after_messages(self) -> None:
        """The peer broke the protocol: once every message received before that is
        handed out (and could be answered), send the close frame that says so."""
        conn = self._conn
        if conn.error is not None and not conn.close_transport and not self._messages and not conn.batched:
            conn.fail()
            self._flush()
            self._transport.close()

    def _pong_received(self, payload: bytes) -> None:
        now = self._time()
        if self._keepalive.pong_received(payload, now):
            return
        pings = self._pings
        for index, (data, _, _) in enumerate(pings):
            if data == payload:
                for _, sent, waiter in pings[: index + 1]:
                    if not waiter.done():
                        waiter.set_result(now - sent)
                del pings[: index + 1]
                return

    def _resume_reading(self) -> None:
        self._reading_paused = False
        self._transport.resume_reading()

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._closed.done():
            return  # a failed TLS handshake may end here twice
        self._lost_reason = exc
        self._detach()
        for timer in (self._abort_timer, self._keepalive_timer):
            if timer is not None:
                timer.cancel()
        if not self._opened.done():
            self._opened.set_exception(self._handshake_lost(exc))
            self._opened.exception()  # whoever waited for it may be gone: no warning
        self._conn.receive_eof()
        self._receiving = False
        self._closed.set_result(None)
        self._wake_receiver()
        closed = self._closed_exception()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(closed)
        self._drain_waiters = []
        for _, _, ping_waiter in self._pings:
            if not ping_waiter.done():
                ping_waiter.set_exception(closed)
                ping_waiter.exception()  # a ping nobody awaits must not log an error
        self._pings.clear()
        self._unsent_ping = None


def _control_payload(payload: str | Buffer) -> bytes:
    """A ping or pong payload as bytes (a str as UTF-8); ValueError past 125 bytes."""
    payload = payload.encode("utf-8") if isinstance(payload, str) else bytes(memoryview(payload))
    if len(payload) > 125:
        raise ValueError("ping and pong payloads are limited to 125 bytes")
    return payload


async def wait_for(awaitable: Awaitable[_T], timeout: float | None) -> _T:
    """Await ``awaitable`` for at most ``timeout`` seconds (None: no limit).

    Raises the built-in TimeoutError, which asyncio's is not before Python 3.11. Awaited
    in this task, not in one of its own as ``asyncio.wait_for`` does: a task that ends
    with an error keeps it, and the error's traceback the frames that waited for the
    task, which makes a cycle of whatever they refer to (a connection that failed to
    open) that only the collector frees.
    """
    if timeout is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    # Python 3.10: the task is cancelled when time is up, and that cancellation raised
    # as TimeoutError.
    task = asyncio.current_task()
    assert task is not None  # a coroutine of the connection's, in a task
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if expired:
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()


def reset(transport: asyncio.Transport) -> None:
    """Abort ``transport`` with a TCP reset: what the peer did not take is dropped, not
    kept by the kernel for a peer that may never read it."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except (OSError, ValueError):
            pass  # already gone (uvloop says ValueError)
    transport.abort()


def set_nodelay(transport: asyncio.BaseTransport, enabled: bool) -> None:
    """Turn Nagle's algorithm off (``enabled``) or on for a TCP transport."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))
