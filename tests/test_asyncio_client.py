"""The asyncio client against real servers: websockets', and a raw one for misbehaviour."""

import asyncio
import contextlib
import importlib
import os
import socket
import ssl
from datetime import datetime, timezone

import pytest
import websockets
from websockets.asyncio.server import serve

import wsfast.asyncio
import wsfast.server
from wsfast import Opcode
from wsfast.asyncio import connect
from wsfast.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
)
from wsfast.handshake import ServerHandshake
from wsfast.protocol import State

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG


def run(coro, timeout=10):
    """Run a test coroutine in a fresh event loop, failing it after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# Servers ----------------------------------------------------------------------------


async def echo(ws):
    async for message in ws:
        await ws.send(message)


@contextlib.asynccontextmanager
async def websockets_server(handler=echo, **kwargs):
    """A websockets server on a free port; yields its ws:// URL."""
    kwargs.setdefault("max_size", None)
    async with serve(handler, "127.0.0.1", 0, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        scheme = "wss" if kwargs.get("ssl") else "ws"
        yield f"{scheme}://127.0.0.1:{port}/"


@contextlib.asynccontextmanager
async def wsfast_server(handler=None, **kwargs):
    """wsfast's own threaded server (echo by default) on a free port; yields its URL."""
    kwargs.setdefault("max_message_size", None)
    with wsfast.server.serve(handler, **kwargs) as server:
        scheme = "wss" if kwargs.get("ssl") else "ws"
        yield f"{scheme}://127.0.0.1:{server.port}/"


@pytest.fixture(params=["websockets", "wsfast"])
def echo_server(request):
    """An echo server: websockets' asyncio one, or wsfast's threaded one."""
    return websockets_server if request.param == "websockets" else wsfast_server


class Peer:
    """The server side of one connection, writing and reading raw frames."""

    def __init__(self, reader, writer, handshake, codec):
        self.reader = reader
        self.writer = writer
        self.handshake = handshake
        self.codec = codec
        self.parser = codec.FrameParser(client=False, max_size=None)
        self.frames = list(self.parser.feed(handshake.leftover))

    def send(self, opcode, payload=b"", fin=True):
        self.writer.write(self.codec.encode_frame(opcode, payload, fin=fin))

    def send_raw(self, data):
        self.writer.write(data)

    async def recv_frame(self):
        """The next frame from the client, or None at EOF."""
        while not self.frames:
            data = await self.reader.read(65536)
            if not data:
                return None
            self.frames += self.parser.feed(data)
        return self.frames.pop(0)

    def abort(self):
        self.writer.transport.abort()


@contextlib.asynccontextmanager
async def raw_server(script, codec=None, receive_buffer=None):
    """A server that completes the handshake, then runs ``await script(peer)``.

    Yields (url, done): ``done`` is a future with what the script returned or raised.
    With ``receive_buffer``, its sockets' SO_RCVBUF: a peer that does not read is full
    sooner.
    """
    codec = codec or importlib.import_module("wsfast._pure")
    done = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        handshake = ServerHandshake(subprotocols=["chat"])
        try:
            while not handshake.receive_data(await reader.read(65536)):
                if reader.at_eof():
                    return
            writer.write(handshake.response())
            result = await script(Peer(reader, writer, handshake, codec))
            if not done.done():
                done.set_result(result)
        except Exception as exc:  # noqa: BLE001 - reported to the test through ``done``
            if not done.done():
                done.set_exception(exc)
        finally:
            writer.close()

    listener = socket.create_server(("127.0.0.1", 0))
    if receive_buffer is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # accepted sockets inherit it
    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", done


async def wait_until(predicate, timeout=5.0):
    """Poll ``predicate`` until it is true (tests assert states, never timings)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


# Messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    ["hello", "ünïcødé ✓ 🎉", "", b"\x00\x01\xff", b"", bytes(range(256)) * 300],
    ids=["text", "unicode", "empty-text", "binary", "empty-binary", "76KB"],
)
def test_echo(echo_server, codec, message):
    async def main():
        async with echo_server() as url, connect(url, codec=codec) as ws:
            await ws.send(message)
            assert await ws.recv() == message
            assert ws.state is State.OPEN

    run(main())


def test_echo_16_mib(echo_server, codec):
    async def main():
        message = os.urandom(16 << 20)
        async with echo_server() as url, connect(url, codec=codec, max_message_size=None) as ws:
            await ws.send(message)
            assert await ws.recv() == message
            await ws.send(message.hex()[: 1 << 20])
            assert await ws.recv() == message.hex()[: 1 << 20]

    run(main(), timeout=30)


def test_send_bytes_like():
    async def main():
        async with websockets_server() as url, connect(url) as ws:
            await ws.send(bytearray(b"abc"))
            assert await ws.recv() == b"abc"
            await ws.send(memoryview(b"xyz"))
            assert await ws.recv() == b"xyz"
            with pytest.raises(TypeError):
                await ws.send(42)

    run(main())


def test_async_for_ends_on_normal_close():
    async def handler(ws):
        for i in range(3):
            await ws.send(str(i))
        await ws.close(1000, "done")

    async def main():
        async with websockets_server(handler) as url, connect(url) as ws:
            received = [message async for message in ws]
            assert received == ["0", "1", "2"]
            assert ws.close_code == 1000 and ws.close_reason == "done"
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            with pytest.raises(ConnectionClosed):
                await ws.send("late")

    run(main())


def test_recv_many_returns_everything_queued():
    async def handler(ws):
        for i in range(1000):
            await ws.send(i.to_bytes(4, "big"))
        await ws.close()

    async def main():
        async with websockets_server(handler) as url, connect(url) as ws:
            await wait_until(lambda: ws.pending == 1000)
            received = []
            with pytest.raises(ConnectionClosedOK):
                while True:
                    batch = await ws.recv_many()
                    assert batch
                    received += batch
            assert received == [i.to_bytes(4, "big") for i in range(1000)]

    run(main())


def test_fragmented_messages_are_reassembled(codec):
    async def handler(ws):
        await ws.send(["frag", "mented", " text"])
        await ws.send([b"a" * 1000, b"b" * 70000])

    async def main():
        async with websockets_server(handler) as url, connect(url, codec=codec) as ws:
            assert await ws.recv() == "fragmented text"
            assert await ws.recv() == b"a" * 1000 + b"b" * 70000

    run(main())


def test_control_frames_between_fragments(codec):
    async def script(peer):
        peer.send(TEXT, b"one ", fin=False)
        peer.send(PING, b"p")
        peer.send(CONT, "twø".encode(), fin=True)
        return await peer.recv_frame()

    async def main():
        async with raw_server(script, codec) as (url, done), connect(url, codec=codec) as ws:
            assert await ws.recv() == "one twø"
            pong = await done
            assert (pong.opcode, pong.payload) == (PONG, b"p")

    run(main())


def test_max_frame_size_fragments_outgoing_messages(codec):
    async def script(peer):
        return [await peer.recv_frame() for _ in range(3)]

    async def main():
        async with raw_server(script, codec) as (url, done), connect(url, codec=codec, max_frame_size=4) as ws:
            await ws.send("0123456789")
            frames = await done
        assert [(f.opcode, f.fin, f.payload) for f in frames] == [
            (TEXT, False, b"0123"),
            (CONT, False, b"4567"),
            (CONT, True, b"89"),
        ]

    run(main())


def test_fragmented_echo(echo_server):
    async def main():
        async with echo_server() as url, connect(url, max_frame_size=1000) as ws:
            message = os.urandom(100_000)
            await ws.send(message)
            assert await ws.recv() == message
            await ws.send(message.hex())
            assert await ws.recv() == message.hex()

    run(main())


def test_wsfast_server_fragments_its_messages(codec):
    async def main():
        async with wsfast_server(max_frame_size=7, codec=codec) as url, connect(url, codec=codec) as ws:
            await ws.send("fragmented ✓ by the server")
            assert await ws.recv() == "fragmented ✓ by the server"

    run(main())


def test_wsfast_server_close_codes():
    def handler(ws):
        ws.send(ws.recv())
        ws.close(4001, "policy")

    async def main():
        async with wsfast_server(handler) as url, connect(url) as ws:
            await ws.send("last")
            with pytest.raises(ConnectionClosedError) as info:
                async for message in ws:
                    assert message == "last"
            assert (info.value.code, info.value.reason) == (4001, "policy")
            await wait_until(lambda: ws.state is State.CLOSED)

    run(main())


# Ping and pong -----------------------------------------------------------------------


def test_ping_resolves_with_round_trip_time():
    async def main():
        async with websockets_server() as url, connect(url) as ws:
            latency = await ws.ping(b"hello")
            assert latency >= 0
            first, second = ws.ping("a"), ws.ping(b"b")
            await second
            assert first.done() and second.done()
            ws.pong(b"unsolicited")  # the server ignores it
            await ws.send("still open")
            assert await ws.recv() == "still open"
            with pytest.raises(ValueError):
                ws.ping(b"x" * 126)

    run(main())


def test_server_pings_are_answered():
    async def handler(ws):
        await asyncio.wait_for(await ws.ping(b"are you there"), 5)
        await ws.send("pong received")

    async def main():
        async with websockets_server(handler) as url, connect(url) as ws:
            assert await ws.recv() == "pong received"

    run(main())


def test_control_frames_do_not_wake_recv():
    async def script(peer):
        await peer.recv_frame()  # the client is now waiting in recv()
        peer.send(PING, b"1")
        peer.send(PONG, b"unsolicited")
        pong = await peer.recv_frame()
        peer.send(TEXT, b"message")
        return pong

    async def main():
        async with raw_server(script) as (url, done), connect(url) as ws:
            await ws.send("ready")
            assert await ws.recv() == "message"
            assert (await done).payload == b"1"

    run(main())


def test_pending_ping_fails_when_connection_drops():
    async def script(peer):
        await peer.recv_frame()
        peer.abort()

    async def main():
        async with raw_server(script) as (url, _), connect(url) as ws:
            with pytest.raises(ConnectionClosedError):
                await ws.ping()

    run(main())


# Closing ------------------------------------------------------------------------------


def test_client_close_code_and_reason():
    received = []

    async def handler(ws):
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
        received.append((ws.close_code, ws.close_reason))

    async def main():
        async with websockets_server(handler) as url:
            ws = await connect(url)
            with pytest.raises(ValueError):
                await ws.close(1006)
            await ws.close(4000, "bye")
            assert ws.state is State.CLOSED
            assert ws.close_code == 4000  # the server echoed it
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.sent_code == 4000
            await ws.close()  # closing again does nothing
        assert received == [(4000, "bye")]

    run(main())


def test_close_exchanges_frames_exactly():
    async def script(peer):
        frame = await peer.recv_frame()
        peer.send(TEXT, b"late message")
        peer.send(CLOSE, frame.payload)
        peer.writer.write_eof()  # the server closes TCP first
        rest = await peer.recv_frame()  # the client must not send anything else
        return frame, rest

    async def main():
        async with raw_server(script) as (url, done):
            ws = await connect(url)
            await ws.close(1001, "going")
            frame, rest = await done
            assert (frame.opcode, frame.close_code, frame.text) == (CLOSE, 1001, "going")
            assert rest is None
            assert ws.state is State.CLOSED
            assert await ws.recv() == "late message"
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()

    run(main())


def test_server_initiated_error_close():
    async def handler(ws):
        await ws.send("last")
        await ws.close(4001, "policy")

    async def main():
        async with websockets_server(handler) as url, connect(url) as ws:
            assert await ws.recv() == "last"
            with pytest.raises(ConnectionClosedError) as info:
                async for _ in ws:
                    pass
            assert (info.value.code, info.value.reason, info.value.sent_code) == (4001, "policy", 4001)
            await wait_until(lambda: ws.state is State.CLOSED)

    run(main())


def test_abrupt_drop_after_queued_messages():
    async def script(peer):
        peer.send(TEXT, b"one")
        peer.send(BINARY, b"two")
        await peer.writer.drain()
        peer.abort()

    async def main():
        async with raw_server(script) as (url, done), connect(url) as ws:
            await done
            await wait_until(lambda: ws.state is State.CLOSED)
            assert await ws.recv() == "one"
            assert await ws.recv() == b"two"
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1006

    run(main())


def test_close_times_out_when_server_never_answers():
    async def script(peer):
        await asyncio.sleep(30)

    async def main():
        async with raw_server(script) as (url, _):
            ws = await connect(url, close_timeout=0.2)
            await ws.close()
            assert ws.state is State.CLOSED

    run(main())


def test_server_that_never_closes_tcp_is_dropped():
    async def script(peer):
        peer.send(CLOSE, (1000).to_bytes(2, "big"))
        frame = await peer.recv_frame()
        with contextlib.suppress(ConnectionResetError):  # the client gives up waiting: it resets
            await peer.recv_frame()
        return frame, peer.reader.at_eof() or peer.writer.transport.is_closing()

    async def main():
        async with raw_server(script) as (url, done), connect(url, close_timeout=0.2) as ws:
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            frame, dropped = await done
            assert frame.close_code == 1000 and dropped
            await wait_until(lambda: ws.state is State.CLOSED)

    run(main())


# Protocol errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_frame, code, error",
    [
        (b"\x83\x00", 1002, ProtocolError),  # unknown opcode
        (b"\x82\x81abcd\x00", 1002, ProtocolError),  # masked frame from a server
        (b"\x81\x02\xc3\x28", 1007, InvalidUTF8),  # invalid UTF-8
        (b"\x80\x01x", 1002, ProtocolError),  # continuation without a start
        (b"\x88\x02\x03\xee", 1002, ProtocolError),  # close code 1006 on the wire
        (b"\x82\x7e\x04\x00" + bytes(1024), 1009, PayloadTooBig),  # over max_message_size
    ],
    ids=["opcode", "masked", "utf8", "continuation", "close-code", "too-big"],
)
def test_protocol_error_fails_connection(codec, bad_frame, code, error):
    async def script(peer):
        peer.send(TEXT, b"before")
        peer.send_raw(bad_frame)
        frame = await peer.recv_frame()
        return frame, await peer.recv_frame()

    async def main():
        async with raw_server(script, codec) as (url, done):
            ws = await connect(url, codec=codec, max_message_size=1000)
            assert await ws.recv() == "before"
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert isinstance(info.value.__cause__, error)
            assert info.value.sent_code == code
            frame, rest = await done
            assert (frame.opcode, frame.close_code) == (CLOSE, code)
            assert rest is None  # the client closed TCP after failing
            await ws.close()
            assert ws.state is State.CLOSED

    run(main())


# Cancellation -------------------------------------------------------------------------


def test_cancelled_recv_keeps_the_message():
    async def main():
        async with websockets_server() as url, connect(url) as ws:
            task = asyncio.create_task(ws.recv())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await ws.send("after cancel")
            assert await ws.recv() == "after cancel"

            # The message arrives and wakes recv, but recv is cancelled before it resumes.
            task = asyncio.create_task(ws.recv())
            await asyncio.sleep(0.01)
            frame = b"\x81\x05raced"
            ws._view[: len(frame)] = frame
            ws._data_received(len(frame))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await ws.recv() == "raced"

    run(main())


def test_recv_timeout_keeps_the_message():
    async def main():
        async with websockets_server() as url, connect(url) as ws:
            with pytest.raises(TimeoutError):
                await ws.recv(timeout=0.05)
            with pytest.raises(TimeoutError):
                await ws.recv_many(timeout=0.05)
            await ws.send("later")
            assert await ws.recv(timeout=5) == "later"

    run(main())


def test_an_abandoned_recv_leaves_the_connection_usable():
    # A recv() started, waiting, then dropped without being resumed or closed (its task
    # gone): the wait is given up, and the next recv() is not refused.
    async def main():
        async with websockets_server() as url, connect(url) as ws:
            for _ in range(3):
                receiving = ws.recv()
                waiting_on = receiving.send(None)  # as a Task's first step: it waits
                assert isinstance(waiting_on, asyncio.Future)
                del receiving, waiting_on
            await ws.send("still served")
            assert await ws.recv(timeout=5) == "still served"
            receiving = ws.recv()
            receiving.send(None)
            receiving.close()  # closed while waiting: given up too
            await ws.send("again")
            assert await ws.recv(timeout=5) == "again"

    run(main())


def test_send_returns_a_coroutine_that_sends_when_it_runs():
    async def main():
        async with websockets_server() as url, connect(url) as ws:
            unsent = ws.send("never")  # not awaited: nothing goes out
            assert asyncio.iscoroutine(unsent)
            unsent.close()
            await asyncio.gather(ws.send("one"), asyncio.create_task(ws.send("two")))
            assert sorted([await ws.recv(), await ws.recv()]) == ["one", "two"]
            finished = ws.send("three")
            await finished
            with pytest.raises(RuntimeError):
                await finished  # like a coroutine, it runs once
            assert await ws.recv() == "three"

    run(main())


def test_concurrent_recv_is_refused():
    async def main():
        async with websockets_server() as url, connect(url) as ws:
            task = asyncio.create_task(ws.recv())
            await asyncio.sleep(0.01)
            with pytest.raises(RuntimeError):
                await ws.recv()
            await ws.send("x")
            assert await task == "x"

    run(main())


def test_cancelled_send_leaves_no_partial_frame():
    release = None

    async def script(peer):
        await release.wait()
        return [await peer.recv_frame() for _ in range(2)]

    async def main():
        nonlocal release
        release = asyncio.Event()
        big = os.urandom(8 << 20)
        async with raw_server(script) as (url, done), connect(url) as ws:
            task = asyncio.create_task(ws.send(big))
            await wait_until(lambda: ws._writing_paused)
            assert not task.done()  # waiting for the server to read
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            await ws.send("next")
            first, second = await done
            assert (first.opcode, first.payload == big) == (BINARY, True)
            assert (second.opcode, second.payload) == (TEXT, b"next")

    run(main())


def test_cancelled_close_still_closes():
    async def script(peer):
        await peer.recv_frame()  # the close frame, never answered
        try:
            return await peer.recv_frame()
        except ConnectionResetError:  # dropped
            return None

    async def main():
        async with raw_server(script) as (url, done):
            ws = await connect(url, close_timeout=30)
            task = asyncio.create_task(ws.close())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await done is None  # the server saw the connection end
            await wait_until(lambda: ws.state is State.CLOSED)

    run(main())


# Backpressure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "count, size, limit",
    [(12_000, 4096, 256 * 1024), (40, 3 * 1024 * 1024, 1024 * 1024)],
    ids=["small", "larger-than-a-read"],
)
def test_reading_pauses_while_messages_pile_up(count, size, limit):
    # 48 MiB, 120 MiB: more than the kernel's socket buffers can absorb (32 MiB + 4 MiB at
    # most). A message larger than a read arrives in pieces (straight into its payload):
    # every piece counts towards the limit, not only the one that completes it.
    progress = {"sent": 0}

    async def script(peer):
        for i in range(count):
            peer.send(BINARY, i.to_bytes(4, "big") * (size // 4))
            progress["sent"] = i + 1
            await peer.writer.drain()

    async def main():
        async with raw_server(script) as (url, done), connect(url, max_queued_bytes=limit) as ws:
            await wait_until(lambda: not ws._transport.is_reading())
            await asyncio.sleep(0.2)
            # Memory stays bounded: at most one message and one read beyond the limit
            # are queued, and the server is blocked well before it sent everything.
            queued = sum(map(len, ws._messages))
            assert limit < queued + len(ws._messages) * 64 <= limit + size + 2 * len(ws._view)
            assert progress["sent"] < count
            received = []
            while len(received) < count:
                received += await ws.recv_many()
                if len(received) < count // 2:
                    received.append(await ws.recv())
            assert all(m == i.to_bytes(4, "big") * (size // 4) for i, m in enumerate(received))
            await done

    run(main(), timeout=30)


def test_on_uvloop_reading_pauses_while_the_woken_receiver_has_not_run():
    # uvloop reads up to 32 times before a woken recv() runs: reading pauses once
    # BURST_BYTES wait for it, and no message is lost.
    uvloop = pytest.importorskip("uvloop")
    from wsfast._stream_core import BURST_BYTES, MAX_READ_SIZE, MESSAGE_OVERHEAD
    from wsfast.bench.runner import Server

    count, size = 200_000, 100

    async def main(port):
        longest = 0
        async with connect(f"ws://127.0.0.1:{port}/feed/{count}/{size}", max_queued_bytes=None) as ws:
            drained = False  # before, the reads that came before the first recv() wait
            for _ in range(count):
                message = await ws.recv()
                assert len(message) == size
                if drained:
                    longest = max(longest, len(ws._messages))
                drained = drained or not ws._messages
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            # Reads taken are forgotten at the next settling (when the next read queues),
            # so the count cannot grow with the connection's age.
            assert ws._backlog.settle(0) == 0
            assert not ws._backlog._charges
        return longest

    server = Server(idle=30)
    try:
        server.prepare(f"feed/{count}/{size}", timeout=30)
        longest = uvloop.run(asyncio.wait_for(main(server.port), 30))
    finally:
        server.close()
    # What waited before the last two reads (those that paused), and those two reads.
    assert longest <= BURST_BYTES // (size + MESSAGE_OVERHEAD) + 2 * MAX_READ_SIZE // (size + 2)


def test_close_reads_past_unread_messages():
    async def handler(ws):
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(20_000):
                await ws.send(bytes(1000))

    async def main():
        async with websockets_server(handler) as url:
            ws = await connect(url, max_queued_bytes=64 * 1024)
            await wait_until(lambda: not ws._transport.is_reading())
            await ws.close()
            assert ws.close_code == 1000  # the server's close frame arrived
            assert ws.state is State.CLOSED

    run(main())


def test_send_waits_while_the_server_does_not_read():
    release = None

    async def script(peer):
        await release.wait()
        frames = []
        while len(frames) < 20:
            frames.append(await peer.recv_frame())
        return frames

    async def main():
        nonlocal release
        release = asyncio.Event()
        chunk = os.urandom(1 << 20)
        async with raw_server(script) as (url, done), connect(url) as ws:
            sender = asyncio.create_task(ws_send_all(ws, [chunk] * 20))
            await wait_until(lambda: ws._writing_paused)
            await asyncio.sleep(0.1)
            assert not sender.done()
            # Paused after at most one message beyond the transport's buffer limit.
            assert ws._transport.get_write_buffer_size() < 2 * len(chunk) + 1024
            release.set()
            await sender
            frames = await done
            assert all(frame.payload == chunk for frame in frames)

    run(main(), timeout=20)


async def ws_send_all(ws, messages):
    for message in messages:
        await ws.send(message)


# Callbacks (on_message) ----------------------------------------------------------------------


def test_on_message_receives_every_message_in_order(echo_server, codec):
    messages = ["one", b"two", "", b"", "ünïcødé", bytes(range(256)) * 300]

    async def main():
        received = []
        finished = asyncio.get_running_loop().create_future()

        def on_message(client, message):
            assert client is ws
            received.append(message)
            if len(received) == len(messages):
                finished.set_result(None)

        async with echo_server() as url, connect(url, codec=codec, on_message=on_message) as ws:
            for message in messages:
                ws.send_nowait(message)
            await finished
        assert received == messages
        assert [type(message) for message in received] == [type(message) for message in messages]

    run(main())


def test_on_message_can_answer_with_send_nowait():
    """A counter bounced 100 times: each message the callback gets, it answers at once."""

    async def script(peer):
        peer.send(TEXT, b"0")
        answers = []
        while len(answers) < 100:
            answers.append((await peer.recv_frame()).payload)
            if len(answers) < 100:
                peer.send(TEXT, answers[-1])
        peer.send(CLOSE, (1000).to_bytes(2, "big"))
        await peer.recv_frame()  # the client's close frame
        return answers

    def on_message(client, message):
        client.send_nowait(str(int(message) + 1))

    async def main():
        async with raw_server(script) as (url, done), connect(url, on_message=on_message) as ws:
            await ws.wait_closed()
            assert await done == [str(n).encode() for n in range(1, 101)]
            assert ws.close_code == 1000

    run(main())


def test_answering_a_message_that_came_with_the_close_is_no_error(caplog):
    async def script(peer):
        # One write: the client parses both before calling on_message.
        peer.send_raw(peer.codec.encode_frame(TEXT, b"question") + peer.codec.encode_frame(CLOSE, b"\x03\xe8"))
        return await peer.recv_frame()

    answered = []

    def on_message(client, message):
        answered.append(message)
        client.send_nowait("answer")  # raises ConnectionClosedOK: the close was first

    async def main():
        async with raw_server(script) as (url, done), connect(url, on_message=on_message) as ws:
            await ws.wait_closed()
            close = await done
            assert (close.opcode, close.payload) == (CLOSE, b"\x03\xe8")
            assert ws.close_code == 1000

    run(main())
    assert answered == ["question"]
    assert "on_message raised" not in caplog.text


def test_messages_sent_with_the_handshake_reach_on_message():
    """A callback may run before connect() returns: it gets the client as an argument."""

    async def script(peer):
        peer.send(TEXT, b"early")
        peer.send(CLOSE, (1000).to_bytes(2, "big"))
        await peer.recv_frame()

    async def main():
        received = []
        async with raw_server(script) as (url, done):
            ws = await connect(url, on_message=lambda client, message: received.append((client, message)))
            await ws.wait_closed()
            await done
        assert received == [(ws, "early")]

    run(main())


def test_recv_is_refused_with_on_message():
    async def main():
        async with websockets_server() as url, connect(url, on_message=lambda client, message: None) as ws:
            for receive in (ws.recv(), ws.recv_many(), ws.__anext__()):
                with pytest.raises(RuntimeError, match="on_message"):
                    await receive
            assert ws.state is State.OPEN

    run(main())


def test_on_message_that_raises_closes_with_1011(caplog):
    async def script(peer):
        peer.send(TEXT, b"boom")
        peer.send(TEXT, b"after")  # not delivered: the client is closing
        close = await peer.recv_frame()
        peer.send(CLOSE, close.payload)
        return close

    received = []

    def on_message(client, message):
        received.append(message)
        raise KeyError(message)

    async def main():
        async with raw_server(script) as (url, done), connect(url, on_message=on_message) as ws:
            with pytest.raises(KeyError, match="boom"):
                await ws.wait_closed()
            close = await done
            assert (close.opcode, int.from_bytes(close.payload[:2], "big")) == (CLOSE, 1011)
            assert ws.state is State.CLOSED
        assert received == ["boom"]

    run(main())
    assert "on_message raised" in caplog.text


def test_pings_and_pongs_with_on_message():
    async def handler(ws):
        await asyncio.wait_for(await ws.ping(b"server ping"), 5)
        await ws.send("pinged")
        await ws.wait_closed()

    async def main():
        received = []
        async with websockets_server(handler) as url, connect(url, on_message=lambda c, m: received.append(m)) as ws:
            assert await ws.ping(b"client ping") >= 0
            await wait_until(lambda: received == ["pinged"])

    run(main())


def test_wait_closed_after_a_dropped_connection():
    async def script(peer):
        peer.send(TEXT, b"last")
        peer.abort()

    async def main():
        received = []
        async with raw_server(script) as (url, _), connect(url, on_message=lambda c, m: received.append(m)) as ws:
            await ws.wait_closed()
            assert received == ["last"]
            assert ws.close_code == 1006
            with pytest.raises(ConnectionClosedError):
                ws.send_nowait("too late")

    run(main())


# Handshake and options -----------------------------------------------------------------------


def test_handshake_options():
    seen = {}

    async def handler(ws):
        for name in ("Origin", "X-Token", "Authorization"):
            seen[name] = ws.request.headers.get(name)
        seen["path"] = ws.request.path
        await ws.send(ws.subprotocol or "")

    async def main():
        async with websockets_server(handler, subprotocols=["chat"]) as url:
            url = url.replace("ws://", "ws://user:pa%20ss@") + "feed?x=1"
            async with connect(
                url, subprotocols=["chat", "other"], origin="https://example.com", headers={"X-Token": "42"}
            ) as ws:
                assert ws.subprotocol == "chat"
                assert ws.response_headers["Sec-WebSocket-Protocol"] == "chat"
                assert await ws.recv() == "chat"
                assert ws.certificate is None
                assert ws.remote_address[0] == "127.0.0.1"
                assert ws.local_address[0] == "127.0.0.1"
        assert seen["path"] == "/feed?x=1"
        assert seen["Origin"] == "https://example.com"
        assert seen["X-Token"] == "42"
        assert seen["Authorization"] == "Basic dXNlcjpwYSBzcw=="  # user:pa ss

    run(main())


@pytest.mark.parametrize("nodelay", [True, False])
def test_tcp_nodelay(nodelay):
    async def main():
        async with websockets_server() as url, connect(url, tcp_nodelay=nodelay) as ws:
            sock = ws._transport.get_extra_info("socket")
            assert bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay

    run(main())


def test_rejected_handshake():
    async def handler(ws):
        pass

    def refuse(connection, request):
        return connection.respond(403, "no entry\n")

    async def main():
        async with websockets_server(handler, process_request=refuse) as url:
            with pytest.raises(InvalidStatus) as info:
                await connect(url)
            assert info.value.status == 403
            assert info.value.body == b"no entry\n"

    run(main())


def test_server_closing_during_handshake():
    async def handle(reader, writer):
        await reader.read(1000)
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(InvalidHandshake):
                await connect(f"ws://127.0.0.1:{port}/")

    run(main())


def test_open_timeout():
    async def handle(reader, writer):
        await reader.read()  # never answers; returns when the client gives up
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(TimeoutError):
                await connect(f"ws://127.0.0.1:{port}/", timeout=0.1)

    run(main())


def test_cancelled_connect_drops_the_connection():
    ended = None

    async def handle(reader, writer):
        await reader.read()  # never answers; returns when the client is gone
        ended.set()
        writer.close()

    async def main():
        nonlocal ended
        ended = asyncio.Event()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            task = asyncio.ensure_future(connect(f"ws://127.0.0.1:{port}/", timeout=None))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await ended.wait()

    run(main())


def test_bad_arguments():
    async def main():
        with pytest.raises(InvalidURI):
            connect("http://example.com/")
        with pytest.raises(ValueError):
            connect("ws://example.com/", ssl=ssl.create_default_context())
        with pytest.raises(ValueError):
            connect("wss://example.com/", ssl=False)
        with pytest.raises(ValueError):
            await connect("ws://127.0.0.1:1/", max_message_size=-1)
        with pytest.raises(OSError):
            await connect("ws://127.0.0.1:1/")  # nothing listens on port 1

    run(main())


def test_exports():
    assert wsfast.asyncio.__all__ == ["Client", "Server", "ServerConnection", "WebSocket", "connect", "serve"]


# TLS --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    wrong_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("example.org").configure_cert(wrong_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, wrong_context, client_context


def test_tls_echo_and_certificate(tls, echo_server):
    server_context, _, client_context = tls

    async def main():
        async with echo_server(ssl=server_context) as url, connect(url, ssl=client_context) as ws:
            await ws.send("secure")
            assert await ws.recv() == "secure"
            big = os.urandom(1 << 20)
            await ws.send(big)
            assert await ws.recv() == big
            certificate = ws.certificate
            assert "trustme" in certificate.issuer
            assert len(certificate.sha1_fingerprint) == 40 and certificate.serial_number
            assert certificate.not_after > datetime.now(timezone.utc)

    run(main())


def test_tls_wrong_host(tls):
    _, wrong_context, client_context = tls

    async def main():
        async with websockets_server(ssl=wrong_context) as url:
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(url, ssl=client_context)

    run(main())


def test_tls_server_hostname(tls):
    _, wrong_context, client_context = tls

    async def main():
        async with websockets_server(ssl=wrong_context) as url:
            ws = await connect(url, ssl=client_context, server_hostname="example.org")
            await ws.send("checked against example.org")
            assert await ws.recv() == "checked against example.org"
            await ws.close()

    run(main())


def test_tls_untrusted_certificate(tls):
    server_context, _, _ = tls

    async def main():
        async with websockets_server(ssl=server_context) as url:
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(url)

    run(main())
