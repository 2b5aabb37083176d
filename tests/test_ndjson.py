"""Batches as newline-delimited JSON: Batch.ndjson in both codec twins, decode_lines(),
to_polars(), what pyarrow reads of it, and wsfast.pipeline's decoded batches."""

from __future__ import annotations

import array
import asyncio
import collections
import itertools
import json
import sys
import threading

import pytest

import wsfast.asyncio
from peers import RawServer
from test_batch_io import feed_script
from wsfast import Batch
from wsfast.client import connect
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosedError, ConnectionClosedOK
from wsfast.pipeline import decoded_batches, decoded_batches_async

TIMEOUT = 5  # seconds any single wait in these tests may take
TICKS = [json.dumps({"seq": i, "px": 100 + i / 4, "side": "buy" if i % 2 else "sell"}) for i in range(500)]


def lines_of(messages) -> bytes:
    return b"".join((m.encode() if isinstance(m, str) else m) + b"\n" for m in messages)


def fed(codec, messages, max_bytes=1 << 20) -> list[Batch]:
    """The batches a parser of ``codec`` fills from the frames of ``messages``."""
    parser = codec.FrameParser(client=True, max_size=None)
    builder = codec.BatchBuilder(max_bytes)
    stream = b"".join(
        codec.encode_frame(Opcode.TEXT, m.encode()) if isinstance(m, str) else codec.encode_frame(Opcode.BINARY, m)
        for m in messages
    )
    assert parser.feed_batch(stream, builder) == []
    batches = []
    while (batch := builder.take()) is not None:
        batches.append(batch)
    return batches


# --- Batch.ndjson ----------------------------------------------------------------------------


def test_a_filled_batch_is_ndjson_as_it_lies(codec):
    (batch,) = fed(codec, TICKS)
    assert bytes(batch.ndjson) == lines_of(TICKS)
    assert batch.ndjson.readonly and batch.ndjson is batch._buffer  # the batch's own buffer, shared
    # Every other view of the batch is as without the newlines.
    assert list(batch) == TICKS and len(batch) == 500 and batch[-1] == TICKS[-1]
    assert bytes(batch.data) == "".join(TICKS).encode() and batch.nbytes == len(batch.data)
    assert batch == Batch.from_messages(TICKS)
    offsets = batch.offsets.tolist()
    assert [bytes(batch.data[a:b]).decode() for a, b in itertools.pairwise(offsets)] == TICKS


def test_the_builder_counts_payload_bytes_not_newlines(codec):
    messages = ["x" * 10] * 10
    batches = fed(codec, messages, max_bytes=50)
    assert [len(batch) for batch in batches] == [5, 5]
    assert all(batch.nbytes == 50 and bytes(batch.ndjson) == lines_of(messages[:5]) for batch in batches)


def test_batches_split_by_take_stay_ndjson(codec):
    builder = codec.BatchBuilder(1 << 20)
    for tick in TICKS[:40]:
        builder.append(tick)
    pieces = []
    while (batch := builder.take(max_bytes=300)) is not None:
        pieces.append(batch)
    assert len(pieces) > 5 and all(piece.nbytes <= 300 for piece in pieces)
    assert b"".join(bytes(piece.ndjson) for piece in pieces) == lines_of(TICKS[:40])
    assert [m for piece in pieces for m in piece] == TICKS[:40]


def test_a_message_alone_in_its_batch_has_ndjson_too(codec):
    builder = codec.BatchBuilder(16)
    builder.append('{"long": "' + "x" * 40 + '"}')
    batch = builder.take()
    assert bytes(batch.ndjson) == b'{"long": "' + b"x" * 40 + b'"}\n' and len(batch) == 1


def test_hand_built_batches_make_their_ndjson_once():
    batch = Batch.from_messages(TICKS[:3])
    assert bytes(batch.data) == "".join(TICKS[:3]).encode()  # back to back, as before
    assert bytes(batch.ndjson) == lines_of(TICKS[:3]) and batch.ndjson is batch.ndjson
    assert bytes(Batch(b"ab", [0, 1, 2], [1, 1]).ndjson) == b"a\nb\n"
    assert bytes(Batch().ndjson) == b""


def test_ndjson_refuses_binary_messages_and_newlines_in_messages(codec):
    for batch in (Batch.from_messages(["{}", b"{}"]), *fed(codec, ["{}", b"{}"])):
        with pytest.raises(ValueError, match="message 1 is binary"):
            _ = batch.ndjson
    for batch in (Batch.from_messages(["{}", "{\n}"]), *fed(codec, ["{}", "{\n}", "{}"])):
        with pytest.raises(ValueError, match="message 1 holds a newline"):
            _ = batch.ndjson
        assert batch[1] == "{\n}"  # the messages themselves are whole
    # A binary payload holding newlines stays exact in every other view.
    (batch,) = fed(codec, [b"\n\n", b"a\nb", "c"])
    assert list(batch) == [b"\n\n", b"a\nb", "c"] and bytes(batch.data) == b"\n\na\nbc"
    assert batch.offsets.tolist() == [0, 2, 5, 6] and batch == Batch.from_messages([b"\n\n", b"a\nb", "c"])


def test_data_and_offsets_of_a_filled_batch_are_packed_alike_by_both_twins(twins):
    pure, compiled = twins
    cases = [[], [""], ["", "", "x"], TICKS, [b"\n\n", b"a\nb", "c", b""], [b"\n"] * 3, ["\u00e9" * 7, b"\xff"]]
    for messages in cases:
        (batch,) = fed(pure, messages) or [Batch._join([], b"", lines=True)]
        packed = pure._pack_lines(batch._buffer, batch._bounds)
        assert compiled._pack_lines(batch._buffer, batch._bounds) == packed
        payloads = [m.encode() if isinstance(m, str) else m for m in messages]
        assert packed[0] == b"".join(payloads)
        assert memoryview(packed[1]).cast("q").tolist() == list(itertools.accumulate(map(len, payloads), initial=0))
    for buffer, bounds in [
        (b"a\n", [0, 1]),  # does not reach the end
        (b"a\n", [1, 2]),  # does not start at 0
        (b"a\nb\n", [0, 2, 2, 4]),  # a message without its newline
        (b"a\nb\n", [0, 3, 2, 4]),  # falling
        (b"a\n", [0, 5, 2]),  # past the end, then back
        (b"a", [0]),
    ]:
        for twin in twins:
            with pytest.raises(ValueError, match="bounds"):
                twin._pack_lines(buffer, array.array("q", bounds))
    for twin in twins:
        with pytest.raises(ValueError, match="bounds"):
            twin._pack_lines(b"a\n", b"\x00" * 12)  # not whole int64 values


def test_packed_forms_are_made_once_and_read_only(codec):
    (batch,) = fed(codec, TICKS)
    assert batch.data is batch.data and batch.offsets is batch.offsets
    assert batch.data.readonly and batch.offsets.readonly and batch.offsets.format == "q"
    assert batch.offsets_numpy().tolist() == batch.offsets.tolist()


def test_numpy_and_arrow_read_a_filled_batch(codec):
    np = pytest.importorskip("numpy")
    pa = pytest.importorskip("pyarrow")
    records = [bytes([i]) * 8 for i in range(50)]
    (batch,) = fed(codec, records)
    array_ = batch.to_numpy("<u8")  # steps over the newlines, without a copy
    assert array_.tolist() == [int.from_bytes(r, "little") for r in records]
    assert np.shares_memory(array_, np.frombuffer(batch._buffer, dtype=np.uint8))
    assert not array_.flags.writeable
    column = batch.to_arrow()
    column.validate(full=True)
    assert column.to_pylist() == records and batch.to_arrow(large=True).to_pylist() == records
    (text,) = fed(codec, TICKS)
    assert type(text.to_arrow()) is pa.StringArray and text.to_arrow().to_pylist() == TICKS
    with pytest.raises(ValueError, match="message 3 is 7 bytes long"):
        fed(codec, records[:3] + [b"1234567"])[0].to_numpy("<u8")


def test_pyarrow_json_reads_the_buffer():
    pa = pytest.importorskip("pyarrow")
    pa_json = pytest.importorskip("pyarrow.json")
    batch = Batch._join([t.encode() for t in TICKS], bytes([1]) * len(TICKS), lines=True)
    table = pa_json.read_json(pa.BufferReader(pa.py_buffer(batch.ndjson)))
    assert table.num_rows == 500 and table.column("seq").to_pylist() == list(range(500))


# --- decode_lines and to_polars --------------------------------------------------------------


def test_decode_lines(codec):
    msgspec = pytest.importorskip("msgspec")
    (batch,) = fed(codec, TICKS)
    assert batch.decode_lines(msgspec.json.Decoder()) == [json.loads(t) for t in TICKS]

    class Tick(msgspec.Struct):
        seq: int
        px: float

    assert [tick.seq for tick in batch.decode_lines(msgspec.json.Decoder(Tick))] == list(range(500))
    assert Batch().decode_lines(msgspec.json.Decoder()) == []
    with pytest.raises(msgspec.ValidationError):
        Batch.from_messages(['{"seq": "one", "px": 1}']).decode_lines(msgspec.json.Decoder(Tick))
    with pytest.raises(msgspec.DecodeError):
        fed(codec, ["{}", "{nope"])[0].decode_lines(msgspec.json.Decoder())
    # A message of two values, or of none, is not lost in the count.
    for messages in (["1 2", "3"], ["1", " "]):
        with pytest.raises(ValueError, match="is not one JSON value"):
            fed(codec, messages)[0].decode_lines(msgspec.json.Decoder())
    with pytest.raises(ValueError, match="binary"):
        Batch.from_messages([b"{}"]).decode_lines(msgspec.json.Decoder())


def test_to_polars(codec):
    pl = pytest.importorskip("polars")
    (batch,) = fed(codec, TICKS)
    frame = batch.to_polars()
    assert frame.height == 500 and frame["seq"].to_list() == list(range(500))
    assert frame["side"].to_list() == [json.loads(t)["side"] for t in TICKS]
    typed = batch.to_polars(schema={"seq": pl.Int32, "px": pl.Float64})
    assert typed.schema == pl.Schema({"seq": pl.Int32, "px": pl.Float64})
    assert Batch().to_polars(schema={"seq": pl.Int64}).height == 0
    assert Batch.from_messages(TICKS[:2]).to_polars()["seq"].to_list() == [0, 1]
    with pytest.raises(pl.exceptions.ComputeError):  # polars' own error for what is not JSON
        fed(codec, ['{"seq": 1}', "{nope"])[0].to_polars()
    with pytest.raises(ValueError, match="binary"):
        Batch.from_messages([b"{}"]).to_polars()


def test_to_polars_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "polars", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'wsfast\[polars\]'"):
        Batch.from_messages(["{}"]).to_polars()


# --- The pipeline ----------------------------------------------------------------------------


class Feed:
    """A blocking receiver of ``batches``, then of ``end`` (an exception), counting its calls."""

    def __init__(self, batches, end=None):
        self.batches = list(batches)
        self.end = end if end is not None else ConnectionClosedOK(1000, "")
        self.calls = 0
        self._messages = collections.deque()  # what the pipeline gives back

    def recv_batch(self, timeout=None, *, max_bytes=1 << 20):
        self.calls += 1
        if self.batches:
            return self.batches.pop(0)
        raise self.end


def numbered(count):
    return [Batch.from_messages([str(index)]) for index in range(count)]


def test_decoded_batches_come_in_order():
    assert list(decoded_batches(Feed(numbered(50)), lambda batch: int(batch[0]))) == list(range(50))
    assert list(decoded_batches(Feed([]), len)) == []
    with pytest.raises(ValueError, match="depth"):
        next(decoded_batches(Feed([]), len, depth=0))


def test_decoded_batches_hold_at_most_depth_batches():
    feed = Feed(numbered(20))
    release = threading.Event()

    def decode(batch):
        assert release.wait(TIMEOUT)
        return int(batch[0])

    results = decoded_batches(feed, decode, depth=3)
    threading.Timer(0.2, release.set).start()
    assert next(results) == 0
    assert feed.calls == 3  # read ahead only as deep as asked, while the first was decoded
    assert list(results) == list(range(1, 20))


def test_decoded_batches_raise_the_decoders_error_in_its_place():
    def decode(batch):
        if batch[0] == "3":
            raise ValueError("bad batch 3")
        return int(batch[0])

    feed = Feed(numbered(10))
    results = decoded_batches(feed, decode)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad batch 3"):
        next(results)
    with pytest.raises(StopIteration):
        next(results)
    # The failed batch was the decoder's; the one read ahead after it goes back, in order.
    assert list(feed._messages) + [b[0] for b in feed.batches] == [str(i) for i in range(4, 10)]


def test_decoded_batches_raise_an_abnormal_close_after_the_batches_before_it():
    end = ConnectionClosedError(1011, "gone")
    results = decoded_batches(Feed(numbered(4), end), lambda batch: int(batch[0]))
    assert [next(results) for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ConnectionClosedError):
        next(results)


def test_leaving_decoded_batches_early_stops_the_worker():
    decoding = []
    feed = Feed(numbered(100))
    results = decoded_batches(feed, lambda batch: decoding.append(batch) or len(decoding), depth=4)
    assert next(results) == 1
    results.close()  # what a break does
    assert len(decoding) <= 5
    assert not [t for t in threading.enumerate() if t.name.startswith("wsfast-decode")]
    # What was read ahead and not handed out is queued again, before what follows it.
    assert list(feed._messages) + [b[0] for b in feed.batches] == [str(i) for i in range(1, 100)]


def test_decoded_batches_over_a_connection(codec):
    messages = [json.dumps({"seq": index}) for index in range(20000)]
    with RawServer(feed_script(messages)) as server, connect(server.url, codec=codec) as ws:
        decoded = decoded_batches(ws, lambda batch: [json.loads(m)["seq"] for m in batch], timeout=TIMEOUT)
        assert [seq for seqs in decoded for seq in seqs] == list(range(20000))


def test_decoded_batches_async_over_a_connection(codec):
    messages = [json.dumps({"seq": index}) for index in range(20000)]

    async def main():
        async with wsfast.asyncio.connect(server.url, codec=codec) as ws:
            decoded = decoded_batches_async(ws, lambda batch: [json.loads(m)["seq"] for m in batch], timeout=TIMEOUT)
            return [seq async for seqs in decoded for seq in seqs]

    with RawServer(feed_script(messages)) as server:
        assert asyncio.run(asyncio.wait_for(main(), 4 * TIMEOUT)) == list(range(20000))


def test_decoded_batches_async_errors_and_early_exit():
    class AsyncFeed(Feed):
        async def recv_batch(self, timeout=None, *, max_bytes=1 << 20):
            return Feed.recv_batch(self, timeout, max_bytes=max_bytes)

    def decode(batch):
        if batch[0] == "5":
            raise ValueError("bad batch 5")
        return int(batch[0])

    async def main():
        results = decoded_batches_async(AsyncFeed(numbered(10)), decode)
        got = [await anext(results) for _ in range(5)]
        with pytest.raises(ValueError, match="bad batch 5"):
            await anext(results)
        early = decoded_batches_async(AsyncFeed(numbered(10)), decode, depth=3)
        got.append(await anext(early))
        await early.aclose()
        end = ConnectionClosedError(1011, "gone")
        closing = decoded_batches_async(AsyncFeed(numbered(2), end), decode)
        with pytest.raises(ConnectionClosedError):
            async for result in closing:
                got.append(result)
        return got

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == [0, 1, 2, 3, 4, 0, 0, 1]


def test_leaving_decoded_batches_early_loses_no_message(codec):
    messages = [json.dumps({"seq": index}) for index in range(20000)]

    def seqs(batch):
        return [json.loads(m)["seq"] for m in batch]

    with RawServer(feed_script(messages)) as server, connect(server.url, codec=codec) as ws:
        results = decoded_batches(ws, seqs, depth=3, max_bytes=4096, timeout=TIMEOUT)
        first = next(results)
        results.close()
        rest = [json.loads(ws.recv(TIMEOUT))["seq"] for _ in range(20000 - len(first))]
        assert first + rest == list(range(20000))


def test_leaving_decoded_batches_async_early_loses_no_message(codec):
    messages = [json.dumps({"seq": index}) for index in range(20000)]

    def seqs(batch):
        return [json.loads(m)["seq"] for m in batch]

    async def main():
        async with wsfast.asyncio.connect(server.url, codec=codec) as ws:
            results = decoded_batches_async(ws, seqs, depth=3, max_bytes=4096, timeout=TIMEOUT)
            first = await anext(results)
            await results.aclose()
            rest = []
            while len(first) + len(rest) < 20000:
                rest.extend(seqs(await ws.recv_batch(TIMEOUT)))
            return first + rest

    with RawServer(feed_script(messages)) as server:
        assert asyncio.run(asyncio.wait_for(main(), 4 * TIMEOUT)) == list(range(20000))
