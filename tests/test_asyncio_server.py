"""The asyncio server: handlers, the opening handshake and its refusals, TLS, limits,
shutdown, and clients that misbehave (raw sockets on 127.0.0.1, bounded in time)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as websockets_connect

import wsfast.client
from wsfast import _pure
from wsfast.asyncio import ServerConnection, connect, serve
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from wsfast.protocol import State

pytestmark = pytest.mark.usefixtures("no_hang")

TIMEOUT = 5
HERE = Path(__file__).resolve().parent
UPGRADE = (
    b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def run(coro, timeout=20):
    """Run a test coroutine in a fresh event loop, failing it after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def elapsed(start: float) -> float:
    return time.monotonic() - start


def masked(opcode, payload=b"") -> bytes:
    return _pure.encode_frame(opcode, payload, mask_key=b"\x01\x02\x03\x04")


async def raw_client(port: int, request: bytes = UPGRADE):
    """A raw connection that sent ``request``; returns (reader, writer, the answer's head)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    return reader, writer, head


async def read_all(reader) -> bytes:
    """Everything until the end of the connection, a reset included."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            data += chunk
    return data


def receive_until_closed(sock: socket.socket) -> bytes:
    """What a blocking socket receives until the peer closes or resets it; then closes it."""
    data = b""
    with sock, contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.fixture
def problems(caplog):
    """What the server logged at WARNING or above, and what reached the event loop's
    exception handler (call it inside the loop first: ``watch = problems()``)."""
    caplog.set_level(logging.DEBUG, logger="wsfast")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    handled = []

    def watch():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: handled.append(context))
        return lambda: [r for r in caplog.records if r.levelno >= logging.WARNING] + handled

    return watch


# Messages and handlers -------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
def test_echo(codec, compression):
    messages = ["hello", "ünïcødé ✓", "", b"\x00\xff", b"", os.urandom(300_000), "x" * 100_000]

    async def main():
        async with serve(codec=codec, compression=compression) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect(url, codec=codec, compression=compression) as ws:
                for message in messages:
                    await ws.send(message)
                    assert await ws.recv(timeout=TIMEOUT) == message
                assert (ws.deflate_params is not None) == (compression is not None)

    run(main())


def test_the_blocking_client_and_websockets_interoperate():
    async def main():
        async with serve() as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with websockets_connect(url) as ws:
                await ws.send("from websockets")
                assert await ws.recv() == "from websockets"
                await ws.send(b"\x01" * 70_000)
                assert await ws.recv() == b"\x01" * 70_000

            def blocking():
                with wsfast.client.connect(url, proxy=None) as ws:
                    ws.send("from the blocking client")
                    return ws.recv(timeout=TIMEOUT)

            assert await asyncio.to_thread(blocking) == "from the blocking client"

    run(main())


def test_handler_sees_the_request_and_the_agreement():
    seen = {}

    async def handler(ws: ServerConnection):
        seen.update(
            path=ws.path,
            token=ws.request_headers["X-Token"],
            subprotocol=ws.subprotocol,
            state=ws.state,
            remote=ws.remote_address[0],
        )
        await ws.send(ws.subprotocol or "none")

    async def main():
        async with serve(handler, subprotocols=["b", "a"]) as server:
            url = f"ws://127.0.0.1:{server.port}/feed?x=1"
            async with connect(url, subprotocols=["a", "b"], headers={"X-Token": "42"}) as ws:
                assert ws.subprotocol == "a"  # the first of the client's that the server speaks
                assert await ws.recv(timeout=TIMEOUT) == "a"

    run(main())
    assert seen == {"path": "/feed?x=1", "token": "42", "subprotocol": "a", "state": State.OPEN, "remote": "127.0.0.1"}


def test_handler_returning_closes_with_1000():
    async def handler(ws):
        await ws.send("bye")

    async def main():
        async with serve(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            assert [message async for message in ws] == ["bye"]
            assert ws.close_code == 1000

    run(main())


def test_handler_raising_closes_with_1011_and_is_logged(caplog):
    async def handler(ws):
        raise KeyError("bug")

    async def main():
        async with serve(handler) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv(timeout=TIMEOUT)
            assert info.value.code == 1011

    run(main())
    failures = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
    assert len(failures) == 1 and failures[0].exc_info[0] is KeyError


def test_max_frame_size_splits_the_servers_messages():
    async def main():
        async with serve(max_frame_size=7) as server:
            reader, writer, head = await raw_client(server.port)
            assert head.startswith(b"HTTP/1.1 101 ")
            writer.write(masked(Opcode.TEXT, b"fragmented by the server"))
            parser = _pure.FrameParser(client=True)
            frames = []
            while not frames or not frames[-1].fin:
                frames += parser.feed(await reader.read(4096))
            assert [len(f.payload) for f in frames] == [7, 7, 7, 3]
            writer.close()

    run(main())


def test_server_pings_and_measures_latency():
    latencies = []

    async def handler(ws):
        await asyncio.sleep(0.4)
        latencies.append(ws.latency)

    async def main():
        async with serve(handler, ping_interval=0.1) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.wait_closed()

    run(main())
    assert latencies[0] is not None and 0 <= latencies[0] < 1


def test_a_client_that_never_answers_pings_is_dropped_with_1011():
    async def main():
        async with serve(ping_interval=0.1, ping_timeout=0.3) as server:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
            sock.sendall(UPGRADE)
            start = time.monotonic()
            # Read by hand: a stream reader would drop what came before the reset.
            data = await asyncio.to_thread(receive_until_closed, sock)  # pings, the close, the end
            assert elapsed(start) < 2
            data = data.split(b"\r\n\r\n", 1)[1]
            frames = _pure.FrameParser(client=True).feed(data)
            assert frames[0].opcode == Opcode.PING
            assert (frames[-1].opcode, frames[-1].close_code, frames[-1].text) == (
                Opcode.CLOSE,
                1011,
                "keepalive ping timeout",
            )

    run(main())


def test_send_timeout_drops_a_client_that_reads_nothing():
    outcome = []

    async def flood(ws):
        try:
            while True:
                await ws.send(bytes(1 << 20))
        except TimeoutError:
            outcome.append(ws.state)

    async def main():
        async with serve(flood, send_timeout=0.3, compression=None) as server:
            _, writer, _ = await raw_client(server.port)
            start = time.monotonic()
            while not outcome:
                assert elapsed(start) < 3
                await asyncio.sleep(0.05)
            writer.close()

    run(main())
    assert outcome == [State.CLOSED]


# The opening handshake ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_head, status",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", b"400"),
        (UPGRADE.replace(b"Version: 13", b"Version: 8"), b"426"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100) + b"\r\n\r\n", b"400"),
    ],
    ids=["not-upgrade", "post", "version", "tls-to-plain"],
)
def test_bad_requests_are_refused_and_logged_once(problems, caplog, request_head, status):
    async def main():
        watch = problems()
        async with serve() as server:
            reader, _, head = await raw_client(server.port, request_head)
            assert head.startswith(b"HTTP/1.1 " + status)
            await read_all(reader)  # then the server closes
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:  # still serving
                await ws.send("ok")
                assert await ws.recv(timeout=TIMEOUT) == "ok"
        return watch()

    assert run(main()) == []
    assert len([r for r in caplog.records if "bad handshake request" in r.getMessage()]) == 1


def test_open_timeout_drops_a_client_that_sends_nothing(caplog):
    caplog.set_level(logging.DEBUG, logger="wsfast")

    async def main():
        async with serve(open_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(UPGRADE[:20])  # and nothing more
            start = time.monotonic()
            assert await read_all(reader) == b""
            assert 0.15 <= elapsed(start) < 2  # the server's clock started at the accept

    run(main())
    assert len([r for r in caplog.records if "no opening handshake" in r.getMessage()]) == 1


def test_clients_resetting_right_after_the_101_are_not_tracebacks(problems):
    async def main():
        watch = problems()
        async with serve() as server:
            for _ in range(20):
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.sendall(UPGRADE + masked(Opcode.TEXT, b"and gone"))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()  # RST
            await asyncio.sleep(0.2)
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:  # still serving
                await ws.send("ok")
                assert await ws.recv(timeout=TIMEOUT) == "ok"
        return watch()

    assert run(main()) == []


def test_max_connections_answers_503_and_keeps_serving(caplog):
    caplog.set_level(logging.INFO, logger="wsfast")

    async def main():
        async with serve(max_connections=2) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            first, second = await connect(url), await connect(url)
            with pytest.raises(InvalidStatus) as info:
                await connect(url)
            assert info.value.status == 503 and info.value.headers["Retry-After"] == "1"
            await first.close()
            await asyncio.sleep(0.05)  # the handler's task ends
            async with connect(url) as third:
                await third.send("room again")
                assert await third.recv(timeout=TIMEOUT) == "room again"
            await second.close()

    run(main())
    assert len([r for r in caplog.records if "max_connections (2) reached" in r.getMessage()]) == 1


# TLS ---------------------------------------------------------------------------------------


def test_tls(tls, codec):
    server_context, client_context = tls

    async def main():
        async with serve(ssl=server_context, codec=codec) as server:
            async with connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context, codec=codec) as ws:
                await ws.send("secure")
                assert await ws.recv(timeout=TIMEOUT) == "secure"
                big = os.urandom(3 << 20)
                await ws.send(big)
                assert await ws.recv(timeout=TIMEOUT) == big
                assert "trustme" in ws.certificate.issuer

    run(main())


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b""])
def test_failed_tls_handshakes_disturb_no_one(tls, problems, garbage):
    server_context, client_context = tls

    async def main():
        watch = problems()
        async with serve(ssl=server_context, open_timeout=1) as server:
            url = f"wss://127.0.0.1:{server.port}/"
            async with connect(url, ssl=client_context) as ws:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(garbage)
                writer.write_eof()
                answer = await read_all(reader)
                assert answer == b"" or answer[:5] == b"\x15\x03\x03\x00\x02"  # nothing, or a fatal alert
                await ws.send("unharmed")
                assert await ws.recv(timeout=TIMEOUT) == "unharmed"
        return watch()

    assert run(main()) == []


def test_a_client_stuck_before_tls_is_dropped_after_open_timeout(tls):
    server_context, _ = tls

    async def main():
        async with serve(ssl=server_context, open_timeout=0.2) as server:
            reader, _ = await asyncio.open_connection("127.0.0.1", server.port)
            start = time.monotonic()
            assert await read_all(reader) == b""
            assert 0.15 <= elapsed(start) < 2  # the server's clock started at the accept

    run(main())


# Shutting down -------------------------------------------------------------------------------


def test_serve_forever_returns_after_every_client_got_1001(codec):
    async def main():
        server = await serve(codec=codec, close_timeout=2)
        url = f"ws://127.0.0.1:{server.port}/"
        clients = [await connect(url, codec=codec) for _ in range(3)]
        got_1001 = []

        async def wait_for_1001(ws):
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv(timeout=TIMEOUT)
            assert info.value.code == 1001
            got_1001.append(time.monotonic())

        waiting = [asyncio.create_task(wait_for_1001(ws)) for ws in clients]
        serving = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.1)
        server.close()
        await serving
        returned = time.monotonic()
        await asyncio.gather(*waiting)
        assert len(got_1001) == 3 and max(got_1001) <= returned
        await server.wait_closed()
        with pytest.raises(OSError):
            await connect(url)  # no longer listening

    run(main())


def test_close_returns_while_a_handler_is_stuck_sending():
    async def flood(ws):
        while True:
            await ws.send(bytes(8 << 20))

    async def main():
        server = await serve(flood, close_timeout=0.5, send_timeout=None, compression=None)
        _, writer, _ = await raw_client(server.port)  # and reads nothing more
        await asyncio.sleep(0.3)  # the handler is stuck in send
        start = time.monotonic()
        server.close()
        await server.wait_closed()
        assert elapsed(start) < 2
        writer.close()

    run(main())


def test_close_cancels_a_handler_that_does_not_end():
    cancelled = []

    async def sleeper(ws):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        server = await serve(sleeper, close_timeout=0.3)
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            start = time.monotonic()
            server.close()
            await server.wait_closed()
            assert elapsed(start) < 2
            assert ws.close_code == 1001  # the client answered: only the handler lagged

    run(main())
    assert cancelled == [True]


def test_close_from_a_signal_handler_stops_serve_forever():
    async def main():
        server = await serve(close_timeout=2)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, server.close)
        try:
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                loop.call_later(0.2, os.kill, os.getpid(), signal.SIGUSR1)
                start = time.monotonic()
                await server.serve_forever()
                assert elapsed(start) < 3
                with pytest.raises(ConnectionClosedOK) as info:
                    await ws.recv(timeout=TIMEOUT)
                assert info.value.code == 1001
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    run(main())


def test_cancelling_serve_forever_closes_the_server():
    async def main():
        server = serve(close_timeout=1)
        serving = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.1)
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
            with pytest.raises(ConnectionClosedOK):
                await ws.recv(timeout=TIMEOUT)

    run(main())


def test_a_closed_server_does_not_start_again():
    async def main():
        server = await serve()
        server.close()
        await server.wait_closed()
        server.close()  # again: nothing
        with pytest.raises(RuntimeError):
            await server.serve_forever()

    run(main())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_echo_command_stops_on_a_signal(signum):
    process = subprocess.Popen(
        [sys.executable, "-m", "wsfast", "echo", "--asyncio", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("echo server listening on ws://127.0.0.1:")
        port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
        with wsfast.client.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            ws.send("before")
            assert ws.recv(timeout=TIMEOUT) == "before"
            process.send_signal(signum)
            with pytest.raises(ConnectionClosedOK) as info:
                ws.recv(timeout=TIMEOUT)
            assert info.value.code == 1001
        assert process.wait(TIMEOUT) == 0
        assert process.stderr.read() == ""
    finally:
        process.kill()
        process.wait()


def test_bad_options():
    async def main():
        for options in ({"max_connections": 0}, {"ping_interval": 0}, {"max_message_size": -1}, {"compression": "lz4"}):
            with pytest.raises(ValueError):
                serve(**options)

    run(main())


# Many idle connections ----------------------------------------------------------------------


def idle_connections(count: int) -> dict:
    """Run tests/idle_connections.py; skip when the open-file limit is too low."""
    if sys.platform != "linux":
        pytest.skip("measures memory through /proc")
    result = subprocess.run(
        [sys.executable, str(HERE / "idle_connections.py"), str(count)], capture_output=True, text=True, timeout=50
    )
    if result.returncode == 3:
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    print(measured)
    assert measured["server_exit_status"] == 0
    return measured


def test_memory_per_idle_connection():
    measured = idle_connections(1000)
    assert measured["bytes_per_connection"] < 16_000


@pytest.mark.skipif(not os.environ.get("WSFAST_MANY_CONNECTIONS"), reason="set WSFAST_MANY_CONNECTIONS=10000 to run")
def test_many_idle_connections():
    """10,000 idle clients (``WSFAST_MANY_CONNECTIONS``), opened in seconds, held in a
    little memory each."""
    measured = idle_connections(int(os.environ["WSFAST_MANY_CONNECTIONS"]))
    assert measured["bytes_per_connection"] < 16_000
    assert measured["seconds_to_open"] < 30
