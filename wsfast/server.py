"""A threaded WebSocket server: one thread per connection, echo by default.

::

    from wsfast.server import serve

    def handler(ws):
        for message in ws:
            ws.send(message)

    with serve(handler, "127.0.0.1", 8765) as server:   # serves in a background thread
        ...

    serve(handler, "127.0.0.1", 8765).serve_forever()   # or in this thread, until Ctrl-C
"""

from __future__ import annotations

import math
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, overload

from ._codec import DEFAULT_MAX_SIZE
from ._io import DEFAULT_SEND_TIMEOUT, WebSocket, deadline_after, logger
from ._stream import Stream, open_stream
from ._typing import M, T
from .deflate import DeflateOptions, PerMessageDeflate, deflate_options
from .exceptions import ConnectionClosed, InvalidHandshake
from .handshake import Headers, ServerHandshake
from .keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, check_keepalive_options
from .protocol import Connection, State

if TYPE_CHECKING:
    from types import ModuleType

    from typing_extensions import Self, Unpack

    from .client import _ConnectionOptions, _WebSocketOptions

__all__ = ["Server", "ServerConnection", "echo", "serve"]


class ServerConnection(WebSocket[M]):
    """A client's connection, as the server's handler receives it.

    It has the same API as :class:`wsfast.client.Client` (:meth:`send`, :meth:`recv`,
    iteration, :meth:`close`, :attr:`deflate_params`, ...), plus the request's
    :attr:`path` and :attr:`request_headers`. ``options`` are those of
    :class:`~wsfast._io.WebSocket` (timeouts and keepalive).

    ``ServerConnection[M]`` hands out messages of type ``M``: ``str | bytes`` (what a bare
    ``ServerConnection`` means), or what the ``decode`` function given to :func:`serve`
    returns.
    """

    __slots__ = ("path", "request_headers")

    def __init__(
        self,
        stream: Stream,
        connection: Connection,
        handshake: ServerHandshake,
        **options: Unpack[_WebSocketOptions],
    ) -> None:
        super().__init__(
            stream,
            connection,
            leftover=handshake.leftover,
            subprotocol=handshake.subprotocol,
            deflate_params=handshake.deflate_params,
            **options,
        )
        assert handshake.path is not None  # the handshake is done
        self.path: str = handshake.path
        """The request target: path and query, e.g. ``"/feed?symbol=X"``."""
        assert handshake.request_headers is not None
        self.request_headers: Headers = handshake.request_headers
        """The headers of the client's upgrade request (a :class:`wsfast.handshake.Headers`)."""


def echo(ws: ServerConnection) -> None:
    """The default handler: send every message back as it came, text as text, binary as binary."""
    for message in ws:
        ws.send(message)


Handler = Callable[[ServerConnection[M]], object]
"""What :func:`serve` runs for each connection, in the connection's own thread
(``Handler[T]`` takes the ``ServerConnection[T]`` of a ``decode`` that returns ``T``)."""


class Server:
    """A listening WebSocket server; create it with :func:`serve`.

    :meth:`serve_forever` serves in the calling thread, :meth:`start` in a background
    thread; ``with`` serves in the background for the duration of the block. Each
    connection gets its own thread running the handler.
    """

    def __init__(
        self,
        handler: Handler[Any] | None,
        listener: socket.socket,
        *,
        ssl: ssl_module.SSLContext | None,
        subprotocols: Iterable[str] | None,
        deflate: DeflateOptions | None,
        open_timeout: float | None,
        close_timeout: float | None,
        tcp_nodelay: bool,
        max_connections: int | None,
        connection_options: _ConnectionOptions,
        websocket_options: _WebSocketOptions,
    ) -> None:
        self._handler = echo if handler is None else handler
        self._listener = listener
        self._ssl = ssl
        self._subprotocols = subprotocols
        self._deflate = deflate
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._tcp_nodelay = tcp_nodelay
        self._max_connections = max_connections
        self._connection_options = connection_options
        self._websocket_options = websocket_options
        self._wakeup_reader, self._wakeup_writer = socket.socketpair()
        self._wakeup_writer.setblocking(False)
        self._lock = threading.Lock()
        self._connections: set[ServerConnection[Any]] = set()  # open ServerConnections
        self._threads: set[threading.Thread] = set()  # threads still handling a connection
        self._serving = False  # an accept loop runs, or ran
        self._serving_thread: int | None = None  # the thread running the accept loop
        # A plain flag, not an Event or a lock: close() may run in a signal handler,
        # interrupting this very thread while it holds one.
        self._close_requested = False
        self._shutting_down = False
        self._done = threading.Event()  # every connection was closed or dropped
        self.address: tuple[str, int] | tuple[str, int, int, int] = listener.getsockname()
        """The listening socket's address, e.g. ``("127.0.0.1", 8765)``."""

    @property
    def port(self) -> int:
        """The port the server listens on (the one chosen for ``port=0``)."""
        return self.address[1]

    def serve_forever(self) -> None:
        """Accept connections until :meth:`close` is called (from another thread or a signal
        handler), then close every connection with 1001 and return once they are closed
        (or dropped after ``close_timeout``). If :meth:`start` already serves in the
        background, wait until it stops."""
        with self._lock:
            if self._shutting_down or self._close_requested:
                raise RuntimeError("the server is closed")
            background = self._serving
            self._serving = True
        if background:
            self._done.wait()
        else:
            self._serve()

    def start(self) -> Self:
        """Serve in a background thread; return the server."""
        with self._lock:
            if self._shutting_down or self._close_requested:
                raise RuntimeError("the server is closed")
            if self._serving:
                return self
            self._serving = True
        threading.Thread(target=self._serve, name=f"wsfast server :{self.port}", daemon=True).start()
        return self

    def _serve(self) -> None:
        """Accept connections until close() asks to stop; then shut down."""
        self._serving_thread = threading.get_ident()
        logger.debug("serving on %s", self.address)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._listener, selectors.EVENT_READ)
                selector.register(self._wakeup_reader, selectors.EVENT_READ)
                while not self._close_requested:
                    for key, _ in selector.select():
                        if key.fileobj is self._listener and not self._close_requested:
                            self._accept()
        finally:
            self._shutdown()
            self._serving_thread = None

    def _accept(self) -> None:
        try:
            sock, address = self._listener.accept()
        except OSError as exc:
            # Out of file descriptors, or a client gone before it was accepted. Pausing
            # keeps a persistent failure from spinning this loop.
            logger.warning("accept failed: %r", exc)
            time.sleep(0.1)
            return
        with self._lock:
            full = self._max_connections is not None and len(self._threads) >= self._max_connections
        if full:
            logger.info("refused a connection from %s: max_connections (%s) reached", address, self._max_connections)
            _refuse(sock)
            return
        thread = threading.Thread(target=self._handle, args=(sock,), name=f"wsfast connection {address}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # no more threads: this client is refused, the others served
            logger.warning("cannot start a thread for %s: %s", address, exc)
            with self._lock:
                self._threads.discard(thread)
            _refuse(sock)

    def _handle(self, sock: socket.socket) -> None:
        try:
            ws = self._open(sock)
            if ws is None:
                return
            with self._lock:
                refused = self._shutting_down or self._close_requested
                if not refused:
                    self._connections.add(ws)
            if refused:
                ws.close(1001, "server shutting down")
                return
            try:
                self._handler(ws)
            except ConnectionClosed as exc:
                logger.debug("handler stopped: %s", exc)
            except Exception:  # noqa: BLE001 - logged; the client gets 1011 and the server goes on
                logger.exception("connection handler failed")
                ws.close(1011, "internal error")
            finally:
                ws.close()
                with self._lock:
                    self._connections.discard(ws)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _open(self, sock: socket.socket) -> ServerConnection[Any] | None:
        """Run the TLS and WebSocket handshakes; None if they fail (the socket is closed)."""
        handshake = ServerHandshake(subprotocols=self._subprotocols, deflate=self._deflate)
        deadline = deadline_after(self._open_timeout)
        try:
            if self._tcp_nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = open_stream(sock, self._ssl, deadline, server_side=True)
            while True:
                data = stream.receive_some(deadline)
                if not data:
                    logger.debug("client left during the handshake")
                    sock.close()
                    return None
                try:
                    if handshake.receive_data(data):
                        break
                except InvalidHandshake as exc:
                    logger.debug("bad handshake request: %s", exc)
                    stream.send_all(handshake.reject(body=f"{exc}\n"), deadline)
                    sock.close()
                    return None
            stream.send_all(handshake.response(), deadline)
            params = handshake.deflate_params
            # Without an agreement there is no deflate object, and so no cost when receiving.
            extension = (
                None
                if params is None
                else PerMessageDeflate(
                    params, client=False, options=self._deflate, codec=self._connection_options["codec"]
                )
            )
            connection = Connection(client=False, deflate=extension, **self._connection_options)
            ws = ServerConnection(stream, connection, handshake, **self._websocket_options)
        except OSError as exc:  # a TLS failure, a timeout, a reset (even right after the 101)
            logger.debug("opening handshake failed: %r", exc)
            sock.close()
            return None
        logger.debug("connection opened: %s", handshake.path)
        return ws

    def close(self) -> None:
        """Stop accepting, close every open connection with 1001 (going away) and wait up
        to ``close_timeout`` for the handlers to finish; the connections left are dropped.

        May be called from any thread, from a handler and from a signal handler: there it
        only asks the accept loop to stop, and :meth:`serve_forever` returns once the
        connections are closed.
        """
        self._close_requested = True
        try:
            self._wakeup_writer.send(b"x")
        except OSError:
            pass  # already woken, or already shut down
        if threading.get_ident() == self._serving_thread:
            return  # a signal handler interrupted the accept loop: it shuts down next
        if self._serving:
            self._done.wait()
        else:
            self._shutdown()

    def _shutdown(self) -> None:
        """Close the listener and every connection; runs once, others wait for it."""
        with self._lock:
            running = self._shutting_down
            self._shutting_down = True
            connections = list(self._connections)
        if running:
            self._done.wait()
            return
        try:
            self._listener.close()
            self._wakeup_reader.close()
            self._wakeup_writer.close()
            # Tell every client at once (no waiting, even for a client that reads nothing);
            # each handler's thread then sees its close reply.
            for ws in connections:
                ws._start_close(1001, "server shutting down")
            deadline = deadline_after(self._close_timeout)
            with self._lock:
                threads = self._threads - {threading.current_thread()}  # a handler may close the server
            for thread in threads:
                thread.join(None if deadline == math.inf else max(deadline - time.monotonic(), 0))
            with self._lock:
                connections = list(self._connections)
            for ws in connections:
                if ws.state is not State.CLOSED:
                    ws._abort("server shutting down")
            logger.debug("server closed")
        finally:
            self._done.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<wsfast.server.Server {self.address}>"


_BUSY = b"the server is at capacity, try again later\n"
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


def _refuse(sock: socket.socket) -> None:
    """Answer 503 and close, without waiting: the accept loop must go on at once."""
    try:
        sock.setblocking(False)
        _discard_input(sock)  # closing with unread bytes would reset the connection
        sock.send(_UNAVAILABLE)
        sock.shutdown(socket.SHUT_WR)
        _discard_input(sock)
    except OSError:
        pass
    finally:
        sock.close()


def _discard_input(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        pass


@overload
def serve(
    handler: Handler[str | bytes] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Iterable[str] | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
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
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Iterable[str] | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
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
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Iterable[str] | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
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
    """Listen on ``host``:``port`` (0 picks a free port, see :attr:`Server.port`) and return
    the :class:`Server`; it accepts connections once :meth:`~Server.serve_forever` or
    :meth:`~Server.start` runs (``with serve(...) as server:`` starts it).

    - ``handler(ws)`` runs in its own thread for each connection, with a
      :class:`ServerConnection`; when it returns, the connection is closed (1000, or 1011
      if it raised). The default, :func:`echo`, sends every message back.
    - ``ssl``: an ``ssl.SSLContext`` with the server's certificate, for ``wss://``.
    - ``subprotocols``: the ones this server speaks, by preference.
    - ``max_message_size``: larger incoming messages fail the connection with 1009
      (None: no limit). ``max_frame_size``: outgoing messages are split into frames of
      at most this many bytes (None: one frame per message).
    - ``compression``: ``"deflate"`` accepts a client's permessage-deflate (RFC 7692)
      offer with the defaults of :class:`~wsfast.DeflateOptions`, a
      :class:`~wsfast.DeflateOptions` accepts it with those settings, None declines it.
      :attr:`ServerConnection.deflate_params` tells what was agreed.
    - ``open_timeout``: seconds a client has for the TLS and WebSocket handshakes.
    - ``close_timeout``: seconds closing waits for the client's part of the close handshake.
    - ``send_timeout``: seconds a send may wait for a client that takes nothing; past
      that the client is dropped (None: no limit).
    - ``ping_interval``, ``ping_timeout``: keepalive, as for :func:`wsfast.connect`: a
      ping every ``ping_interval`` seconds while the handler receives, and a client that
      sends nothing for ``ping_timeout`` seconds after one is dropped with 1011.
    - ``max_connections``: clients beyond this many at once are answered HTTP 503
      (None: no limit); the server goes on serving the others.
    - ``codec``: the frame codec module, by default the one ``wsfast`` selected.
    - ``decode``: a function applied to every message's payload as ``bytes`` (text is
      checked as UTF-8 first), so that the connections' :meth:`~ServerConnection.recv`,
      :meth:`~ServerConnection.recv_many` and iteration return what it returns, as for
      :func:`wsfast.connect`; when it raises, receiving raises
      :class:`~wsfast.DecodeError` for that message and the connection stays open.
      The handler then gets a ``ServerConnection[T]`` for a ``decode`` that returns
      ``T`` (a ``ServerConnection[str | bytes]`` without).

    A request that is not a valid WebSocket upgrade is answered 400 (426 for an
    unsupported WebSocket version) and closed.
    """
    deflate = deflate_options(compression)
    connection_options: _ConnectionOptions = {
        "max_message_size": max_message_size,
        "max_frame_size": max_frame_size,
        "codec": codec,
        "text_as_bytes": decode is not None,
    }
    Connection(client=False, **connection_options)  # bad options fail here, not in every connection
    check_keepalive_options(ping_interval, ping_timeout)
    if max_connections is not None and (not isinstance(max_connections, int) or max_connections < 1):
        raise ValueError(f"max_connections must be an int >= 1 or None, not {max_connections!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=backlog)
    return Server(
        handler,
        listener,
        ssl=ssl,
        subprotocols=subprotocols,
        deflate=deflate,
        open_timeout=open_timeout,
        close_timeout=close_timeout,
        tcp_nodelay=tcp_nodelay,
        max_connections=max_connections,
        connection_options=connection_options,
        websocket_options={
            "close_timeout": close_timeout,
            "send_timeout": send_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "decode": decode,
        },
    )
