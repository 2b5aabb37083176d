"""decode=: every receive style hands out what the decoder makes of each payload (as
bytes, text checked as UTF-8 first); a decoder that fails raises DecodeError for that
message and leaves the connection open, in both codec twins."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import weakref

import pytest

import wsfast.asyncio
from peers import RawServer, close_politely, frame
from wsfast.client import connect
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosedError, ConnectionClosedOK, DecodeError, InvalidUTF8
from wsfast.server import serve

TIMEOUT = 5  # seconds any single wait in these tests may take

pytestmark = pytest.mark.usefixtures("no_hang")

# Text, binary, and a text message in two fragments: all reach the decoder as bytes.
FEED = [
    frame(Opcode.TEXT, b'{"n": 1, "s": "\xc3\xa9"}'),
    frame(Opcode.BINARY, b'{"n": 2, "s": "b"}'),
    frame(Opcode.TEXT, b'{"n": 3, ', fin=False) + frame(Opcode.CONTINUATION, b'"s": "f"}'),
]
DECODED = [{"n": 1, "s": "é"}, {"n": 2, "s": "b"}, {"n": 3, "s": "f"}]
# A message no JSON decoder takes, between two it does.
WITH_BAD = [frame(Opcode.TEXT, b'{"n": 1}'), frame(Opcode.TEXT, b"not json"), frame(Opcode.BINARY, b'{"n": 2}')]


def run(coro, timeout=10):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(params=["json", "orjson", "msgspec"])
def decoder(request):
    """A decoder that takes bytes: json.loads, orjson.loads, msgspec's Decoder().decode."""
    if request.param == "json":
        return json.loads
    if request.param == "orjson":
        return pytest.importorskip("orjson").loads
    return pytest.importorskip("msgspec").json.Decoder().decode


def feed_then_close(frames):
    """A peer script: send ``frames`` at once, then close normally."""

    def script(peer):
        peer.sendall(b"".join(frames) + frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        close_politely(peer)

    return script


def drain_blocking(ws, style):
    """Every message until the normal close, received in ``style``."""
    received = []
    if style == "iterate":
        return list(ws)
    try:
        while True:
            if style == "recv":
                received.append(ws.recv(timeout=TIMEOUT))
            else:
                received.extend(ws.recv_many(timeout=TIMEOUT))
    except ConnectionClosedOK:
        return received


async def drain_asyncio(ws, style):
    received = []
    if style == "iterate":
        return [message async for message in ws]
    try:
        while True:
            if style == "recv":
                received.append(await ws.recv(timeout=TIMEOUT))
            else:
                received.extend(await ws.recv_many(timeout=TIMEOUT))
    except ConnectionClosedOK:
        return received


# Every receive style, every decoder --------------------------------------------------------


@pytest.mark.parametrize("style", ["recv", "iterate", "recv_many"])
def test_blocking_client_decodes(codec, decoder, style):
    with RawServer(feed_then_close(FEED)) as server, connect(server.url, codec=codec, decode=decoder) as ws:
        assert drain_blocking(ws, style) == DECODED


@pytest.mark.parametrize("style", ["recv", "iterate", "recv_many"])
def test_asyncio_client_decodes(codec, decoder, style):
    async def main():
        with RawServer(feed_then_close(FEED)) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec, decode=decoder) as ws:
                return await drain_asyncio(ws, style)

    assert run(main()) == DECODED


def test_on_message_gets_decoded_messages(codec, decoder):
    received = []

    async def main():
        with RawServer(feed_then_close(FEED)) as server:
            on_message = lambda ws, message: received.append(message)  # noqa: E731
            async with wsfast.asyncio.connect(server.url, codec=codec, decode=decoder, on_message=on_message) as ws:
                await ws.wait_closed()

    run(main())
    assert received == DECODED


def test_a_typed_msgspec_decoder():
    msgspec = pytest.importorskip("msgspec")

    class Tick(msgspec.Struct):
        n: int
        s: str

    decode = msgspec.json.Decoder(Tick).decode
    with RawServer(feed_then_close(FEED)) as server, connect(server.url, decode=decode) as ws:
        assert list(ws) == [Tick(1, "é"), Tick(2, "b"), Tick(3, "f")]


def test_threaded_server_connections_decode(codec, decoder):
    received = []

    def handler(ws):
        received.extend(drain_blocking(ws, "recv"))

    with serve(handler, codec=codec, decode=decoder) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", codec=codec) as ws:
            ws.send('{"n": 1, "s": "é"}')
            ws.send(b'{"n": 2, "s": "b"}')
        server.close()
    assert received == DECODED[:2]


def test_asyncio_server_connections_decode(codec, decoder):
    received = []
    done = None

    async def handler(ws):
        async for message in ws:
            received.append(message)
        done.set_result(None)

    async def main():
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        async with wsfast.asyncio.serve(handler, codec=codec, decode=decoder) as server:
            async with wsfast.asyncio.connect(f"ws://127.0.0.1:{server.port}/", codec=codec) as ws:
                await ws.send('{"n": 1, "s": "é"}')
                await ws.send(b'{"n": 2, "s": "b"}')
            await asyncio.wait_for(done, TIMEOUT)

    run(main())
    assert received == DECODED[:2]


@pytest.mark.parametrize("fragmented", [False, True], ids=["whole", "fragmented"])
def test_compressed_messages_are_decoded(codec, fragmented):
    # The server compresses (permessage-deflate is agreed by default); with a small
    # max_frame_size its messages come in fragments.
    ticks = [{"n": n, "s": "é" * n} for n in range(50)]

    def handler(ws):
        for tick in ticks:
            ws.send(json.dumps(tick, ensure_ascii=False))

    options = {"max_frame_size": 16} if fragmented else {}
    with serve(handler, codec=codec, **options) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with connect(url, codec=codec, decode=json.loads) as ws:
            assert ws.deflate_params is not None
            assert drain_blocking(ws, "recv") == ticks

        async def main():
            async with wsfast.asyncio.connect(url, codec=codec, decode=json.loads) as ws:
                return await drain_asyncio(ws, "iterate")

        assert run(main()) == ticks


def test_a_decoder_that_returns_none(codec):
    with RawServer(feed_then_close(FEED)) as server, connect(server.url, codec=codec, decode=lambda _: None) as ws:
        assert drain_blocking(ws, "recv_many") == [None, None, None]


# A decoder that fails ----------------------------------------------------------------------


def test_a_failing_decoder_raises_from_recv_and_the_connection_stays_open(codec):
    with RawServer(feed_then_close(WITH_BAD)) as server, connect(server.url, codec=codec, decode=json.loads) as ws:
        assert ws.recv(timeout=TIMEOUT) == {"n": 1}
        with pytest.raises(DecodeError) as info:
            ws.recv(timeout=TIMEOUT)
        assert info.value.message == b"not json"
        assert isinstance(info.value.__cause__, json.JSONDecodeError)
        assert isinstance(info.value, ValueError)
        assert ws.recv(timeout=TIMEOUT) == {"n": 2}
        with pytest.raises(ConnectionClosedOK):  # the peer's normal close, not 1007 or 1011
            ws.recv(timeout=TIMEOUT)


def test_iteration_can_go_on_after_a_decode_error(codec):
    with RawServer(feed_then_close(WITH_BAD)) as server, connect(server.url, codec=codec, decode=json.loads) as ws:
        received = []
        with pytest.raises(DecodeError):
            for message in ws:
                received.append(message)
        received.extend(ws)
        assert received == [{"n": 1}, {"n": 2}]


def test_asyncio_recv_and_async_for_after_a_decode_error(codec):
    async def main():
        with RawServer(feed_then_close(WITH_BAD)) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec, decode=json.loads) as ws:
                first = await ws.recv(timeout=TIMEOUT)
                with pytest.raises(DecodeError) as info:
                    async for _ in ws:
                        pass
                return first, info.value.message, [message async for message in ws]

    assert run(main()) == ({"n": 1}, b"not json", [{"n": 2}])


def test_on_message_skips_what_the_decoder_fails_on_and_logs_it(codec, caplog):
    received = []

    async def main():
        with RawServer(feed_then_close(WITH_BAD)) as server:
            on_message = lambda ws, message: received.append(message)  # noqa: E731
            async with wsfast.asyncio.connect(server.url, codec=codec, decode=json.loads, on_message=on_message) as ws:
                await ws.wait_closed()  # does not raise: the connection closed normally
                return ws.close_code

    with caplog.at_level(logging.ERROR, logger="wsfast"):
        assert run(main()) == 1000
    assert received == [{"n": 1}, {"n": 2}]
    [record] = [record for record in caplog.records if record.exc_info]
    failure = record.exc_info[1]
    assert isinstance(failure, DecodeError)
    assert failure.message == b"not json"
    assert isinstance(failure.__cause__, json.JSONDecodeError)


class Queue:
    """The receivers of a codec twin, over messages queued by hand."""

    @staticmethod
    def blocking(codec, messages, decode):
        class Receiver(codec.BlockingReceiver):
            __slots__ = ()

            def _fill(self, queue, timeout):
                raise ConnectionClosedOK(1000)

        receiver = Receiver()
        receiver._decode = decode
        receiver._messages.extend(messages)
        return receiver

    @staticmethod
    def asyncio(codec, messages, decode):
        class Receiver(codec.Receiver):
            __slots__ = ()

            async def _wait_for_messages(self, timeout):
                raise ConnectionClosedOK(1000)

        receiver = Receiver()
        receiver._decode = decode
        receiver._messages.extend(messages)
        return receiver


def test_recv_many_returns_what_came_before_a_failure_and_raises_it_next(codec):
    receiver = Queue.blocking(codec, [b"1", b"2", b"x", b"3", b"y"], json.loads)
    assert receiver.recv_many() == [1, 2]
    assert list(receiver._messages) == [b"3", b"y"]  # what follows the failure stays queued
    with pytest.raises(DecodeError) as info:
        receiver.recv_many()
    assert info.value.message == b"x"
    assert receiver.recv_many() == [3]
    with pytest.raises(DecodeError) as info:  # first in line: raised at once
        receiver.recv()
    assert info.value.message == b"y"
    with pytest.raises(ConnectionClosedOK):
        receiver.recv_many()


def test_recv_many_decodes_at_most_256_messages_a_call(codec):
    # Without reading in between: Queue's reads raise, so every call takes what is queued.
    numbers = [str(n).encode() for n in range(600)]
    receiver = Queue.blocking(codec, numbers, json.loads)
    assert [len(receiver.recv_many()) for _ in range(3)] == [256, 256, 88]
    plain = Queue.blocking(codec, numbers, None)
    assert len(plain.recv_many()) == 600  # without a decoder: everything at once

    # The asyncio connection's recv_many() takes them with the same _take_all().
    receiver = Queue.asyncio(codec, numbers, json.loads)
    assert [n for _ in range(3) for n in receiver._take_all()] == list(range(600))


def test_a_failure_recv_many_met_is_raised_by_any_receive_next(codec):
    for receive in ("recv", "__next__"):
        receiver = Queue.blocking(codec, [b"1", b"x", b"2"], json.loads)
        assert receiver.recv_many() == [1]
        with pytest.raises(DecodeError):
            getattr(receiver, receive)()
        assert receiver.recv() == 2


def test_asyncio_receivers_keep_the_order_after_a_failure(codec):
    async def main():
        receiver = Queue.asyncio(codec, [b"1", b"x", b"2", b"y", b"3"], json.loads)
        taken = [await receiver.recv()]
        with pytest.raises(DecodeError):
            await receiver.recv()
        taken.append(await receiver.__anext__())
        with pytest.raises(DecodeError):
            await receiver.__anext__()
        taken.append(await receiver.recv())
        with pytest.raises(ConnectionClosedOK):
            await receiver.recv()
        return taken

    assert run(main()) == [1, 2, 3]


def test_asyncio_recv_many_prefix(codec):
    async def main():
        with RawServer(feed_then_close([*WITH_BAD, frame(Opcode.TEXT, b"3")])) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec, decode=json.loads) as ws:
                outcomes = []
                while True:
                    try:
                        outcomes.extend(await ws.recv_many(timeout=TIMEOUT))
                    except DecodeError as exc:
                        outcomes.append(exc.message)
                    except ConnectionClosedOK:
                        return outcomes

    assert run(main()) == [{"n": 1}, b"not json", {"n": 2}, 3]


def test_blocking_recv_many_prefix_over_a_connection(codec):
    with RawServer(feed_then_close([*WITH_BAD, frame(Opcode.TEXT, b"3")])) as server:
        with connect(server.url, codec=codec, decode=json.loads) as ws:
            outcomes = []
            while True:
                try:
                    outcomes.extend(ws.recv_many(timeout=TIMEOUT))
                except DecodeError as exc:
                    outcomes.append(exc.message)
                except ConnectionClosedOK:
                    break
    assert outcomes == [{"n": 1}, b"not json", {"n": 2}, 3]


def test_recv_batch_is_refused_with_decode(codec):
    with RawServer(feed_then_close(FEED)) as server, connect(server.url, codec=codec, decode=json.loads) as ws:
        with pytest.raises(RuntimeError, match="decode"):
            ws.recv_batch(timeout=TIMEOUT)
        assert drain_blocking(ws, "recv") == DECODED


# UTF-8 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        frame(Opcode.TEXT, b'"\xff"'),
        frame(Opcode.TEXT, b'"\xc3', fin=False) + frame(Opcode.CONTINUATION, b'("'),
        frame(Opcode.TEXT, b'"\xed\xa0\x80"'),  # a surrogate
    ],
    ids=["whole", "fragmented", "surrogate"],
)
def test_invalid_utf8_in_text_still_fails_with_1007(codec, data):
    decoded = []
    answers = []

    def decode(payload):
        decoded.append(payload)
        return json.loads(payload)

    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"1") + data)
        answers.append(peer.next_frame())

    with RawServer(script) as server, connect(server.url, codec=codec, decode=decode) as ws:
        assert ws.recv(timeout=TIMEOUT) == 1
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
    assert info.value.sent_code == 1007
    assert isinstance(info.value.__cause__, InvalidUTF8)
    assert decoded == [b"1"]  # the invalid text never reached the decoder
    assert int.from_bytes(answers[0].payload[:2], "big") == 1007


def test_invalid_utf8_in_text_still_fails_with_1007_in_asyncio(codec):
    decoded = []

    async def main():
        with RawServer(feed_then_close([frame(Opcode.TEXT, b'"\xff"')])) as server:
            async with wsfast.asyncio.connect(server.url, codec=codec, decode=decoded.append) as ws:
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv(timeout=TIMEOUT)
                return info.value.sent_code

    assert run(main()) == 1007
    assert decoded == []


def test_binary_goes_to_the_decoder_unchecked(codec):
    with RawServer(feed_then_close([frame(Opcode.BINARY, b"\xff\xfe")])) as server:
        with connect(server.url, codec=codec, decode=bytes.hex) as ws:
            assert ws.recv(timeout=TIMEOUT) == "fffe"


# Memory ------------------------------------------------------------------------------------


def test_a_closed_connection_with_decode_is_freed_by_reference_counting(codec):
    class Decoder:
        def decode(self, payload):
            return json.loads(payload)

    gc.collect()
    gc.disable()
    try:
        decoder = Decoder()
        with RawServer(feed_then_close(WITH_BAD)) as server:
            ws = connect(server.url, codec=codec, decode=decoder.decode)
            freed = [weakref.ref(ws._conn), weakref.ref(ws._stream), weakref.ref(decoder)]
            del decoder
            assert ws.recv(timeout=TIMEOUT) == {"n": 1}
            with pytest.raises(DecodeError):
                ws.recv(timeout=TIMEOUT)
            assert ws.recv_many(timeout=TIMEOUT) == [{"n": 2}]
            ws.close()
        del ws
        assert [ref() for ref in freed] == [None, None, None]
    finally:
        gc.enable()
