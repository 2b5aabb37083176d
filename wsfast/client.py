"""The blocking WebSocket client, over plain sockets (``ws://`` and ``wss://``).

::

    from wsfast.client import connect, reconnecting

    with connect("wss://example.com/feed") as ws:
        ws.send("subscribe")
        for message in ws:
            ...

    for ws in reconnecting("wss://example.com/feed"):   # a new connection after each drop
        ...
"""

from __future__ import annotations

import hashlib
import socket
import ssl as ssl_module
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, overload

from ._codec import DEFAULT_MAX_SIZE
from ._io import DEFAULT_SEND_TIMEOUT, WebSocket, deadline_after, logger
from ._stream import Stream, TLSStream, open_stream
from ._tunnel import open_socket
from ._typing import M, T
from .deflate import DeflateOptions, PerMessageDeflate, deflate_options
from .handshake import ClientHandshake, Headers, HeadersLike, with_basic_auth
from .keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, check_keepalive_options
from .protocol import Connection, State
from .proxy import resolve_proxy
from .reconnect import Backoff, after_close, is_retryable
from .uri import parse_uri

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import TypedDict

    from typing_extensions import Unpack

    class _ConnectionOptions(TypedDict):  # noqa: PYI049 - used by server.py
        """The options of :class:`~wsfast.protocol.Connection` that connect and serve take."""

        max_message_size: int | None
        max_frame_size: int | None
        codec: ModuleType | None
        text_as_bytes: bool

    class _TimeoutOptions(TypedDict, total=False):
        """The timeouts of :class:`~wsfast._io.WebSocket` that connect and serve take."""

        close_timeout: float | None
        send_timeout: float | None
        ping_interval: float | None
        ping_timeout: float | None

    class _WebSocketOptions(_TimeoutOptions, total=False):
        """The options of :class:`~wsfast._io.WebSocket` that connect and serve take."""

        decode: Callable[[bytes], Any] | None

    class _ConnectOptions(_TimeoutOptions, total=False):
        """The keyword arguments of :func:`connect` but ``decode``, which sets the type
        of the messages."""

        timeout: float | None
        ssl: ssl_module.SSLContext | bool | None
        server_hostname: str | None
        proxy: str | bool | None
        headers: HeadersLike | None
        subprotocols: Iterable[str] | None
        origin: str | None
        max_message_size: int | None
        max_frame_size: int | None
        compression: str | DeflateOptions | None
        tcp_nodelay: bool
        codec: ModuleType | None


__all__ = ["CertificateInfo", "Client", "certificate_info", "connect", "reconnecting"]

# Short names for the usual distinguished-name attributes, as in "CN=example.com, O=Example".
_DN_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "domainComponent": "DC",
}


@dataclass(frozen=True)
class CertificateInfo:
    """The server's TLS certificate, as the client saw it.

    ``subject`` and ``issuer`` read like ``"CN=example.com, O=Example"``;
    ``serial_number`` and ``sha1_fingerprint`` are upper-case hex; ``not_after`` is the
    expiry time (UTC). With certificate verification switched off (``CERT_NONE``) only
    ``sha1_fingerprint`` is known and the other fields are None.
    """

    subject: str | None
    issuer: str | None
    serial_number: str | None
    sha1_fingerprint: str
    not_after: datetime | None


def certificate_info(ssl_socket: ssl_module.SSLSocket | ssl_module.SSLObject) -> CertificateInfo | None:
    """Describe the peer certificate of an ``ssl.SSLSocket`` or ``ssl.SSLObject``."""
    der = ssl_socket.getpeercert(binary_form=True)
    if der is None:
        return None
    fingerprint = hashlib.sha1(der).hexdigest().upper()
    # Any: what each field holds depends on its key.
    decoded: dict[str, Any] = ssl_socket.getpeercert() or {}  # empty when the certificate was not verified
    not_after = decoded.get("notAfter")
    return CertificateInfo(
        subject=_distinguished_name(decoded.get("subject")),
        issuer=_distinguished_name(decoded.get("issuer")),
        serial_number=decoded.get("serialNumber"),
        sha1_fingerprint=fingerprint,
        not_after=None
        if not_after is None
        else datetime.fromtimestamp(ssl_module.cert_time_to_seconds(not_after), timezone.utc),
    )


def _distinguished_name(rdns: Iterable[Iterable[tuple[str, str]]] | None) -> str | None:
    if rdns is None:
        return None
    return ", ".join(f"{_DN_NAMES.get(name, name)}={value}" for rdn in rdns for name, value in rdn)


class Client(WebSocket[M]):
    """A WebSocket connection to a server; open one with :func:`connect`.

    Besides what every connection has (:meth:`send`, :meth:`recv`, :meth:`recv_many`,
    iteration, :meth:`recv_frame`, :meth:`ping`, :meth:`close`, :attr:`state`, ...), it
    knows the server's handshake answer (:attr:`response_headers`, :attr:`subprotocol`,
    :attr:`deflate_params`) and, for ``wss://``, the server's :attr:`certificate`.

    ``Client[M]`` hands out messages of type ``M``: ``str | bytes`` (what a bare
    ``Client`` means), or what the ``decode`` function given to :func:`connect` returns.
    """

    __slots__ = ("certificate", "response_headers")

    def __init__(
        self,
        stream: Stream,
        connection: Connection,
        handshake: ClientHandshake,
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
        assert handshake.response_headers is not None  # the handshake is done
        self.response_headers: Headers = handshake.response_headers
        """The headers of the server's 101 response (a :class:`wsfast.handshake.Headers`)."""
        self.certificate: CertificateInfo | None = (
            certificate_info(stream.ssl_object) if isinstance(stream, TLSStream) else None
        )
        """The server's TLS certificate for ``wss://``; None for ``ws://``."""


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
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    codec: ModuleType | None = None,
    decode: None = None,
) -> Client[str | bytes]: ...
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
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    codec: ModuleType | None = None,
    decode: Callable[[bytes], T],
) -> Client[T]: ...
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
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ping_interval: float | None = DEFAULT_PING_INTERVAL,
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
    codec: ModuleType | None = None,
    decode: Callable[[bytes], Any] | None = None,
) -> Client[Any]:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``) and return the
    :class:`Client`; ``with connect(url) as ws:`` closes it on the way out.

    - ``timeout``: seconds for TCP, TLS and the opening handshake together (TimeoutError).
    - ``ssl``: an ``ssl.SSLContext`` for ``wss://``; by default the system's trusted CAs
      with host name checking. ``server_hostname`` overrides the name the certificate is
      checked against (by default the URL's host).
    - ``proxy``: a proxy URL to connect through (``http://``, ``socks5://`` or
      ``socks5h://``, with an optional ``user:password@``); True, the default, takes it
      from ``HTTPS_PROXY`` (``wss://``) or ``HTTP_PROXY`` (``ws://``), else ``ALL_PROXY``,
      unless ``NO_PROXY`` names the host; None connects directly.
    - ``headers`` (dict or list of pairs), ``subprotocols`` (names offered; the server's
      choice is :attr:`Client.subprotocol`) and ``origin`` go into the upgrade request.
      ``ws://user:password@host/`` sends an ``Authorization: Basic`` header.
    - ``max_message_size``: larger incoming messages fail the connection with 1009
      (None: no limit). ``max_frame_size``: outgoing messages are split into frames of at
      most this many bytes (None: one frame per message).
    - ``compression``: ``"deflate"`` offers permessage-deflate (RFC 7692) with the
      defaults of :class:`~wsfast.DeflateOptions`, a :class:`~wsfast.DeflateOptions`
      offers those settings, None offers nothing. Messages are compressed only if the
      server agrees (see :attr:`Client.deflate_params`).
    - ``tcp_nodelay``: send small frames at once instead of letting TCP batch them.
    - ``close_timeout``: seconds closing waits for the server to finish the close
      handshake before dropping the connection (None: no limit).
    - ``send_timeout``: seconds :meth:`Client.send` may wait for a server that takes
      nothing; past that the connection is dropped and TimeoutError raised (None: no limit).
    - ``ping_interval``: seconds between keepalive pings, sent while a thread receives
      (None: no keepalive). ``ping_timeout``: a server that sends nothing at all, not
      even the pong, for this many seconds after a ping is taken for dead: the
      connection fails with 1011 (None: never). :attr:`Client.latency` is the last
      ping's round trip.
    - ``codec``: the frame codec module (``wsfast._pure`` or ``wsfast._compiled``), by
      default the one ``wsfast`` selected.
    - ``decode``: a function applied to every message's payload as ``bytes`` (text and
      binary alike; text is checked as UTF-8 first, and no ``str`` is made), so that
      :meth:`~Client.recv`, :meth:`~Client.recv_many` and iteration return what it
      returns: ``json.loads``, ``orjson.loads``, ``msgspec.json.Decoder(T).decode``...
      When it raises, receiving raises :class:`~wsfast.DecodeError` for that message
      and the connection stays open. :meth:`~Client.recv_batch` is then not available.
      The connection is a ``Client[T]`` for a ``decode`` that returns ``T`` (a
      ``Client[str | bytes]`` without), so type checkers know what it hands out.

    Raises :class:`~wsfast.InvalidURI`, :class:`~wsfast.InvalidHandshake` (and its
    subclasses, e.g. :class:`~wsfast.InvalidStatus` for a non-101 answer), TimeoutError,
    :class:`~wsfast.ProxyError` (and its subclasses) when the proxy fails or refuses,
    or ``OSError`` (``ssl.SSLCertVerificationError`` for a certificate that fails checks).
    """
    uri = parse_uri(url)
    if ssl is True or (ssl is None and uri.secure):
        ssl = ssl_module.create_default_context()
    if ssl and not uri.secure:
        raise ValueError(f"ssl was given for {url!r}, which is not a wss:// URL")
    if not ssl and uri.secure:
        raise ValueError(f"a wss:// URL needs TLS, but ssl={ssl!r}")
    if uri.user_info is not None:
        headers = with_basic_auth(headers, *uri.user_info)
    # Checked first, so that bad options fail before any network traffic.
    deflate = deflate_options(compression)
    Connection(client=True, max_message_size=max_message_size, max_frame_size=max_frame_size, codec=codec)
    check_keepalive_options(ping_interval, ping_timeout)
    handshake = ClientHandshake(
        uri.host,
        uri.port,
        uri.resource,
        secure=uri.secure,
        origin=origin,
        headers=headers,
        subprotocols=subprotocols,
        deflate=deflate,
    )
    deadline = deadline_after(timeout)
    logger.debug("connecting to %s", url)
    try:
        sock = open_socket(uri.host, uri.port, resolve_proxy(proxy, uri), deadline)
    except TimeoutError:
        raise TimeoutError(f"connecting to {url} timed out") from None
    try:
        if tcp_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = open_stream(sock, ssl or None, deadline, server_hostname=server_hostname or uri.host)
        _handshake(stream, handshake, deadline)
        params = handshake.deflate_params
        # Without an agreement there is no deflate object, and so no cost when receiving.
        extension = None if params is None else PerMessageDeflate(params, client=True, options=deflate, codec=codec)
        connection = Connection(
            client=True,
            deflate=extension,
            max_message_size=max_message_size,
            max_frame_size=max_frame_size,
            codec=codec,
            text_as_bytes=decode is not None,
        )
    except TimeoutError:
        sock.close()
        raise TimeoutError(f"the opening handshake with {url} timed out") from None
    except BaseException:
        sock.close()
        raise
    logger.debug("connected to %s (subprotocol %s, deflate %s)", url, handshake.subprotocol, handshake.deflate_params)
    return Client(
        stream,
        connection,
        handshake,
        close_timeout=close_timeout,
        send_timeout=send_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        decode=decode,
    )


def _handshake(stream: Stream, handshake: ClientHandshake, deadline: float) -> None:
    """Send the upgrade request and read the answer until it is complete."""
    stream.send_all(handshake.request(), deadline)
    while True:
        data = stream.receive_some(deadline)
        if not data:
            handshake.receive_eof()  # raises InvalidHandshake: the server hung up
        if handshake.receive_data(data):
            return


@overload
def reconnecting(
    url: str, *, backoff: Backoff | None = None, decode: None = None, **options: Unpack[_ConnectOptions]
) -> Iterator[Client[str | bytes]]: ...
@overload
def reconnecting(
    url: str, *, backoff: Backoff | None = None, decode: Callable[[bytes], T], **options: Unpack[_ConnectOptions]
) -> Iterator[Client[T]]: ...
def reconnecting(
    url: str,
    *,
    backoff: Backoff | None = None,
    decode: Callable[[bytes], Any] | None = None,
    **options: Unpack[_ConnectOptions],
) -> Iterator[Client[Any]]:
    """Connect to ``url`` again each time the connection drops; yield every new :class:`Client`.

    ::

        for ws in reconnecting("wss://example.com/feed"):
            try:
                ws.send("subscribe")
                for message in ws:
                    ...
            except ConnectionClosedError:
                continue  # reconnecting() decides: a new connection, or the error raised

    ``options`` are those of :func:`connect`. A connection that could not be opened because
    of the network, a timeout or a 5xx/429 answer is tried again after a delay from
    ``backoff`` (a :class:`~wsfast.reconnect.Backoff`; by default 1 s doubling up to 60 s,
    with jitter); any other failure of :func:`connect` is raised. Once a connection has
    ended, the loop goes on after a delay when it closed with 1001, 1006, 1011, 1012 or 1013
    (see :data:`~wsfast.reconnect.RECONNECT_CODES`) or when the loop's body moved on while it
    was still open (it is closed first); it ends after a normal close (1000) and raises the
    :class:`~wsfast.ConnectionClosedError` of any other close code.
    """
    backoff = Backoff() if backoff is None else backoff
    failures = 0
    while True:
        try:
            ws = connect(url, decode=decode, **options)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            delay = backoff.delay(failures)
            failures += 1
            logger.info("connecting to %s failed (%s); trying again in %.1f s", url, exc, delay)
            time.sleep(delay)
            continue
        opened = time.monotonic()
        with ws:
            yield ws
            closed_here = ws.state is State.OPEN
        if not after_close(ws._closed_exception(), closed_here):
            return
        failures = 0 if time.monotonic() - opened >= backoff.reset_after else failures + 1
        delay = backoff.delay(failures)
        logger.info("connection to %s ended (%s); reconnecting in %.1f s", url, ws.close_code, delay)
        time.sleep(delay)
