"""The threaded server: handshakes, handlers, closing, and raw clients that misbehave."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from wsfast import _pure
from wsfast.client import connect
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from wsfast.protocol import State
from wsfast.server import Server, ServerConnection, serve

TIMEOUT = 5

UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


pytestmark = pytest.mark.usefixtures("no_hang")


def raw_client(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    return sock


def read_until_eof(sock) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def masked(opcode, payload=b"", fin=True) -> bytes:
    return _pure.encode_frame(opcode, payload, fin=fin, mask_key=b"\x01\x02\x03\x04")


def handshake_then_frames(sock) -> list:
    """Read the 101 response and every frame after it until EOF."""
    data = read_until_eof(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    return _pure.FrameParser(client=True).feed(rest)


# Handshake ------------------------------------------------------------------------------------


def test_valid_upgrade_gets_101_with_the_rfc_accept_key():
    with serve() as server, raw_client(server) as sock:
        sock.sendall(UPGRADE)
        response = sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response  # RFC 6455 §1.3


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", b"400"),
        (UPGRADE.replace(b"Version: 13", b"Version: 8"), b"426"),
        (UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"), b"400"),
        (UPGRADE.replace(b"GET", b"POST"), b"400"),
        (b"\x16\x03\x01 not http at all\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", b"400"),
    ],
    ids=["plain-http", "version", "key", "post", "garbage", "oversized"],
)
def test_bad_requests_are_rejected_and_closed(request_bytes, status):
    with serve() as server, raw_client(server) as sock:
        try:
            sock.sendall(request_bytes)
        except OSError:
            pass  # the server may reject an oversized head before reading all of it
        response = read_until_eof(sock)
    assert response.split(b" ", 2)[1] == status
    if status == b"426":
        assert b"Sec-WebSocket-Version: 13\r\n" in response


def test_handshake_timeout_drops_silent_clients():
    with serve(open_timeout=0.2) as server, raw_client(server) as sock:
        sock.sendall(UPGRADE[:20])
        assert read_until_eof(sock) == b""


def test_frames_sent_with_the_upgrade_are_kept():
    received = []
    with serve(lambda ws: received.extend(ws)) as server, raw_client(server) as sock:
        sock.sendall(UPGRADE + masked(Opcode.TEXT, b"eager") + masked(Opcode.CLOSE, b"\x03\xe8"))
        frames = handshake_then_frames(sock)
    assert received == ["eager"]
    # The close frame came in the same read: the echo may not follow it (RFC 6455 §5.5.1).
    assert [(f.opcode, f.payload) for f in frames] == [(Opcode.CLOSE, b"\x03\xe8")]


# Closing --------------------------------------------------------------------------------------


def test_server_closes_tcp_after_the_close_handshake():
    with serve() as server, raw_client(server) as sock:
        sock.sendall(UPGRADE + masked(Opcode.CLOSE, b"\x0f\xa0bye"))
        frames = handshake_then_frames(sock)  # returns only because the server ended TCP
    assert len(frames) == 1 and frames[0].close_code == 4000


def test_protocol_error_from_a_client_closes_with_1002():
    with serve() as server, raw_client(server) as sock:
        sock.sendall(UPGRADE + _pure.encode_frame(Opcode.TEXT, b"unmasked"))
        frames = handshake_then_frames(sock)
    assert [f.close_code for f in frames] == [1002]


def test_handler_return_closes_with_1000():
    with serve(lambda ws: ws.send("only this")) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        assert list(ws) == ["only this"]
        assert ws.close_code == 1000


def test_handler_exception_closes_with_1011(caplog):
    def handler(ws):
        raise RuntimeError("boom")

    with serve(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
    assert info.value.code == 1011
    assert "connection handler failed" in caplog.text


def test_server_close_sends_1001_to_every_client():
    server = serve().start()
    clients = [connect(f"ws://127.0.0.1:{server.port}/") for _ in range(3)]
    for ws in clients:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == "hi"
    # The clients answer the close frame only when they read: close in the background.
    closer = threading.Thread(target=server.close)
    closer.start()
    for ws in clients:
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1001
        assert ws.state is State.CLOSED
    closer.join(TIMEOUT)
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{server.port}/", timeout=TIMEOUT)


def test_server_close_drops_handlers_that_do_not_read():
    release = threading.Event()

    def busy(ws):
        release.wait(TIMEOUT)

    server = serve(busy, close_timeout=0.2).start()
    ws = connect(f"ws://127.0.0.1:{server.port}/")
    time.sleep(0.1)
    server.close()  # returns after close_timeout although the handler is still busy
    release.set()
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=TIMEOUT)


# Handlers and options -------------------------------------------------------------------------


def test_handler_gets_a_server_connection():
    seen = []

    def handler(ws):
        seen.append(ws)
        ws.send(f"{ws.path} {ws.request_headers['X-Name']} {ws.subprotocol}")

    with serve(handler, subprotocols=["v2"]) as server:
        with connect(
            f"ws://127.0.0.1:{server.port}/room/1?x=y", headers=[("X-Name", "ada")], subprotocols=["v2"]
        ) as ws:
            assert ws.recv(timeout=TIMEOUT) == "/room/1?x=y ada v2"
    assert isinstance(seen[0], ServerConnection)
    assert seen[0].remote_address[0] == "127.0.0.1"


def test_many_clients_at_once(codec):
    with serve(codec=codec) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        results = []

        def client(n):
            with connect(url, codec=codec) as ws:
                for i in range(50):
                    ws.send(f"{n}-{i}")
                results.append([ws.recv(timeout=TIMEOUT) for _ in range(50)] == [f"{n}-{i}" for i in range(50)])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
    assert results == [True] * 10


def test_max_message_size_closes_with_1009():
    with serve(max_message_size=100) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        ws.send(b"x" * 100)
        assert ws.recv(timeout=TIMEOUT) == b"x" * 100
        ws.send(b"x" * 101)
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert info.value.code == 1009


def test_max_frame_size_fragments_the_echo():
    with serve(max_frame_size=10, compression=None) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        ws.send("a" * 25)
        frames = [ws.recv_frame(timeout=TIMEOUT) for _ in range(3)]
    assert [(f.opcode, f.fin, len(f)) for f in frames] == [(1, False, 10), (0, False, 10), (0, True, 5)]


def test_serve_forever_and_close_from_another_thread():
    server = serve()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    with connect(f"ws://127.0.0.1:{server.port}/") as ws:
        ws.send("x")
        assert ws.recv(timeout=TIMEOUT) == "x"
    server.close()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        server.serve_forever()


def test_serve_forever_waits_for_a_background_server():
    server = serve().start()
    waiter = threading.Thread(target=server.serve_forever)
    waiter.start()
    time.sleep(0.05)
    assert waiter.is_alive()
    server.close()
    waiter.join(TIMEOUT)
    assert not waiter.is_alive()


def test_close_without_serving_and_twice():
    server = serve()
    assert server.port > 0
    assert server.address == ("127.0.0.1", server.port)
    server.close()
    server.close()


def test_bad_options():
    with pytest.raises(ValueError):
        serve(max_message_size=-1)
    with pytest.raises(ValueError):
        serve(max_frame_size=0)
