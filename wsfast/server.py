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

from ._codec import DEFAULT_MAX_SIZE
from ._io import WebSocket, deadline_after, logger, time_left
from .deflate import DeflateOptions, PerMessageDeflate, deflate_options
from .exceptions import ConnectionClosed, InvalidHandshake
from .handshake import ServerHandshake
from .protocol import Connection, State

__all__ = ["Server", "ServerConnection", "echo", "serve"]


class ServerConnection(WebSocket):
    """A client's connection, as the server's handler receives it.

    It has the same API as :class:`wsfast.client.Client` (:meth:`send`, :meth:`recv`,
    iteration, :meth:`close`, :attr:`deflate_params`, ...), plus the request's
    :attr:`path` and :attr:`request_headers`.
    """

    def __init__(
        self,
        sock: socket.socket,
        connection: Connection,
        handshake: ServerHandshake,
        *,
        close_timeout: float | None = 10.0,
    ) -> None:
        super().__init__(
            sock,
            connection,
            leftover=handshake.leftover,
            subprotocol=handshake.subprotocol,
            deflate_params=handshake.deflate_params,
            close_timeout=close_timeout,
        )
        self.path: str = handshake.path
        """The request target: path and query, e.g. ``"/feed?symbol=X"``."""
        self.request_headers = handshake.request_headers
        """The headers of the client's upgrade request (a :class:`wsfast.handshake.Headers`)."""


def echo(ws: ServerConnection) -> None:
    """The default handler: send every message back as it came, text as text, binary as binary."""
    for message in ws:
        ws.send(message)


class Server:
    """A listening WebSocket server; create it with :func:`serve`.

    :meth:`serve_forever` serves in the calling thread, :meth:`start` in a background
    thread; ``with`` serves in the background for the duration of the block. Each
    connection gets its own thread running the handler.
    """

    def __init__(
        self,
        handler,
        listener: socket.socket,
        *,
        ssl,
        subprotocols,
        deflate,
        open_timeout,
        close_timeout,
        tcp_nodelay: bool,
        connection_options: dict,
    ) -> None:
        self._handler = echo if handler is None else handler
        self._listener = listener
        self._ssl = ssl
        self._subprotocols = subprotocols
        self._deflate = deflate
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._tcp_nodelay = tcp_nodelay
        self._connection_options = connection_options
        self._wakeup_reader, self._wakeup_writer = socket.socketpair()
        self._lock = threading.Lock()
        self._connections: set = set()  # open ServerConnections
        self._threads: set = set()  # threads still handling a connection
        self._serving = False  # an accept loop runs, or ran
        self._stopped = threading.Event()
        self._closed = False
        self.address = listener.getsockname()
        """The listening socket's address, e.g. ``("127.0.0.1", 8765)``."""

    @property
    def port(self) -> int:
        """The port the server listens on (the one chosen for ``port=0``)."""
        return self.address[1]

    def serve_forever(self) -> None:
        """Accept connections until :meth:`close` is called (from another thread or a signal
        handler). If :meth:`start` already serves in the background, wait until it stops."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is closed")
            background = self._serving
            self._serving = True
        if background:
            self._stopped.wait()
        else:
            self._serve()

    def start(self) -> Server:
        """Serve in a background thread; return the server."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is closed")
            if self._serving:
                return self
            self._serving = True
        threading.Thread(target=self._serve, name=f"wsfast server :{self.port}", daemon=True).start()
        return self

    def _serve(self) -> None:
        """Accept connections until close() writes to the wake-up socket."""
        logger.debug("serving on %s", self.address)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._listener, selectors.EVENT_READ)
                selector.register(self._wakeup_reader, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select():
                        if key.fileobj is self._wakeup_reader:
                            return
                        self._accept()
        finally:
            self._stopped.set()

    def _accept(self) -> None:
        try:
            sock, address = self._listener.accept()
        except OSError as exc:
            # Out of file descriptors, or a client gone before it was accepted. Pausing
            # keeps a persistent failure from spinning this loop.
            logger.warning("accept failed: %r", exc)
            time.sleep(0.1)
            return
        thread = threading.Thread(target=self._handle, args=(sock,), name=f"wsfast connection {address}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _handle(self, sock: socket.socket) -> None:
        try:
            ws = self._open(sock)
            if ws is None:
                return
            with self._lock:
                if self._closed:
                    ws.close(1001, "server shutting down")
                    return
                self._connections.add(ws)
            try:
                self._handler(ws)
            except ConnectionClosed as exc:
                logger.debug("handler stopped: %s", exc)
            except Exception:
                logger.exception("connection handler failed")
                ws.close(1011, "internal error")
            finally:
                ws.close()
                with self._lock:
                    self._connections.discard(ws)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _open(self, sock: socket.socket) -> ServerConnection | None:
        """Run the TLS and WebSocket handshakes; None if they fail (the socket is closed)."""
        handshake = ServerHandshake(subprotocols=self._subprotocols, deflate=self._deflate)
        deadline = deadline_after(self._open_timeout)
        try:
            if self._tcp_nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock.settimeout(time_left(deadline))
                sock = self._ssl.wrap_socket(sock, server_side=True)
            while True:
                sock.settimeout(time_left(deadline))
                data = sock.recv(65536)
                if not data:
                    logger.debug("client left during the handshake")
                    sock.close()
                    return None
                try:
                    if handshake.receive_data(data):
                        break
                except InvalidHandshake as exc:
                    logger.debug("bad handshake request: %s", exc)
                    sock.sendall(handshake.reject(body=f"{exc}\n"))
                    sock.close()
                    return None
            sock.sendall(handshake.response())
            sock.settimeout(None)
        except OSError as exc:  # a TLS failure, a timeout, a reset
            logger.debug("opening handshake failed: %r", exc)
            sock.close()
            return None
        params = handshake.deflate_params
        # Without an agreement there is no deflate object, and so no cost when receiving.
        extension = None if params is None else PerMessageDeflate(params, client=False, options=self._deflate)
        connection = Connection(client=False, deflate=extension, **self._connection_options)
        logger.debug("connection opened: %s", handshake.path)
        return ServerConnection(sock, connection, handshake, close_timeout=self._close_timeout)

    def close(self) -> None:
        """Stop accepting, close every open connection with 1001 (going away) and wait up
        to ``close_timeout`` for the handlers to finish."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            serving = self._serving
            connections = list(self._connections)
        self._wakeup_writer.send(b"x")
        if serving:
            self._stopped.wait()
        self._listener.close()
        self._wakeup_reader.close()
        self._wakeup_writer.close()
        # Tell every client at once; each handler's thread then sees its close reply.
        for ws in connections:
            ws._start_close(1001, "server shutting down")
        deadline = deadline_after(self._close_timeout)
        with self._lock:
            threads = self._threads - {threading.current_thread()}  # a handler may close the server
        for thread in threads:
            thread.join(None if deadline == math.inf else max(deadline - time.monotonic(), 0))
        for ws in connections:
            if ws.state is not State.CLOSED:
                ws._abort("server shutting down")
        logger.debug("server closed")

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<wsfast.server.Server {self.address}>"


def serve(
    handler=None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols=None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    compression: str | DeflateOptions | None = "deflate",
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 10.0,
    tcp_nodelay: bool = True,
    backlog: int = 128,
    codec=None,
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
    - ``codec``: the frame codec module, by default the one ``wsfast`` selected.

    A request that is not a valid WebSocket upgrade is answered 400 (426 for an
    unsupported WebSocket version) and closed.
    """
    deflate = deflate_options(compression)
    connection_options = {"max_message_size": max_message_size, "max_frame_size": max_frame_size, "codec": codec}
    Connection(client=False, **connection_options)  # bad options fail here, not in every connection
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
        connection_options=connection_options,
    )
