"""The asyncio WebSocket server: serve, accept, shutdown.

::

    async def handler(ws):
        async for message in ws:
            await ws.send(message)

    async with wsfast.asyncio.serve(handler, "127.0.0.1", 8765) as server:
        await server.serve_forever()   # until server.close(), e.g. from a signal handler

Each connection is a task: the upgrade request and its answer, then the handler.
Whatever goes wrong with one connection is logged once and ends that connection only.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, overload

from .._codec import DEFAULT_MAX_SIZE
from .._io import DEFAULT_SEND_TIMEOUT
from .._typing import M, T
from ..deflate import DeflateOptions, PerMessageDeflate, deflate_options
from ..exceptions import ConnectionClosed, InvalidHandshake
from ..handshake import Headers, ServerHandshake
from ..keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, check_keepalive_options
from ..protocol import Connection, State
from ._tls import TLSTransport
from .connection import DEFAULT_MAX_QUEUED_BYTES, WebSocket, logger, reset, set_nodelay, wait_for

if TYPE_CHECKING:
    from types import ModuleType
    from typing import TypedDict

    from typing_extensions import Self, Unpack

    class _WebSocketOptions(TypedDict, total=False):
        """The options of :class:`WebSocket` that connect and serve take."""

        max_message_size: int | None
        max_frame_size: int | None
        codec: ModuleType | None
        max_queued_bytes: int | None
        close_timeout: float | None
        send_timeout: float | None
        ping_interval: float | None
        ping_timeout: float | None
        decode: Callable[[bytes], Any] | None


__all__ = ["Server", "ServerConnection", "echo", "serve"]

# The connections of a server read into one buffer they share, as long as their reads
# are small: an idle connection then costs no read buffer at all. asyncio hands each
# read to the protocol as soon as it is in the buffer, and the codec copies what it
# keeps, so no read ever sees another's bytes. A connection whose read fills the shared
# buffer gets one of its own, twice as large, which grows as a client's does.
_SHARED_READ_SIZE = 64 * 1024

_BUSY = "the server is at capacity, try again later\n"


class ServerConnection(WebSocket[M]):
    """A client's connection, as the server's handler receives it.

    It has the same API as :class:`wsfast.asyncio.Client` (:meth:`~WebSocket.send`,
    :meth:`~WebSocket.recv`, ``async for``, :meth:`~WebSocket.close`,
    :attr:`~WebSocket.latency`, ...), plus the request's :attr:`path` and
    :attr:`request_headers`.

    ``ServerConnection[M]`` hands out messages of type ``M``: ``str | bytes`` (what a bare
    ``ServerConnection`` means), or what the ``decode`` function given to :func:`serve`
    returns.
    """

    __slots__ = ("_server",)

    _handshake: ServerHandshake

    def __init__(self, server: Server, handshake: ServerHandshake, **options: Unpack[_WebSocketOptions]) -> None:
        super().__init__(handshake, client=False, read_buffer=server._read_buffer, **options)
        self._server = server

    @property
    def path(self) -> str:
        """The request target: path and query, e.g. ``"/feed?symbol=X"``."""
        path = self._handshake.path
        assert path is not None  # the handler gets the connection after the request came
        return path

    @property
    def request_headers(self) -> Headers:
        """The headers of the client's upgrade request (a :class:`wsfast.handshake.Headers`)."""
        headers = self._handshake.request_headers
        assert headers is not None  # the handler gets the connection after the request came
        return headers

    def __repr__(self) -> str:
        return f"<wsfast.asyncio.ServerConnection {self.state.name} {self.remote_address}>"

    def _connection_made(self, transport: asyncio.Transport) -> None:
        self._attach(transport)
        self._server._connection_made(self)

    def _handshake_received(self, data: bytes) -> None:
        opened = self._opened
        try:
            complete = self._handshake.receive_data(data)
        except InvalidHandshake as exc:
            if not opened.done():
                opened.set_exception(exc)
            return
        if complete and not opened.done():
            opened.set_result(None)

    def _accept(self, deflate: DeflateOptions | None) -> None:
        """Answer the request with 101 Switching Protocols and open the connection."""
        handshake = self._handshake
        assert self._transport is not None  # the request came through it
        self._transport.write(handshake.response())
        connection = self._conn
        params = handshake.deflate_params
        if params is not None:
            extension = PerMessageDeflate(
                params, client=False, options=deflate, codec=self._connection_options["codec"]
            )
            connection = Connection(client=False, deflate=extension, **self._connection_options)
        self._handshake_done(connection, handshake.leftover)

    def _refuse(self, response: bytes) -> None:
        """Answer with an HTTP error and close."""
        if self._closed.done():
            return  # the client is gone already
        assert self._transport is not None  # the request came through it
        self._transport.write(response)
        self._transport.close()
        self._drop_after_close_timeout()  # a client that reads nothing cannot hold it open


async def echo(ws: ServerConnection) -> None:
    """The default handler: send every message back as it came, text as text, binary as binary."""
    async for message in ws:
        await ws.send(message)


Handler = Callable[[ServerConnection[M]], Awaitable[object]]
"""What :func:`serve` runs for each connection, as a task: a coroutine function
(``Handler[T]`` takes the ``ServerConnection[T]`` of a ``decode`` that returns ``T``)."""


class Server:
    """A listening asyncio WebSocket server; create it with :func:`serve`.

    ``async with serve(...) as server:`` listens for the duration of the block, then
    closes; ``server = await serve(...)`` starts listening and returns it;
    :meth:`serve_forever` listens (if it does not already) until :meth:`close`.
    """

    def __init__(
        self,
        handler: Handler[Any] | None,
        host: str | None,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None,
        subprotocols: Iterable[str] | None,
        deflate: DeflateOptions | None,
        open_timeout: float | None,
        close_timeout: float | None,
        max_connections: int | None,
        tcp_nodelay: bool,
        backlog: int,
        connection_options: _WebSocketOptions,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._handler = echo if handler is None else handler
        self._host = host
        self._port = port
        self._ssl = ssl
        self._subprotocols = subprotocols
        self._deflate = deflate
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._max_connections = max_connections
        self._tcp_nodelay = tcp_nodelay
        self._backlog = backlog
        self._connection_options = connection_options
        self._read_buffer = memoryview(bytearray(_SHARED_READ_SIZE))
        # Where the TLS connections read their records, shared too.
        self._tls_read_buffer = None if ssl is None else memoryview(bytearray(_SHARED_READ_SIZE))
        self._listener: asyncio.Server | None = None
        # every connection still being served -> its task
        self._connections: dict[ServerConnection[Any], asyncio.Task[None]] = {}
        self._active: set[ServerConnection[Any]] = set()  # those past the handshake, whose handler runs
        self._shutdown: asyncio.Task[None] | None = None
        self._done = self._loop.create_future()  # every connection is closed or dropped

    @property
    def address(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """The listening socket's address, e.g. ``("127.0.0.1", 8765)`` (the first one,
        when the host name has several)."""
        if self._listener is None:
            raise RuntimeError("the server does not listen yet: await it first")
        address: tuple[str, int] | tuple[str, int, int, int] = self._listener.sockets[0].getsockname()
        return address

    @property
    def port(self) -> int:
        """The port the server listens on (the one chosen for ``port=0``)."""
        return self.address[1]

    async def _start(self) -> Self:
        if self._shutdown is not None:
            raise RuntimeError("the server is closed")
        if self._listener is None:
            # TLS, if any, is the connection's own (wsfast.asyncio._tls), over TCP.
            self._listener = await self._loop.create_server(
                self._new_connection, self._host, self._port, backlog=self._backlog
            )
            logger.debug("serving on %s", self.address)
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self._start().__await__()

    async def __aenter__(self) -> Self:
        return await self._start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    async def serve_forever(self) -> None:
        """Listen until :meth:`close` is called, then return once every client got its
        1001 and the connections are closed (or dropped after ``close_timeout``).
        Cancelling it closes the server the same way."""
        await self._start()
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            self.close()
            await asyncio.shield(self._done)
            raise

    def close(self) -> None:
        """Stop accepting, close every connection with 1001 (going away), give them
        ``close_timeout`` seconds to finish (handlers stuck in ``send`` included), then
        drop the rest and cancel their handlers.

        Returns at once, so that a signal handler may call it
        (``loop.add_signal_handler(signal.SIGTERM, server.close)``); :meth:`wait_closed`
        and :meth:`serve_forever` return once it is done. Calling it again does nothing.
        """
        if self._shutdown is None:
            self._shutdown = self._loop.create_task(self._shut_down())

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has closed the server and every connection."""
        await asyncio.shield(self._done)

    async def _shut_down(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for ws in list(self._connections):
            if ws.state is State.CONNECTING:
                reset(ws._transport)
            else:
                ws._start_close(1001, "server shutting down")
        tasks = list(self._connections.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._close_timeout)
            if pending:
                for ws in list(self._connections):
                    ws._abort("server shutting down")
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=self._close_timeout)
        logger.debug("server closed")
        self._done.set_result(None)

    def __repr__(self) -> str:
        where = "not listening" if self._listener is None else self.address
        return f"<wsfast.asyncio.Server {where}>"

    # Connections -------------------------------------------------------------------

    def _new_connection(self) -> asyncio.BufferedProtocol:
        """The protocol for a connection just accepted."""
        handshake = ServerHandshake(subprotocols=self._subprotocols, deflate=self._deflate)
        ws = ServerConnection(self, handshake, **self._connection_options)
        if self._ssl is None:
            return ws._new_protocol()
        return TLSTransport(ws, self._ssl, server_side=True, read_buffer=self._tls_read_buffer)

    def _connection_made(self, ws: ServerConnection[Any]) -> None:
        set_nodelay(ws._transport, self._tcp_nodelay)
        self._connections[ws] = self._loop.create_task(self._serve(ws))

    async def _serve(self, ws: ServerConnection[Any]) -> None:
        """Open ``ws``, run the handler on it, close it."""
        try:
            if not await self._open(ws):
                return
            try:
                await self._handler(ws)
            except ConnectionClosed as exc:
                logger.debug("handler stopped: %s", exc)
            except Exception:  # noqa: BLE001 - logged; the client gets 1011 and the server goes on
                logger.exception("connection handler failed")
                await ws.close(1011, "internal error")
            finally:
                await ws.close()
        finally:
            self._active.discard(ws)
            del self._connections[ws]

    async def _open(self, ws: ServerConnection[Any]) -> bool:
        """The opening handshake; True once the connection is open. A failure is logged
        once, and the connection closed."""
        peer = ws.remote_address
        try:
            await wait_for(ws._opened, self._open_timeout)  # the upgrade request came
        except InvalidHandshake as exc:
            logger.debug("bad handshake request from %s: %s", peer, exc)
            ws._refuse(ws._handshake.reject(body=f"{exc}\n"))
            return False
        except TimeoutError:
            logger.debug("no opening handshake from %s within %s s", peer, self._open_timeout)
            reset(ws._transport)
            return False
        except OSError as exc:  # a reset, a client that left
            logger.debug("opening handshake with %s failed: %r", peer, exc)
            reset(ws._transport)
            return False
        if ws._closed.done():
            logger.debug("%s left right after its upgrade request", peer)
            return False
        full = self._max_connections is not None and len(self._active) >= self._max_connections
        if full or self._shutdown is not None:
            why = f"max_connections ({self._max_connections}) reached" if full else "the server is shutting down"
            logger.info("refused a connection from %s: %s", peer, why)
            ws._refuse(ws._handshake.reject(503, body=_BUSY, headers={"Retry-After": "1"}))
            return False
        self._active.add(ws)
        ws._accept(self._deflate)
        logger.debug("connection opened from %s: %s", peer, ws.path)
        return True


@overload
def serve(
    handler: Handler[str | bytes] | None = None,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Iterable[str] | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
    compression: str | DeflateOptions | None = "deflate",
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    max_connections: int | None = None,
    tcp_nodelay: bool = True,
    backlog: int = 128,
    codec: ModuleType | None = None,
    decode: None = None,
) -> Server: ...
@overload
def serve(
    handler: Handler[T] | None = None,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Iterable[str] | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
    compression: str | DeflateOptions | None = "deflate",
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    max_connections: int | None = None,
    tcp_nodelay: bool = True,
    backlog: int = 128,
    codec: ModuleType | None = None,
    decode: Callable[[bytes], T],
) -> Server: ...
def serve(
    handler: Handler[Any] | None = None,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Iterable[str] | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
    compression: str | DeflateOptions | None = "deflate",
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    max_connections: int | None = None,
    tcp_nodelay: bool = True,
    backlog: int = 128,
    codec: ModuleType | None = None,
    decode: Callable[[bytes], Any] | None = None,
) -> Server:
    """A WebSocket server on ``host``:``port`` (0 picks a free port, see
    :attr:`Server.port`), in the running event loop: ``async with serve(handler) as
    server:``, or ``server = await serve(handler)``, then ``await server.serve_forever()``.

    - ``handler(ws)``: a coroutine function run as a task for each connection, with a
      :class:`ServerConnection`; when it returns, the connection is closed (1000, or 1011
      if it raised: the exception is logged). The default, :func:`echo`, sends every
      message back.
    - ``ssl``: an ``ssl.SSLContext`` with the server's certificate, for ``wss://``.
    - ``subprotocols``: the ones this server speaks, by preference.
    - ``max_message_size``: larger incoming messages fail the connection with 1009
      (None: no limit). ``max_frame_size``: outgoing messages are split into frames of
      at most this many bytes (None: one frame per message).
    - ``max_queued_bytes``: reading from a client pauses while its messages not yet
      received by the handler exceed this (None: never pause).
    - ``compression``: ``"deflate"`` accepts a client's permessage-deflate (RFC 7692)
      offer with the defaults of :class:`~wsfast.DeflateOptions`, a
      :class:`~wsfast.DeflateOptions` accepts it with those settings, None declines it.
    - ``open_timeout``: seconds a client has for the TLS handshake, and as many for its
      upgrade request.
    - ``close_timeout``: seconds closing waits for the client's part of the close
      handshake, and :meth:`Server.close` for the handlers to finish.
    - ``send_timeout``: seconds a send may wait for a client that takes nothing; past
      that the client is dropped and ``send`` raises TimeoutError (None: no limit).
    - ``ping_interval``, ``ping_timeout``: keepalive, as for
      :func:`wsfast.asyncio.connect`: a ping every ``ping_interval`` seconds, and a
      client that sends nothing for ``ping_timeout`` seconds after one is dropped with
      1011 (None turns each off).
    - ``max_connections``: clients beyond this many open connections are answered HTTP
      503 (None: no limit); the server goes on serving the others.
    - ``tcp_nodelay``: send small frames at once; ``backlog``: the listen queue's length.
    - ``codec``: the frame codec module, by default the one ``wsfast`` selected.
    - ``decode``: a function applied to every message's payload as ``bytes`` (text is
      checked as UTF-8 first), so that the connections' :meth:`~WebSocket.recv`,
      :meth:`~WebSocket.recv_many` and ``async for`` return what it returns, as for
      :func:`wsfast.asyncio.connect`; when it raises, receiving raises
      :class:`~wsfast.DecodeError` for that message and the connection stays open.
      The handler then gets a ``ServerConnection[T]`` for a ``decode`` that returns
      ``T`` (a ``ServerConnection[str | bytes]`` without).

    A request that is not a valid WebSocket upgrade is answered 400 (426 for an
    unsupported WebSocket version) and closed. Bad options raise ValueError at once.
    """
    deflate = deflate_options(compression)
    Connection(client=False, max_message_size=max_message_size, max_frame_size=max_frame_size, codec=codec)
    check_keepalive_options(ping_interval, ping_timeout)
    if max_queued_bytes is not None and max_queued_bytes < 0:
        raise ValueError("max_queued_bytes must be >= 0 or None")
    if max_connections is not None and (not isinstance(max_connections, int) or max_connections < 1):
        raise ValueError(f"max_connections must be an int >= 1 or None, not {max_connections!r}")
    return Server(
        handler,
        host,
        port,
        ssl=ssl,
        subprotocols=subprotocols,
        deflate=deflate,
        open_timeout=open_timeout,
        close_timeout=close_timeout,
        max_connections=max_connections,
        tcp_nodelay=tcp_nodelay,
        backlog=backlog,
        connection_options={
            "max_message_size": max_message_size,
            "max_frame_size": max_frame_size,
            "max_queued_bytes": max_queued_bytes,
            "close_timeout": close_timeout,
            "send_timeout": send_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "codec": codec,
            "decode": decode,
        },
    )
