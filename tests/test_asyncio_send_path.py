"""The asyncio connection's send path: the compiled twin frames a message itself and writes
it to a TCP socket directly while the transport holds nothing. Whatever the peer does
(stops reading, goes away), every byte arrives once, in order, or the send raises; a
closed connection never writes to a socket that took its number; each frame has its own
mask key. On asyncio's loop and uvloop's, over raw sockets on 127.0.0.1."""

import asyncio
import os
import socket
import struct

import pytest

import wsfast.asyncio
from test_asyncio_client import raw_server
from wsfast import Opcode
from wsfast.exceptions import ConnectionClosed

LOOPS = ["asyncio", "uvloop"]


def run(loop_name, coro, timeout=20):
    """Run a test coroutine on ``loop_name``'s loop, failing it after ``timeout`` seconds."""
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(asyncio.wait_for(coro, timeout))
    return asyncio.run(asyncio.wait_for(coro, timeout))


def frames_of(data):
    """(opcode, mask key, unmasked payload) of every whole frame a client sent in ``data``,
    and the bytes of a frame that has not fully arrived."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        first, second = data[pos], data[pos + 1]
        assert second & 0x80, "a client's frame is masked"
        length, head = second & 0x7F, 2
        if length == 126:
            if len(data) - pos < 4:
                break
            (length,) = struct.unpack_from("!H", data, pos + 2)
            head = 4
        elif length == 127:
            if len(data) - pos < 10:
                break
            (length,) = struct.unpack_from("!Q", data, pos + 2)
            head = 10
        end = pos + head + 4 + length
        if end > len(data):
            break
        key = data[pos + head : pos + head + 4]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[pos + head + 4 : end]))
        frames.append((first & 0x0F, key, payload))
        pos = end
    return frames, data[pos:]


def quiet_server(script):
    """A raw server (see test_asyncio_client) whose sockets have a small receive buffer,
    so that a peer that does not read is soon full; ``script`` gets the peer's reader,
    writer and the bytes that came with the handshake."""
    return raw_server(lambda peer: script(peer.reader, peer.writer, peer.handshake.leftover), receive_buffer=4096)


async def read_frames(reader, leftover, count):
    """The first ``count`` frames the client sent, reading at most until EOF."""
    data = bytearray(leftover)
    frames = []
    while len(frames) < count:
        chunk = await reader.read(1 << 20)
        assert chunk, f"EOF after {len(frames)} frames"
        data += chunk
        parsed, rest = frames_of(bytes(data))
        frames += parsed
        data = bytearray(rest)
    return frames


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_peer_that_stops_reading_gets_every_message_in_order(loop_name):
    # The transport fills while the peer does not read: sends then go to it, behind what
    # it holds, and direct writes resume once it drained. Pings go through the transport
    # in between. Nothing is lost, duplicated or reordered.
    messages = [os.urandom(1 + i * 997 % 70_000) if i % 3 else f"text {i} ✓" * (i % 50) for i in range(400)]
    expected = [(Opcode.BINARY, m) if isinstance(m, bytes) else (Opcode.TEXT, m.encode()) for m in messages]
    allowed_to_read = asyncio.Event()

    async def script(reader, writer, leftover):
        await allowed_to_read.wait()
        frames = await read_frames(reader, leftover, len(messages) + 2)
        return [(opcode, payload) for opcode, _, payload in frames if opcode not in (Opcode.PING, Opcode.PONG)]

    async def main():
        async with quiet_server(script) as (url, done):
            async with wsfast.asyncio.connect(url, compression=None, ping_interval=None) as ws:
                buffered_seen = False
                for index, message in enumerate(messages):
                    ws.send_nowait(message)
                    if index in (100, 300):
                        ws.ping(b"between")
                    buffered_seen = buffered_seen or ws._transport.get_write_buffer_size() > 0
                    if index == 200:
                        allowed_to_read.set()
                        await asyncio.sleep(0)
                assert buffered_seen, "the peer never fell behind: the test proves nothing"
                received = await asyncio.wait_for(done, 15)
                assert received[: len(expected)] == expected

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_each_frame_has_its_own_mask_key(loop_name):
    count = 600  # more than one pool of keys

    async def script(reader, writer, leftover):
        return await read_frames(reader, leftover, count)

    async def main():
        async with quiet_server(script) as (url, done):
            async with wsfast.asyncio.connect(url, compression=None) as ws:
                for index in range(count):
                    ws.send_nowait(b"same payload" if index % 2 else "same payload")
                frames = await asyncio.wait_for(done, 10)
        keys = [key for _, key, _ in frames]
        assert len(set(keys)) > count - 5  # 32 random bits each: a repeat or two at most
        assert all(payload == b"same payload" for _, _, payload in frames)

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_closed_connection_never_writes_to_a_socket_reusing_its_number(loop_name):
    async def script(reader, writer, leftover):
        await reader.read()  # until the client goes

    async def main():
        async with quiet_server(script) as (url, _):
            ws = await wsfast.asyncio.connect(url, compression=None)
            fd = ws._transport.get_extra_info("socket").fileno()
            ws._transport.abort()  # the connection drops without a close handshake
            await ws.wait_closed()
            await asyncio.sleep(0)  # the transport closes its socket after connection_lost
            pairs = [socket.socketpair() for _ in range(4)]  # one probably takes the number
            try:
                with pytest.raises(ConnectionClosed):
                    ws.send_nowait(b"must go nowhere")
                for left, right in pairs:
                    for sock in (left, right):
                        sock.setblocking(False)
                        with pytest.raises(BlockingIOError):
                            sock.recv(100)
                assert fd >= 0
            finally:
                for left, right in pairs:
                    left.close()
                    right.close()

    run(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_sending_to_a_peer_that_reset_raises_or_drops_never_crashes(loop_name):
    async def script(reader, writer, leftover):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a reset

    async def main():
        async with quiet_server(script) as (url, done):
            async with wsfast.asyncio.connect(url, compression=None) as ws:
                await done
                with pytest.raises(ConnectionClosed):
                    for _ in range(10_000):  # bounded: the reset arrives within a few sends
                        ws.send_nowait(b"x" * 1000)
                        await asyncio.sleep(0)
                assert ws.close_code == 1006

    run(loop_name, main())
