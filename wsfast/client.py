"""The blocking WebSocket client, over plain sockets (``ws://`` and ``wss://``).

::

    from wsfast.client import connect

    with connect("wss://example.com/feed") as ws:
        ws.send("subscribe")
        for message in ws:
            ...
"""

from __future__ import annotations

import hashlib
import socket
import ssl as ssl_module
from dataclasses import dataclass
from datetime import datetime, timezone

from ._codec import DEFAULT_MAX_SIZE
from ._io import WebSocket, deadline_after, logger, time_left
from .deflate import DeflateOptions, PerMessageDeflate, deflate_options
from .handshake import ClientHandshake, with_basic_auth
from .protocol import Connection
from .uri import parse_uri

__all__ = ["CertificateInfo", "Client", "certificate_info", "connect"]

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


def certificate_info(ssl_socket) -> CertificateInfo | None:
    """Describe the peer certificate of an ``ssl.SSLSocket`` or ``ssl.SSLObject``."""
    der = ssl_socket.getpeercert(binary_form=True)
    if der is None:
        return None
    fingerprint = hashlib.sha1(der).hexdigest().upper()
    decoded = ssl_socket.getpeercert() or {}  # empty when the certificate was not verified
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


def _distinguished_name(rdns) -> str | None:
    if rdns is None:
        return None
    return ", ".join(f"{_DN_NAMES.get(name, name)}={value}" for rdn in rdns for name, value in rdn)


class Client(WebSocket):
    """A WebSocket connection to a server; open one with :func:`connect`.

    Besides what every connection has (:meth:`send`, :meth:`recv`, :meth:`recv_many`,
    iteration, :meth:`recv_frame`, :meth:`ping`, :meth:`close`, :attr:`state`, ...), it
    knows the server's handshake answer (:attr:`response_headers`, :attr:`subprotocol`,
    :attr:`deflate_params`) and, for ``wss://``, the server's :attr:`certificate`.
    """

    def __init__(
        self,
        sock: socket.socket,
        connection: Connection,
        handshake: ClientHandshake,
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
        self.response_headers = handshake.response_headers
        """The headers of the server's 101 response (a :class:`wsfast.handshake.Headers`)."""
        self.certificate: CertificateInfo | None = certificate_info(sock) if self._tls else None
        """The server's TLS certificate for ``wss://``; None for ``ws://``."""


def connect(
    url: str,
    *,
    timeout: float | None = 10.0,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    headers=None,
    subprotocols=None,
    origin: str | None = None,
    max_message_size: int | None = DEFAULT_MAX_SIZE,
    max_frame_size: int | None = None,
    compression: str | DeflateOptions | None = "deflate",
    tcp_nodelay: bool = True,
    close_timeout: float | None = 10.0,
    codec=None,
) -> Client:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``) and return the
    :class:`Client`; ``with connect(url) as ws:`` closes it on the way out.

    - ``timeout``: seconds for TCP, TLS and the opening handshake together (TimeoutError).
    - ``ssl``: an ``ssl.SSLContext`` for ``wss://``; by default the system's trusted CAs
      with host name checking. ``server_hostname`` overrides the name the certificate is
      checked against (by default the URL's host).
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
    - ``codec``: the frame codec module (``wsfast._pure`` or ``wsfast._compiled``), by
      default the one ``wsfast`` selected.

    Raises :class:`~wsfast.InvalidURI`, :class:`~wsfast.InvalidHandshake` (and its
    subclasses, e.g. :class:`~wsfast.InvalidStatus` for a non-101 answer), TimeoutError,
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
    connection_options = {"max_message_size": max_message_size, "max_frame_size": max_frame_size, "codec": codec}
    Connection(client=True, **connection_options)
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
        sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
    except socket.timeout:
        raise TimeoutError(f"connecting to {url} timed out") from None
    try:
        if tcp_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl:
            sock.settimeout(time_left(deadline))
            sock = ssl.wrap_socket(sock, server_hostname=server_hostname or uri.host)
        _handshake(sock, handshake, deadline)
        sock.settimeout(None)
        params = handshake.deflate_params
        # Without an agreement there is no deflate object, and so no cost when receiving.
        extension = None if params is None else PerMessageDeflate(params, client=True, options=deflate)
        connection = Connection(client=True, deflate=extension, **connection_options)
    except socket.timeout:
        sock.close()
        raise TimeoutError(f"the opening handshake with {url} timed out") from None
    except BaseException:
        sock.close()
        raise
    logger.debug("connected to %s (subprotocol %s, deflate %s)", url, handshake.subprotocol, handshake.deflate_params)
    return Client(sock, connection, handshake, close_timeout=close_timeout)


def _handshake(sock: socket.socket, handshake: ClientHandshake, deadline: float) -> None:
    """Send the upgrade request and read the answer until it is complete."""
    sock.settimeout(time_left(deadline))
    sock.sendall(handshake.request())
    while True:
        sock.settimeout(time_left(deadline))
        data = sock.recv(65536)
        if not data:
            handshake.receive_eof()  # raises InvalidHandshake: the server hung up
        if handshake.receive_data(data):
            return


