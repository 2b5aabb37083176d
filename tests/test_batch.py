"""Batches: the Batch object and its numpy and Arrow views, the codec's BatchBuilder and
FrameParser.feed_batch in both twins, and Connection.receive_batch."""

from __future__ import annotations

import gc
import sys
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast import Batch
from wsfast.deflate import DeflateParams, PerMessageDeflate
from wsfast.enums import Opcode
from wsfast.exceptions import InvalidUTF8, PayloadTooBig, ProtocolError
from wsfast.protocol import Close, Connection, Ping, Pong

KEY = b"\x01\x02\x03\x04"
MIXED = [b"\x00\xff", "héllo €", b"", "", b"x" * 300, "🚀"]


def frame(codec, opcode, payload=b"", fin=True, rsv=0, client=True):
    """Wire bytes for a parser with role ``client`` (a server-side parser reads masked frames)."""
    return codec.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=None if client else KEY)


def message_frame(codec, message, client=True):
    if isinstance(message, str):
        return frame(codec, Opcode.TEXT, message.encode(), client=client)
    return frame(codec, Opcode.BINARY, message, client=client)


def drain(builder) -> list:
    """Every batch the builder holds, oldest first."""
    batches = []
    while True:
        batch = builder.take()
        if batch is None:
            return batches
        batches.append(batch)


def messages_of(builder) -> list:
    return [message for batch in drain(builder) for message in batch]


# --- The Batch object --------------------------------------------------------------------


def test_a_batch_holds_its_messages_back_to_back():
    batch = Batch.from_messages(MIXED)
    assert len(batch) == 6
    assert list(batch) == MIXED
    assert [batch[i] for i in range(6)] == MIXED
    assert [batch[i] for i in range(-6, 0)] == MIXED
    assert [type(m) for m in batch] == [bytes, str, bytes, str, bytes, str]
    assert bytes(batch.data) == b"\x00\xffh\xc3\xa9llo \xe2\x82\xac" + b"x" * 300 + "🚀".encode()
    assert batch.nbytes == len(batch.data) == 2 + 10 + 300 + 4
    assert batch.offsets.tolist() == [0, 2, 12, 12, 12, 312, 316]
    assert batch.offsets.format == "q" and len(batch.offsets) == 7
    assert bytes(batch.is_text) == b"\x00\x01\x00\x01\x00\x01"
    assert not batch.all_text and not batch.all_binary
    assert repr(batch) == "<Batch 6 mixed messages, 316 bytes>"


def test_all_text_and_all_binary():
    assert Batch.from_messages(["a", "b"]).all_text and not Batch.from_messages(["a", "b"]).all_binary
    assert Batch.from_messages([b"a"]).all_binary and not Batch.from_messages([b"a"]).all_text
    empty = Batch()
    assert len(empty) == 0 and empty.all_text and empty.all_binary and list(empty) == []
    assert empty.offsets.tolist() == [0] and empty.nbytes == 0


def test_the_buffers_are_read_only():
    batch = Batch.from_messages([b"abc", "d"])
    for buffer in (batch.data, batch.offsets, batch.is_text):
        assert buffer.readonly
        with pytest.raises(TypeError):
            buffer[0] = 0


def test_indexing_errors():
    batch = Batch.from_messages([b"a", b"b"])
    for index in (2, -3):
        with pytest.raises(IndexError):
            batch[index]
    with pytest.raises(TypeError, match="indexed by message number"):
        batch[0:1]
    with pytest.raises(TypeError):
        batch["0"]


def test_equality_compares_the_messages():
    assert Batch.from_messages([b"ab", "c"]) == Batch(b"abc", [0, 2, 3], [0, 1])
    assert Batch.from_messages([b"ab", b"c"]) != Batch.from_messages([b"a", b"bc"])
    assert Batch.from_messages([b"a"]) != Batch.from_messages(["a"])
    assert Batch() != [] and Batch.__hash__ is None


def test_from_messages_takes_any_bytes_like():
    batch = Batch.from_messages([bytearray(b"ab"), memoryview(b"xcd")[1:], memoryview(bytes(8)).cast("I")])
    assert list(batch) == [b"ab", b"cd", bytes(8)]


def test_the_constructor_takes_offsets_in_many_forms():
    expected = Batch.from_messages([b"ab", b"", b"c"])
    np = pytest.importorskip("numpy")
    for offsets in (
        [0, 2, 2, 3],
        (0, 2, 2, 3),
        array("q", [0, 2, 2, 3]),
        array("i", [0, 2, 2, 3]),
        np.array([0, 2, 2, 3], dtype=np.int64),
        np.array([0, 2, 2, 3], dtype=np.int32),
        array("q", [0, 2, 2, 3]).tobytes(),  # raw native int64
    ):
        assert Batch(b"abc", offsets) == expected, offsets
    assert list(Batch(bytearray(b"abc"), [0, 3], is_text=[True])) == ["abc"]
    assert list(Batch(b"abc", [0, 3], is_text=b"\x01")) == ["abc"]


@pytest.mark.parametrize(
    ("data", "offsets", "is_text", "error"),
    [
        (b"abc", [1, 3], None, "from 0 to len"),
        (b"abc", [0, 2], None, "from 0 to len"),
        (b"abc", [], None, "from 0 to len"),
        (b"abc", [0, 2, 1, 3], None, "never decrease"),
        (b"abc", [0, 3], [0, 1], "one flag per message"),
        (b"abc", [0, 3], [2], "0 or 1"),
        (b"abc", b"\x00" * 12, None, "whole number of int64"),
    ],
)
def test_the_constructor_checks_what_it_is_given(data, offsets, is_text, error):
    with pytest.raises(ValueError, match=error):
        Batch(data, offsets, is_text)


def test_the_constructor_checks_text_is_utf8():
    with pytest.raises(UnicodeDecodeError):
        Batch(b"ok\xff", [0, 2, 3], [0, 1])
    with pytest.raises(TypeError):
        Batch("text", [0, 4])


def test_split_cuts_a_batch_at_message_boundaries():
    batch = Batch.from_messages([b"a" * 4, "b" * 4, b"c" * 10, b"d" * 2, b"e" * 2])
    pieces = batch._split(6)
    assert [list(piece) for piece in pieces] == [[b"aaaa"], ["bbbb"], [b"c" * 10], [b"dd", b"ee"]]
    assert all(piece.offsets[0] == 0 for piece in pieces)
    assert [m for piece in batch._split(10**6) for m in piece] == list(batch)


# --- numpy and Arrow ---------------------------------------------------------------------


def tick_dtype(np):
    return np.dtype([("seq", "<u8"), ("price", "<f8"), ("side", "u1"), ("pad", "V7")])


def ticks(np, count):
    records = np.zeros(count, dtype=tick_dtype(np))
    records["seq"] = np.arange(count)
    records["price"] = np.arange(count) * 0.5
    records["side"] = np.arange(count) % 2
    return [record.tobytes() for record in records]


def test_to_numpy_views_fixed_size_records_without_a_copy():
    np = pytest.importorskip("numpy")
    batch = Batch.from_messages(ticks(np, 1000))
    records = batch.to_numpy(tick_dtype(np))
    assert records.shape == (1000,) and records.dtype == tick_dtype(np)
    assert records["seq"].tolist() == list(range(1000))
    assert records["price"].sum() == sum(i * 0.5 for i in range(1000))
    assert np.shares_memory(records, np.frombuffer(batch.data, dtype=np.uint8))
    assert not records.flags.writeable


def test_to_numpy_names_the_first_message_of_another_size():
    np = pytest.importorskip("numpy")
    messages = ticks(np, 10)
    messages[7] = messages[7][:-1]
    messages[8] = messages[8] + b"!"
    with pytest.raises(ValueError, match=r"message 7 is 23 bytes long, not 24"):
        Batch.from_messages(messages).to_numpy(tick_dtype(np))
    with pytest.raises(ValueError, match=r"message 0 is 24 bytes long, not 8"):
        Batch.from_messages(ticks(np, 3)).to_numpy("<u8")
    # Built from buffers, the sizes are checked too (nothing is known about them).
    with pytest.raises(ValueError, match=r"message 1 is 1 bytes long, not 2"):
        Batch(b"abcdefg", [0, 2, 3, 5, 7]).to_numpy("u2")
    assert Batch(b"abcd", [0, 2, 4]).to_numpy("<u2").tolist() == [0x6261, 0x6463]


def test_to_numpy_edge_cases():
    np = pytest.importorskip("numpy")
    assert Batch().to_numpy(tick_dtype(np)).shape == (0,)
    with pytest.raises(ValueError, match="at least one byte"):
        Batch.from_messages([b""]).to_numpy(np.dtype([]))
    text = Batch.from_messages(["ab", "cd"]).to_numpy("S2")
    assert text.tolist() == [b"ab", b"cd"]


def test_offsets_numpy():
    np = pytest.importorskip("numpy")
    batch = Batch.from_messages([b"ab", b"", b"cde"])
    offsets = batch.offsets_numpy()
    assert offsets.dtype == np.int64 and offsets.tolist() == [0, 2, 2, 5]
    assert np.diff(offsets).tolist() == [2, 0, 3]
    assert not offsets.flags.writeable


def test_to_arrow_binary_and_string_arrays():
    pa = pytest.importorskip("pyarrow")
    binary = Batch.from_messages([b"\x00\xff", b"", b"abc"]).to_arrow()
    assert type(binary) is pa.BinaryArray and binary.to_pylist() == [b"\x00\xff", b"", b"abc"]
    text = Batch.from_messages(["héllo", "", "€"]).to_arrow()
    assert type(text) is pa.StringArray and text.to_pylist() == ["héllo", "", "€"]
    mixed = Batch.from_messages([b"a", "é"]).to_arrow()
    assert type(mixed) is pa.BinaryArray and mixed.to_pylist() == [b"a", "é".encode()]
    empty = Batch().to_arrow()
    assert type(empty) is pa.BinaryArray and len(empty) == 0
    for array_ in (binary, text, mixed, empty):
        array_.validate(full=True)


def test_to_arrow_shares_the_payloads():
    pa = pytest.importorskip("pyarrow")
    batch = Batch.from_messages(["a" * 100, "b" * 50])
    data_address = pa.py_buffer(batch.data).address
    offsets_address = pa.py_buffer(batch.offsets).address
    narrow = batch.to_arrow()
    assert narrow.buffers()[2].address == data_address  # the payloads are not copied
    large = batch.to_arrow(large=True)
    assert type(large) is pa.LargeStringArray and large.to_pylist() == ["a" * 100, "b" * 50]
    assert large.buffers()[2].address == data_address
    assert large.buffers()[1].address == offsets_address  # nor are the offsets
    assert type(Batch.from_messages([b"x"]).to_arrow(large=True)) is pa.LargeBinaryArray
    large.validate(full=True)


def test_arrow_and_numpy_views_outlive_the_batch():
    np = pytest.importorskip("numpy")
    pa = pytest.importorskip("pyarrow")
    batch = Batch.from_messages([bytes([i]) * 8 for i in range(4)])
    records, column = batch.to_numpy("<u8"), batch.to_arrow()
    del batch
    gc.collect()
    assert records.tolist() == [0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303]
    assert column.to_pylist() == [bytes([i]) * 8 for i in range(4)]
    assert isinstance(column, pa.BinaryArray) and np is not None


@pytest.mark.parametrize(
    ("module", "extra", "call"),
    [
        ("numpy", "numpy", lambda batch: batch.to_numpy("u1")),
        ("numpy", "numpy", lambda batch: batch.offsets_numpy()),
        ("pyarrow", "arrow", lambda batch: batch.to_arrow()),
    ],
)
def test_a_missing_extra_is_named(monkeypatch, module, extra, call):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(ImportError, match=rf"pip install 'wsfast\[{extra}\]'"):
        call(Batch.from_messages([b"x"]))


# --- The BatchBuilder, in both twins ---------------------------------------------------------


def test_builder_append_and_take(codec):
    builder = codec.BatchBuilder()
    assert builder.take() is None and len(builder) == 0 and builder.nbytes == 0
    for message in MIXED:
        builder.append(message)
    assert len(builder) == 6 and builder.nbytes == 316
    assert repr(builder) == "<BatchBuilder 6 messages, 316 bytes>"
    batch = builder.take()
    assert type(batch) is Batch and list(batch) == MIXED
    assert builder.take() is None and len(builder) == 0 and builder.nbytes == 0
    builder.append(bytearray(b"z"))
    assert list(builder.take()) == [b"z"]


def test_builder_copies_a_buffer_the_caller_changes_afterwards(codec):
    builder = codec.BatchBuilder()
    buffer = bytearray(b"abc")
    builder.append(buffer)
    buffer[0] = ord("z")
    buffer += b"grown"  # resizing must not fail on a view the builder kept
    assert list(builder.take()) == [b"abc"]


def test_builder_max_bytes_bounds_every_batch(codec):
    builder = codec.BatchBuilder(max_bytes=10)
    sizes = [3, 3, 3, 3, 10, 1, 25, 0, 4, 6, 7]
    for size in sizes:
        builder.append(bytes(size))
    batches = drain(builder)
    assert [[len(m) for m in batch] for batch in batches] == [[3, 3, 3], [3], [10], [1], [25], [0, 4, 6], [7]]
    assert all(batch.nbytes <= 10 or len(batch) == 1 for batch in batches)


def test_builder_max_bytes_is_checked_and_settable(codec):
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_bytes must be >= 1"):
            codec.BatchBuilder(bad)
    with pytest.raises(TypeError):
        codec.BatchBuilder(1.5)
    builder = codec.BatchBuilder()
    builder.max_bytes = 4
    assert builder.max_bytes == 4
    with pytest.raises(ValueError):
        builder.max_bytes = 0
    with pytest.raises(ValueError):
        builder.take(0)


def test_take_splits_batches_larger_than_asked(codec):
    builder = codec.BatchBuilder()
    for index in range(10):
        builder.append(bytes([index]) * 10)
    first = builder.take(max_bytes=25)
    assert list(first) == [bytes([0]) * 10, bytes([1]) * 10]
    assert len(builder) == 8 and builder.nbytes == 80
    assert list(builder.take(max_bytes=5)) == [bytes([2]) * 10]  # one message at least
    assert [m[0] for m in builder.take()] == [3]  # what that split left
    assert [[m[0] for m in batch] for batch in drain(builder)] == [[4, 5], [6, 7], [8, 9]]


def test_batches_handed_out_are_never_overwritten(codec):
    """The compiled builder reuses the buffers of batches nobody holds any more: one
    still held, or viewed by numpy or Arrow, keeps its contents."""
    pytest.importorskip("numpy")
    parser = codec.FrameParser()
    builder = codec.BatchBuilder()
    kept, views = [], []
    for round_ in range(8):
        parser.feed_batch(b"".join(frame(codec, Opcode.BINARY, bytes([round_]) * 100) for _ in range(50)), builder)
        batch = builder.take()
        if round_ % 2:
            views.append((round_, batch.to_numpy("V100")))
        elif round_ % 4 == 0:
            kept.append((round_, batch))
        del batch
        gc.collect()
    for round_, batch in kept:
        assert list(batch) == [bytes([round_]) * 100] * 50
    for round_, records in views:
        assert all(record.tobytes() == bytes([round_]) * 100 for record in records)


# --- FrameParser.feed_batch, in both twins ---------------------------------------------------


@pytest.mark.parametrize("client", [True, False])
def test_feed_batch_takes_whole_messages_until_the_first_frame(codec, client):
    parser = codec.FrameParser(client=client, allowed_rsv=4)
    builder = codec.BatchBuilder()
    wire = b"".join(
        [
            frame(codec, Opcode.BINARY, b"\x00\xff", client=client),
            frame(codec, Opcode.TEXT, "héllo €".encode(), client=client),
            frame(codec, Opcode.BINARY, bytes(70000), client=client),
            frame(codec, Opcode.PING, b"hi", client=client),
            frame(codec, Opcode.BINARY, b"after", client=client),
            frame(codec, Opcode.TEXT, b"par", fin=False, client=client),
            frame(codec, Opcode.CONTINUATION, b"t", client=client),
        ]
    )
    items = parser.feed_batch(wire, builder)
    assert parser.last_batch_count == 3 and parser.last_frame_count == 3
    assert messages_of(builder) == [b"\x00\xff", "héllo €", bytes(70000)]
    assert items == [
        codec.Frame(Opcode.PING, b"hi"),
        b"after",
        codec.Frame(Opcode.TEXT, b"par", fin=False),
        codec.Frame(Opcode.CONTINUATION, b"t"),
    ]
    # The next call starts on the fast path again.
    assert parser.feed_batch(frame(codec, Opcode.TEXT, b"x", client=client), builder) == []
    assert parser.last_batch_count == 1 and parser.last_frame_count == 0
    assert messages_of(builder) == ["x"]


@pytest.mark.parametrize("client", [True, False])
@pytest.mark.parametrize("size", [0, 10, 300, 70000, 300000])
def test_a_message_split_anywhere_lands_whole(codec, client, size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    wire = frame(codec, Opcode.BINARY, payload, client=client) + frame(
        codec, Opcode.TEXT, "é".encode() * 50, client=client
    )
    for cut in sorted({1, 2, 5, len(wire) // 3, len(wire) // 2, len(wire) - 103, len(wire) - 1}):
        if not 0 < cut < len(wire):
            continue
        parser = codec.FrameParser(client=client)
        builder = codec.BatchBuilder()
        assert parser.feed_batch(wire[:cut], builder) == []
        assert parser.feed_batch(wire[cut:], builder) == []
        assert messages_of(builder) == [payload, "é" * 50]


def test_feed_batch_needs_a_builder_of_its_own_codec(twins):
    pure, compiled = twins
    for parser, builder in (
        (pure.FrameParser(), compiled.BatchBuilder()),
        (compiled.FrameParser(), pure.BatchBuilder()),
    ):
        with pytest.raises(TypeError):
            parser.feed_batch(b"", builder)
        with pytest.raises(TypeError):
            parser.feed_batch(b"", None)


@pytest.mark.parametrize("client", [True, False])
def test_invalid_utf8_keeps_the_messages_before_it(codec, client):
    parser = codec.FrameParser(client=client)
    builder = codec.BatchBuilder()
    wire = b"".join(message_frame(codec, m, client) for m in ["a", b"b", "c"])
    wire += frame(codec, Opcode.TEXT, b"ok \xc3\x28", client=client) + message_frame(codec, "never", client)
    with pytest.raises(InvalidUTF8) as info:
        parser.feed_batch(wire, builder)
    assert info.value.code == 1007 and info.value.frames == []
    assert "invalid continuation byte" in str(info.value)
    assert messages_of(builder) == ["a", b"b", "c"]
    with pytest.raises(InvalidUTF8):
        parser.feed_batch(message_frame(codec, "more", client), builder)  # the parser stays failed
    assert len(builder) == 0


@pytest.mark.parametrize("client", [True, False])
def test_invalid_utf8_in_a_message_that_arrived_in_pieces(codec, client):
    parser = codec.FrameParser(client=client)
    builder = codec.BatchBuilder()
    wire = message_frame(codec, "x" * 1000, client) + frame(
        codec, Opcode.TEXT, b"y" * 100000 + b"\xed\xa0\x80", client=client
    )
    parser.feed_batch(wire[:5000], builder)
    with pytest.raises(InvalidUTF8):
        parser.feed_batch(wire[5000:], builder)
    assert messages_of(builder) == ["x" * 1000]


def test_invalid_utf8_after_the_fast_path_ended(codec):
    parser = codec.FrameParser()
    builder = codec.BatchBuilder()
    wire = message_frame(codec, "a") + frame(codec, Opcode.PING) + message_frame(codec, "b")
    with pytest.raises(InvalidUTF8) as info:
        parser.feed_batch(wire + frame(codec, Opcode.TEXT, b"\xff"), builder)
    assert info.value.frames == [codec.Frame(Opcode.PING), "b"]
    assert messages_of(builder) == ["a"]


def test_violations_keep_the_messages_before_them(codec):
    parser = codec.FrameParser(max_size=1000)
    builder = codec.BatchBuilder()
    with pytest.raises(PayloadTooBig) as info:
        parser.feed_batch(message_frame(codec, b"ok") + frame(codec, Opcode.BINARY, bytes(1001)), builder)
    assert info.value.code == 1009
    assert messages_of(builder) == [b"ok"]
    parser = codec.FrameParser(client=False)
    with pytest.raises(ProtocolError, match="unmasked frame from client") as info:
        parser.feed_batch(message_frame(codec, b"ok", client=False) + message_frame(codec, b"no"), builder)
    assert info.value.code == 1002 and messages_of(builder) == [b"ok"]


@pytest.mark.parametrize(
    "utf8",
    [
        b"",
        b"plain ascii",
        "é€🚀".encode(),
        b"\x7f",
        b"\xc2\x80",
        b"\xdf\xbf",
        b"\xe0\xa0\x80",
        b"\xed\x9f\xbf",
        b"\xee\x80\x80",
        b"\xef\xbf\xbf",
        b"\xf0\x90\x80\x80",
        b"\xf4\x8f\xbf\xbf",
        b"a" * 40 + "é".encode() + b"b" * 40,
    ],
)
def test_valid_utf8_is_accepted(twins, utf8):
    assert twins[1]._is_utf8(utf8)
    for codec in twins:
        builder = codec.BatchBuilder()
        codec.FrameParser().feed_batch(frame(codec, Opcode.TEXT, utf8), builder)
        assert messages_of(builder) == [utf8.decode()]


@pytest.mark.parametrize(
    "invalid",
    [
        b"\x80",
        b"\xbf",
        b"\xc0\x80",
        b"\xc1\xbf",
        b"\xc2",
        b"\xc2\x41",
        b"\xe0\x80\x80",
        b"\xe0\x9f\xbf",
        b"\xe1\x80",
        b"\xed\xa0\x80",
        b"\xed\xbf\xbf",
        b"\xf0\x80\x80\x80",
        b"\xf0\x8f\xbf\xbf",
        b"\xf4\x90\x80\x80",
        b"\xf5\x80\x80\x80",
        b"\xff",
        b"\xf0\x90\x80",
        b"a" * 33 + b"\xe2\x82",
        b"a" * 16 + b"\xc3\x28" + b"a" * 16,
    ],
)
def test_invalid_utf8_is_refused_as_python_refuses_it(twins, invalid):
    assert not twins[1]._is_utf8(invalid)
    errors = []
    for codec in twins:
        with pytest.raises(InvalidUTF8) as info:
            codec.FrameParser().feed_batch(frame(codec, Opcode.TEXT, invalid), codec.BatchBuilder())
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(
    st.binary(max_size=64) | st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.integers(0, 40),
    st.integers(0, 40),
)
def test_the_utf8_check_agrees_with_python(twins, data, before, after):
    padded = b"x" * before + data + b"y" * after  # every alignment, and ASCII runs around it
    assert twins[1]._is_utf8(data) == is_utf8(data)
    assert twins[1]._is_utf8(padded) == is_utf8(padded)


@given(
    st.lists(st.sampled_from(["a" * 15, "a", "é", "€", "🚀", "\U0010ffff", "b" * 16]), max_size=20),
    st.integers(0, 400),
    st.sampled_from([b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90", b"\xff", b""]),
)
def test_the_utf8_check_finds_any_corruption(twins, pieces, where, corruption):
    valid = "".join(pieces).encode()
    where %= len(valid) + 1
    corrupted = valid[:where] + corruption + valid[where:]
    assert twins[1]._is_utf8(valid)
    assert twins[1]._is_utf8(corrupted) == is_utf8(corrupted)


def compressed_frames(codec, messages, client, params=None):
    """Wire bytes of ``messages`` compressed by a peer (the other role) for a parser of role ``client``."""
    sender = Connection(
        client=not client,
        codec=codec,
        deflate=PerMessageDeflate(params or DeflateParams(), client=not client, codec=codec),
    )
    for message in messages:
        if isinstance(message, str):
            sender.send_text(message)
        else:
            sender.send_binary(message)
    return sender.data_to_send()


@pytest.mark.parametrize("client", [True, False])
def test_compressed_messages_land_inflated(codec, client):
    messages = ["tick " * 200, b"\x00" * 5000, "é" * 3000, b"", bytes(range(256)) * 40]
    wire = compressed_frames(codec, messages, client)
    inflater = codec.Inflater()
    parser = codec.FrameParser(client=client, allowed_rsv=4, inflater=inflater)
    builder = codec.BatchBuilder()
    assert parser.feed_batch(wire, builder) == []
    assert messages_of(builder) == messages


def test_compressed_messages_over_the_limit_fail(codec):
    wire = compressed_frames(codec, [b"ok", bytes(10000)], True)
    parser = codec.FrameParser(allowed_rsv=4, inflater=codec.Inflater(), max_size=5000)
    builder = codec.BatchBuilder()
    with pytest.raises(PayloadTooBig):
        parser.feed_batch(wire, builder)
    assert messages_of(builder) == [b"ok"]


def batch_calls(parser, builder, chunks):
    """What feed_batch makes of each chunk: the messages it added, then the items it returned."""
    calls = []
    for chunk in chunks:
        items = parser.feed_batch(chunk, builder)
        added = messages_of(builder)
        assert parser.last_batch_count == len(added)
        calls.append(added + items)
    return calls


def message_calls(parser, chunks):
    return [parser.feed_messages(chunk) for chunk in chunks]


wire_items = st.lists(
    st.one_of(
        st.binary(max_size=300).map(lambda payload: ("binary", payload)),
        st.text(max_size=80).map(lambda text: ("text", text.encode())),
        st.sampled_from([("ping", b"p"), ("pong", b""), ("invalid", b"\xc3"), ("fragment", b"par")]),
        st.integers(70000, 140000).map(lambda size: ("binary", bytes(size))),
    ),
    max_size=30,
)


@settings(max_examples=150)
@given(
    items=wire_items,
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
    client=st.booleans(),
    max_bytes=st.integers(1, 2000),
)
def test_feed_batch_agrees_with_feed_messages(twins, items, cuts, client, max_bytes):
    """Whatever the stream and its chunking: the messages each call adds to the batch,
    then the items it returns, are what feed_messages returns for that call; the same
    error at the same call; every batch within max_bytes unless one message is larger."""
    for codec in twins:
        opcodes = {
            "binary": Opcode.BINARY,
            "text": Opcode.TEXT,
            "ping": Opcode.PING,
            "pong": Opcode.PONG,
            "invalid": Opcode.TEXT,
        }
        wire = b"".join(
            frame(codec, Opcode.TEXT, payload, fin=False, client=client)
            if kind == "fragment"
            else frame(codec, opcodes[kind], payload, client=client)
            for kind, payload in items
        )
        points = sorted({cut % (len(wire) + 1) for cut in cuts})
        chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
        expected, failure = [], None
        parser = codec.FrameParser(client=client)
        try:
            for chunk in chunks:
                expected.append(parser.feed_messages(chunk))
        except ProtocolError as exc:
            expected.append(exc.frames)
            failure = (type(exc), str(exc), exc.code)
        parser = codec.FrameParser(client=client)
        builder = codec.BatchBuilder(max_bytes)
        got = []
        try:
            for chunk in chunks:
                items_back = parser.feed_batch(chunk, builder)
                batches = drain(builder)
                assert all(batch.nbytes <= max_bytes or len(batch) == 1 for batch in batches)
                got.append([m for batch in batches for m in batch] + items_back)
        except ProtocolError as exc:
            got.append(messages_of(builder) + exc.frames)
            assert (type(exc), str(exc), exc.code) == failure
        else:
            assert failure is None
        assert got == expected


# --- Connection.receive_batch ----------------------------------------------------------------


def received(conn, chunks) -> tuple[list, list]:
    """(every message received in batches, the control events) for ``chunks``."""
    events = []
    for chunk in chunks:
        events += conn.receive_batch(chunk)
    messages = []
    while True:
        batch = conn.take_batch()
        if batch is None:
            return messages, events
        messages += batch


@pytest.mark.parametrize("client", [True, False])
def test_receive_batch_collects_messages_and_returns_control_events(codec, client):
    conn = Connection(client=client, codec=codec)
    wire = b"".join(
        [
            message_frame(codec, b"one", client),
            frame(codec, Opcode.PING, b"are you there", client=client),
            message_frame(codec, "two", client),
            frame(codec, Opcode.TEXT, b"fr", fin=False, client=client),
            frame(codec, Opcode.PONG, b"p", client=client),
            frame(codec, Opcode.CONTINUATION, "agé".encode(), client=client),
            message_frame(codec, b"three", client),
        ]
    )
    events = conn.receive_batch(wire)
    assert events == [Ping(b"are you there"), Pong(b"p")]
    assert conn.last_controls == 2 and conn.batched == 4 and conn.batches.nbytes == 3 + 3 + 6 + 5
    batch = conn.take_batch()
    assert list(batch) == [b"one", "two", "fragé", b"three"]
    assert conn.take_batch() is None and conn.batched == 0
    assert conn.data_to_send().startswith(codec.encode_frame(Opcode.PONG, b"are you there")[:1])


def test_a_fragmented_message_open_across_reads(codec):
    conn = Connection(client=True, codec=codec)
    assert conn.receive_batch(frame(codec, Opcode.BINARY, b"ab", fin=False)) == []
    assert conn.batched == 0
    conn.receive_batch(frame(codec, Opcode.CONTINUATION, b"cd") + message_frame(codec, b"next"))
    assert received(conn, [])[0] == [b"abcd", b"next"]
    # A whole message while a fragmented one is open breaks the protocol.
    conn.receive_batch(frame(codec, Opcode.TEXT, b"x", fin=False))
    conn.receive_batch(message_frame(codec, "too soon"))
    assert conn.error is not None and conn.error.code == 1002
    assert "new message started" in str(conn.error)


def test_the_close_ends_the_stream_after_the_last_batch(codec):
    conn = Connection(client=True, codec=codec)
    close = frame(codec, Opcode.CLOSE, (1000).to_bytes(2, "big") + b"bye")
    messages, events = received(
        conn, [message_frame(codec, b"a") + message_frame(codec, b"b") + close + message_frame(codec, b"late")]
    )
    assert messages == [b"a", b"b"] and events == [Close(1000, "bye")]
    assert conn.receive_batch(message_frame(codec, b"later")) == [] and conn.batched == 0
    assert conn.close_code == 1000


@pytest.mark.parametrize("split", [False, True])
def test_invalid_utf8_fails_with_1007_after_the_messages_before_it(codec, split):
    conn = Connection(client=False, codec=codec)
    wire = message_frame(codec, "fine", client=False) + frame(
        codec, Opcode.TEXT, b"x" * 5000 + b"\xff" + b"y" * 5000, client=False
    )
    chunks = [wire[:5000], wire[5000:5010], wire[5010:]] if split else [wire]
    messages, _ = received(conn, chunks)
    assert messages == ["fine"]
    assert isinstance(conn.error, InvalidUTF8) and conn.error.code == 1007
    conn.fail()
    close = codec.FrameParser().feed(conn.data_to_send())[-1]
    assert close.opcode == Opcode.CLOSE and close.close_code == 1007


def test_invalid_utf8_in_a_frame_still_arriving_fails_at_once(codec):
    conn = Connection(client=True, codec=codec)
    wire = frame(codec, Opcode.TEXT, b"ok \xff" + b"z" * 100000)
    conn.receive_batch(message_frame(codec, b"first") + wire[:2000])
    assert isinstance(conn.error, InvalidUTF8)  # before the frame's end arrived
    assert received(conn, [])[0] == [b"first"]


def test_a_message_limit_below_125_bytes(codec):
    conn = Connection(client=True, codec=codec, max_message_size=10)
    messages, _ = received(
        conn, [message_frame(codec, b"0123456789") + frame(codec, Opcode.PING) + message_frame(codec, "é")]
    )
    assert messages == [b"0123456789", "é"]
    conn.receive_batch(message_frame(codec, b"0123456789!"))
    assert isinstance(conn.error, PayloadTooBig) and conn.error.code == 1009


def deflate_connection(codec, client, max_message_size=None):
    deflate = PerMessageDeflate(DeflateParams(), client=client, codec=codec)
    return Connection(client=client, codec=codec, deflate=deflate, max_message_size=max_message_size)


@pytest.mark.parametrize("client", [True, False])
def test_compressed_and_fragmented_messages_land_whole(codec, client):
    sender = Connection(
        client=not client,
        codec=codec,
        max_frame_size=1000,
        deflate=PerMessageDeflate(DeflateParams(), client=not client, codec=codec),
    )
    messages = ["a" * 10, b"\x01" * 50000, "é" * 4000, bytes(range(256)) * 20, b"", "short"]
    for message in messages:
        if isinstance(message, str):
            sender.send_text(message)
        else:
            sender.send_binary(message)
    sender.send_ping(b"ka")
    wire = sender.data_to_send()
    for size in (len(wire), 777, 1):
        conn = deflate_connection(codec, client)
        got, events = received(conn, [wire[i : i + size] for i in range(0, len(wire), size)])
        assert got == messages and events == [Ping(b"ka")] and conn.error is None


def test_compressed_message_over_the_limit_fails_with_1009(codec):
    sender = Connection(
        client=False, codec=codec, deflate=PerMessageDeflate(DeflateParams(), client=False, codec=codec)
    )
    sender.send_binary(b"ok")
    sender.send_binary(bytes(100000))
    conn = deflate_connection(codec, True, max_message_size=50000)
    messages, _ = received(conn, [sender.data_to_send()])
    assert messages == [b"ok"] and isinstance(conn.error, PayloadTooBig)


stream_items = st.lists(
    st.one_of(
        st.binary(max_size=200).map(lambda payload: ("binary", payload)),
        st.text(max_size=60).map(lambda text: ("text", text)),
        st.binary(min_size=1, max_size=3000).map(lambda payload: ("fragmented", payload)),
        st.sampled_from([("ping", b"p"), ("pong", b"q"), ("invalid", b"\xed\xa0\x80"), ("close", b"")]),
    ),
    max_size=25,
)


@settings(max_examples=120)
@given(
    items=stream_items,
    cuts=st.lists(st.integers(0, 10**6), max_size=6),
    client=st.booleans(),
    deflate=st.booleans(),
    max_bytes=st.integers(1, 500),
)
def test_receive_batch_agrees_with_receive_data(twins, items, cuts, client, deflate, max_bytes):
    """The messages of receive_batch are those of receive_data, in order, with the same
    control events, the same error and the same replies; batches within max_bytes."""
    for codec in twins:
        params = DeflateParams() if deflate else None

        def new(role, codec=codec, params=params):
            extension = PerMessageDeflate(params, client=role, codec=codec) if deflate else None
            return Connection(client=role, codec=codec, deflate=extension, max_frame_size=700)

        sender = new(not client)
        wire = b""
        for kind, payload in items:
            if kind == "binary":
                sender.send_binary(payload)
            elif kind == "text":
                sender.send_text(payload)
            elif kind == "fragmented":
                sender.send_binary(payload * 2)
            elif kind == "ping":
                sender.send_ping(payload)
            elif kind == "pong":
                sender.send_pong(payload)
            wire += sender.data_to_send()
            if kind == "invalid":
                wire += frame(codec, Opcode.TEXT, payload, client=client)
            elif kind == "close":
                wire += frame(codec, Opcode.CLOSE, (1000).to_bytes(2, "big"), client=client)
        points = sorted({cut % (len(wire) + 1) for cut in cuts})
        chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
        reference = new(client)
        events = [event for chunk in chunks for event in reference.receive_data(chunk)]
        conn = new(client)
        conn.batches.max_bytes = max_bytes
        controls = []
        messages = []
        for chunk in chunks:
            controls += conn.receive_batch(chunk)
            while True:
                batch = conn.take_batch()
                if batch is None:
                    break
                assert batch.nbytes <= max_bytes or len(batch) == 1
                messages += batch
        assert messages == [e for e in events if type(e) in (bytes, str)]
        assert controls == [e for e in events if type(e) not in (bytes, str)]
        assert repr(conn.error) == repr(reference.error) and conn.close_code == reference.close_code
        conn.fail()
        reference.fail()
        # What each sends back (pongs, the close), as frames: a client masks at random.
        replies = [
            codec.FrameParser(client=not client, max_size=None).feed(c.data_to_send()) for c in (conn, reference)
        ]
        assert replies[0] == replies[1]
