"""Proxies without I/O: the tunnel negotiations, and which proxy a connection takes.

- :class:`HTTPTunnel`: an HTTP ``CONNECT`` request (RFC 9110 §9.3.6), with Basic
  credentials when the proxy URL has them.
- :class:`SOCKS5Tunnel`: a SOCKS5 ``CONNECT`` (RFC 1928), with user name and password
  authentication (RFC 1929) when the proxy URL has them.
- :func:`parse_proxy` reads a proxy URL; :func:`proxy_from_environment` finds the proxy
  that ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` set for a URL;
  :func:`resolve_proxy` applies the clients' ``proxy`` option.

A tunnel is negotiated like the opening handshake: send what :meth:`Tunnel.data_to_send`
returns, read at most :attr:`Tunnel.bytes_needed` bytes and pass them to
:meth:`Tunnel.receive_data`, until ``bytes_needed`` is 0: the connection then leads to the
target. Reading no more than asked never takes a byte that belongs to the target, so the
TLS handshake of ``wss://`` can start right after the proxy's answer.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .exceptions import HTTPProxyError, InvalidHandshake, InvalidURI, ProxyError, SOCKSProxyError
from .handshake import _STATUS_LINE, _parse_head, basic_credentials
from .uri import WebSocketURI

__all__ = [
    "MAX_RESPONSE_HEAD",
    "HTTPTunnel",
    "Proxy",
    "SOCKS5Tunnel",
    "Tunnel",
    "bypasses_proxy",
    "parse_proxy",
    "proxy_from_environment",
    "resolve_proxy",
]

_DEFAULT_PORTS = {"http": 80, "socks5": 1080, "socks5h": 1080}

# Generous for an answer to CONNECT, which is a status line and a few headers.
MAX_RESPONSE_HEAD = 16 * 1024
# An HTTP head ends with an empty line: "\n\r\n" ends CRLF CRLF, "\n\n" the bare line
# feeds that RFC 9112 §2.2 lets a recipient accept.
_HEAD_ENDS = (b"\n\r\n", b"\n\n")

_NO_AUTHENTICATION = 0x00
_USER_PASSWORD = 0x02
_NO_ACCEPTABLE_METHOD = 0xFF
_SOCKS_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
# Bytes of the address in a reply, by address type; a domain name (3) gives its own length.
_ADDRESS_LENGTHS = {1: 4, 4: 16}

# A negotiation: yields how many bytes it may read next, is sent the bytes read.
_Steps = Generator[int, bytes, None]


@dataclass(frozen=True)
class Proxy:
    """A proxy, as :func:`parse_proxy` reads it from a URL.

    ``scheme`` is ``"http"`` (CONNECT tunnels), ``"socks5"`` (the client resolves the
    target's host name) or ``"socks5h"`` (the proxy does). ``user_info`` is ``(user,
    password)`` or None; ``repr`` and ``str`` leave it out.
    """

    scheme: str
    host: str
    port: int
    user_info: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def resolves_names(self) -> bool:
        """True when the proxy, not the client, resolves the target's host name."""
        return self.scheme != "socks5"

    def tunnel(self, host: str, port: int) -> Tunnel:
        """A negotiation that asks this proxy for a connection to ``host``:``port``."""
        if self.scheme == "http":
            return HTTPTunnel(host, port, self.user_info)
        return SOCKS5Tunnel(host, port, self.user_info)

    def __str__(self) -> str:
        return f"{self.scheme}://{_authority(self.host, self.port)}"


class Tunnel:
    """The negotiation of a tunnel through a proxy (see the module's documentation).

    Subclasses write it as a generator, ``_negotiate``, that queues what to send in
    ``_output`` and yields how many bytes it may read next.
    """

    def __init__(self) -> None:
        self._output = bytearray()
        self._error: ProxyError | None = None
        self._steps = self._negotiate()
        self.bytes_needed: int = next(self._steps)
        """How many bytes to read next, at most; 0 once the tunnel is open."""

    def _negotiate(self) -> _Steps:
        raise NotImplementedError

    def data_to_send(self) -> bytes:
        """The bytes to send to the proxy now (b"" when there are none)."""
        data = bytes(self._output)
        self._output.clear()
        return data

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take at most :attr:`bytes_needed` bytes read from the proxy; b"" means that the
        proxy closed the connection. Raises :class:`~wsfast.ProxyError` (or a subclass)
        when the negotiation fails, and again at every later call."""
        if self._error is not None:
            raise self._error
        if len(data) > self.bytes_needed:
            raise ValueError(f"got {len(data)} bytes where at most {self.bytes_needed} were asked for")
        try:
            if not data:
                raise ProxyError("the proxy closed the connection before the tunnel was open")
            self.bytes_needed = self._steps.send(bytes(data))
        except StopIteration:
            self.bytes_needed = 0
        except ProxyError as exc:
            self._error = exc
            raise


class HTTPTunnel(Tunnel):
    """An HTTP CONNECT request for ``host``:``port`` (``user_info``: Basic credentials).

    Any 2xx answer opens the tunnel; another status raises :class:`~wsfast.HTTPProxyError`,
    an answer that is not HTTP or whose head is over :data:`MAX_RESPONSE_HEAD` bytes
    :class:`~wsfast.ProxyError`.
    """

    def __init__(self, host: str, port: int, user_info: tuple[str, str] | None = None) -> None:
        authority = _authority(host, port)
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if user_info is not None:
            lines.append(f"Proxy-Authorization: {basic_credentials(*user_info)}")
        self._request = "".join(line + "\r\n" for line in lines + [""]).encode()
        super().__init__()

    def _negotiate(self) -> _Steps:
        self._output += self._request
        head = bytearray()
        while True:
            needed = _bytes_to_head_end(head)
            if not needed:
                break
            if len(head) + needed > MAX_RESPONSE_HEAD:
                raise ProxyError(f"the proxy's answer has a head longer than {MAX_RESPONSE_HEAD} bytes")
            head += yield needed
            if not b"HTTP/".startswith(head[:5]):  # fail at once on what is not HTTP
                raise ProxyError(f"the proxy's answer is not HTTP: it starts with {bytes(head[:5])!r}")
        try:
            status_line, headers = _parse_head(bytes(head).rstrip(b"\r\n"))
        except InvalidHandshake as exc:
            raise ProxyError(f"the proxy's answer is not valid HTTP: {exc}") from None
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise ProxyError(f"the proxy's answer has a malformed status line {status_line[:100]!r}")
        _, status, reason = match.groups()
        if not 200 <= int(status) < 300:
            raise HTTPProxyError(int(status), reason or "", headers)


class SOCKS5Tunnel(Tunnel):
    """A SOCKS5 CONNECT to ``host``:``port``: an IPv4 or IPv6 address goes as one, any
    other ``host`` as a name for the proxy to resolve. With ``user_info``, user name and
    password authentication is offered besides none.

    A refusal raises :class:`~wsfast.SOCKSProxyError`, an answer that is not SOCKS5
    :class:`~wsfast.ProxyError`; a name or credentials over 255 bytes :class:`~wsfast.InvalidURI`.
    """

    def __init__(self, host: str, port: int, user_info: tuple[str, str] | None = None) -> None:
        self._request = b"\x05\x01\x00" + _socks_address(host) + port.to_bytes(2, "big")
        self._credentials = None if user_info is None else _socks_credentials(*user_info)
        super().__init__()

    def _negotiate(self) -> _Steps:
        methods = [_NO_AUTHENTICATION] if self._credentials is None else [_NO_AUTHENTICATION, _USER_PASSWORD]
        self._output += bytes([5, len(methods), *methods])
        answer = yield from _exactly(2)
        _check_socks_version(answer)
        method = answer[1]
        if method == _USER_PASSWORD and self._credentials is not None:
            self._output += self._credentials
            # The status is the second byte; the first is 1 (RFC 1929), or 5 from some proxies.
            status = (yield from _exactly(2))[1]
            if status != 0:
                raise SOCKSProxyError("the SOCKS5 proxy rejected the user name and password")
        elif method == _NO_ACCEPTABLE_METHOD:
            offered = "no credentials were given" if self._credentials is None else "user name and password"
            raise SOCKSProxyError(f"the SOCKS5 proxy accepted none of the authentication methods ({offered})")
        elif method != _NO_AUTHENTICATION:
            raise ProxyError(f"the SOCKS5 proxy chose authentication method {method}, which was not offered")
        self._output += self._request
        reply = yield from _exactly(4)
        _check_socks_version(reply)
        code, address_type = reply[1], reply[3]
        if code != 0:
            meaning = _SOCKS_REPLIES.get(code, "unknown reply code")
            raise SOCKSProxyError(f"the SOCKS5 proxy refused the tunnel: {meaning} (reply {code})", code)
        if address_type == 3:
            length = (yield from _exactly(1))[0]
        elif address_type in _ADDRESS_LENGTHS:
            length = _ADDRESS_LENGTHS[address_type]
        else:
            raise ProxyError(f"the SOCKS5 proxy's reply has an unknown address type {address_type}")
        yield from _exactly(length + 2)  # the address and port the proxy connects from: not needed


def _exactly(count: int) -> Generator[int, bytes, bytes]:
    """Negotiation steps that read ``count`` bytes, for ``yield from``; returns them."""
    data = b""
    while len(data) < count:
        data += yield count - len(data)
    return data


def _bytes_to_head_end(head: bytes | bytearray) -> int:
    """The fewest bytes after ``head`` that could end it: reading no more than that never
    reads past the head. 0 when it has ended."""
    fewest = []
    for end in _HEAD_ENDS:
        overlap = max(size for size in range(len(end) + 1) if head.endswith(end[:size]))
        fewest.append(len(end) - overlap)
    return min(fewest)


def _check_socks_version(answer: bytes) -> None:
    if answer[0] != 5:
        raise ProxyError(f"the proxy does not speak SOCKS5: its answer starts with {answer!r}")


def _socks_address(host: str) -> bytes:
    """``host`` as SOCKS5 writes it: address type 1 and an IPv4 address, 4 and an IPv6
    address, or 3 and a host name (ASCII, as :func:`wsfast.uri.parse_uri` gives it)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        if len(name) > 255:
            raise InvalidURI(f"the host name {host[:40]}... is longer than SOCKS5 allows (255 bytes)") from None
        return bytes([3, len(name)]) + name
    return bytes([1 if address.version == 4 else 4]) + address.packed


def _socks_credentials(user: str, password: str) -> bytes:
    """The user name and password request of RFC 1929: version 1, then each field in UTF-8
    after its length."""
    fields = [user.encode(), password.encode()]
    if any(len(item) > 255 for item in fields):
        raise InvalidURI("a SOCKS5 user name or password is longer than 255 bytes")
    return b"\x01" + b"".join(bytes([len(item)]) + item for item in fields)


def _authority(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Proxy URLs and the environment ------------------------------------------------------


def parse_proxy(url: str) -> Proxy:
    """Read a proxy URL: ``http://``, ``socks5://`` or ``socks5h://``, with an optional
    ``user:password@`` (percent-encoded) and port (by default 80 for HTTP, 1080 for SOCKS).
    Without a scheme, as in ``proxy.example:3128``, it is an HTTP proxy.

    Raises :class:`~wsfast.InvalidURI`, whose message never shows the password.
    """
    if not isinstance(url, str):
        raise InvalidURI(f"a proxy URL must be a str, not {type(url).__name__}")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise InvalidURI("the proxy URL contains whitespace or control characters")
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidURI(f"the proxy URL is not valid: {exc}") from None
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # without the credentials
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise InvalidURI(
            f"proxy {shown}: TLS to the proxy is not supported; use an http:// proxy URL "
            "(wss:// stays encrypted through it)"
        )
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURI(f"proxy {shown}: the scheme must be http, socks5 or socks5h")
    try:
        port = parts.port
    except ValueError:
        raise InvalidURI(f"proxy {shown} has an invalid port") from None
    if not parts.hostname:
        raise InvalidURI(f"proxy {shown} has no host")
    if port == 0:
        raise InvalidURI(f"proxy {shown} has port 0")
    user_info = None
    if "@" in parts.netloc:
        user_info = (unquote(parts.username or ""), unquote(parts.password or ""))
    return Proxy(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], user_info)


def resolve_proxy(proxy: str | bool | None, uri: WebSocketURI) -> Proxy | None:
    """The proxy for a connection to ``uri``, from the clients' ``proxy`` option: a proxy
    URL, True for the environment's choice (:func:`proxy_from_environment`), None for none."""
    if proxy is True:
        return proxy_from_environment(uri.host, uri.port, secure=uri.secure)
    if proxy is None:
        return None
    if isinstance(proxy, str):
        return parse_proxy(proxy)
    raise TypeError(f"proxy must be a proxy URL, True (from the environment) or None, not {type(proxy).__name__}")


def proxy_from_environment(
    host: str, port: int, *, secure: bool, environ: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy that the environment (``environ``, by default ``os.environ``) sets for
    a connection to ``host``:``port``, or None.

    ``https_proxy`` is for ``wss://`` (``secure``), ``http_proxy`` for ``ws://``, and
    ``all_proxy`` for both when that one is not set; ``no_proxy`` lists the hosts reached
    directly (see :func:`bypasses_proxy`). Each is read in lower case, then in upper
    case; an empty value counts as unset.
    """
    environ = os.environ if environ is None else environ
    for name in ("https_proxy" if secure else "http_proxy", "all_proxy"):
        variable = _set_variable(environ, name)
        if variable is not None:
            break
    else:
        return None
    no_proxy = _set_variable(environ, "no_proxy")
    if no_proxy is not None and bypasses_proxy(host, port, environ[no_proxy]):
        return None
    try:
        return parse_proxy(environ[variable])
    except InvalidURI as exc:
        raise InvalidURI(f"{variable}: {exc}") from None


def _set_variable(environ: Mapping[str, str], name: str) -> str | None:
    """Which of ``name`` and its upper case is set and not empty (lower case first), or None."""
    names = [name, name.upper()]
    # Under CGI, HTTP_PROXY carries a request header, "Proxy:", that anyone can send.
    if name == "http_proxy" and "REQUEST_METHOD" in environ:
        names.pop()
    return next((variable for variable in names if environ.get(variable)), None)


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """True when the ``no_proxy`` list names ``host`` (an IPv6 address without brackets).

    Entries are separated by commas or spaces, and case does not matter. ``*`` names every
    host; a host name also names its subdomains, with or without a leading ``.`` (or
    ``*.``); an IP address names itself, and a network such as ``10.0.0.0/8`` its
    addresses. An entry with a port, ``name:port`` or ``[IPv6]:port``, is for that port.
    """
    host = host.lower()
    for entry in re.split(r"[\s,]+", no_proxy.lower()):
        if entry == "*":
            return True
        pattern, entry_port = _split_port(entry)
        if pattern and entry_port in (None, port) and _names(pattern, host):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """A NO_PROXY entry's host (without brackets) and port (None when it has none)."""
    if entry.startswith("["):
        pattern, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        pattern, _, port = entry.partition(":")
    else:  # a name, an IPv4 address or network, or an IPv6 one without brackets
        return entry, None
    return pattern, int(port) if port.isdigit() else None


def _names(pattern: str, host: str) -> bool:
    """True when the NO_PROXY ``pattern`` (a name, an address or a network) names ``host``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: the pattern names it or one of its parent domains
        suffix = pattern.lstrip("*.")
        return bool(suffix) and (host == suffix or host.endswith("." + suffix))
    try:
        return address in ipaddress.ip_network(pattern, strict=False)
    except ValueError:  # a host name names no address
        return False
