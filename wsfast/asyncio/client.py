"""An asyncio WebSocket client on the sans-I/O :class:`wsfast.protocol.Connection`.

Received bytes land in one reusable buffer (``asyncio.BufferedProtocol``) and go
straight to the connection; complete messages wait in a queue for :meth:`Client.recv`,
or go to an ``on_message`` callback as soon as they are parsed. Both directions apply
backpressure: reading pauses while too much is queued, and :meth:`Client.send` waits
while the socket's write buffer is full.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl as ssl_module

from .._codec import DEFAULT_MAX_SIZE
from ..client import CertificateInfo, certificate_info
from ..deflate import DeflateOptions, DeflateParams, PerMessageDeflate, deflate_options
from ..enums import CloseCode
from ..exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake
from ..handshake import ClientHandshake, with_basic_auth
from ..protocol import Close, Connection, Ping, Pong, State
from ..proxy import resolve_proxy
from ..uri import parse_uri
from ._tunnel import create_connection

__all__ = ["Client", "connect"]

logger = logging.getLogger("wsfast")

DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024

# The read buffer doubles from _READ_SIZE up to _MAX_READ_SIZE while reads fill it:
# fewer, bigger reads for a fast feed, a small buffer for a quiet connection. Bigger
# reads would bring more small messages at once than the allocator keeps memory for
# (100-byte messages came 40% more slowly with 4 MiB).
_READ_SIZE = 256 * 1024
_MAX_READ_SIZE = 1024 * 1024
# Each queued message also costs a Python object and a queue slot; counting this
# keeps a flood of tiny messages within the read limit too.
_MESSAGE_OVERHEAD = 64


class _Protocol(asyncio.BufferedProtocol):
    """Forwards asyncio's transport callbacks to a Client, keeping them out of its API."""

    __slots__ = ("_client", "get_buffer", "buffer_updated")

    def __init__(self, client: Client) -> None:
        self._client = client
        # Called for every read: the transport calls the client's methods directly.
        self.get_buffer = client._read_buffer
        self.buffer_updated = client._data_received

    def connection_made(self, transport) -> None:
        self._client._connection_made(transport)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost follows

    def connection_lost(self, exc) -> None:
        self._client._connection_lost(exc)

    def pause_writing(self) -> None:
        self._client._writing_paused = True

    def resume_writing(self) -> None:
        self._client._resume_writing()


class Client:
    """An open WebSocket connection to a server; get one from :func:`connect`.

    Iterate over it (``async for message in ws``) or call :meth:`recv` to receive
    messages: ``str`` for text, ``bytes`` for binary. Iteration ends when the server
    closes the connection normally and raises :class:`~wsfast.ConnectionClosedError`
    when it closes with an error or the connection drops. ``async with`` closes it on
    the way out. One coroutine at a time may receive; any number may send.

    Given ``on_message``, the client calls ``on_message(client, message)`` from the
    event loop for each message as soon as it is parsed, instead of queuing it for
    :meth:`recv`: no task switch per message, the lowest latency asyncio allows. The
    callback may answer with :meth:`send_nowait`; :meth:`wait_closed` waits for the end.
    """

    def __init__(
        self,
        handshake: ClientHandshake,
        *,
        max_message_size: int | None = DEFAULT_MAX_SIZE,
        max_frame_size: int | None = None,
        max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
        close_timeout: float | None = 10.0,
        codec=None,
        on_message=None,
    ) -> None:
        if max_queued_bytes is not None and max_queued_bytes < 0:
            raise ValueError("max_queued_bytes must be >= 0 or None")
        self._loop = asyncio.get_running_loop()
        self._handshake = handshake
        self._connection_options = {
            "max_message_size": max_message_size,
            "max_frame_size": max_frame_size,
            "codec": codec,
        }
        # Replaced once the handshake tells whether messages are compressed.
        self._conn = Connection(client=True, **self._connection_options)
        self._handshaking = True
        self._close_timeout = close_timeout
        self._transport = None
        self._buffer = bytearray(_READ_SIZE)
        self._view = memoryview(self._buffer)
        self._window = None  # the read buffer when it is a large payload's own place
        self._opened = self._loop.create_future()
        self._closed = self._loop.create_future()
        self._lost_reason: BaseException | None = None
        self._abort_timer = None

        # Receiving: messages wait in _messages; _waiter wakes the coroutine that
        # waits for one; _receiving is False once no more messages can arrive.
        self._messages: collections.deque = collections.deque()
        self._waiter = None
        self._receiving = True
        self._queued = 0  # bytes of queued messages, plus their overhead
        self._high_water = float("inf") if max_queued_bytes is None else max_queued_bytes
        self._low_water = self._high_water / 4
        self._reading_paused = False
        self._on_message = on_message
        self._callback_error: Exception | None = None  # what on_message raised

        self._writing_paused = False
        self._drain_waiters: collections.deque = collections.deque()
        self._pings: list = []  # (payload, time sent, future) in sending order

    # Properties --------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Where the connection is: CONNECTING, OPEN, CLOSING or CLOSED."""
        return State.CONNECTING if self._handshaking else self._conn.state

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, or None."""
        return self._handshake.subprotocol

    @property
    def response_headers(self):
        """The headers of the server's handshake response (a :class:`wsfast.handshake.Headers`)."""
        return self._handshake.response_headers

    @property
    def deflate_params(self) -> DeflateParams | None:
        """The permessage-deflate parameters agreed in the handshake (a
        :class:`~wsfast.deflate.DeflateParams`), or None when messages go uncompressed."""
        return self._handshake.deflate_params

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame (1005 if it had none, 1006 for a dropped
        connection); None while the connection is open."""
        return self._conn.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason in the server's close frame; None while the connection is open."""
        return self._conn.close_reason

    @property
    def pending(self) -> int:
        """How many received messages wait to be returned."""
        return len(self._messages)

    @property
    def local_address(self):
        """The local socket address, as ``socket.getsockname()`` returns it."""
        return self._transport.get_extra_info("sockname")

    @property
    def remote_address(self):
        """The server's socket address, as ``socket.getpeername()`` returns it."""
        return self._transport.get_extra_info("peername")

    @property
    def certificate(self) -> CertificateInfo | None:
        """The server's TLS certificate for ``wss://``; None for ``ws://``."""
        ssl_object = self._transport.get_extra_info("ssl_object")
        return None if ssl_object is None else certificate_info(ssl_object)

    # Receiving ---------------------------------------------------------------------

    async def recv(self, timeout: float | None = None):
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Waits at most ``timeout`` seconds (None: no limit), then raises TimeoutError.
        Raises :class:`~wsfast.ConnectionClosed` once the connection has closed and every
        message received before has been returned. Cancelling it loses no message.
        """
        messages = self._messages
        if not messages:
            await self._wait_for_messages(timeout)
        message = messages.popleft()
        self._queued -= len(message) + _MESSAGE_OVERHEAD
        if self._reading_paused and self._queued <= self._low_water:
            self._resume_reading()
        return message

    async def recv_many(self, timeout: float | None = None) -> list:
        """Return every message received so far as a list, waiting only if there is none.

        The fastest way to consume a high-rate feed. Timeout and closing work as for
        :meth:`recv`.
        """
        messages = self._messages
        if not messages:
            await self._wait_for_messages(timeout)
        batch = list(messages)
        messages.clear()
        self._queued = 0
        if self._reading_paused:
            self._resume_reading()
        return batch

    def __aiter__(self):
        return self

    async def __anext__(self):
        # recv() inlined: one coroutine per message instead of two.
        messages = self._messages
        if not messages:
            try:
                await self._wait_for_messages(None)
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
        message = messages.popleft()
        self._queued -= len(message) + _MESSAGE_OVERHEAD
        if self._reading_paused and self._queued <= self._low_water:
            self._resume_reading()
        return message

    async def _wait_for_messages(self, timeout: float | None) -> None:
        """Return once a message is queued; raise if none will ever come."""
        if self._on_message is not None:
            raise RuntimeError("messages go to on_message; await wait_closed() instead")
        if not self._receiving:
            raise self._closed_exception()
        if self._waiter is not None:
            raise RuntimeError("another coroutine is already waiting for a message")
        self._waiter = waiter = self._loop.create_future()
        try:
            if timeout is None:
                await waiter  # without wait_for's wrapper: this is the hot path
            else:
                await _wait_for(waiter, timeout)
        finally:
            self._waiter = None
        if not self._messages:
            raise self._closed_exception()

    def _closed_exception(self):
        exc = self._conn.closed_exception()
        exc.__cause__ = self._conn.error or self._lost_reason
        return exc

    # Sending -----------------------------------------------------------------------

    async def send(self, message) -> None:
        """Send a message: text for a ``str``, binary for any bytes-like object.

        The frame goes whole to the transport at once; then, if the socket's write
        buffer is full, this waits until it drains. Cancelling that wait never leaves a
        partial frame. Raises :class:`~wsfast.ConnectionClosed` once closing has begun.
        """
        self.send_nowait(message)
        if self._writing_paused:
            await self._drain()

    def send_nowait(self, message) -> None:
        """Send a message as :meth:`send` does, without waiting: what the socket cannot
        take yet waits in the transport's buffer, however much that is.

        For plain functions such as an ``on_message`` callback; elsewhere prefer
        ``await send()``, which lets a full buffer drain first.
        """
        conn = self._conn
        if isinstance(message, str):
            conn.send_text(message)
        else:
            conn.send_binary(message)
        self._transport.write(conn.data_to_send())

    def ping(self, payload=b"") -> asyncio.Future:
        """Send a ping; return a future that resolves with the round-trip time in seconds
        when the matching pong arrives (``latency = await ws.ping()``).

        ``payload`` is at most 125 bytes (a ``str`` is sent as UTF-8). A pong answers
        its own ping and every earlier one still waiting.
        """
        conn = self._conn
        conn.send_ping(payload)
        self._transport.write(conn.data_to_send())
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        waiter = self._loop.create_future()
        self._pings.append((bytes(payload), self._loop.time(), waiter))
        return waiter

    def pong(self, payload=b"") -> None:
        """Send an unsolicited pong (at most 125 bytes), e.g. as a heartbeat."""
        conn = self._conn
        conn.send_pong(payload)
        self._transport.write(conn.data_to_send())

    async def _drain(self) -> None:
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _resume_writing(self) -> None:
        self._writing_paused = False
        waiters = self._drain_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # Closing -----------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` (cut to 123 UTF-8 bytes).

        Sends a close frame, then waits up to ``close_timeout`` seconds for the server's
        close frame and for it to close TCP, as RFC 6455 asks; past that, or if this is
        cancelled, the connection is dropped. Messages that arrived before the server's
        close frame can still be received. Closing a closed connection does nothing.
        Raises ValueError for a code that may not be sent (see
        :func:`wsfast.is_valid_close_code`).
        """
        conn = self._conn
        if conn.state is State.OPEN:
            conn.send_close(code, reason)
            self._transport.write(conn.data_to_send())
        # The server's close frame may be behind unread messages: read on regardless.
        self._high_water = float("inf")
        if self._reading_paused:
            self._resume_reading()
        try:
            await _wait_for(asyncio.shield(self._closed), self._close_timeout)
        except TimeoutError:
            pass
        finally:
            if not self._closed.done():
                self._transport.abort()
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        """Wait until the connection has closed (the server ended TCP, or it dropped).

        Raises the exception an ``on_message`` callback raised, if one did: that
        exception closed the connection with 1011 (internal error).
        """
        await asyncio.shield(self._closed)
        if self._callback_error is not None:
            raise self._callback_error

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<wsfast.asyncio.Client {self.state.name}>"

    # Transport callbacks -----------------------------------------------------------

    def _connection_made(self, transport) -> None:
        self._transport = transport
        transport.write(self._handshake.request())

    def _read_buffer(self, sizehint: int) -> memoryview:
        """Where the transport reads next: straight into a large payload arriving (the
        codec's payload window, which saves copying it), else the read buffer."""
        self._window = None  # a window not filled must go before the next one is made
        if not self._handshaking:
            window = self._conn.payload_window()
            if window is not None:
                self._window = window
                return window
        # A memoryview, not the bytearray: the TLS transport fills it in slices, and
        # slicing a bytearray would copy.
        return self._view

    def _data_received(self, nbytes: int) -> None:
        window = self._window
        if window is not None:
            self._window = None
            self._process(window[:nbytes])
            return
        if self._handshaking:
            self._handshake_received(bytes(self._view[:nbytes]))
        else:
            self._process(self._view[:nbytes])
        if nbytes == len(self._buffer) and nbytes < _MAX_READ_SIZE:
            self._buffer = bytearray(2 * nbytes)
            self._view = memoryview(self._buffer)

    def _process(self, data) -> None:
        """Feed received bytes to the Connection and act on what it returns."""
        events = self._conn.receive_data(data)
        if events:
            if self._on_message is None:
                self._queue(events)
            else:
                self._deliver(events)
        self._after_receiving()

    def _queue(self, events: list) -> None:
        if self._conn.last_controls:
            events = self._messages_only(events)
        self._messages.extend(events)
        self._queued += sum(map(len, events)) + _MESSAGE_OVERHEAD * len(events)
        if self._queued > self._high_water and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True
        if self._messages:
            self._wake_receiver()

    def _deliver(self, events: list) -> None:
        """Hand each message to on_message; a callback that raises closes with 1011."""
        if self._conn.last_controls:
            events = self._messages_only(events)
        on_message = self._on_message
        remaining = iter(events)  # where to go on from after a callback raised
        while self._callback_error is None:
            try:
                for event in remaining:
                    on_message(self, event)
                return
            except Exception as exc:
                if not (isinstance(exc, ConnectionClosed) and self._conn.state is not State.OPEN):
                    self._callback_failed(exc)
                # else it answered a message that came just before the close: go on

    def _messages_only(self, events: list) -> list:
        """The messages among ``events``; pongs go to the ping waiters, and the other
        control events were handled by the Connection."""
        messages = []
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
            self._transport.write(conn.data_to_send())
        self._drop_after_close_timeout()

    def _drop_after_close_timeout(self) -> None:
        """Give the server close_timeout to end TCP, then drop the connection."""
        if self._abort_timer is None and self._close_timeout is not None:
            self._abort_timer = self._loop.call_later(self._close_timeout, self._transport.abort)

    def _wake_receiver(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _after_receiving(self) -> None:
        """Send automatic replies, and act when the server closed or broke the protocol."""
        conn = self._conn
        data = conn.data_to_send()
        if data:
            self._transport.write(data)
        if self._receiving and (conn.close_code is not None or conn.error is not None):
            self._receiving = False
            self._wake_receiver()
            # Either we failed the connection, or the close handshake is complete and the
            # server should now close TCP: in both cases, give it close_timeout to go.
            if conn.close_transport:
                self._transport.close()
            self._drop_after_close_timeout()

    def _handshake_received(self, data: bytes) -> None:
        try:
            done = self._handshake.receive_data(data)
        except InvalidHandshake as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
            self._transport.abort()
            return
        if done:
            params = self._handshake.deflate_params
            if params is not None:
                extension = PerMessageDeflate(
                    params, client=True, options=self._handshake.deflate, codec=self._connection_options["codec"]
                )
                self._conn = Connection(client=True, deflate=extension, **self._connection_options)
            self._handshaking = False
            if not self._opened.done():
                self._opened.set_result(None)
            if self._handshake.leftover:
                self._process(self._handshake.leftover)

    def _pong_received(self, payload: bytes) -> None:
        pings = self._pings
        for index, (data, _, _) in enumerate(pings):
            if data == payload:
                now = self._loop.time()
                for _, sent, waiter in pings[: index + 1]:
                    if not waiter.done():
                        waiter.set_result(now - sent)
                del pings[: index + 1]
                return

    def _resume_reading(self) -> None:
        self._reading_paused = False
        self._transport.resume_reading()

    def _connection_lost(self, exc: BaseException | None) -> None:
        self._lost_reason = exc
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self._handshaking:
            try:
                self._handshake.receive_eof()
            except InvalidHandshake as error:
                error.__cause__ = exc
                if not self._opened.done():
                    self._opened.set_exception(error)
        self._conn.receive_eof()
        self._receiving = False
        self._closed.set_result(None)
        self._wake_receiver()
        closed = self._closed_exception()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(closed)
        self._drain_waiters.clear()
        for _, _, waiter in self._pings:
            if not waiter.done():
                waiter.set_exception(closed)
                waiter.exception()  # a ping nobody awaits must not log an error
        self._pings.clear()


def connect(
    url: str,
    *,
    timeout: float | None = 10.0,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    proxy: str | bool | None = True,
    headers=None,
    subprotocols=None,
    origin: str | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    codec=None,
    on_message=None,
) -> _Connect:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    Use ``ws = await connect(url)`` or ``async with connect(url) as ws:`` (which closes
    the connection on the way out). The result is an awaitable, not a coroutine: to run
    it as a task, use ``asyncio.ensure_future(connect(url))``.

    - ``timeout``: seconds for TCP, TLS and the opening handshake together (TimeoutError).
    - ``ssl``: an ``ssl.SSLContext`` for ``wss://``; by default the system's trusted CAs
      with host name checking. ``server_hostname`` overrides the name the certificate is
      checked against (by default the URL's host).
    - ``proxy``: a proxy URL to connect through (``http://``, ``socks5://`` or
      ``socks5h://``, with an optional ``user:password@``); True, the default, takes it
      from ``HTTPS_PROXY`` (``wss://``) or ``HTTP_PROXY`` (``ws://``), else ``ALL_PROXY``,
      unless ``NO_PROXY`` names the host; None connects directly.
    - ``headers`` (dict or list of pairs), ``subprotocols`` (names offered, the server's
      choice is :attr:`Client.subprotocol`) and ``origin`` go into the upgrade request.
      ``ws://user:password@host/`` sends an ``Authorization: Basic`` header.
    - ``max_message_size``: larger incoming messages fail the connection with 1009
      (None: no limit). ``max_frame_size``: outgoing messages are split into frames of at
      most this many bytes (None: one frame per message).
    - ``max_queued_bytes``: reading from the socket pauses while received messages not yet
      returned by ``recv`` exceed this (None: never pause).
    - ``compression``: ``"deflate"`` offers permessage-deflate (RFC 7692) with the
      defaults of :class:`~wsfast.DeflateOptions`, a :class:`~wsfast.DeflateOptions`
      offers those settings, None offers nothing. Messages are compressed only if the
      server agrees (see :attr:`Client.deflate_params`).
    - ``tcp_nodelay``: send small frames at once instead of letting TCP batch them.
    - ``close_timeout``: seconds :meth:`Client.close` waits for the server to finish
      the close handshake before dropping the connection.
    - ``codec``: the frame codec module (``wsfast._pure`` or ``wsfast._compiled``),
      by default the one ``wsfast`` selected.
    - ``on_message``: a callback ``on_message(client, message)`` that receives every
      message as soon as it is parsed, in order, instead of :meth:`Client.recv`; it may
      be called before ``connect`` returns. It runs in the event loop, so it must not
      block; it can answer with :meth:`Client.send_nowait`. If it raises, the connection
      closes with 1011 and :meth:`Client.wait_closed` raises the exception.

    Raises :class:`~wsfast.InvalidURI`, :class:`~wsfast.InvalidHandshake` (and its
    subclasses, e.g. :class:`~wsfast.InvalidStatus` for a non-101 answer),
    :class:`~wsfast.ProxyError` (and its subclasses) when the proxy fails or refuses,
    ``OSError`` (including ``ssl.SSLError``) or ``TimeoutError``.
    """
    return _Connect(
        url,
        timeout=timeout,
        ssl=ssl,
        server_hostname=server_hostname,
        proxy=proxy,
        headers=headers,
        subprotocols=subprotocols,
        origin=origin,
        deflate=deflate_options(compression),
        tcp_nodelay=tcp_nodelay,
        client_options={
            "max_message_size": max_message_size,
            "max_frame_size": max_frame_size,
            "max_queued_bytes": max_queued_bytes,
            "close_timeout": close_timeout,
            "codec": codec,
            "on_message": on_message,
        },
    )


class _Connect:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(
        self,
        url,
        *,
        timeout,
        ssl,
        server_hostname,
        proxy,
        headers,
        subprotocols,
        origin,
        deflate,
        tcp_nodelay,
        client_options,
    ) -> None:
        uri = parse_uri(url)
        if ssl is True or (ssl is None and uri.secure):
            ssl = ssl_module.create_default_context()
        if ssl and not uri.secure:
            raise ValueError(f"ssl was given for {url!r}, which is not a wss:// URL")
        if not ssl and uri.secure:
            raise ValueError(f"a wss:// URL needs TLS, but ssl={ssl!r}")
        if uri.user_info is not None:
            headers = with_basic_auth(headers, *uri.user_info)
        self._url = url
        self._headers = headers
        self._subprotocols = subprotocols
        self._origin = origin
        self._deflate = deflate
        self._uri = uri
        self._ssl = ssl or None
        self._server_hostname = server_hostname or uri.host
        self._proxy = resolve_proxy(proxy, uri)
        self._timeout = timeout
        self._tcp_nodelay = tcp_nodelay
        self._client_options = client_options
        self._client: Client | None = None

    def __await__(self):
        return self._open().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._open()
        return self._client

    async def __aexit__(self, *exc_info) -> None:
        await self._client.close()

    async def _open(self) -> Client:
        uri = self._uri
        handshake = ClientHandshake(
            uri.host,
            uri.port,
            uri.resource,
            secure=uri.secure,
            origin=self._origin,
            headers=self._headers,
            subprotocols=self._subprotocols,
            deflate=self._deflate,
        )
        client = Client(handshake, **self._client_options)
        try:
            await _wait_for(self._connect_and_handshake(client), self._timeout)
        except TimeoutError:
            raise TimeoutError(f"opening the WebSocket connection to {self._url} timed out") from None
        return client

    async def _connect_and_handshake(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        uri = self._uri
        try:
            await create_connection(
                loop,
                lambda: _Protocol(client),
                uri.host,
                uri.port,
                proxy=self._proxy,
                ssl=self._ssl,
                server_hostname=self._server_hostname if self._ssl else None,
            )
            _set_nodelay(client._transport, self._tcp_nodelay)
            await client._opened
        except BaseException:
            if client._transport is not None:
                client._transport.abort()
            raise


async def _wait_for(awaitable, timeout: float | None):
    """Await ``awaitable`` for at most ``timeout`` seconds (None: no limit).

    Raises the built-in TimeoutError, which asyncio's is not before Python 3.11.
    """
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError from None


def _set_nodelay(transport, enabled: bool) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))
