"""wsfast as uvicorn's WebSocket implementation.

Serve any ASGI application (FastAPI, Starlette, Django Channels, Litestar...) with it::

    uvicorn main:app --ws wsfast.uvicorn:WebSocketProtocol

or ``uvicorn.run(app, ws="wsfast.uvicorn:WebSocketProtocol")``. uvicorn parses the HTTP
upgrade request, then hands the connection to :class:`WebSocketProtocol`, which speaks the
ASGI WebSocket protocol (spec 2.4, with the ``websocket.http.response`` extension) on top
of wsfast's sans-I/O layer. It needs uvicorn (``pip install 'wsfast[uvicorn]'``); nothing
else in wsfast imports this module.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)

from .deflate import DeflateOptions, PerMessageDeflate
from .exceptions import InvalidHandshake
from .handshake import ServerHandshake, accept_key
from .keepalive import Keepalive
from .protocol import Close, Connection, Pong, State

if TYPE_CHECKING:
    from uvicorn._types import (
        ASGISendEvent,
        WebSocketAcceptEvent,
        WebSocketConnectEvent,
        WebSocketDisconnectEvent,
        WebSocketReceiveEvent,
        WebSocketResponseBodyEvent,
        WebSocketResponseStartEvent,
        WebSocketScope,
    )
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from .deflate import DeflateParams

    # What receive() hands the application.
    _ReceiveEvent = WebSocketConnectEvent | WebSocketReceiveEvent | WebSocketDisconnectEvent

__all__ = ["WebSocketProtocol"]

# A server keeps one compressor and one decompressor per connection: 4 KiB windows and
# a small zlib state take about 40 KiB a connection instead of about 300 KiB.
DEFLATE = DeflateOptions(server_max_window_bits=12, client_max_window_bits=12, mem_level=5)

# Messages the application sends without yielding to the event loop are written in
# chunks of about this many bytes instead of one system call each.
_COALESCE_SIZE = 64 * 1024
# Bytes a client may send before the application accepts; reading pauses beyond.
_MAX_EARLY_DATA = 64 * 1024
# Seconds a closing connection gets to deliver its last bytes (and, after a protocol
# error, for the client to end its side) before it is dropped.
_CLOSING_GRACE = 10.0

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAK_OR_NUL = re.compile(rb"[\r\n\x00]")
_INTERNAL_ERROR = b"Internal Server Error"

_OPEN = State.OPEN


class _Stage(enum.Enum):
    """What the application may do next."""

    DECIDING = "accept, close (403) or start an HTTP response"
    ACCEPTED = "send messages, or close"
    RESPONDING = "send the rest of its HTTP response"
    FINISHED = "nothing: it closed the connection, rejected it or sent its response"
    GONE = "nothing: the client left, or is leaving (sending raises ClientDisconnected)"


_DECIDING, _ACCEPTED, _RESPONDING, _FINISHED, _GONE = _Stage


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection of a uvicorn server, handed over after the upgrade request.

    uvicorn's settings apply: ``ws_max_size`` (a larger message, also once decompressed,
    closes the connection with 1009), ``ws_max_queue`` (reading from the client pauses
    while more messages than this wait for the application's ``receive()``),
    ``ws_ping_interval`` and ``ws_ping_timeout`` (keepalive pings; the connection closes
    with 1011 when, after a ping, nothing at all arrives for ``ws_ping_timeout`` seconds),
    ``ws_per_message_deflate``, ``root_path``, the proxy headers, the ``server`` and
    ``date`` headers, ``--header`` and TLS (the scope's scheme is then ``wss``).

    The class attribute ``close_timeout`` is how many seconds a client has to answer a
    close frame (and the application, to receive the messages that came before a protocol
    violation); set it on a subclass to change it.
    """

    close_timeout = 10.0

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any]) -> None:
        if not config.loaded:
            config.load()
        self._config = config
        self._app = config.loaded_app
        self._loop = asyncio.get_running_loop()
        self._logger = logging.getLogger("uvicorn.error")
        self._server_state = server_state
        self._app_state = app_state
        # Set by connection_made, which uvicorn calls right after creating the protocol.
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        # The addresses, once connected.
        self._server: tuple[str, int | None] | None = None
        self._client: tuple[str, int] | None = None
        self._scheme = "ws"
        self.scope: WebSocketScope | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        """Drops the connection if the client does not answer our close frame in time."""

        self._stage = _DECIDING
        self._handshake = ServerHandshake()
        # The agreed DeflateParams and the header value that says so.
        self._deflate: tuple[DeflateParams, str] | None = None
        self._early_data: bytearray | None = bytearray()  # sent by the client before the application accepted
        self._conn: Connection | None = None  # once accepted
        self._response_head: bytes | None = None  # of an HTTP response, until its body comes
        self._chunked = False  # the HTTP response body goes in chunks

        # Received messages (str or bytes) and the connect event wait here for receive();
        # the disconnect event is kept apart, since receive() returns it once nothing else waits.
        self._events: collections.deque[str | bytes | WebSocketConnectEvent] = collections.deque(
            [{"type": "websocket.connect"}]
        )
        self._disconnect: WebSocketDisconnectEvent | None = None
        self._receivers: list[asyncio.Future[None]] = []
        max_queue = config.ws_max_queue
        self._pause_above = float("inf") if max_queue is None else max_queue
        self._resume_at = 0 if max_queue is None else max_queue // 4
        self._reading_paused = False

        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._coalesced = 0  # bytes of messages sent since the last write
        self._flush_handle: asyncio.Handle | None = None  # set while messages are coalesced
        self._write_closed = False  # everything we will send has gone to the transport
        self._transport_closed = False  # transport.close() was called
        self._abort_timer: asyncio.TimerHandle | None = None

        self._keepalive: Keepalive | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._fail_timer: asyncio.TimerHandle | None = None

    # Transport callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvicorn hands over the transport of its HTTP connection.
        self.transport = transport = cast("asyncio.Transport", transport)
        # ServerState.connections is typed as a set of uvicorn's own protocols; it takes
        # any protocol with shutdown().
        self._server_state.connections.add(self)  # type: ignore[arg-type]
        self._server = get_local_addr(transport)
        self._client = get_remote_addr(transport)
        self._scheme = "wss" if is_ssl(transport) else "ws"
        self._trace("WebSocket connection made")

    def data_received(self, data: bytes) -> None:
        if self._conn is not None:
            self._received(data)
        elif self.scope is None:
            self._request_received(data)
        elif self._stage is _DECIDING:
            # A client should wait for the answer to its upgrade; keep what it sends anyway.
            early = self._early_data
            assert early is not None  # until the application accepts
            early += data
            if len(early) > _MAX_EARLY_DATA:
                self._pause_reading()

    def eof_received(self) -> None:
        return None  # the transport closes, and connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._stage = _GONE
        self._server_state.connections.discard(self)
        timers = (self.close_timer, self._abort_timer, self._keepalive_timer, self._flush_handle, self._fail_timer)
        for timer in timers:
            if timer is not None:
                timer.cancel()
        self.close_timer = self._abort_timer = self._keepalive_timer = self._flush_handle = self._fail_timer = None
        if self._conn is not None:
            self._conn.receive_eof()
        self._set_disconnect(1006)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ClientDisconnected())
        self._drain_waiters.clear()
        self._trace("WebSocket connection lost")

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._conn is not None:
            self._write_queued()  # replies held back while the client was not reading
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    def shutdown(self) -> None:
        """The server is stopping: close with 1012 (service restart), or answer 503."""
        stage = self._stage
        if stage is _DECIDING:
            self._stage = _GONE
            self._respond_and_close(HTTPStatus.SERVICE_UNAVAILABLE)
        elif stage is _ACCEPTED:
            self._stage = _GONE
            self._set_disconnect(1012)
            self._send_close(1012)
        else:
            # The closing handshake is under way, or there is nothing left to wait for.
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self._close_transport()

    # The opening handshake ---------------------------------------------------------

    def _request_received(self, data: bytes) -> None:
        handshake = self._handshake
        try:
            if not handshake.receive_data(data):
                return
            assert handshake.request_headers is not None  # the request is complete
            if self._config.ws_per_message_deflate:
                self._deflate = DEFLATE.server_accept(handshake.request_headers.get_all("Sec-WebSocket-Extensions"))
        except InvalidHandshake as exc:
            self._logger.warning("Invalid WebSocket upgrade request: %s", exc)
            self._stage = _FINISHED
            self._write(handshake.reject(body=f"{exc}\n"))
            self._close_transport()
            return
        self.scope = self._new_scope()
        task = self._loop.create_task(self._run_asgi())
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    def _new_scope(self) -> WebSocketScope:
        handshake = self._handshake
        root_path = self._config.root_path
        headers = handshake.request_headers
        assert handshake.path is not None and headers is not None  # the request is complete
        raw_path, _, query = handshake.path.partition("?")
        offered = (word.strip() for value in headers.get_all("Sec-WebSocket-Protocol") for word in value.split(","))
        return {
            "type": "websocket",
            "asgi": {"version": self._config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self._scheme,
            "server": self._server,
            "client": self._client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode() + raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            # The head was decoded as Latin-1: encoding it back gives the bytes received.
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()],
            "subprotocols": [word for word in offered if word],
            "state": self._app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }

    def _accept(self, message: WebSocketAcceptEvent) -> None:
        subprotocol = message.get("subprotocol")
        key = self._handshake.key
        assert key is not None  # the request is complete
        headers = [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", accept_key(key).encode()),
        ]
        if subprotocol is not None:
            if not isinstance(subprotocol, str) or not _TOKEN.fullmatch(subprotocol.encode("latin-1", "replace")):
                raise RuntimeError(f"Invalid subprotocol {subprotocol!r} in 'websocket.accept'.")
            headers.append((b"Sec-WebSocket-Protocol", subprotocol.encode()))
        deflate = None
        if self._deflate is not None:
            params, answer = self._deflate
            headers.append((b"Sec-WebSocket-Extensions", answer.encode()))
            deflate = PerMessageDeflate(params, client=False, options=DEFLATE)
        head = _response_head(101, [*headers, *self._server_state.default_headers, *message.get("headers", ())])
        self._conn = Connection(client=False, max_message_size=self._config.ws_max_size, deflate=deflate)
        self._stage = _ACCEPTED
        self._access_log("[accepted]")
        self._write(head)
        self._start_keepalive()
        early, self._early_data = self._early_data, None
        if early:
            self._resume_reading()
            self._received(bytes(early))

    def _start_response(self, message: WebSocketResponseStartEvent) -> None:
        status = message["status"]
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
        headers = list(message.get("headers", ()))
        names = {bytes(name).lower() for name, _ in headers}
        if b"connection" not in names:
            headers.append((b"Connection", b"close"))  # the connection ends with the response
        framed = b"content-length" in names
        head = _response_head(status, [*self._server_state.default_headers, *headers], end=framed)
        self._stage = _RESPONDING
        self._access_log(status)
        if framed:
            self._write(head)
        else:
            # Framed by the first body message: a length if it is the whole body, else chunks.
            self._response_head = head
            self._chunked = b"transfer-encoding" in names

    def _send_body(self, message: WebSocketResponseBodyEvent) -> None:
        body = message.get("body", b"")
        more = message.get("more_body", False)
        head = self._response_head
        if head is not None:
            self._response_head = None
            if more or self._chunked:
                framing = b"" if self._chunked else b"Transfer-Encoding: chunked\r\n"
                self._chunked = True
            else:
                framing = b"Content-Length: %d\r\n" % len(body)
            self._write(head + framing + b"\r\n")
        if self._chunked:
            if body:
                self._write(b"%x\r\n%s\r\n" % (len(body), body))
            if not more:
                self._write(b"0\r\n\r\n")
        elif body:
            self._write(body)
        if not more:
            self._stage = _FINISHED
            self._set_disconnect(1006)
            self._close_transport()

    def _respond_and_close(self, status: int) -> None:
        """Answer the upgrade request with an error status and an empty or short body."""
        body = _INTERNAL_ERROR if status == 500 else b""
        headers = [*self._server_state.default_headers, (b"Content-Length", b"%d" % len(body))]
        if body:
            headers.append((b"Content-Type", b"text/plain; charset=utf-8"))
        headers.append((b"Connection", b"close"))
        self._write(_response_head(status, headers) + body)
        self._close_transport()

    # The application ---------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            result = await self._app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass  # the application let it through: the client is gone, nothing to report
        except Exception:
            self._logger.exception("Exception in ASGI application\n")
        else:
            if self._stage is _DECIDING:
                self._logger.error("ASGI callable returned without accepting or rejecting the WebSocket.")
            elif result is not None:
                self._logger.error("ASGI callable should return None, but returned %r.", result)
        finally:
            self._app_finished()

    def _app_finished(self) -> None:
        stage = self._stage
        if stage is _DECIDING or (stage is _RESPONDING and self._response_head is not None):
            self._stage = _FINISHED
            self._respond_and_close(500)  # nothing was sent yet: say what happened
        elif stage is _RESPONDING:
            self._stage = _FINISHED
            self._close_transport()  # the body stops short of its announced length
        elif stage is _ACCEPTED:
            # Without a close frame: the client sees 1006, as with uvicorn's own protocols.
            self._stage = _GONE
            self._close_transport()

    async def receive(self) -> _ReceiveEvent:
        """The next ASGI event: ``websocket.connect``, then ``websocket.receive`` for each
        message, then ``websocket.disconnect`` (returned again on every later call)."""
        events = self._events
        while not events:
            if self._disconnect is not None:
                return self._disconnect
            if self._conn is not None and self._conn.error is not None:
                self._fail()  # every message before the violation has been received
                continue
            waiter = self._loop.create_future()
            self._receivers.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._receivers:  # cancelled: it must not stay behind
                    self._receivers.remove(waiter)
        item = events.popleft()
        if self._reading_paused and len(events) <= self._resume_at:
            self._resume_reading()
        # mypy does not narrow ``item`` through ``kind``; type(item) is bytes or str, or
        # item is the connect event (isinstance() would cost more, for every message).
        kind = type(item)
        if kind is bytes:
            return {"type": "websocket.receive", "bytes": item}  # type: ignore[typeddict-item]
        if kind is str:
            return {"type": "websocket.receive", "text": item}  # type: ignore[typeddict-item]
        return item  # type: ignore[return-value]

    async def send(self, message: ASGISendEvent) -> None:
        """Carry out one ASGI event from the application.

        Waits while the client does not read fast enough. Raises ClientDisconnected (an
        OSError) once the client is gone, and RuntimeError for an event that does not fit.
        """
        if self._writing_paused:
            await self._drain()
        if self._stage is _ACCEPTED and message["type"] == "websocket.send":
            conn = self._conn
            assert conn is not None  # set when accepted
            data: bytes | str | None
            data = message.get("bytes")
            if data is not None:
                conn.send_binary(data)
            else:
                data = message.get("text")
                if data is None:
                    raise RuntimeError("'websocket.send' needs 'bytes' or 'text'.")
                conn.send_text(data)
            if self._flush_handle is None:
                # The first message since the event loop last ran goes out at once; those
                # that follow before it runs again are written together.
                self.transport.write(conn.data_to_send())
                self._flush_handle = self._loop.call_soon(self._flush)
            else:
                self._coalesced += len(data)
                if self._coalesced >= _COALESCE_SIZE:
                    self._coalesced = 0
                    self.transport.write(conn.data_to_send())
            return
        self._handle(message)

    def _handle(self, message: ASGISendEvent) -> None:
        """Every event but a message to send on an open connection."""
        # The conditions test message["type"], not kind: that tells mypy the event's type.
        kind = message["type"]
        stage = self._stage
        if stage is _GONE:
            raise ClientDisconnected()
        if stage is _DECIDING:
            if message["type"] == "websocket.accept":
                self._accept(message)
            elif message["type"] == "websocket.close":
                self._stage = _FINISHED
                self._set_disconnect(1006)
                self._access_log(403)
                self._respond_and_close(HTTPStatus.FORBIDDEN)
            elif message["type"] == "websocket.http.response.start":
                self._start_response(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                    f"'websocket.http.response.start' but got '{kind}'."
                )
        elif stage is _ACCEPTED:
            if message["type"] != "websocket.close":
                raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'.")
            code = message.get("code")
            code = 1000 if code is None else code
            reason = message.get("reason") or ""
            self._send_close(code, reason)
            self._stage = _FINISHED
            self._set_disconnect(code, reason)
        elif stage is _RESPONDING:
            if message["type"] != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            self._send_body(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}': the connection was already closed or answered.")

    def _set_disconnect(self, code: int, reason: str | None = None) -> None:
        """Decide the application's ``websocket.disconnect`` event (the first call wins)."""
        if self._disconnect is not None:
            return
        self._disconnect = {"type": "websocket.disconnect", "code": code}
        if reason is not None:
            self._disconnect["reason"] = reason
        self._wake_receivers()

    def _wake_receivers(self) -> None:
        receivers, self._receivers = self._receivers, []
        for waiter in receivers:
            if not waiter.done():
                waiter.set_result(None)

    # The open connection -----------------------------------------------------------

    def _received(self, data: bytes) -> None:
        conn = self._conn
        assert conn is not None  # set when accepted
        events = conn.receive_data(data)
        keepalive = self._keepalive
        if keepalive is not None:
            keepalive.last_received = self._loop.time()
        messages: list[str | bytes]
        messages = self._messages_only(events) if conn.last_controls else events  # type: ignore[assignment]  # no control event
        # Messages that arrive after the application closed are dropped, unread.
        if messages and self._stage is _ACCEPTED:
            queue = self._events
            queue.extend(messages)
            if len(queue) > self._pause_above:
                self._pause_reading()
            if self._receivers:
                self._wake_receivers()
        if conn.close_transport:
            if not self._write_closed:
                self._connection_ending()
            return
        if conn.error is not None:
            self._protocol_error()
        if not self._writing_paused:
            self._write_queued()  # pongs

    def _messages_only(self, events: Iterable[object]) -> list[str | bytes]:
        """The messages among ``events``, after acting on the control frames."""
        messages: list[str | bytes] = []
        for event in events:
            if type(event) is str or type(event) is bytes:
                messages.append(event)
            elif type(event) is Close:
                self._set_disconnect(event.code, event.reason)
            elif type(event) is Pong and self._keepalive is not None:
                self._keepalive.pong_received(event.payload, self._loop.time())
        return messages

    def _connection_ending(self) -> None:
        """The client closed (or answered our close), or broke the protocol."""
        conn = self._conn
        assert conn is not None  # set when accepted
        self._stage = _GONE
        for timer in (self.close_timer, self._fail_timer):
            if timer is not None:
                timer.cancel()
        self.close_timer = self._fail_timer = None
        if conn.error is None:
            self._close_transport()
            return
        assert conn.close_sent_code is not None  # the close frame sent says how the client broke the protocol
        self._set_disconnect(conn.close_sent_code, str(conn.error))
        assert self.scope is not None  # the request came
        self._logger.debug("WebSocket protocol error from %s: %s", get_client_addr(self.scope), conn.error)
        self._half_close()

    def _protocol_error(self) -> None:
        """The client broke the protocol: fail the connection once the application asked
        for a message and none was left, so that its answers to the messages before the
        violation go first; at the latest after ``close_timeout``."""
        if self._receivers or self._stage is not _ACCEPTED:
            self._fail()
        elif self._fail_timer is None:
            self._fail_timer = self._loop.call_later(self.close_timeout, self._fail)

    def _fail(self) -> None:
        assert self._conn is not None  # set when accepted
        self._conn.fail()
        self._connection_ending()

    def _send_close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake; the client gets ``close_timeout`` to answer."""
        conn = self._conn
        assert conn is not None  # set when accepted
        conn.send_close(code, reason)
        if conn.close_transport:  # the client broke the protocol: the close says how
            self._connection_ending()
            return
        self._write_queued()
        self._resume_reading()  # the answer may wait behind unread messages
        self.close_timer = self._loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self.close_timer = None
        self._close_transport()

    def _start_keepalive(self) -> None:
        interval, timeout = self._config.ws_ping_interval, self._config.ws_ping_timeout
        if not interval or interval <= 0:
            return  # uvicorn's way to turn keepalive off: None or 0
        self._keepalive = Keepalive(interval, timeout if timeout and timeout > 0 else None, self._loop.time())
        self._keepalive_timer = self._loop.call_at(self._keepalive.deadline, self._keepalive_due)

    def _keepalive_due(self) -> None:
        self._keepalive_timer = None
        conn, keepalive = self._conn, self._keepalive
        assert conn is not None and keepalive is not None  # the timer runs once both are set
        if conn.state is not _OPEN:
            return
        now = self._loop.time()
        if keepalive.expired(now):
            self._trace("WebSocket keepalive ping timeout")
            self._stage = _GONE
            self._set_disconnect(1011, "keepalive ping timeout")
            conn.send_close(1011, "keepalive ping timeout")
            self._write_queued()
            self._half_close()
            return
        payload = keepalive.ping_due(now)
        if payload is not None:
            conn.send_ping(payload)
            self._write_queued()
        self._keepalive_timer = self._loop.call_at(keepalive.deadline, self._keepalive_due)

    # Writing and closing -----------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self._write_closed:
            self.transport.write(data)

    def _write_queued(self) -> None:
        """Write what the Connection has queued: messages, pongs, close frames."""
        assert self._conn is not None  # set when accepted
        data = self._conn.data_to_send()
        if data:
            self._write(data)

    def _flush(self) -> None:
        self._flush_handle = None
        self._coalesced = 0
        self._write_queued()

    async def _drain(self) -> None:
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    def _close_transport(self) -> None:
        """Close TCP once everything queued is written: the end of a clean close."""
        if self._conn is not None:
            self._write_queued()
        if self._transport_closed:
            return
        self._write_closed = self._transport_closed = True
        self.transport.close()
        self._abort_later()

    def _half_close(self) -> None:
        """End our side after a failure, reading on until the client ends its side:
        closing with unread input would reset the connection and could destroy the
        close frame that says why."""
        self._write_queued()
        if self._write_closed:
            return
        if not self.transport.can_write_eof():
            self._close_transport()
            return
        self._write_closed = True
        self.transport.write_eof()
        self._resume_reading()
        self._abort_later()

    def _abort_later(self) -> None:
        # A client that reads nothing would keep a closing connection open forever.
        if self._abort_timer is None:
            self._abort_timer = self._loop.call_later(_CLOSING_GRACE, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        self.transport.abort()

    # Logging -----------------------------------------------------------------------

    def _access_log(self, outcome: int | str) -> None:
        assert self.scope is not None  # the request came
        self._logger.info(
            '%s - "WebSocket %s" %s', get_client_addr(self.scope), get_path_with_query_string(self.scope), outcome
        )

    def _trace(self, what: str) -> None:
        if self._logger.isEnabledFor(TRACE_LOG_LEVEL):
            prefix = f"{self._client[0]}:{self._client[1]} - " if self._client else ""
            self._logger.log(TRACE_LOG_LEVEL, "%s%s", prefix, what)


def _response_head(status: int, headers: Iterable[tuple[bytes, bytes]], end: bool = True) -> bytes:
    """An HTTP/1.1 response head with ASGI ``headers`` (pairs of bytes), checked so that
    no header can smuggle another; without its final blank line unless ``end``."""
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, phrase)]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _LINE_BREAK_OR_NUL.search(value):
            raise RuntimeError(f"Invalid HTTP header {bytes(name)!r}: {bytes(value)!r}.")
        lines += (name, b": ", value, b"\r\n")
    if end:
        lines.append(b"\r\n")
    return b"".join(lines)
