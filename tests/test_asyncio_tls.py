"""wss:// for the asyncio client: wsfast runs TLS itself (wsfast.asyncio._tls) over the
loop's TCP transport. Frames cut across TLS records, big messages and floods arrive whole
and in order; a peer that is not TLS, goes silent during the TLS handshake, corrupts a
record, sends close_notify or drops TCP ends the connection with a clear error, within
bounds; close() sends close_notify. On asyncio's loop and uvloop's, over raw TLS sockets
on 127.0.0.1 (tests/peers.py)."""

import asyncio
import os
import socket
import ssl
import struct
import time

import pytest

import wsfast.asyncio
from peers import RawServer, close_politely, elapsed, frame, stop_reading
from test_asyncio_client import wait_until
from test_asyncio_send_path import LOOPS, run
from wsfast import Opcode
from wsfast.exceptions import ConnectionClosedError

pytestmark = pytest.mark.usefixtures("no_hang")


def wss(server):
    return server.url.replace("ws://", "wss://")


async def connect(server, client_context, **options):
    return await wsfast.asyncio.connect(wss(server), ssl=client_context, proxy=None, compression=None, **options)


async def closed_by_the_loop():
    """Let the loop close a dropped connection's socket (it does so in a callback) before
    the server's thread, which waits for that, is joined."""
    await asyncio.sleep(0.05)


def send_raw(peer, data):
    """Write ``data`` to the TCP socket under the peer's TLS, as if it were records."""
    os.write(peer.sock.fileno(), data)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_frames_cut_across_records_arrive_whole_and_in_order(loop_name, tls):
    server_context, client_context = tls
    big = os.urandom(300_000)
    small = [f"tick {n}".encode() for n in range(2000)]

    def script(peer):
        text = frame(Opcode.TEXT, b"split across four records")
        for cut in (text[:1], text[1:2], text[2:9], text[9:]):  # one TLS record each
            peer.sendall(cut)
        peer.sendall(frame(Opcode.BINARY, big))  # 19 records, the last frame's bytes spread over them
        peer.sendall(b"".join(frame(Opcode.TEXT, s) for s in small))  # many frames in a record
        close_politely(peer)

    async def main():
        with RawServer(script, context=server_context) as server:
            async with await connect(server, client_context) as ws:
                assert type(ws._transport).__name__ == "TLSTransport"
                assert ws.certificate is not None and ws.certificate.not_after is not None
                assert ws._transport.get_extra_info("cipher") is not None
                assert ws._transport.get_extra_info("peername")[0] == "127.0.0.1"
                assert await ws.recv(5) == "split across four records"
                assert await ws.recv(5) == big
                for expected in small:
                    assert await ws.recv(5) == expected.decode()

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_reading_pauses_and_resumes_with_records_left_undecrypted(loop_name, tls):
    server_context, client_context = tls
    messages = [os.urandom(1000) + struct.pack("!I", n) for n in range(3000)]

    def script(peer):
        peer.sendall(b"".join(frame(Opcode.BINARY, m) for m in messages))
        close_politely(peer)

    async def main():
        with RawServer(script, context=server_context) as server:
            async with await connect(server, client_context, max_queued_bytes=32_768) as ws:
                await wait_until(lambda: ws._reading_paused)
                assert len(ws._messages) < 200  # bounded: reading paused
                for expected in messages:
                    assert await ws.recv(5) == expected

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_what_came_before_the_end_arrives_while_reading_pauses(loop_name, tls):
    server_context, client_context = tls
    messages = [struct.pack("!I", n) + os.urandom(2000) for n in range(2000)]

    def script(peer):
        peer.sendall(b"".join(frame(Opcode.BINARY, m) for m in messages))
        # ... and TCP closes, without close_notify or a close frame

    async def main():
        with RawServer(script, context=server_context) as server:
            ws = await connect(server, client_context, max_queued_bytes=16_384)
            await asyncio.sleep(0.3)  # the end arrives while reading is paused
            for expected in messages:
                assert await ws.recv(5) == expected
            with pytest.raises(ConnectionClosedError):
                await ws.recv(5)

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_corrupt_record_drops_the_connection(loop_name, tls):
    server_context, client_context = tls

    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"before"))
        send_raw(peer, b"\x17\x03\x03\x00\x20" + os.urandom(32))  # application data, bad MAC
        stop_reading(peer)

    async def main():
        with RawServer(script, context=server_context) as server:
            ws = await connect(server, client_context)
            assert await ws.recv(5) == "before"
            start = time.monotonic()
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.recv(5)
            assert elapsed(start) < 5
            assert ws.close_code == 1006
            assert isinstance(caught.value.__cause__, ssl.SSLError)

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_close_notify_ends_the_connection_after_what_came_before(loop_name, tls):
    server_context, client_context = tls

    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"last words"))
        peer.sock.unwrap()  # close_notify, and the client's answer to it

    async def main():
        with RawServer(script, context=server_context) as server:
            ws = await connect(server, client_context)
            assert await ws.recv(5) == "last words"
            with pytest.raises(ConnectionClosedError):
                await ws.recv(5)
            assert ws.close_code == 1006

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_tcp_dropped_without_close_notify(loop_name, tls):
    server_context, client_context = tls

    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"then gone"))
        peer.sock.shutdown(socket.SHUT_RDWR)

    async def main():
        with RawServer(script, context=server_context) as server:
            ws = await connect(server, client_context)
            assert await ws.recv(5) == "then gone"
            with pytest.raises(ConnectionClosedError):
                await ws.recv(5)

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_close_sends_close_notify(loop_name, tls):
    server_context, client_context = tls
    unwrapped = []

    def script(peer):
        close_politely(peer)
        peer.sock.unwrap()  # returns once the client's close_notify came
        unwrapped.append(True)

    async def main():
        with RawServer(script, context=server_context) as server:
            ws = await connect(server, client_context)
            await ws.close()
            assert ws.close_code == 1000

    run(loop_name, main())
    assert unwrapped == [True]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_peer_that_does_not_speak_tls(loop_name, tls):
    _, client_context = tls

    def script(peer):
        peer.sock.recv(4096)  # the ClientHello
        peer.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        stop_reading(peer)

    async def main():
        with RawServer(script, response=None) as server:
            start = time.monotonic()
            with pytest.raises(ssl.SSLError):
                await connect(server, client_context, timeout=5)
            assert elapsed(start) < 4
            await closed_by_the_loop()

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_peer_silent_in_the_tls_handshake_times_out(loop_name, tls):
    _, client_context = tls

    async def main():
        with RawServer(stop_reading, response=None) as server:
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await connect(server, client_context, timeout=0.5)
            assert elapsed(start) < 4
            await closed_by_the_loop()

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_wrong_host_name_fails_the_certificate_check(loop_name, tls):
    server_context, client_context = tls

    async def main():
        with RawServer(stop_reading, context=server_context) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                await wsfast.asyncio.connect(
                    wss(server), ssl=client_context, server_hostname="example.org", proxy=None, timeout=5
                )

    with pytest.raises(ssl.SSLError):  # the server's handshake fails too: the client's alert
        run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_peer_that_stops_reading_times_sends_out(loop_name, tls):
    server_context, client_context = tls

    async def main():
        with RawServer(stop_reading, context=server_context) as server:
            ws = await connect(server, client_context, send_timeout=0.5)
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                for _ in range(1000):
                    await ws.send(b"x" * 1_000_000)
            assert elapsed(start) < 5
            assert ws._transport.get_write_buffer_size() < 64 * 1_000_000
            await closed_by_the_loop()

    run(loop_name, main())


# The asyncio server's TLS is wsfast's too ---------------------------------------------------


@pytest.mark.parametrize("loop_name", LOOPS)
def test_the_asyncio_server_runs_tls_itself(loop_name, tls):
    server_context, client_context = tls
    seen = []

    async def handler(ws):
        seen.append(type(ws._transport).__name__)
        async for message in ws:
            await ws.send(message)

    async def main():
        async with wsfast.asyncio.serve(handler, "127.0.0.1", 0, ssl=server_context) as server:
            url = f"wss://127.0.0.1:{server.port}/"
            async with wsfast.asyncio.connect(url, ssl=client_context, proxy=None) as ws:
                big = os.urandom(1 << 20)
                await ws.send(big)
                assert await ws.recv(5) == big
                for n in range(100):
                    await ws.send(f"m{n}")
                for n in range(100):
                    assert await ws.recv(5) == f"m{n}"

    run(loop_name, main())
    assert seen == ["TLSTransport"]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_the_asyncio_server_drops_a_client_that_corrupts_a_record(loop_name, tls):
    server_context, client_context = tls
    closed = []

    async def handler(ws):
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            closed.append(ws.close_code)

    async def main():
        async with wsfast.asyncio.serve(handler, "127.0.0.1", 0, ssl=server_context) as server:
            url = f"wss://127.0.0.1:{server.port}/"
            # The blocking client, in a thread: its socket is at hand.
            ws = await asyncio.to_thread(wsfast.connect, url, ssl=client_context, proxy=None)
            try:
                await asyncio.to_thread(ws.send, "before")
                assert await asyncio.to_thread(ws.recv, 5) == "before"
                os.write(ws._stream.sock.fileno(), b"\x17\x03\x03\x00\x20" + os.urandom(32))
                await wait_until(lambda: closed)
                assert closed == [1006]
            finally:
                ws._stream.sock.close()

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_closing_the_server_drops_a_client_in_its_tls_handshake(loop_name, tls):
    server_context, _ = tls

    async def main():
        server = await wsfast.asyncio.serve(None, "127.0.0.1", 0, ssl=server_context, open_timeout=60)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        await asyncio.sleep(0.1)
        start = time.monotonic()
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionResetError):  # dropped with a reset
            await asyncio.wait_for(reader.read(), 5)
        assert elapsed(start) < 5
        writer.close()

    run(loop_name, main())
