"""recv_batch() on real connections: the blocking client and threaded server, the asyncio
client and server, against wsfast's own peers and raw-socket ones that misbehave."""

from __future__ import annotations

import asyncio
import threading

import pytest

import wsfast.asyncio
from peers import RawServer, close_politely, frame
from wsfast import Batch
from wsfast.client import connect
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosedError, ConnectionClosedOK
from wsfast.server import serve

TIMEOUT = 5  # seconds any single wait in these tests may take

pytestmark = pytest.mark.usefixtures("no_hang")


def counted(count: int, size: int = 100) -> list:
    """``count`` distinct binary messages of ``size`` bytes (``size`` >= 4)."""
    return [index.to_bytes(4, "big") * (size // 4) + bytes(size % 4) for index in range(count)]


def feed_script(messages, close_code=1000, extra=b""):
    """A raw server that sends ``messages`` (bytes or str), ``extra``, then its close frame."""

    def script(peer):
        peer.sendall(
            b"".join(
                frame(Opcode.TEXT if isinstance(m, str) else Opcode.BINARY, m.encode() if isinstance(m, str) else m)
                for m in messages
            )
            + extra
        )
        peer.sendall(frame(Opcode.CLOSE, close_code.to_bytes(2, "big")))
        peer.next_frame()  # the client's reply

    return script


def all_batches(receive) -> tuple[list, list]:
    """(every batch, the exception that ended them) from calling ``receive()`` until it raises."""
    batches = []
    try:
        while True:
            batches.append(receive())
    except (ConnectionClosedOK, ConnectionClosedError) as exc:
        return batches, exc


# The blocking client -----------------------------------------------------------------------


def test_recv_batch_returns_every_message_then_the_close(codec):
    messages = counted(20000)
    with RawServer(feed_script(messages)) as server, connect(server.url, codec=codec) as ws:
        batches, end = all_batches(lambda: ws.recv_batch(timeout=TIMEOUT))
        assert type(end) is ConnectionClosedOK and end.code == 1000
        assert all(type(batch) is Batch and len(batch) >= 1 for batch in batches)
        assert [m for batch in batches for m in batch] == messages
        assert len(batches) < 200  # a batch per read, not per message
        assert ws.pending == 0
        with pytest.raises(ConnectionClosedOK):
            ws.recv_batch(timeout=TIMEOUT)


def test_received_records_view_as_numpy(codec):
    np = pytest.importorskip("numpy")
    dtype = np.dtype([("seq", ">u4"), ("rest", "V96")])
    with RawServer(feed_script(counted(5000))) as server, connect(server.url, codec=codec) as ws:
        batches, _ = all_batches(lambda: ws.recv_batch(timeout=TIMEOUT))
        sequence = np.concatenate([batch.to_numpy(dtype)["seq"] for batch in batches])
        assert sequence.tolist() == list(range(5000))


def test_max_bytes_bounds_every_batch(codec):
    messages = counted(3000) + [b"L" * 5000] + counted(50, size=8) + ["t" * 700]
    with RawServer(feed_script(messages)) as server, connect(server.url, codec=codec) as ws:
        batches, _ = all_batches(lambda: ws.recv_batch(timeout=TIMEOUT, max_bytes=1000))
        assert [m for batch in batches for m in batch] == messages
        assert all(batch.nbytes <= 1000 or len(batch) == 1 for batch in batches)
        assert any(list(batch) == [b"L" * 5000] for batch in batches)  # larger: alone
        with pytest.raises(ValueError, match="max_bytes"):
            ws.recv_batch(max_bytes=0)


def test_messages_queued_by_recv_come_first_and_styles_mix_in_order(codec):
    messages = counted(100000, size=16)
    with RawServer(feed_script(messages)) as server, connect(server.url, codec=codec) as ws:
        got = [ws.recv(timeout=TIMEOUT)]
        first = ws.recv_batch(timeout=TIMEOUT, max_bytes=160)  # queued by recv(): ten of them
        assert len(first) == 10
        got += first
        styles = [
            lambda: [ws.recv(timeout=TIMEOUT)],
            lambda: list(ws.recv_batch(timeout=TIMEOUT)),
            lambda: ws.recv_many(timeout=TIMEOUT),
            lambda: list(ws.recv_batch(timeout=TIMEOUT, max_bytes=50)),
            lambda: [next(ws)],
        ]
        turn = 0
        try:
            while True:
                got += styles[turn % len(styles)]()
                turn += 1
        except (ConnectionClosedOK, StopIteration):
            pass
        assert turn >= len(styles)  # every style had a turn
        assert got == messages


def test_a_timeout_leaves_the_connection_usable(codec):
    release = threading.Event()

    def script(peer):
        release.wait(TIMEOUT)
        peer.sendall(frame(Opcode.BINARY, b"late"))
        close_politely(peer)

    with RawServer(script) as server, connect(server.url, codec=codec) as ws:
        with pytest.raises(TimeoutError):
            ws.recv_batch(timeout=0.1)
        release.set()
        assert list(ws.recv_batch(timeout=TIMEOUT)) == [b"late"]


def test_a_ping_flood_while_batching_is_answered_and_bounded(codec):
    """Pings between every message: the messages all arrive in batches, the client
    answers, and while the peer reads nothing only the latest pongs wait."""
    count = 20000
    pongs = []

    def script(peer):
        peer.sendall(
            b"".join(
                frame(Opcode.PING, i.to_bytes(4, "big")) + frame(Opcode.BINARY, i.to_bytes(4, "big"))
                for i in range(count)
            )
        )
        peer.sendall(frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        while True:
            reply = peer.next_frame()
            if reply is None or reply.opcode == Opcode.CLOSE:
                return
            pongs.append(reply.payload)

    with RawServer(script) as server, connect(server.url, codec=codec) as ws:
        batches, end = all_batches(lambda: ws.recv_batch(timeout=TIMEOUT))
        assert type(end) is ConnectionClosedOK
        assert [m for batch in batches for m in batch] == [i.to_bytes(4, "big") for i in range(count)]
    assert pongs and pongs[-1] == (count - 1).to_bytes(4, "big")  # the latest ping was answered
    assert len(pongs) <= count and pongs == sorted(pongs)


def test_invalid_utf8_ends_the_batches_with_1007(codec):
    closes = []

    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"fine") + frame(Opcode.BINARY, b"also fine") + frame(Opcode.TEXT, b"\xc3\x28"))
        closes.append(peer.next_frame())

    with RawServer(script) as server, connect(server.url, codec=codec) as ws:
        batches, end = all_batches(lambda: ws.recv_batch(timeout=TIMEOUT))
        assert [m for batch in batches for m in batch] == ["fine", b"also fine"]
        assert type(end) is ConnectionClosedError and end.sent_code == 1007
    assert closes[0].opcode == Opcode.CLOSE and closes[0].close_code == 1007


def test_a_fragmented_and_compressed_feed_from_a_wsfast_server(codec):
    messages = ["é" * 3000, b"\x00" * 100000, "tick" * 10, b"", bytes(range(256)) * 300] * 20

    def handler(ws):
        for message in messages:
            ws.send(message)

    with (
        serve(handler, codec=codec, max_frame_size=4096) as server,
        connect(f"ws://127.0.0.1:{server.port}/", codec=codec) as ws,
    ):
        assert ws.deflate_params is not None
        batches, end = all_batches(lambda: ws.recv_batch(timeout=TIMEOUT, max_bytes=64 * 1024))
    assert type(end) is ConnectionClosedOK
    assert [m for batch in batches for m in batch] == messages


def test_the_threaded_server_receives_batches_from_a_client(codec):
    """The server role: masked frames, unmasked on their way into the batch."""
    results = []

    def handler(ws):
        received = []
        while len(received) < 5001:
            received += ws.recv_batch(timeout=TIMEOUT)
        results.append(received)
        ws.send(str(len(received)))

    messages = counted(5000, size=37) + ["done ✓"]
    with (
        serve(handler, codec=codec, compression=None) as server,
        connect(f"ws://127.0.0.1:{server.port}/", codec=codec, compression=None) as ws,
    ):
        for message in messages:
            ws.send(message)
        assert ws.recv(timeout=TIMEOUT) == "5001"
    assert results == [messages]


# The asyncio client and server -------------------------------------------------------------


def run(coroutine, timeout=20):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def all_batches_async(ws, **options) -> tuple[list, BaseException]:
    batches = []
    try:
        while True:
            batches.append(await ws.recv_batch(timeout=TIMEOUT, **options))
    except (ConnectionClosedOK, ConnectionClosedError) as exc:
        return batches, exc


def test_asyncio_client_recv_batch(codec):
    messages = counted(20000) + ["é" * 10]

    async def main():
        with RawServer(feed_script(messages)) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec) as ws:
                batches, end = await all_batches_async(ws)
                assert type(end) is ConnectionClosedOK and ws.pending == 0
                return batches

    batches = run(main())
    assert [m for batch in batches for m in batch] == messages
    assert len(batches) < 500


def test_asyncio_batches_accumulate_until_taken_within_max_bytes(codec):
    messages = counted(4000, size=10)

    async def main():
        with RawServer(feed_script(messages)) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec) as ws:
                first = await ws.recv_batch(timeout=TIMEOUT)
                await asyncio.sleep(0.3)  # the rest arrives meanwhile, into batches
                assert ws.pending == len(messages) - len(first)
                rest, _ = await all_batches_async(ws, max_bytes=2000)
                return [first, *rest]

    batches = run(main())
    assert [m for batch in batches for m in batch] == messages
    assert all(batch.nbytes <= 2000 for batch in batches[1:])


def test_asyncio_styles_mix_in_order(codec):
    messages = counted(100000, size=8)

    async def main():
        with RawServer(feed_script(messages)) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec) as ws:
                got = [await ws.recv(timeout=TIMEOUT)]
                first = await ws.recv_batch(timeout=TIMEOUT, max_bytes=80)  # queued for recv()
                assert len(first) == 10
                got += first

                async def one():
                    return [await ws.recv(timeout=TIMEOUT)]

                async def batch(max_bytes=64 * 1024):
                    await asyncio.sleep(0.001)  # batches accumulate meanwhile
                    return list(await ws.recv_batch(timeout=TIMEOUT, max_bytes=max_bytes))

                async def many():
                    return await ws.recv_many(timeout=TIMEOUT)

                styles = [one, batch, one, many, lambda: batch(800), one, batch]
                turn = 0
                try:
                    while True:
                        got += await styles[turn % len(styles)]()
                        turn += 1
                except ConnectionClosedOK:
                    pass
                return got

    assert run(main()) == messages


def test_asyncio_reading_pauses_while_batches_wait(codec):
    """With max_queued_bytes small, reading pauses until recv_batch takes what waits:
    memory stays bounded and nothing is lost."""
    messages = counted(30000)

    async def main():
        with RawServer(feed_script(messages)) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec, max_queued_bytes=64 * 1024) as ws:
                got, most = [], 0
                try:
                    while True:
                        await asyncio.sleep(0)
                        most = max(most, ws._conn.batches.nbytes)
                        got += await ws.recv_batch(timeout=TIMEOUT)
                except ConnectionClosedOK:
                    pass
                return got, most

    got, most = run(main())
    assert got == messages
    assert most <= 64 * 1024 + 1024 * 1024  # the limit, plus what one read brought


def test_asyncio_timeout_and_on_message(codec):
    async def main():
        release = asyncio.Event()

        async def handler(ws):
            await release.wait()
            await ws.send(b"late")

        async with wsfast.asyncio.serve(handler, codec=codec) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with wsfast.asyncio.connect(url, codec=codec) as ws:
                with pytest.raises(TimeoutError):
                    await ws.recv_batch(timeout=0.1)
                release.set()
                assert list(await ws.recv_batch(timeout=TIMEOUT)) == [b"late"]
            async with wsfast.asyncio.connect(url, codec=codec, on_message=lambda ws, m: None) as ws:
                with pytest.raises(RuntimeError, match="on_message"):
                    await ws.recv_batch()

    run(main())


def test_asyncio_invalid_utf8_ends_the_batches_with_1007(codec):
    async def main():
        with RawServer(feed_script(["ok"], extra=frame(Opcode.TEXT, b"\xff"))) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec) as ws:
                return await all_batches_async(ws)

    batches, end = run(main())
    assert [m for batch in batches for m in batch] == ["ok"]
    assert type(end) is ConnectionClosedError and end.sent_code == 1007


def test_asyncio_server_receives_compressed_batches(codec):
    """The asyncio server role, unmasking into the batch, with permessage-deflate."""
    messages = ["é" * 2000, b"\x00" * 50000, "tick"] * 30 + counted(3000)

    async def main():
        results = []

        async def handler(ws):
            received = []
            while len(received) < len(messages):
                received += await ws.recv_batch(timeout=TIMEOUT)
            results.append(received)
            await ws.send("thanks")

        async with (
            wsfast.asyncio.serve(handler, codec=codec) as server,
            wsfast.asyncio.connect(f"ws://127.0.0.1:{server.port}/", codec=codec) as ws,
        ):
            assert ws.deflate_params is not None
            for message in messages:
                await ws.send(message)
            assert await ws.recv(timeout=TIMEOUT) == "thanks"
        return results

    assert run(main()) == [messages]
