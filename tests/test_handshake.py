"""The opening handshake: request and response building, parsing and validation."""

import base64

import pytest

from wsfast.exceptions import InvalidHandshake, InvalidHeader, InvalidStatus
from wsfast.handshake import ClientHandshake, Headers, ServerHandshake, accept_key


def test_accept_key_rfc_example():
    # RFC 6455 §1.3
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# Headers ----------------------------------------------------------------------------


def test_headers_multi_dict():
    headers = Headers([("Connection", "keep-alive"), ("X-A", "1"), ("connection", "Upgrade")])
    assert headers["CONNECTION"] == "keep-alive, Upgrade"
    assert headers.get_all("connection") == ["keep-alive", "Upgrade"]
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    assert "x-a" in headers and "x-b" not in headers and 1 not in headers
    assert list(headers) == ["Connection", "X-A", "connection"]
    assert len(headers) == 3
    assert headers.items()[1] == ("X-A", "1")
    assert Headers({"x-a": "1"}) == Headers([("X-A", "1")])
    assert "X-A" in repr(headers)
    with pytest.raises(KeyError):
        headers["missing"]


# Client -----------------------------------------------------------------------------


def request_lines(handshake):
    raw = handshake.request()
    assert raw.endswith(b"\r\n\r\n")
    return raw[:-4].decode().split("\r\n")


def response_for(handshake, *extra, status="101 Switching Protocols", accept=None):
    accept = accept_key(handshake.key) if accept is None else accept
    lines = [f"HTTP/1.1 {status}", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept}"]
    return ("\r\n".join(lines + list(extra)) + "\r\n\r\n").encode()


def test_client_request():
    handshake = ClientHandshake("example.com", 80, "/chat?x=1")
    lines = request_lines(handshake)
    assert lines[0] == "GET /chat?x=1 HTTP/1.1"
    assert lines[1:] == [
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {handshake.key}",
        "Sec-WebSocket-Version: 13",
    ]
    assert len(base64.b64decode(handshake.key, validate=True)) == 16
    assert ClientHandshake("example.com", 80).key != handshake.key


@pytest.mark.parametrize(
    "host, port, secure, expected",
    [
        ("example.com", 80, False, "example.com"),
        ("example.com", 443, True, "example.com"),
        ("example.com", 443, False, "example.com:443"),
        ("example.com", 80, True, "example.com:80"),
        ("example.com", 8765, False, "example.com:8765"),
        ("::1", 80, False, "[::1]"),
        ("::1", 8765, False, "[::1]:8765"),
        ("[::1]", 8765, True, "[::1]:8765"),
        ("127.0.0.1", 9000, False, "127.0.0.1:9000"),
    ],
)
def test_client_host_header(host, port, secure, expected):
    lines = request_lines(ClientHandshake(host, port, secure=secure))
    assert lines[1] == f"Host: {expected}"


def test_client_optional_headers():
    handshake = ClientHandshake(
        "h",
        80,
        origin="https://example.com",
        subprotocols=["chat", "superchat"],
        headers=[("X-Token", "abc"), ("X-Token", "def")],
    )
    lines = request_lines(handshake)
    assert lines[6:] == [
        "Origin: https://example.com",
        "Sec-WebSocket-Protocol: chat, superchat",
        "X-Token: abc",
        "X-Token: def",
    ]
    lines = request_lines(ClientHandshake("h", 80, headers={"User-Agent": "wsfast"}))
    assert lines[-1] == "User-Agent: wsfast"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"X-Bad": "a\r\nInjected: yes"}},
        {"headers": {"X-Bad": "a\nb"}},
        {"headers": {"X-Bad": "a\rb"}},
        {"headers": {"X-Bad\r\nInjected": "yes"}},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"": "x"}},
        {"headers": [("X-Nul", "a\x00b")]},
        {"origin": "http://evil\r\nX: y"},
        {"subprotocols": ["chat\r\n"]},
        {"subprotocols": ["two words"]},
        {"resource": "/a b"},
        {"resource": "/a\r\nX: y"},
        {"resource": "no-slash"},
        {"resource": "/ünicode"},
    ],
)
def test_client_rejects_unsafe_arguments(kwargs):
    with pytest.raises(ValueError):
        ClientHandshake("example.com", 80, **kwargs)


@pytest.mark.parametrize(
    "host, port", [("", 80), ("a b", 80), ("a\r\n", 80), ("h/x", 80), ("h", 0), ("h", 65536), ("h", "80")]
)
def test_client_rejects_bad_host_or_port(host, port):
    with pytest.raises(ValueError):
        ClientHandshake(host, port)


def test_client_rejects_subprotocols_as_str():
    with pytest.raises(TypeError):
        ClientHandshake("h", 80, subprotocols="chat")


def test_client_accepts_valid_response():
    handshake = ClientHandshake("h", 80)
    assert handshake.receive_data(response_for(handshake)) is True
    assert handshake.status == 101
    assert handshake.response_headers["upgrade"] == "websocket"
    assert handshake.subprotocol is None
    assert handshake.leftover == b""


def test_client_keeps_leftover():
    handshake = ClientHandshake("h", 80)
    assert handshake.receive_data(response_for(handshake) + b"\x81\x02hi")
    assert handshake.leftover == b"\x81\x02hi"
    assert handshake.receive_data(b"more") is True
    assert handshake.leftover == b"\x81\x02himore"


def test_client_received_buffer_may_be_reused():
    handshake = ClientHandshake("h", 80)
    buffer = bytearray(response_for(handshake) + b"frame")
    assert handshake.receive_data(memoryview(buffer))
    buffer[:] = b"x" * len(buffer)
    assert handshake.leftover == b"frame"


def test_client_response_one_byte_at_a_time():
    handshake = ClientHandshake("h", 80, subprotocols=["chat"])
    data = response_for(handshake, "Sec-WebSocket-Protocol: chat") + b"\x81\x00"
    results = [handshake.receive_data(data[i : i + 1]) for i in range(len(data))]
    end = len(data) - 2
    assert results[: end - 1] == [False] * (end - 1)
    assert all(results[end - 1 :])
    assert handshake.subprotocol == "chat"
    assert handshake.leftover == b"\x81\x00"


def test_client_lenient_parsing():
    handshake = ClientHandshake("h", 80)
    data = (
        "HTTP/1.1 101 Switching Protocols\n"
        "upgrade:WebSocket\n"
        "CONNECTION: keep-alive\n"
        "connection:   upgrade  \t\n"
        f"sec-websocket-accept: {accept_key(handshake.key)}\n"
        "\n"
    ).encode()
    assert handshake.receive_data(data)
    assert handshake.response_headers["Connection"] == "keep-alive, upgrade"


def test_client_status_line_without_reason():
    handshake = ClientHandshake("h", 80)
    assert handshake.receive_data(response_for(handshake, status="101"))
    assert handshake.reason == ""


@pytest.mark.parametrize(
    "status, reason, extra, body",
    [
        ("404 Not Found", "Not Found", ["Content-Length: 9"], b"not found"),
        ("403 Forbidden", "Forbidden", [], b"no length given"),
        ("500", "", ["Content-Length: 0"], b""),
        ("200 OK", "OK", ["Content-Length: 2"], b"ok"),
    ],
)
def test_client_non_101_status(status, reason, extra, body):
    handshake = ClientHandshake("h", 80)
    head = ("\r\n".join([f"HTTP/1.1 {status}", *extra]) + "\r\n\r\n").encode()
    with pytest.raises(InvalidStatus) as info:
        handshake.receive_data(head + body)
    exc = info.value
    assert exc.status == int(status[:3])
    assert exc.reason == reason
    assert exc.body == body
    assert isinstance(exc.headers, Headers)
    assert isinstance(exc, InvalidHandshake)
    with pytest.raises(InvalidStatus):  # later calls raise the same error
        handshake.receive_data(b"x")


def test_client_non_101_waits_for_announced_body():
    handshake = ClientHandshake("h", 80)
    assert handshake.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\n01234") is False
    with pytest.raises(InvalidStatus) as info:
        handshake.receive_data(b"56789extra")
    assert info.value.body == b"0123456789"
    assert info.value.headers["content-length"] == "10"


def test_client_non_101_body_cut_short_by_eof():
    handshake = ClientHandshake("h", 80)
    assert handshake.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\n012") is False
    with pytest.raises(InvalidStatus) as info:
        handshake.receive_eof()
    assert info.value.body == b"012"


def test_client_non_101_huge_content_length_is_not_awaited():
    handshake = ClientHandshake("h", 80, max_header_size=100)
    with pytest.raises(InvalidStatus) as info:
        handshake.receive_data(b"HTTP/1.1 500 Oops\r\nContent-Length: 1000\r\n\r\npartial")
    assert info.value.body == b"partial"


def test_client_eof_before_response():
    handshake = ClientHandshake("h", 80)
    handshake.receive_data(b"HTTP/1.1 101 Swi")
    with pytest.raises(InvalidHandshake, match="closed"):
        handshake.receive_eof()


def test_client_eof_after_success_is_harmless():
    handshake = ClientHandshake("h", 80)
    handshake.receive_data(response_for(handshake))
    handshake.receive_eof()


def response_without(handshake, name):
    lines = response_for(handshake).decode().split("\r\n")
    return "\r\n".join(line for line in lines if not line.startswith(name)).encode()


@pytest.mark.parametrize(
    "build",
    [
        lambda hs: response_without(hs, "Upgrade"),
        lambda hs: response_without(hs, "Connection"),
        lambda hs: response_without(hs, "Sec-WebSocket-Accept"),
        lambda hs: response_for(hs).replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        lambda hs: response_for(hs).replace(b"Connection: Upgrade", b"Connection: close"),
        lambda hs: response_for(hs, accept="s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        lambda hs: response_for(hs, f"Sec-WebSocket-Accept: {accept_key(hs.key)}"),
        lambda hs: response_for(hs, "Sec-WebSocket-Extensions: permessage-deflate"),
        lambda hs: response_for(hs, "Sec-WebSocket-Protocol: chat"),
        lambda hs: response_for(hs, "Bad Header: x"),
        lambda hs: response_for(hs, "no colon"),
        lambda hs: response_for(hs, " folded: continuation"),
        lambda hs: response_for(hs, "X-Ctl: a\x01b"),
        lambda hs: response_for(hs, "X-CR: a\rb"),
    ],
    ids=[
        "no-upgrade",
        "no-connection",
        "no-accept",
        "wrong-upgrade",
        "wrong-connection",
        "wrong-accept",
        "two-accepts",
        "extensions",
        "unoffered-subprotocol",
        "space-in-name",
        "no-colon",
        "obs-fold",
        "control-char",
        "bare-cr",
    ],
)
def test_client_rejects_bad_response_headers(build):
    handshake = ClientHandshake("h", 80)
    with pytest.raises(InvalidHeader):
        handshake.receive_data(build(handshake))


@pytest.mark.parametrize("offered, answer", [(["chat"], "other"), (["a", "b"], "a, b")])
def test_client_rejects_wrong_subprotocol(offered, answer):
    handshake = ClientHandshake("h", 80, subprotocols=offered)
    with pytest.raises(InvalidHeader):
        handshake.receive_data(response_for(handshake, f"Sec-WebSocket-Protocol: {answer}"))


def test_client_accepts_no_subprotocol_when_some_offered():
    handshake = ClientHandshake("h", 80, subprotocols=["chat"])
    assert handshake.receive_data(response_for(handshake))
    assert handshake.subprotocol is None


@pytest.mark.parametrize(
    "status_line",
    [b"HTTP/1.0 101 Switching Protocols", b"HTTP/1.1 1O1 Switching", b"ICY 200 OK", b"HTTP/1.1", b"garbage", b""],
)
def test_client_rejects_bad_status_line(status_line):
    handshake = ClientHandshake("h", 80)
    data = response_for(handshake).replace(b"HTTP/1.1 101 Switching Protocols", status_line, 1)
    with pytest.raises(InvalidHandshake) as info:
        handshake.receive_data(data)
    assert not isinstance(info.value, InvalidStatus)


def test_client_rejects_oversized_head():
    handshake = ClientHandshake("h", 80, max_header_size=1000)
    assert handshake.receive_data(b"HTTP/1.1 101 OK\r\n") is False
    with pytest.raises(InvalidHandshake, match="max_header_size"):
        for _ in range(100):
            handshake.receive_data(b"X-Filler: " + b"x" * 50 + b"\r\n")
    with pytest.raises(InvalidHandshake, match="max_header_size"):
        handshake.receive_data(b"\r\n")


def test_client_rejects_oversized_head_arriving_at_once():
    handshake = ClientHandshake("h", 80, max_header_size=100)
    with pytest.raises(InvalidHandshake, match="max_header_size"):
        handshake.receive_data(response_for(handshake, "X-Filler: " + "x" * 100))


def test_client_head_exactly_at_limit():
    head_size = len(response_for(ClientHandshake("h", 80))) - 4  # the blank line does not count
    handshake = ClientHandshake("h", 80, max_header_size=head_size)
    assert handshake.receive_data(response_for(handshake))
    handshake = ClientHandshake("h", 80, max_header_size=head_size - 1)
    with pytest.raises(InvalidHandshake, match="max_header_size"):
        handshake.receive_data(response_for(handshake))


# Server -----------------------------------------------------------------------------


def client_request(*extra, key="dGhlIHNhbXBsZSBub25jZQ==", skip=(), first="GET /chat?room=1 HTTP/1.1"):
    lines = [
        first,
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines = [line for line in lines if not line.startswith(skip)] if skip else lines
    return ("\r\n".join(lines + list(extra)) + "\r\n\r\n").encode()


def test_server_accepts_rfc_example():
    handshake = ServerHandshake()
    assert handshake.receive_data(client_request("Origin: http://example.com"))
    assert handshake.path == "/chat?room=1"
    assert handshake.request_headers["origin"] == "http://example.com"
    assert handshake.key == "dGhlIHNhbXBsZSBub25jZQ=="
    assert handshake.response() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )


def test_server_response_extra_headers():
    handshake = ServerHandshake()
    handshake.receive_data(client_request())
    assert handshake.response({"Server": "wsfast"}).endswith(b"Server: wsfast\r\n\r\n")
    with pytest.raises(ValueError):
        handshake.response({"X": "a\r\nb"})


def test_server_response_before_request():
    with pytest.raises(RuntimeError):
        ServerHandshake().response()


def test_server_request_one_byte_at_a_time_with_leftover():
    handshake = ServerHandshake()
    data = client_request() + b"\x81\x80abcd"
    results = [handshake.receive_data(data[i : i + 1]) for i in range(len(data))]
    assert results.count(False) == len(data) - 7
    assert handshake.leftover == b"\x81\x80abcd"


def test_server_lenient_parsing():
    data = (
        b"GET / HTTP/1.1\n"
        b"host: h\n"
        b"upgrade: WebSocket\n"
        b"connection: keep-alive, Upgrade\n"
        b"sec-websocket-key:dGhlIHNhbXBsZSBub25jZQ==\n"
        b"sec-websocket-version:  13 \n"
        b"\n"
    )
    assert ServerHandshake().receive_data(data)


@pytest.mark.parametrize(
    "server, offered, chosen",
    [
        (["chat"], ["chat"], "chat"),
        (["b", "a"], ["a, b"], "a"),  # the client's order wins
        (["b"], ["a", "b"], "b"),  # repeated headers are combined
        (["x"], ["a, b"], None),
        ([], ["a"], None),
        (["a"], [], None),
    ],
)
def test_server_subprotocol_choice(server, offered, chosen):
    handshake = ServerHandshake(subprotocols=server)
    handshake.receive_data(client_request(*(f"Sec-WebSocket-Protocol: {value}" for value in offered)))
    assert handshake.subprotocol == chosen
    response = handshake.response()
    if chosen is None:
        assert b"Sec-WebSocket-Protocol" not in response
    else:
        assert f"Sec-WebSocket-Protocol: {chosen}\r\n".encode() in response


def test_server_handshake_with_client():
    client = ClientHandshake("localhost", 8765, "/feed", subprotocols=["v2", "v1"], headers={"X-Id": "7"})
    server = ServerHandshake(subprotocols=["v1", "v2"])
    assert server.receive_data(client.request())
    assert server.path == "/feed"
    assert server.request_headers["Host"] == "localhost:8765"
    assert server.request_headers["X-Id"] == "7"
    assert client.receive_data(server.response())
    assert client.subprotocol == server.subprotocol == "v2"


@pytest.mark.parametrize(
    "data, status",
    [
        (client_request(first="POST / HTTP/1.1"), 400),
        (client_request(first="GET / HTTP/1.0"), 400),
        (client_request(first="GET http://h/ HTTP/1.1"), 400),
        (client_request(first="GET  / HTTP/1.1"), 400),
        (client_request(first="GET /"), 400),
        (client_request(skip="Host"), 400),
        (client_request(skip="Upgrade"), 400),
        (client_request(skip="Connection"), 400),
        (client_request(skip="Sec-WebSocket-Key"), 400),
        (client_request(key="short"), 400),
        (client_request(key="AAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 400),  # 21 bytes
        (client_request(key="!!!!!!!!!!!!!!!!!!!!!!=="), 400),
        (client_request("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="), 400),
        (client_request(skip="Sec-WebSocket-Version"), 426),
        (client_request("Sec-WebSocket-Version: 8", skip="Sec-WebSocket-Version"), 426),
        (client_request("Sec-WebSocket-Version: 13"), 426),  # two versions: "13, 13"
        (client_request("Bad Header: x"), 400),
        (client_request("X: \x00"), 400),
    ],
)
def test_server_rejects_bad_requests(data, status):
    handshake = ServerHandshake()
    with pytest.raises(InvalidHandshake):
        handshake.receive_data(data)
    with pytest.raises(InvalidHandshake):  # later calls raise the same error
        handshake.receive_data(b"")
    response = handshake.reject()
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    assert (b"Sec-WebSocket-Version: 13\r\n" in response) == (status == 426)


def test_server_rejects_oversized_head():
    handshake = ServerHandshake(max_header_size=200)
    with pytest.raises(InvalidHandshake, match="max_header_size"):
        handshake.receive_data(client_request("X-Filler: " + "x" * 200))


def test_server_reject_response():
    handshake = ServerHandshake()
    response = handshake.reject(403, "Forbidden", b"go away")
    head, body = response.split(b"\r\n\r\n")
    assert body == b"go away"
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 403 Forbidden",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: 7",
        b"Connection: close",
    ]
    assert handshake.reject(404).startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert handshake.reject(499).startswith(b"HTTP/1.1 499 \r\n")
    assert handshake.reject(500, body="é").endswith(b"Content-Length: 2\r\nConnection: close\r\n\r\n\xc3\xa9")
    assert b"Retry-After: 5\r\n" in handshake.reject(503, headers={"Retry-After": "5"})
    for bad in ({"status": 99}, {"status": 600}, {"status": "404"}, {"status": 400, "reason": "a\r\nb"}):
        with pytest.raises(ValueError):
            handshake.reject(**bad)


def test_server_rejects_unsafe_subprotocol_names():
    with pytest.raises(ValueError):
        ServerHandshake(subprotocols=["a b"])
