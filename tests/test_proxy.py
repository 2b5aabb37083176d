"""Proxies: the sans-I/O negotiations against hostile answers, the choice of proxy from the
environment, and both clients through real proxies to ws:// and wss:// echo servers:
tinyproxy (HTTP CONNECT) and microsocks (SOCKS5).

The real proxies run from the Debian packages ``tinyproxy`` and ``microsocks``. Without
them those tests are skipped; with ``WSFAST_REQUIRE_PROXIES=1`` (as CI sets) they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest

import wsfast
import wsfast.asyncio
from wsfast import HTTPProxyError, InvalidURI, ProxyError, SOCKSProxyError
from wsfast.proxy import (
    MAX_RESPONSE_HEAD,
    HTTPTunnel,
    Proxy,
    SOCKS5Tunnel,
    bypasses_proxy,
    parse_proxy,
    proxy_from_environment,
    resolve_proxy,
)
from wsfast.uri import parse_uri

TIMEOUT = 5  # seconds any single wait in these tests may take

pytestmark = pytest.mark.usefixtures("no_hang")

# tinyproxy takes only letters, digits and a few marks in credentials; microsocks any byte.
HTTP_USER, HTTP_PASSWORD = "feed", "s3cret"
SOCKS_USER, SOCKS_PASSWORD = "feed", "p@ss:w/rd"


# Sans-I/O: proxy URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://proxy.example:3128", Proxy("http", "proxy.example", 3128)),
        ("HTTP://Proxy.Example", Proxy("http", "proxy.example", 80)),
        ("proxy.example:3128", Proxy("http", "proxy.example", 3128)),
        ("http://[2001:db8::1]:3128/", Proxy("http", "2001:db8::1", 3128)),
        ("socks5://10.0.0.1", Proxy("socks5", "10.0.0.1", 1080)),
        ("socks5h://proxy.example:9050", Proxy("socks5h", "proxy.example", 9050)),
        (
            "http://us%65r:p%40ss%3Aw%2Frd@proxy.example:3128",
            Proxy("http", "proxy.example", 3128, ("user", "p@ss:w/rd")),
        ),
        ("socks5h://user@proxy.example", Proxy("socks5h", "proxy.example", 1080, ("user", ""))),
    ],
)
def test_parse_proxy(url, expected):
    proxy = parse_proxy(url)
    assert proxy == expected
    assert proxy.user_info == expected.user_info


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://user:hunter2@proxy.example:443", "TLS to the proxy is not supported"),
        ("socks4://user:hunter2@proxy.example", "scheme must be http, socks5 or socks5h"),
        ("ftp://proxy.example", "scheme must be http, socks5 or socks5h"),
        ("http://user:hunter2@:3128", "has no host"),
        ("http://user:hunter2@proxy.example:99999", "invalid port"),
        ("http://user:hunter2@proxy.example:0", "port 0"),
        ("http://proxy.example:3128 ", "whitespace"),
        ("http://[::1", "not valid"),
        (b"http://proxy.example", "must be a str"),
    ],
)
def test_parse_proxy_rejects(url, message):
    with pytest.raises(InvalidURI, match=message) as raised:
        parse_proxy(url)
    assert "hunter2" not in str(raised.value)


def test_proxy_hides_its_password():
    proxy = parse_proxy("socks5h://user:hunter2@proxy.example:1080")
    assert str(proxy) == "socks5h://proxy.example:1080"
    assert "hunter2" not in repr(proxy)
    assert str(parse_proxy("http://[::1]:3128")) == "http://[::1]:3128"


def test_resolve_proxy(environment):
    environment.setenv("http_proxy", "http://env.example:3128")
    uri = parse_uri("ws://feed.example/")
    assert resolve_proxy(True, uri) == Proxy("http", "env.example", 3128)
    assert resolve_proxy(None, uri) is None
    assert resolve_proxy("socks5h://given.example", uri) == Proxy("socks5h", "given.example", 1080)
    with pytest.raises(TypeError):
        resolve_proxy(False, uri)


# Sans-I/O: the environment ------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, secure, expected",
    [
        ({}, False, None),
        ({"HTTP_PROXY": "http://upper:1"}, False, "upper"),
        ({"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:1"}, False, "lower"),
        ({"http_proxy": "", "HTTP_PROXY": "http://upper:1"}, False, "upper"),
        ({"HTTP_PROXY": "http://plain:1"}, True, None),
        ({"HTTPS_PROXY": "http://secure:1"}, False, None),
        ({"https_proxy": "http://secure:1", "http_proxy": "http://plain:1"}, True, "secure"),
        ({"ALL_PROXY": "socks5h://all:1"}, True, "all"),
        ({"all_proxy": "socks5h://all:1", "http_proxy": "http://plain:1"}, False, "plain"),
        # Under CGI, HTTP_PROXY comes from a request header: only http_proxy counts.
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": "http://attacker:1"}, False, None),
        ({"REQUEST_METHOD": "GET", "http_proxy": "http://plain:1"}, False, "plain"),
        ({"REQUEST_METHOD": "GET", "HTTPS_PROXY": "http://secure:1"}, True, "secure"),
        ({"HTTP_PROXY": "http://plain:1", "NO_PROXY": "feed.example"}, False, None),
        ({"HTTP_PROXY": "http://plain:1", "no_proxy": "other.example", "NO_PROXY": "*"}, False, "plain"),
    ],
)
def test_proxy_from_environment(environ, secure, expected):
    proxy = proxy_from_environment("feed.example", 443, secure=secure, environ=environ)
    assert (proxy and proxy.host) == expected


def test_proxy_from_environment_names_the_variable_of_a_bad_url():
    with pytest.raises(InvalidURI, match=r"^HTTPS_PROXY: .*TLS to the proxy"):
        proxy_from_environment("feed.example", 443, secure=True, environ={"HTTPS_PROXY": "https://proxy:1"})
    # A host the proxy is bypassed for never reads the proxy URL.
    environ = {"HTTPS_PROXY": "https://proxy:1", "NO_PROXY": "feed.example"}
    assert proxy_from_environment("feed.example", 443, secure=True, environ=environ) is None


@pytest.mark.parametrize(
    "host, port, no_proxy, expected",
    [
        ("feed.example", 443, "", False),
        ("feed.example", 443, "*", True),
        ("feed.example", 443, "feed.example", True),
        ("FEED.Example", 443, "feed.EXAMPLE", True),
        ("eu.feed.example", 443, "feed.example", True),
        ("eu.feed.example", 443, ".feed.example", True),
        ("feed.example", 443, ".feed.example", True),
        ("eu.feed.example", 443, "*.feed.example", True),
        ("otherfeed.example", 443, "feed.example", False),
        ("feed.example.org", 443, "feed.example", False),
        ("feed.example", 443, "a.example, feed.example", True),
        ("feed.example", 443, "a.example feed.example", True),
        ("feed.example", 443, " a.example ,, feed.example ", True),
        ("feed.example", 443, "feed.example:443", True),
        ("feed.example", 80, "feed.example:443", False),
        ("10.1.2.3", 80, "10.1.2.3", True),
        ("10.1.2.3", 80, "10.1.2.4", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("10.1.2.3", 80, "2.3", False),  # a name suffix never matches an address
        ("10.1.2.3", 80, "10.1.2.3:80", True),
        ("10.1.2.3", 81, "10.1.2.3:80", False),
        ("::1", 80, "::1", True),
        ("::1", 80, "0:0::1", True),
        ("::1", 80, "[::1]", True),
        ("::1", 80, "[::1]:80", True),
        ("::1", 81, "[::1]:80", False),
        ("2001:db8::5", 80, "2001:db8::/32", True),
        ("::1", 80, "127.0.0.1", False),
        ("127.0.0.1", 80, "localhost", False),  # names are not resolved
    ],
)
def test_bypasses_proxy(host, port, no_proxy, expected):
    assert bypasses_proxy(host, port, no_proxy) is expected


# Sans-I/O: HTTP CONNECT ---------------------------------------------------------------


def feed(tunnel, answer: bytes) -> bytes:
    """Give ``tunnel`` the proxy's ``answer`` in the largest pieces it asks for; return
    the bytes it did not take (they belong to the target)."""
    while tunnel.bytes_needed and answer:
        piece, answer = answer[: tunnel.bytes_needed], answer[tunnel.bytes_needed :]
        tunnel.receive_data(piece)
    return answer


def test_connect_request():
    assert HTTPTunnel("feed.example", 443).data_to_send() == (
        b"CONNECT feed.example:443 HTTP/1.1\r\nHost: feed.example:443\r\n\r\n"
    )
    tunnel = HTTPTunnel("2001:db8::1", 80, ("user", "pässword"))
    assert tunnel.data_to_send() == (
        b"CONNECT [2001:db8::1]:80 HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n"
        b"Proxy-Authorization: Basic dXNlcjpww6Rzc3dvcmQ=\r\n\r\n"
    )
    assert tunnel.data_to_send() == b""


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.0 200 Connection established\r\nProxy-agent: test\r\n\r\n",
        b"HTTP/1.1 204\r\n\r\n",
        b"HTTP/1.1 200 OK\n\n",
        b"HTTP/1.1 200 OK\r\nVia: a\n\r\n",
    ],
)
def test_connect_reads_exactly_the_answer(answer):
    target_bytes = b"\x16\x03\x01 the target speaks \r\n\r\n"
    tunnel = HTTPTunnel("feed.example", 443)
    assert feed(tunnel, answer + target_bytes) == target_bytes
    assert tunnel.bytes_needed == 0
    tunnel = HTTPTunnel("feed.example", 443)  # one byte at a time
    for byte in answer:
        assert tunnel.bytes_needed
        tunnel.receive_data(bytes([byte]))
    assert tunnel.bytes_needed == 0


@pytest.mark.parametrize("status, reason", [(407, "Proxy Authentication Required"), (403, "Forbidden"), (502, "")])
def test_connect_refused(status, reason):
    answer = f'HTTP/1.1 {status} {reason}\r\nProxy-Authenticate: Basic realm="corp"\r\n\r\n'.replace(" \r", "\r")
    with pytest.raises(HTTPProxyError) as raised:
        feed(HTTPTunnel("feed.example", 443), answer.encode() + b"<html>body</html>")
    error = raised.value
    assert (error.status, error.reason) == (status, reason)
    assert error.headers["proxy-authenticate"] == 'Basic realm="corp"'
    assert str(error) == f"the proxy refused the tunnel: HTTP {status} {reason}".rstrip()
    assert isinstance(error, ProxyError) and isinstance(error, OSError)


@pytest.mark.parametrize(
    "answer, message",
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "is not HTTP: it starts with b'SS'"),
        (b"\x05\xff", "is not HTTP"),
        (b"HTTP/1.1 twohundred\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not valid HTTP"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_RESPONSE_HEAD, f"longer than {MAX_RESPONSE_HEAD} bytes"),
    ],
    ids=["ssh", "socks", "status", "header", "over-long"],
)
def test_connect_rejects_what_is_not_an_answer(answer, message):
    tunnel = HTTPTunnel("feed.example", 443)
    with pytest.raises(ProxyError, match=message):
        feed(tunnel, answer)
    with pytest.raises(ProxyError, match=message):  # and it stays failed
        tunnel.receive_data(b"\n")


def test_connect_answer_cut_short():
    tunnel = HTTPTunnel("feed.example", 443)
    assert feed(tunnel, b"HTTP/1.1 200 Connection established\r\n") == b""
    with pytest.raises(ProxyError, match="closed the connection before the tunnel was open"):
        tunnel.receive_data(b"")


def test_tunnel_takes_no_more_than_it_asks_for():
    tunnel = HTTPTunnel("feed.example", 443)
    with pytest.raises(ValueError):
        tunnel.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")


# Sans-I/O: SOCKS5 ---------------------------------------------------------------------

GRANTED = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"  # reply 0, bound to 127.0.0.1:1080


@pytest.mark.parametrize(
    "host, address",
    [
        ("feed.example", b"\x03\x0cfeed.example"),
        ("192.0.2.7", b"\x01\xc0\x00\x02\x07"),
        ("2001:db8::1", b"\x04" + bytes.fromhex("20010db8000000000000000000000001")),
    ],
)
def test_socks_connect_without_credentials(host, address):
    tunnel = SOCKS5Tunnel(host, 443)
    assert tunnel.data_to_send() == b"\x05\x01\x00"
    assert tunnel.bytes_needed == 2
    tunnel.receive_data(b"\x05\x00")
    assert tunnel.data_to_send() == b"\x05\x01\x00" + address + b"\x01\xbb"
    assert feed(tunnel, GRANTED + b"target") == b"target"
    assert tunnel.bytes_needed == 0


def test_socks_connect_with_credentials():
    tunnel = SOCKS5Tunnel("feed.example", 443, ("user", "pässword"))
    assert tunnel.data_to_send() == b"\x05\x02\x00\x02"
    tunnel.receive_data(b"\x05\x02")
    assert tunnel.data_to_send() == b"\x01\x04user\x09p\xc3\xa4ssword"
    feed(tunnel, b"\x01\x00")
    assert tunnel.data_to_send().startswith(b"\x05\x01\x00\x03")
    assert feed(tunnel, GRANTED) == b""
    assert tunnel.bytes_needed == 0


def test_socks_proxy_may_skip_authentication():
    tunnel = SOCKS5Tunnel("feed.example", 443, ("user", "password"))
    tunnel.data_to_send()
    tunnel.receive_data(b"\x05\x00")
    assert tunnel.data_to_send().startswith(b"\x05\x01\x00\x03")


@pytest.mark.parametrize(
    "bound",
    [b"\x01" + bytes(4), b"\x04" + bytes(16), b"\x03\x0bproxy.local", b"\x03\x00"],
)
def test_socks_reply_bound_address_is_read_exactly(bound):
    tunnel = SOCKS5Tunnel("feed.example", 443)
    feed(tunnel, b"\x05\x00")
    assert feed(tunnel, b"\x05\x00\x00" + bound + b"\x00\x50" + b"target") == b"target"
    assert tunnel.bytes_needed == 0


@pytest.mark.parametrize(
    "code, meaning",
    [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by ruleset"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "TTL expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
        (9, "unknown reply code"),
    ],
)
def test_socks_refusals(code, meaning):
    tunnel = SOCKS5Tunnel("feed.example", 443)
    feed(tunnel, b"\x05\x00")
    with pytest.raises(SOCKSProxyError) as raised:
        feed(tunnel, bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
    assert raised.value.reply == code
    assert str(raised.value) == f"the SOCKS5 proxy refused the tunnel: {meaning} (reply {code})"


@pytest.mark.parametrize(
    "user_info, answers, error, message",
    [
        (None, [b"\x05\xff"], SOCKSProxyError, r"none of the authentication methods \(no credentials were given\)"),
        (("u", "p"), [b"\x05\xff"], SOCKSProxyError, "none of the authentication methods"),
        (("u", "p"), [b"\x05\x02", b"\x01\x01"], SOCKSProxyError, "rejected the user name and password"),
        (None, [b"\x05\x02"], ProxyError, "chose authentication method 2, which was not offered"),
        (("u", "p"), [b"\x05\x01"], ProxyError, "chose authentication method 1"),
        (None, [b"HT"], ProxyError, "does not speak SOCKS5: its answer starts with b'HT'"),
        (None, [b"\x05\x00", b"\x04\x00\x00\x01"], ProxyError, "does not speak SOCKS5"),
        (None, [b"\x05\x00", b"\x05\x00\x00\x07"], ProxyError, "unknown address type 7"),
        (None, [b"\x05"], ProxyError, "closed the connection before the tunnel was open"),
        (None, [b"\x05\x00", b"\x05\x00\x00\x01\x7f"], ProxyError, "closed the connection"),
    ],
)
def test_socks_failures(user_info, answers, error, message):
    tunnel = SOCKS5Tunnel("feed.example", 443, user_info)
    with pytest.raises(error, match=message) as raised:
        for answer in answers:
            assert feed(tunnel, answer) == b""
        tunnel.receive_data(b"")  # the proxy hangs up
    if error is SOCKSProxyError:
        assert raised.value.reply is None


def test_socks_limits_names_and_credentials_to_255_bytes():
    SOCKS5Tunnel("a" * 255, 443, ("u" * 255, "p" * 255))
    with pytest.raises(InvalidURI, match="longer than SOCKS5 allows"):
        SOCKS5Tunnel("a" * 256, 443)
    with pytest.raises(InvalidURI, match="longer than 255 bytes"):
        SOCKS5Tunnel("feed.example", 443, ("user", "p" * 256))


# Fake proxies over raw sockets: hostile or broken -------------------------------------


@pytest.fixture(params=["blocking", "asyncio"])
def client(request):
    return request.param


def echo_once(client: str, url: str, **options):
    """Connect with the ``client`` kind and echo one message; return the answer, the
    client's remote address and the server's certificate."""
    options.setdefault("timeout", TIMEOUT)
    if client == "blocking":
        with wsfast.connect(url, **options) as ws:
            ws.send("through")
            return ws.recv(timeout=TIMEOUT), ws.remote_address, ws.certificate

    async def main():
        async with wsfast.asyncio.connect(url, **options) as ws:
            await ws.send("through")
            return await ws.recv(timeout=TIMEOUT), ws.remote_address, ws.certificate

    return asyncio.run(main())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def receive_exactly(conn, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def wait_for_hangup(conn) -> None:
    """Read until the client closes the connection (or TIMEOUT passes)."""
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass


@contextlib.contextmanager
def fake_proxy(script):
    """A listener on 127.0.0.1 whose first connection goes to ``script(conn)``; yields
    its ``host:port``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve():
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                script(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(TIMEOUT)


def answering(answer: bytes, *, hang_up: bool = False):
    """A fake proxy's script: read the client's first bytes (the CONNECT request or the
    SOCKS5 greeting), send ``answer``, then hang up or wait for the client to."""

    def script(conn):
        conn.recv(65536)
        conn.sendall(answer)
        if not hang_up:
            wait_for_hangup(conn)

    return script


@pytest.mark.parametrize(
    "scheme, script, message",
    [
        ("http", answering(b"220 mail.example ESMTP\r\n"), "not HTTP"),
        ("http", answering(b"", hang_up=True), "closed the connection"),
        ("http", answering(b"HTTP/1.1 200 Connection established\r\n", hang_up=True), "closed the connection"),
        ("http", answering(b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * 100_000), "longer than"),
        ("socks5h", answering(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "does not speak SOCKS5"),
        ("socks5h", answering(b"\x05", hang_up=True), "closed the connection"),
    ],
    ids=["http-garbage", "http-silent-close", "http-cut-short", "http-over-long", "socks-garbage", "socks-cut-short"],
)
def test_broken_proxies(client, scheme, script, message):
    with fake_proxy(script) as address:
        with pytest.raises(ProxyError, match=message):
            echo_once(client, "ws://feed.example/", proxy=f"{scheme}://{address}")


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_silent_proxy_times_out(client, scheme):
    with fake_proxy(wait_for_hangup) as address:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            echo_once(client, "ws://feed.example/", proxy=f"{scheme}://{address}", timeout=0.3)
    assert time.monotonic() - start < 3


def test_timeout_covers_a_slow_answer(client):
    def trickle(conn):  # a byte every 50 ms: each read is quick, the whole answer is not
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 Connection established\r\n" * 100:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    with fake_proxy(trickle) as address:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            echo_once(client, "ws://feed.example/", proxy=f"http://{address}", timeout=0.5)
    assert time.monotonic() - start < 3


@pytest.mark.parametrize(
    "scheme, target, addresses",
    [
        ("socks5h", "localhost", [b"\x03\x09localhost"]),  # the proxy resolves the name
        ("socks5", "localhost", [b"\x01\x7f\x00\x00\x01", b"\x04" + bytes(15) + b"\x01"]),  # the client does
        ("socks5", "[::1]", [b"\x04" + bytes(15) + b"\x01"]),
    ],
)
def test_socks_name_resolution(client, scheme, target, addresses):
    requests = []

    def script(conn):
        conn.recv(3)
        conn.sendall(b"\x05\x00")
        head = receive_exactly(conn, 5)
        rest = head[4] + 2 if head[3] == 3 else {1: 4, 4: 16}[head[3]] + 1
        requests.append(head + receive_exactly(conn, rest))
        conn.sendall(b"\x05\x02\x00\x01" + bytes(6))
        wait_for_hangup(conn)

    with fake_proxy(script) as address:
        with pytest.raises(SOCKSProxyError, match="not allowed by ruleset"):
            echo_once(client, f"ws://{target}:8080/", proxy=f"{scheme}://{address}")
    assert [request[:3] for request in requests] == [b"\x05\x01\x00"]
    assert requests[0][3:-2] in addresses
    assert requests[0][-2:] == (8080).to_bytes(2, "big")


def test_proxy_not_listening(client):
    proxy = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProxyError, match=f"connecting to the proxy {proxy} failed") as raised:
        echo_once(client, "ws://feed.example/", proxy=proxy)
    assert isinstance(raised.value, OSError)
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)


def test_bad_proxy_url_fails_before_connecting(client):
    with pytest.raises(InvalidURI, match="TLS to the proxy is not supported"):
        echo_once(client, "ws://feed.example/", proxy="https://proxy.example")


# Real proxies -------------------------------------------------------------------------


def proxy_program(name: str) -> str:
    """The path of the program ``name``, or skip (fail, when WSFAST_REQUIRE_PROXIES is
    set) saying why."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install {name})"
        if os.environ.get("WSFAST_REQUIRE_PROXIES"):
            pytest.fail(f"WSFAST_REQUIRE_PROXIES is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@dataclass(frozen=True)
class RunningProxy:
    """A proxy process of these tests, listening on ``port`` of 127.0.0.1.

    Its URLs name it ``localhost``: a certificate checked against the proxy instead of
    the target (``127.0.0.1``) would fail.
    """

    scheme: str
    port: int
    user_info: str = ""  # "user:password", percent-encoded, when it wants credentials

    def url(self, user_info: str | None = None, scheme: str | None = None) -> str:
        user_info = self.user_info if user_info is None else user_info
        return f"{scheme or self.scheme}://{user_info + '@' if user_info else ''}localhost:{self.port}"


@contextlib.contextmanager
def running(command: list, port: int, log_path):
    """Run ``command``, a proxy in the foreground, until it accepts connections on ``port``,
    then until the block ends."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} did not start: {log_path.read_text(errors='replace')}")
                time.sleep(0.02)
        yield
    finally:
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_tinyproxy(tmp_path, credentials=None):
    program = proxy_program("tinyproxy")
    port = free_port()
    config = [f"Port {port}", "Listen 127.0.0.1", "Allow 127.0.0.1", "Timeout 30", "MaxClients 100"]
    if credentials:
        config.append("BasicAuth {} {}".format(*credentials))
    path = tmp_path / f"tinyproxy-{port}.conf"
    path.write_text("\n".join(config) + "\n")  # no ConnectPort: CONNECT to any port
    return port, running([program, "-d", "-c", str(path)], port, tmp_path / f"tinyproxy-{port}.log")


def run_microsocks(tmp_path, credentials=None):
    program = proxy_program("microsocks")
    port = free_port()
    command = [program, "-i", "127.0.0.1", "-p", str(port)]
    if credentials:
        command += ["-u", credentials[0], "-P", credentials[1]]
    return port, running(command, port, tmp_path / f"microsocks-{port}.log")


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory):
    port, process = run_tinyproxy(tmp_path_factory.mktemp("tinyproxy"))
    with process:
        yield RunningProxy("http", port)


@pytest.fixture(scope="module")
def tinyproxy_auth(tmp_path_factory):
    port, process = run_tinyproxy(tmp_path_factory.mktemp("tinyproxy"), (HTTP_USER, HTTP_PASSWORD))
    with process:
        yield RunningProxy("http", port, "f%65ed:s3cr%65t")  # percent-decoded: feed:s3cret


@pytest.fixture(scope="module")
def microsocks(tmp_path_factory):
    port, process = run_microsocks(tmp_path_factory.mktemp("microsocks"))
    with process:
        yield RunningProxy("socks5h", port)


@pytest.fixture(scope="module")
def microsocks_auth(tmp_path_factory):
    port, process = run_microsocks(tmp_path_factory.mktemp("microsocks"), (SOCKS_USER, SOCKS_PASSWORD))
    with process:
        yield RunningProxy("socks5h", port, "feed:p%40ss%3Aw%2Frd")


@pytest.fixture(scope="module")
def ca():
    return pytest.importorskip("trustme").CA()


@pytest.fixture(scope="module")
def client_context(ca):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="module")
def ws_server():
    with wsfast.serve() as server:
        yield server


@pytest.fixture(scope="module")
def wss_server(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)  # not valid for "localhost", the proxy
    with wsfast.serve(ssl=context) as server:
        yield server


@pytest.fixture(params=["ws", "wss"])
def target(request):
    """A URL of an echo server, and the options to connect to it."""
    if request.param == "ws":
        return f"ws://127.0.0.1:{request.getfixturevalue('ws_server').port}/", {}
    port = request.getfixturevalue("wss_server").port
    return f"wss://127.0.0.1:{port}/", {"ssl": request.getfixturevalue("client_context")}


@pytest.mark.parametrize(
    "proxy_name, scheme",
    [
        ("tinyproxy", "http"),
        ("tinyproxy_auth", "http"),
        ("microsocks", "socks5h"),
        ("microsocks", "socks5"),
        ("microsocks_auth", "socks5h"),
    ],
)
def test_echo_through_proxy(request, client, target, proxy_name, scheme):
    proxy = request.getfixturevalue(proxy_name)
    url, options = target
    answer, remote_address, certificate = echo_once(client, url, proxy=proxy.url(scheme=scheme), **options)
    assert answer == "through"
    assert remote_address[1] == proxy.port
    assert (certificate is not None) == url.startswith("wss:")


def test_http_proxy_resolves_the_target_name(client, tinyproxy, ws_server):
    answer, remote_address, _ = echo_once(client, f"ws://localhost:{ws_server.port}/", proxy=tinyproxy.url())
    assert (answer, remote_address[1]) == ("through", tinyproxy.port)


@pytest.mark.parametrize("proxy_name", ["tinyproxy", "microsocks"])
def test_certificate_is_checked_through_the_tunnel(client, request, proxy_name, wss_server):
    proxy = request.getfixturevalue(proxy_name)
    with pytest.raises(ssl.SSLCertVerificationError):  # the system CAs do not know the test CA
        echo_once(client, f"wss://127.0.0.1:{wss_server.port}/", proxy=proxy.url())


def test_http_proxy_credentials_missing_or_wrong(client, tinyproxy_auth, ws_server):
    url = f"ws://127.0.0.1:{ws_server.port}/"
    with pytest.raises(HTTPProxyError) as raised:
        echo_once(client, url, proxy=tinyproxy_auth.url(user_info=""))
    assert raised.value.status == 407
    assert "Proxy-Authenticate" in raised.value.headers
    with pytest.raises(HTTPProxyError) as raised:
        echo_once(client, url, proxy=tinyproxy_auth.url(user_info=f"{HTTP_USER}:wrong"))
    assert raised.value.status in (401, 407)  # tinyproxy answers wrong credentials with 401


def test_socks_proxy_credentials_missing_or_wrong(client, microsocks_auth, ws_server):
    url = f"ws://127.0.0.1:{ws_server.port}/"
    with pytest.raises(SOCKSProxyError, match="none of the authentication methods") as raised:
        echo_once(client, url, proxy=microsocks_auth.url(user_info=""))
    assert raised.value.reply is None
    with pytest.raises(SOCKSProxyError, match="rejected the user name and password") as raised:
        echo_once(client, url, proxy=microsocks_auth.url(user_info=f"{SOCKS_USER}:wrong"))
    assert raised.value.reply is None


def test_target_unreachable_through_http_proxy(client, tinyproxy):
    with pytest.raises(HTTPProxyError) as raised:
        echo_once(client, f"ws://127.0.0.1:{free_port()}/", proxy=tinyproxy.url())
    assert 500 <= raised.value.status < 600


def test_target_unreachable_through_socks_proxy(client, microsocks):
    with pytest.raises(SOCKSProxyError, match=r"connection refused \(reply 5\)") as raised:
        echo_once(client, f"ws://127.0.0.1:{free_port()}/", proxy=microsocks.url())
    assert raised.value.reply == 5


# The environment, end to end -----------------------------------------------------------

PROXY_VARIABLES = [v for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for v in (name, name.upper())]


@pytest.fixture
def environment(monkeypatch):
    """monkeypatch, with no proxy variable set."""
    for name in PROXY_VARIABLES + ["REQUEST_METHOD"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def dead_proxy():
    """The URL of a proxy that is not listening."""
    return f"http://127.0.0.1:{free_port()}"


def test_http_proxy_variable_is_for_ws(client, environment, tinyproxy, ws_server, wss_server, client_context):
    environment.setenv("HTTP_PROXY", tinyproxy.url())
    assert echo_once(client, f"ws://127.0.0.1:{ws_server.port}/")[1][1] == tinyproxy.port
    wss = f"wss://127.0.0.1:{wss_server.port}/"
    assert echo_once(client, wss, ssl=client_context)[1][1] == wss_server.port


def test_https_proxy_variable_is_for_wss(client, environment, tinyproxy, ws_server, wss_server, client_context):
    environment.setenv("https_proxy", tinyproxy.url())
    wss = f"wss://127.0.0.1:{wss_server.port}/"
    assert echo_once(client, wss, ssl=client_context)[1][1] == tinyproxy.port
    assert echo_once(client, f"ws://127.0.0.1:{ws_server.port}/")[1][1] == ws_server.port


def test_all_proxy_variable_is_the_fallback(client, environment, microsocks, ws_server):
    environment.setenv("ALL_PROXY", microsocks.url())
    assert echo_once(client, f"ws://127.0.0.1:{ws_server.port}/")[1][1] == microsocks.port


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "feed.example, 127.0.0.0/8", "*", "PORT"])
def test_no_proxy_variable_bypasses(client, environment, dead_proxy, ws_server, no_proxy):
    environment.setenv("HTTP_PROXY", dead_proxy)
    environment.setenv("NO_PROXY", no_proxy.replace("PORT", f"127.0.0.1:{ws_server.port}"))
    assert echo_once(client, f"ws://127.0.0.1:{ws_server.port}/")[1][1] == ws_server.port


def test_no_proxy_entry_for_another_port(client, environment, dead_proxy, ws_server):
    environment.setenv("HTTP_PROXY", dead_proxy)
    environment.setenv("no_proxy", f"127.0.0.1:{ws_server.port + 1}")
    with pytest.raises(ProxyError, match="connecting to the proxy"):
        echo_once(client, f"ws://127.0.0.1:{ws_server.port}/")


def test_proxy_none_ignores_the_environment(client, environment, dead_proxy, ws_server):
    environment.setenv("HTTP_PROXY", dead_proxy)
    environment.setenv("ALL_PROXY", dead_proxy)
    assert echo_once(client, f"ws://127.0.0.1:{ws_server.port}/", proxy=None)[1][1] == ws_server.port


def test_proxy_url_overrides_the_environment(client, environment, dead_proxy, tinyproxy, ws_server):
    environment.setenv("HTTP_PROXY", dead_proxy)
    environment.setenv("NO_PROXY", "*")
    url = f"ws://127.0.0.1:{ws_server.port}/"
    assert echo_once(client, url, proxy=tinyproxy.url())[1][1] == tinyproxy.port


def test_bad_proxy_variable(client, environment):
    environment.setenv("HTTP_PROXY", "ftp://proxy.example")
    with pytest.raises(InvalidURI, match=r"^HTTP_PROXY: "):
        echo_once(client, "ws://feed.example/")
