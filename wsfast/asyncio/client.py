"""The asyncio WebSocket client: connect, the opening handshake, and reconnection.

::

    async with wsfast.asyncio.connect("wss://example.com/feed") as ws:
        await ws.send("subscribe")
        async for message in ws:
            ...

    async for ws in wsfast.asyncio.connect("wss://example.com/feed"):   # reconnecting
        ...
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, overload

from .._codec import DEFAULT_MAX_SIZE
from .._io import DEFAULT_SEND_TIMEOUT
from .._typing import M, T
from ..client import CertificateInfo, certificate_info
from ..deflate import DeflateOptions, PerMessageDeflate, deflate_options
from ..exceptions import InvalidHandshake
from ..handshake import ClientHandshake, Headers, HeadersLike, with_basic_auth
from ..keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, check_keepalive_options
from ..protocol import Connection, State
from ..proxy import resolve_proxy
from ..reconnect import Backoff, after_close, is_retryable
from ..uri import parse_uri
from ._tls import TLSTransport
from ._tunnel import create_connection
from .connection import DEFAULT_MAX_QUEUED_BYTES, WebSocket, logger, set_nodelay, wait_for

if TYPE_CHECKING:
    from types import ModuleType

    from typing_extensions import Unpack

    from .server import _WebSocketOptions

    class _ClientOptions(_WebSocketOptions, total=False):
        """The keyword arguments :class:`Client` passes on to :class:`WebSocket`."""

        on_message: Callable[[Client[Any], Any], object] | None


__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "Client", "connect"]


class Client(WebSocket[M]):
    """An open WebSocket connection to a server; get one from :func:`connect`.

    Besides what every connection has (:meth:`~WebSocket.send`, :meth:`~WebSocket.recv`,
    ``async for``, :meth:`~WebSocket.ping`, :meth:`~WebSocket.close`, :attr:`~WebSocket.state`,
    :attr:`~WebSocket.latency`, ...), it knows the server's handshake answer
    (:attr:`response_headers`, :attr:`~WebSocket.subprotocol`,
    :attr:`~WebSocket.deflate_params`) and, for ``wss://``, the server's :attr:`certificate`.

    ``Client[M]`` hands out messages of type ``M``: ``str | bytes`` (what a bare
    ``Client`` means), or what the ``decode`` function given to :func:`connect` returns.
    """

    __slots__ = ()

    _handshake: ClientHandshake

    def __init__(self, handshake: ClientHandshake, **options: Unpack[_ClientOptions]) -> None:
        super().__init__(handshake, client=True, **options)

    @property
    def response_headers(self) -> Headers:
        """The headers of the server's handshake response (a :class:`wsfast.handshake.Headers`)."""
        headers = self._handshake.response_headers
        assert headers is not None  # a Client is handed out once the response came
        return headers

    @property
    def certificate(self) -> CertificateInfo | None:
        """The server's TLS certificate for ``wss://``; None for ``ws://``."""
        assert self._transport is not None  # a Client is handed out connected
        ssl_object = self._transport.get_extra_info("ssl_object")
        return None if ssl_object is None else certificate_info(ssl_object)

    def __repr__(self) -> str:
        return f"<wsfast.asyncio.Client {self.state.name}>"

    def _connection_made(self, transport: asyncio.Transport) -> None:
        self._attach(transport)
        transport.write(self._handshake.request())

    def _handshake_received(self, data: bytes) -> None:
        handshake = self._handshake
        try:
            done = handshake.receive_data(data)
        except InvalidHandshake as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
            assert self._transport is not None  # the handshake arrives through it
            self._transport.abort()
            return
        if not done:
            return
        connection = self._conn
        params = handshake.deflate_params
        if params is not None:
            extension = PerMessageDeflate(
                params, client=True, options=handshake.deflate, codec=self._connection_options["codec"]
            )
            connection = Connection(client=True, deflate=extension, **self._connection_options)
        if not self._opened.done():
            self._opened.set_result(None)
        self._handshake_done(connection, handshake.leftover)

    def _handshake_lost(self, exc: BaseException | None) -> BaseException:
        try:
            self._handshake.receive_eof()
        except InvalidHandshake as error:
            error.__cause__ = exc
            return error
        return super()._handshake_lost(exc)


@overload
def connect(
    url: str,
    *,
    timeout: float | None = 10.0,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    proxy: str | bool | None = True,
    headers: HeadersLike | None = None,
    subprotocols: Iterable[str] | None = None,
    origin: str | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    backoff: Backoff | None = None,
    codec: ModuleType | None = None,
    on_message: Callable[[Client[str | bytes], str | bytes], object] | None = None,
    decode: None = None,
) -> _Connect[str | bytes]: ...
@overload
def connect(
    url: str,
    *,
    timeout: float | None = 10.0,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    proxy: str | bool | None = True,
    headers: HeadersLike | None = None,
    subprotocols: Iterable[str] | None = None,
    origin: str | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    backoff: Backoff | None = None,
    codec: ModuleType | None = None,
    on_message: Callable[[Client[T], T], object] | None = None,
    decode: Callable[[bytes], T],
) -> _Connect[T]: ...
def connect(
    url: str,
    *,
    timeout: float | None = 10.0,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    proxy: str | bool | None = True,
    headers: HeadersLike | None = None,
    subprotocols: Iterable[str] | None = None,
    origin: str | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    backoff: Backoff | None = None,
    codec: ModuleType | None = None,
    on_message: Callable[[Client[Any], Any], object] | None = None,
    decode: Callable[[bytes], Any] | None = None,
) -> _Connect[Any]:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    Use ``ws = await connect(url)`` or ``async with connect(url) as ws:`` (which closes
    the connection on the way out). The result is an awaitable, not a coroutine: to run
    it as a task, use ``asyncio.ensure_future(connect(url))``.

    ``async for ws in connect(url):`` reconnects, yielding a new open connection each
    time around::

        async for ws in wsfast.asyncio.connect(url):
            try:
                await ws.send("subscribe")
                async for message in ws:
                    ...
            except ConnectionClosedError:
                continue  # the loop decides: a new connection, or the error raised

    When the body is done with a connection (it closed, or the body went on to the next
    one: it is then closed with 1000), a new one is opened after a delay from ``backoff``
    if it ended with 1001, 1006, 1011, 1012 or 1013 (see
    :data:`~wsfast.reconnect.RECONNECT_CODES`) or was closed by the loop; the loop ends
    after a normal close (1000, or no code) and raises the
    :class:`~wsfast.ConnectionClosedError` of any other code. Opening is tried again,
    after growing delays, when it failed because of the network, a timeout, a 5xx or 429
    answer, or a proxy that could not reach the server; any other failure is raised at
    once: a handshake the server refused (4xx), a certificate that fails verification, a
    wrong ``Upgrade`` answer, a bad URL, a proxy that refused the tunnel (407, 403, a
    SOCKS rule or authentication). Each retry is logged at INFO level with its delay.

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
    - ``close_timeout``: seconds closing waits for the server to finish the close
      handshake before dropping the connection (None: no limit).
    - ``send_timeout``: seconds :meth:`Client.send` may wait for a server that takes
      nothing; past that the connection is dropped and TimeoutError raised (None: no limit).
    - ``ping_interval``: seconds between keepalive pings (None: no keepalive). They run
      in the event loop, whether or not a coroutine receives. ``ping_timeout``: a server
      that sends nothing at all, not even the pong, for this many seconds after a ping
      is taken for dead: the connection fails with 1011 (None: never).
      :attr:`Client.latency` is the last ping's round trip.
    - ``backoff``: the delays between attempts when reconnecting (a
      :class:`~wsfast.reconnect.Backoff`; by default 1 s doubling up to 60 s, with
      jitter). After a connection that stayed open ``backoff.reset_after`` seconds, the
      delays start from ``backoff.initial`` again.
    - ``codec``: the frame codec module (``wsfast._pure`` or ``wsfast._compiled``),
      by default the one ``wsfast`` selected.
    - ``on_message``: a callback ``on_message(client, message)`` that receives every
      message as soon as it is parsed, in order, instead of :meth:`Client.recv`; it may
      be called before ``connect`` returns. It runs in the event loop, so it must not
      block; it can answer with :meth:`Client.send_nowait`. If it raises, the connection
      closes with 1011 and :meth:`Client.wait_closed` raises the exception.
    - ``decode``: a function applied to every message's payload as ``bytes`` (text and
      binary alike; text is checked as UTF-8 first, and no ``str`` is made), so that
      :meth:`~WebSocket.recv`, :meth:`~WebSocket.recv_many`, ``async for`` and
      ``on_message`` get what it returns: ``json.loads``, ``orjson.loads``,
      ``msgspec.json.Decoder(T).decode``... When it raises, receiving raises
      :class:`~wsfast.DecodeError` for that message and the connection stays open; with
      ``on_message``, the DecodeError is logged (logger ``wsfast``, ERROR) and the
      message skipped. :meth:`~WebSocket.recv_batch` is then not available.
      The connection is a ``Client[T]`` for a ``decode`` that returns ``T`` (a
      ``Client[str | bytes]`` without), so type checkers know what it hands out.

    Raises :class:`~wsfast.InvalidURI`, :class:`~wsfast.InvalidHandshake` (and its
    subclasses, e.g. :class:`~wsfast.InvalidStatus` for a non-101 answer),
    :class:`~wsfast.ProxyError` (and its subclasses) when the proxy fails or refuses,
    ``OSError`` (including ``ssl.SSLError``) or ``TimeoutError``. Bad options raise
    ValueError at once.
    """
    # Bad options fail here, before any traffic.
    Connection(client=True, max_message_size=max_message_size, max_frame_size=max_frame_size, codec=codec)
    check_keepalive_options(ping_interval, ping_timeout)
    if max_queued_bytes is not None and max_queued_bytes < 0:
        raise ValueError("max_queued_bytes must be >= 0 or None")
    if backoff is not None and not isinstance(backoff, Backoff):
        raise TypeError(f"backoff must be a wsfast.reconnect.Backoff, not {type(backoff).__name__}")
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
        backoff=Backoff() if backoff is None else backoff,
        client_options={
            "max_message_size": max_message_size,
            "max_frame_size": max_frame_size,
            "codec": codec,
            "max_queued_bytes": max_queued_bytes,
            "close_timeout": close_timeout,
            "send_timeout": send_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "on_message": on_message,
            "decode": decode,
        },
    )


class _Connect(Generic[M]):
    """What :func:`connect` returns: await it, use it with ``async with``, or iterate over
    it to reconnect; each way gives a ``Client[M]``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float | None,
        ssl: ssl_module.SSLContext | bool | None,
        server_hostname: str | None,
        proxy: str | bool | None,
        headers: HeadersLike | None,
        subprotocols: Iterable[str] | None,
        origin: str | None,
        deflate: DeflateOptions | None,
        tcp_nodelay: bool,
        backoff: Backoff,
        client_options: _ClientOptions,
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
        self._backoff = backoff
        self._client_options = client_options
        self._client: Client[M] | None = None

    def __await__(self) -> Generator[Any, None, Client[M]]:
        return self._open().__await__()

    async def __aenter__(self) -> Client[M]:
        self._client = await self._open()
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._client is not None  # set by __aenter__
        await self._client.close()

    async def __aiter__(self) -> AsyncIterator[Client[M]]:
        """A new open connection each time around: see :func:`connect`."""
        backoff = self._backoff
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            try:
                ws = await self._open()
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                delay = backoff.delay(failures)
                failures += 1
                logger.info("connecting to %s failed (%s); trying again in %.1f s", self._url, exc, delay)
                await asyncio.sleep(delay)
                continue
            opened = loop.time()
            try:
                yield ws
                closed_here = ws.state is State.OPEN
            finally:
                await ws.close()
            if not after_close(ws._closed_exception(), closed_here):
                return
            failures = 0 if loop.time() - opened >= backoff.reset_after else failures + 1
            delay = backoff.delay(failures)
            logger.info("connection to %s ended (%s); reconnecting in %.1f s", self._url, ws.close_code, delay)
            await asyncio.sleep(delay)

    async def _open(self) -> Client[M]:
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
        client: Client[M] = Client(handshake, **self._client_options)
        try:
            await wait_for(self._connect_and_handshake(client), self._timeout)
        except TimeoutError:
            client._forget_opening()
            raise TimeoutError(f"opening the WebSocket connection to {self._url} timed out") from None
        except BaseException:
            client._forget_opening()
            raise
        return client

    async def _connect_and_handshake(self, client: Client[M]) -> None:
        loop = asyncio.get_running_loop()
        uri = self._uri
        context, hostname = self._ssl, self._server_hostname
        if context is None:
            protocol_factory: Callable[[], asyncio.BaseProtocol] = client._new_protocol
        else:  # wsfast runs TLS itself, over the loop's TCP transport
            protocol_factory = partial(TLSTransport, client, context, server_side=False, server_hostname=hostname)
        transport = None
        try:
            transport, _ = await create_connection(loop, protocol_factory, uri.host, uri.port, proxy=self._proxy)
            set_nodelay(transport, self._tcp_nodelay)
            await client._opened
        except BaseException:
            if transport is not None:
                transport.abort()
            raise
