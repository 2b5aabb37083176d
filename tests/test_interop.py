"""wsfast's client and server against an independent implementation: the ``websockets``
package (its threaded API), in both directions."""

from __future__ import annotations

import contextlib
import os
import threading

import pytest

from wsfast.client import connect
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosedError
from wsfast.protocol import State
from wsfast.server import serve

ws_server = pytest.importorskip("websockets.sync.server")
ws_client = pytest.importorskip("websockets.sync.client")
ws_exceptions = pytest.importorskip("websockets.exceptions")

TIMEOUT = 5


pytestmark = pytest.mark.usefixtures("no_hang")


@contextlib.contextmanager
def websockets_server(handler):
    """A websockets server running ``handler`` in a background thread; yields its URL."""
    server = ws_server.serve(handler, "127.0.0.1", 0, max_size=None, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    finally:
        server.shutdown()
        thread.join(TIMEOUT)


def websockets_echo(ws):
    for message in ws:
        ws.send(message)


# wsfast client, websockets server ----------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    ["text ✓", "", b"\x00binary\xff", b"", os.urandom(1 << 16), "€" * ((16 << 20) // 3), os.urandom(16 << 20)],
    ids=["text", "empty-text", "binary", "empty-binary", "64k", "16mib-text", "16mib-binary"],
)
def test_client_echo(codec, message):
    with websockets_server(websockets_echo) as url, connect(url, codec=codec) as ws:
        ws.send(message)
        assert ws.recv(timeout=TIMEOUT) == message


def test_client_fragments_reassembled_by_websockets(codec):
    message = "fragment me ✓ " * 300
    with websockets_server(websockets_echo) as url, connect(url, max_frame_size=100, codec=codec) as ws:
        ws.send(message)
        assert ws.recv(timeout=TIMEOUT) == message
        ws.send(message.encode())
        assert ws.recv(timeout=TIMEOUT) == message.encode()


def test_client_receives_fragments_from_websockets(codec):
    def handler(ws):
        ws.send(["first ", "second ", "third"])
        ws.send([b"\x01", b"\x02"])
        for _ in ws:  # until the client is done
            pass

    with websockets_server(handler) as url, connect(url, codec=codec) as ws:
        frames = [ws.recv_frame(timeout=TIMEOUT)]
        while not frames[-1].fin:
            frames.append(ws.recv_frame(timeout=TIMEOUT))
        assert len(frames) >= 3  # websockets may end with an empty final fragment
        assert [f.opcode for f in frames] == [Opcode.TEXT] + [Opcode.CONTINUATION] * (len(frames) - 1)
        assert b"".join(f.payload for f in frames) == b"first second third"

    with websockets_server(handler) as url, connect(url, codec=codec) as ws:
        assert ws.recv(timeout=TIMEOUT) == "first second third"
        assert ws.recv(timeout=TIMEOUT) == b"\x01\x02"
        ws.send("done")


def test_ping_pong_both_ways():
    def handler(ws):
        pong = ws.ping(b"from websockets")
        ws.send("pinged")
        ws.send(str(pong.wait(TIMEOUT)))
        ws.recv()

    with websockets_server(handler) as url, connect(url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "pinged"  # the ping before it was answered
        assert ws.recv(timeout=TIMEOUT) == "True"
        ws.send("done")

    with websockets_server(websockets_echo) as url, connect(url) as ws:
        ws.ping(b"from wsfast")
        pong = ws.recv_frame(timeout=TIMEOUT)
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"from wsfast")


def test_websockets_server_closes_with_a_code():
    def handler(ws):
        ws.send("bye soon")
        ws.close(4001, "custom reason")

    with websockets_server(handler) as url, connect(url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "bye soon"
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert (info.value.code, info.value.reason) == (4001, "custom reason")
        assert ws.state is State.CLOSED


def test_websockets_server_returns_normally():
    with websockets_server(lambda ws: ws.send("only one")) as url, connect(url) as ws:
        assert list(ws) == ["only one"]
        assert ws.close_code == 1000


def test_client_close_code_reaches_websockets():
    seen = []
    handled = threading.Event()

    def handler(ws):
        try:
            ws.recv()
        except ws_exceptions.ConnectionClosed as exc:
            seen.append((exc.rcvd.code, exc.rcvd.reason))
        handled.set()

    with websockets_server(handler) as url:
        ws = connect(url)
        ws.close(3003, "wsfast leaves")
        assert ws.state is State.CLOSED
        assert ws.close_code == 3003  # websockets echoes the code
        # The handler's thread may still be waking when the close handshake is over, and the
        # shutdown() of websockets 16 (the last for Python 3.10) does not wait for it.
        assert handled.wait(TIMEOUT)
    assert seen == [(3003, "wsfast leaves")]


# websockets client, wsfast server ----------------------------------------------------------------


@pytest.fixture
def wsfast_url(codec):
    with serve(codec=codec) as server:
        yield f"ws://127.0.0.1:{server.port}/"


@pytest.mark.parametrize(
    "message", ["text ✓", "", b"\x00\xff", os.urandom(1 << 20)], ids=["text", "empty", "binary", "1mib"]
)
def test_server_echo(wsfast_url, message):
    with ws_client.connect(wsfast_url, max_size=None) as ws:
        ws.send(message)
        assert ws.recv(TIMEOUT) == message


def test_server_reassembles_fragments_from_websockets(wsfast_url):
    with ws_client.connect(wsfast_url) as ws:
        ws.send(["frag", "mented ", "✓"])
        assert ws.recv(TIMEOUT) == "fragmented ✓"
        ws.send([b"a", b"b"])
        assert ws.recv(TIMEOUT) == b"ab"


def test_server_answers_websockets_pings(wsfast_url):
    with ws_client.connect(wsfast_url) as ws:
        assert ws.ping(b"hello").wait(TIMEOUT)


def test_server_sees_websockets_close_code():
    seen = []

    def handler(ws):
        for _ in ws:
            pass
        seen.append((ws.close_code, ws.close_reason))

    with serve(handler) as server, ws_client.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        ws.send("x")
        ws.close(1001, "tab closed")
    assert seen == [(1001, "tab closed")]


def test_server_shutdown_reaches_websockets_as_1001():
    server = serve().start()
    with ws_client.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        closer = threading.Thread(target=server.close)
        closer.start()
        with pytest.raises(ws_exceptions.ConnectionClosedOK) as info:
            ws.recv(TIMEOUT)
        assert info.value.rcvd.code == 1001
        closer.join(TIMEOUT)


def test_server_handler_close_code_reaches_websockets():
    with serve(lambda ws: ws.close(4002, "handler says no")) as server:
        with ws_client.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            with pytest.raises(ws_exceptions.ConnectionClosedError) as info:
                ws.recv(TIMEOUT)
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "handler says no")


def test_many_small_messages_both_ways(wsfast_url):
    # Hits frames that straddle socket reads on both sides.
    with ws_client.connect(wsfast_url) as ws:
        for i in range(2000):
            ws.send(f"message {i}")
        assert [ws.recv(TIMEOUT) for _ in range(2000)] == [f"message {i}" for i in range(2000)]
