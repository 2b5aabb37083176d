"""permessage-deflate end to end: wsfast's clients and server with each other, with the
``websockets`` package, and with a raw-socket server that sends exactly the bytes a test needs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import threading
import zlib

import pytest

from wsfast import DeflateOptions, _pure
from wsfast import asyncio as wsfast_asyncio
from wsfast.client import connect
from wsfast.deflate import DeflateParams
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosedError, InvalidHeader, PayloadTooBig
from wsfast.server import serve

TIMEOUT = 5  # seconds any single wait in these tests may take

# Compressible, but not trivially: what a JSON feed looks like.
TEXT = "".join(f'{{"symbol": "X{i % 7}", "price": {i * 37 % 1000}.{i % 10}, "size": {i}}}\n' for i in range(400))
MESSAGES = [TEXT, TEXT.encode(), "", b"", "ünïcødé ✓ 🚀", bytes(range(256)) * 300]


pytestmark = pytest.mark.usefixtures("no_hang")


class Recorder:
    """An echo handler that remembers the connections it served."""

    def __init__(self) -> None:
        self.connections = []

    def __call__(self, ws) -> None:
        self.connections.append(ws)
        for message in ws:
            ws.send(message)


def echo_all(ws, messages=MESSAGES) -> None:
    for message in messages:
        ws.send(message)
        assert ws.recv(timeout=TIMEOUT) == message


# wsfast with wsfast ----------------------------------------------------------------------------


def test_compressed_echo(codec):
    handler = Recorder()
    with serve(handler, codec=codec) as server, connect(f"ws://127.0.0.1:{server.port}/", codec=codec) as ws:
        assert ws.deflate_params == DeflateParams()
        echo_all(ws)
        assert handler.connections[0].deflate_params == DeflateParams()


def test_compressed_fragmented_echo(codec):
    with serve(codec=codec, max_frame_size=100) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", codec=codec, max_frame_size=7) as ws:
            assert ws.deflate_params is not None
            echo_all(ws)


@pytest.mark.parametrize("side", ["client", "server"])
def test_compression_off_on_either_side_falls_back_to_plain_messages(codec, side):
    handler = Recorder()
    server_compression = None if side == "server" else "deflate"
    client_compression = None if side == "client" else "deflate"
    with serve(handler, codec=codec, compression=server_compression) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with connect(url, codec=codec, compression=client_compression) as ws:
            assert ws.deflate_params is None
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            echo_all(ws)
        assert handler.connections[0].deflate_params is None


@pytest.mark.parametrize(
    ("client_options", "server_options", "agreed", "server_agreed"),
    [
        (
            DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
            DeflateOptions(),
            DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
            None,
        ),
        (
            # The client keeps its promise of 9 bits; the server need not answer it.
            DeflateOptions(server_max_window_bits=10, client_max_window_bits=9),
            DeflateOptions(),
            DeflateParams(server_max_window_bits=10, client_max_window_bits=9),
            DeflateParams(server_max_window_bits=10),
        ),
        (
            DeflateOptions(),
            DeflateOptions(server_no_context_takeover=True, server_max_window_bits=8, client_max_window_bits=8),
            DeflateParams(server_no_context_takeover=True, server_max_window_bits=8, client_max_window_bits=8),
            None,
        ),
        (
            DeflateOptions(level=1, min_size=100),
            DeflateOptions(client_no_context_takeover=True, level=9, mem_level=1),
            DeflateParams(client_no_context_takeover=True),
            None,
        ),
    ],
    ids=["no-context-takeover", "client-limits-windows", "server-limits-windows", "local-tuning"],
)
def test_negotiated_parameters(codec, client_options, server_options, agreed, server_agreed):
    handler = Recorder()
    with serve(handler, codec=codec, compression=server_options) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", codec=codec, compression=client_options) as ws:
            assert ws.deflate_params == agreed
            # Repeats exercise the context kept, or dropped, between messages.
            echo_all(ws, MESSAGES * 3)
        assert handler.connections[0].deflate_params == (server_agreed or agreed)


def test_recv_frame_returns_decompressed_payloads(codec):
    with serve(codec=codec, max_frame_size=100) as server, connect(f"ws://127.0.0.1:{server.port}/", codec=codec) as ws:
        ws.send(TEXT)
        assert ws.recv(timeout=TIMEOUT) == TEXT
        ws.ping(b"p")  # the pong is not mistaken for the message before it
        pong = ws.recv_frame(timeout=TIMEOUT)
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"p")
        ws.send(TEXT)
        frames = [ws.recv_frame(timeout=TIMEOUT)]
        while not frames[-1].fin:
            frames.append(ws.recv_frame(timeout=TIMEOUT))
    assert b"".join(frame.payload for frame in frames) == TEXT.encode()
    assert frames[0].opcode == Opcode.TEXT and not any(frame.rsv1 for frame in frames)


def test_invalid_compression_arguments():
    for bad in ("gzip", True, {"level": 1}):
        with pytest.raises(ValueError, match="compression"):
            connect("ws://127.0.0.1:1/", compression=bad)
        with pytest.raises(ValueError, match="compression"):
            serve(compression=bad)
        with pytest.raises(ValueError, match="compression"):
            wsfast_asyncio.connect("ws://127.0.0.1:1/", compression=bad)


# A raw-socket server ---------------------------------------------------------------------------


def accept_response(request: bytes, extensions: str | None) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    head += b"Sec-WebSocket-Accept: " + accept + b"\r\n"
    if extensions is not None:
        head += f"Sec-WebSocket-Extensions: {extensions}\r\n".encode()
    return head + b"\r\n"


class RawServer:
    """Accepts one connection, answers the upgrade (with ``extensions`` as the
    Sec-WebSocket-Extensions answer), then runs ``script(sock, request)``."""

    def __init__(self, script, extensions: str | None = "permessage-deflate") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.script = script
        self.extensions = extensions
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
            with sock:
                sock.settimeout(TIMEOUT)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += sock.recv(4096)
                sock.sendall(accept_response(request, self.extensions))
                self.script(sock, request)
        except BaseException as exc:  # noqa: BLE001 - reported by __exit__
            self.error = exc

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.thread.join(TIMEOUT)
        self.listener.close()
        if self.error is not None:
            raise self.error


def read_frames(sock, count: int) -> list:
    parser = _pure.FrameParser(client=False, max_size=None, allowed_rsv=4)
    frames: list = []
    while len(frames) < count:
        data = sock.recv(65536)
        if not data:
            break
        frames += parser.feed(data)
    return frames


def compressed(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_client_offers_and_compresses_on_the_wire(codec):
    seen = {}

    def script(sock, request):
        seen["request"] = request
        seen["frame"] = read_frames(sock, 1)[0]
        sock.sendall(_pure.encode_frame(Opcode.TEXT, compressed(TEXT.encode()), rsv=4))
        read_frames(sock, 1)  # the client's close

    with RawServer(script) as server:
        with connect(server.url, codec=codec) as ws:
            ws.send(TEXT)
            assert ws.recv(timeout=TIMEOUT) == TEXT
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" in seen["request"]
    frame = seen["frame"]
    assert frame.opcode == Opcode.TEXT and frame.rsv1
    assert len(frame.payload) < len(TEXT) // 4
    assert zlib.decompressobj(-15).decompress(frame.payload + b"\x00\x00\xff\xff") == TEXT.encode()


def test_client_without_compression_offers_nothing_and_rejects_an_answer(codec):
    seen = {}

    def script(sock, request):
        seen["request"] = request

    with RawServer(script) as server:
        with pytest.raises(InvalidHeader, match="not offered"):
            connect(server.url, codec=codec, compression=None, timeout=TIMEOUT)
    assert b"Sec-WebSocket-Extensions" not in seen["request"]


def test_invalid_answer_fails_the_handshake(codec):
    with RawServer(lambda sock, request: None, extensions="permessage-deflate; server_max_window_bits=7") as server:
        with pytest.raises(InvalidHeader, match="server_max_window_bits"):
            connect(server.url, codec=codec, timeout=TIMEOUT)


def test_decompression_bomb_fails_with_1009(codec):
    bomb = compressed(bytes(16 * 1024 * 1024))
    assert len(bomb) < 20_000
    seen = {}

    def script(sock, request):
        sock.sendall(_pure.encode_frame(Opcode.BINARY, bomb, rsv=4))
        seen["close"] = read_frames(sock, 1)[0]

    with RawServer(script) as server:
        with connect(server.url, codec=codec, max_message_size=1024 * 1024) as ws:
            with pytest.raises(ConnectionClosedError) as caught:
                ws.recv(timeout=TIMEOUT)
    assert isinstance(caught.value.__cause__, PayloadTooBig)
    assert caught.value.sent_code == 1009
    assert seen["close"].opcode == Opcode.CLOSE and seen["close"].close_code == 1009


def test_invalid_compressed_data_fails_with_1007(codec):
    seen = {}

    def script(sock, request):
        sock.sendall(_pure.encode_frame(Opcode.BINARY, b"\xff\xff\xff\xff", rsv=4))
        seen["close"] = read_frames(sock, 1)[0]

    with RawServer(script) as server:
        with connect(server.url, codec=codec) as ws:
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=TIMEOUT)
    assert seen["close"].close_code == 1007


# The websockets package ------------------------------------------------------------------------


def test_client_with_websockets_server(codec):
    sync_server = pytest.importorskip("websockets.sync.server")

    def handler(connection):
        for message in connection:
            connection.send(message)

    with sync_server.serve(handler, "127.0.0.1", 0, compression="deflate") as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with connect(f"ws://127.0.0.1:{server.socket.getsockname()[1]}/", codec=codec) as ws:
                assert ws.deflate_params is not None
                echo_all(ws, MESSAGES * 2)
            options = DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True)
            url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
            with connect(url, codec=codec, compression=options) as ws:
                assert ws.deflate_params.server_no_context_takeover
                echo_all(ws, MESSAGES * 2)
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


def test_server_with_websockets_client(codec):
    sync_client = pytest.importorskip("websockets.sync.client")
    handler = Recorder()
    with serve(handler, codec=codec) as server:
        with sync_client.connect(f"ws://127.0.0.1:{server.port}/", open_timeout=TIMEOUT) as ws:
            assert ws.protocol.extensions  # websockets offers permessage-deflate by default
            for message in MESSAGES * 2:
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message
    assert handler.connections[0].deflate_params is not None


# asyncio ---------------------------------------------------------------------------------------


def test_asyncio_client(codec):
    handler = Recorder()

    async def main(url):
        async with wsfast_asyncio.connect(url, codec=codec) as ws:
            assert ws.deflate_params == DeflateParams()
            for message in MESSAGES:
                await ws.send(message)
                assert await ws.recv(timeout=TIMEOUT) == message
        async with wsfast_asyncio.connect(url, codec=codec, compression=None) as ws:
            assert ws.deflate_params is None
            await ws.send(TEXT)
            assert await ws.recv(timeout=TIMEOUT) == TEXT

    with serve(handler, codec=codec) as server:
        asyncio.run(asyncio.wait_for(main(f"ws://127.0.0.1:{server.port}/"), 30))
    assert [ws.deflate_params is not None for ws in handler.connections] == [True, False]


def test_asyncio_client_decompression_bomb_fails_with_1009(codec):
    bomb = compressed(bytes(16 * 1024 * 1024))
    seen = {}

    def script(sock, request):
        sock.sendall(_pure.encode_frame(Opcode.BINARY, bomb, rsv=4))
        seen["close"] = read_frames(sock, 1)[0]

    async def main(url):
        async with wsfast_asyncio.connect(url, codec=codec, max_message_size=1024 * 1024) as ws:
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.recv(timeout=TIMEOUT)
            assert isinstance(caught.value.__cause__, PayloadTooBig)

    with RawServer(script) as server:
        asyncio.run(asyncio.wait_for(main(server.url), 30))
    assert seen["close"].close_code == 1009
