"""Inflating permessage-deflate messages (RFC 7692) in both codec twins: the ``Inflater``,
the parser that inflates whole compressed messages itself, and the Connection on top.

Everything is checked against plain zlib, in many chunkings, with the same limits and
errors in both twins."""

from __future__ import annotations

import array
import codecs
import random
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings

try:
    import numpy
except ImportError:  # numpy arrays are then left out of the buffer shapes
    numpy = None
from hypothesis import strategies as st

from wsfast import _pure
from wsfast.deflate import DeflateParams, PerMessageDeflate
from wsfast.enums import Opcode
from wsfast.exceptions import InvalidUTF8, PayloadTooBig, ProtocolError
from wsfast.protocol import Close, Connection, Ping, Pong

TRAILER = b"\x00\x00\xff\xff"
KEY = b"\x0a\x0b\x0c\x0d"
TEXT, BINARY, CONTINUATION, PING = Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION, Opcode.PING
MiB = 1024 * 1024


class Sender:
    """Compresses messages as RFC 7692 §7.2.1 says, with context takeover unless ``reset``."""

    def __init__(self, bits: int = 15, reset: bool = False) -> None:
        self.bits = max(bits, 9)  # zlib cannot compress with an 8-bit raw window; 9 stays within 8
        self.reset = reset
        self.compressor = self._new()

    def _new(self):
        return zlib.compressobj(6, zlib.DEFLATED, -self.bits)

    def compress(self, message: bytes) -> bytes:
        if self.reset:
            self.compressor = self._new()
        data = self.compressor.compress(message) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TRAILER)
        return data[:-4]

    def finish(self, message: bytes) -> bytes:
        """``message`` as a whole DEFLATE stream ending with a BFINAL block; the peer then
        starts afresh, so this side does too."""
        compressor = self._new()
        self.compressor = self._new()
        return compressor.compress(message) + compressor.flush(zlib.Z_FINISH)


def ticks(count: int, seed: int = 0) -> list[str]:
    """JSON trades: small, alike messages, the case context takeover is for."""
    rng = random.Random(seed)
    return [
        f'{{"e":"trade","s":"{rng.choice(["BTC-USD", "ETH-USD", "SOL-USD"])}","t":{100000 + i},'
        f'"p":"{rng.uniform(1, 60000):.2f}","q":"{rng.expovariate(2):.6f}","m":{rng.random() < 0.5}}}'.lower()
        for i in range(count)
    ]


def encode(opcode, payload=b"", fin=True, rsv1=False, client=True) -> bytes:
    """Wire bytes for a receiver of role ``client`` (a server receives masked frames)."""
    return _pure.encode_frame(opcode, payload, fin=fin, rsv=4 if rsv1 else 0, mask_key=None if client else KEY)


def chunkings(data: bytes, seed: int, count: int = 30):
    """``data`` whole, cut at every single point (up to a few hundred), and cut at random."""
    yield [data]
    step = max(1, len(data) // 300)
    for cut in range(1, len(data), step):
        yield [data[:cut], data[cut:]]
    rng = random.Random(seed)
    for _ in range(count):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 12))))
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def connection(codec, client=True, max_message_size=None, params=None) -> Connection:
    deflate = PerMessageDeflate(params or DeflateParams(), client=client, codec=codec)
    return Connection(client=client, codec=codec, deflate=deflate, max_message_size=max_message_size)


def receive(conn: Connection, chunks) -> list:
    events = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    return events


def outcome(call):
    """What ``call()`` returns, or the exception it raises, in comparable form."""
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - compared, never hidden
        return ("error", type(exc), str(exc), getattr(exc, "code", None))


# --- The Inflater --------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [7, 16, 0, -15, True, 15.0, "15", None])
def test_window_bits_are_checked_alike(twins, bits):
    outcomes = [outcome(lambda: codec.Inflater(bits)) for codec in twins]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] is ValueError and "window_bits must be an int within 8..15" in outcomes[0][2]


def test_attributes(codec):
    inflater = codec.Inflater(9, no_context_takeover=1)
    assert (inflater.window_bits, inflater.no_context_takeover) == (9, True)
    inflater = codec.Inflater()
    assert (inflater.window_bits, inflater.no_context_takeover) == (15, False)


@pytest.mark.parametrize(
    "args",
    [("abc",), (b"\xf2\x00", True, "10"), (b"\xf2\x00", True, 1.5), (None,), ([1, 2],)],
    ids=["str", "str-limit", "float-limit", "None", "list"],
)
def test_bad_arguments_fail_alike(twins, args):
    outcomes = [outcome(lambda: codec.Inflater().inflate(*args)) for codec in twins]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] is TypeError


@pytest.mark.parametrize("bits", range(8, 16))
@pytest.mark.parametrize("reset", [False, True])
def test_inflates_what_zlib_compressed_for_every_window(codec, bits, reset):
    sender = Sender(bits, reset)
    inflater = codec.Inflater(bits, no_context_takeover=reset)
    messages = [text.encode() for text in ticks(200, bits)] + [bytes(3000), random.Random(bits).randbytes(5000)]
    for message in messages * 2:
        assert inflater.inflate(sender.compress(message)) == message


def test_a_wider_window_than_negotiated_is_never_misread(codec):
    # zlib notices a reference beyond the window only when it reaches past the output of
    # the current call: how much it notices depends on output buffering, which differs
    # between the twins. What it does not notice it still decodes right.
    rng = random.Random(8)
    chunks = [rng.randbytes(40) for _ in range(10)]
    message = b"".join(rng.choice(chunks) for _ in range(60))
    payload = Sender(12).compress(message)
    result = outcome(lambda: codec.Inflater(8).inflate(payload))
    assert result == ("ok", message) or (result[3] == 1007 and "too far back" in result[2])


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xff" * 20, "invalid block type"),
        (bytes.fromhex("00 05 00 00 00 48 65 6c 6c 6f"), "invalid stored block lengths"),
        (bytes.fromhex("f2 00 11 00 00"), "too far back"),
    ],
)
def test_corrupt_data_fails_alike_and_keeps_failing(twins, payload, reason):
    inflaters = [codec.Inflater() for codec in twins]
    for _ in range(2):
        outcomes = [outcome(lambda: inflater.inflate(payload)) for inflater in inflaters]
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][1] is ProtocolError and outcomes[0][3] == 1007
        assert outcomes[0][2].startswith("invalid compressed data: ") and reason in outcomes[0][2]


def test_random_garbage_fails_alike(twins):
    rng = random.Random(2)
    for _ in range(500):
        payload = rng.randbytes(rng.randrange(1, 60))
        limit = rng.choice([None, 0, 10, 1000])
        inflaters = [codec.Inflater(rng.randrange(8, 16)) for codec in twins]
        outcomes = [outcome(lambda: inflater.inflate(payload, True, limit)) for inflater in inflaters]
        assert outcomes[0] == outcomes[1]


def test_context_takeover_and_its_absence(codec):
    hello, hello_again = bytes.fromhex("f248cdc9c90700"), bytes.fromhex("f200110000")  # RFC 7692 §7.2.3.2
    inflater = codec.Inflater()
    assert [inflater.inflate(hello), inflater.inflate(hello_again)] == [b"Hello", b"Hello"]
    inflater = codec.Inflater(no_context_takeover=True)
    assert inflater.inflate(hello) == b"Hello"
    with pytest.raises(ProtocolError) as info:
        inflater.inflate(hello_again)  # refers to the previous message, which is forgotten
    assert info.value.code == 1007


def test_no_context_takeover_resets_after_each_message_only(codec):
    inflater = codec.Inflater(no_context_takeover=True)
    for message in [b"abc" * 1000, b"", b"Hello"] * 3:
        payload = Sender(reset=True).compress(message)
        parts = [payload[: len(payload) // 2], payload[len(payload) // 2 :]]
        assert inflater.inflate(parts[0], False) + inflater.inflate(parts[1], True) == message


@pytest.mark.parametrize("size", [0, 1, 5, 5000, 300_000])
def test_messages_ending_with_a_stream_end(codec, size):
    message = random.Random(size).randbytes(size // 2) + b"Hello" * (size // 10)
    sender = Sender()
    inflater = codec.Inflater()
    for _ in range(3):
        assert inflater.inflate(sender.finish(message)) == message
        payload = sender.finish(message)
        assert inflater.inflate(payload[:-1], False) + inflater.inflate(payload[-1:]) == message
        assert inflater.inflate(sender.compress(b"after")) == b"after"  # a new stream, in step
        assert inflater.inflate(sender.compress(b"after")) == b"after"  # which refers back


def test_many_stream_ends_in_one_message_stay_linear(codec):
    sender = Sender()
    payload = b"".join(sender.finish(bytes([i % 256]) * 3) for i in range(100_000))
    inflater = codec.Inflater()
    assert inflater.inflate(payload) == b"".join(bytes([i % 256]) * 3 for i in range(100_000))
    assert inflater.inflate(b"\x03\x00" * 200_000 + sender.compress(b"Hello")) == b"Hello"
    with pytest.raises(PayloadTooBig):
        inflater.inflate(b"".join(sender.finish(b"abc") for _ in range(1000)), True, 2999)


def test_empty_messages(codec):
    sender = Sender()
    inflater = codec.Inflater()
    for _ in range(3):
        assert inflater.inflate(sender.compress(b"")) == b""
        assert inflater.inflate(b"") == b""  # an empty payload, as some peers send
        assert inflater.inflate(b"", False) + inflater.inflate(b"") == b""
        assert inflater.inflate(sender.compress(b"Hello")) == b"Hello"


@pytest.mark.parametrize("size", [0, 1, 100, 4095, 4096, 70_000])
def test_the_limit_is_exact(codec, size):
    message = random.Random(size).randbytes(size // 2) + bytes(size - size // 2)
    payload = Sender().compress(message)
    for limit in [size, size - 1, None, -1]:  # a negative budget allows nothing
        fits = limit is None or size <= max(limit, 0)
        result = outcome(lambda: codec.Inflater().inflate(payload, True, limit))
        assert (result == ("ok", message)) if fits else (result[1] is PayloadTooBig)
        halves = codec.Inflater()
        head = outcome(lambda: halves.inflate(payload[: len(payload) // 2], False, limit))
        if head[0] == "ok":
            budget = None if limit is None else limit - len(head[1])
            result = outcome(lambda: halves.inflate(payload[len(payload) // 2 :], True, budget))
            result = (result[0], head[1] + result[1]) if result[0] == "ok" else result
        if fits:
            assert head[0] == "ok" and result == ("ok", message)
        else:
            assert PayloadTooBig in (head[1], result[1])


def strided(data: bytes) -> memoryview:
    backing = bytearray(2 * len(data))
    backing[::2] = data
    return memoryview(backing)[::2]


def buffer_shapes(data: bytes):
    """``data`` in the shapes a buffer can take (its length is a multiple of 4)."""
    yield bytearray(data)
    yield memoryview(data)
    yield strided(data)
    yield array.array("B", data)
    yield array.array("I", data)
    yield memoryview(data).cast("I")
    yield memoryview(data).cast("B", (4, len(data) // 4))
    yield memoryview(array.array("I", data)).cast("B")
    if numpy is not None:
        flat = numpy.frombuffer(data, numpy.uint8)
        yield from [flat, flat.reshape(4, -1), numpy.repeat(flat, 2)[::2], flat.view(numpy.uint32)]


def payload_of_length_multiple_of_4(seed: int) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    while True:
        message = "".join(rng.choice(["ab", "c", "€", "zz"]) for _ in range(rng.randrange(10, 400))).encode()
        payload = Sender().compress(message)
        if len(payload) % 4 == 0:
            return message, payload


@pytest.mark.parametrize("seed", range(3))
def test_any_buffer_inflates_alike(twins, seed):
    message, payload = payload_of_length_multiple_of_4(seed)
    for shape in buffer_shapes(payload):
        outcomes = [outcome(lambda: codec.Inflater().inflate(shape)) for codec in twins]
        assert outcomes == [("ok", message)] * 2, type(shape)


@pytest.mark.skipif(numpy is None, reason="needs numpy")
def test_a_buffer_in_fortran_order_inflates_its_bytes_in_c_order(twins):
    message, payload = payload_of_length_multiple_of_4(0)
    fortran = numpy.asfortranarray(numpy.frombuffer(payload, numpy.uint8).reshape(4, -1))
    outcomes = [outcome(lambda: codec.Inflater().inflate(fortran)) for codec in twins]
    assert outcomes == [("ok", message)] * 2


def zero_bomb(output_size: int, under: int) -> bytes:
    """Compressed zeros: ``output_size`` bytes of them, rounded up to whole MiB, in less than ``under`` bytes
    (a full flush makes every MiB compress to the same bytes: no need to compress them all)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = -(-output_size // MiB)
    assert count * len(block) < under
    return block * count


@pytest.fixture(scope="module")
def gigabyte_bomb() -> bytes:
    """A GB of zeros (1000 MiB) compressed into less than 1 MiB: a frame that passes a 1 MiB
    frame limit."""
    payload = zero_bomb(1000 * MiB, under=MiB)
    assert zlib.decompressobj(-15).decompress(payload, 100) == bytes(100)
    return payload


def peak_memory(call) -> tuple[object, int]:
    """``outcome(call)`` and the peak of memory allocated meanwhile (zlib's included)."""
    tracemalloc.start()
    try:
        result = outcome(call)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_bomb_is_stopped_before_it_expands(codec, gigabyte_bomb):
    inflater = codec.Inflater()
    result, peak = peak_memory(lambda: inflater.inflate(gigabyte_bomb, True, MiB))
    assert result[1] is PayloadTooBig and result[3] == 1009
    assert peak < 4 * MiB


def test_a_header_reserves_no_memory(codec):
    # Inflating starts with room for a few times the input, not for the limit.
    payload = Sender().compress(b"x" * 10)
    inflater = codec.Inflater()
    result, peak = peak_memory(lambda: inflater.inflate(payload, True, 1024 * MiB))
    assert result == ("ok", b"x" * 10)
    assert peak < 256 * 1024  # zlib's window and state, and a first output buffer


# --- The parser inflates whole compressed messages ------------------------------------------


def parser(codec, client=True, max_size=None):
    return codec.FrameParser(client=client, max_size=max_size, allowed_rsv=4, inflater=codec.Inflater())


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
def test_feed_messages_inflates_and_feed_does_not(codec, client):
    sender = Sender()
    rng = random.Random(1)
    texts = ticks(3) + ["", "".join(rng.choice("aé€b😀 ") for _ in range(20_000))]
    binary = bytes(range(256)) * 40
    payloads = [sender.compress(text.encode()) for text in texts] + [sender.compress(binary)]
    wire = b"".join(encode(TEXT, payload, rsv1=True, client=client) for payload in payloads[:-1])
    wire = encode(PING, b"p", client=client) + wire + encode(BINARY, payloads[-1], rsv1=True, client=client)
    assert len(payloads[-2]) > 4096  # larger than the stack buffers
    for chunks in chunkings(wire, seed=1, count=10):
        messages = parser(codec, client)
        items = []
        for chunk in chunks:
            items += messages.feed_messages(chunk)
        assert items == [codec.Frame(PING, b"p"), *texts, binary]
        assert [type(item) for item in items[1:]] == [str] * len(texts) + [bytes]
    frames = parser(codec, client).feed(wire)
    assert [frame.payload for frame in frames[1:]] == payloads
    assert all(frame.rsv1 for frame in frames[1:])


def test_inflating_takes_odd_buffers_and_any_limit(codec):
    sender = Sender()
    texts = ticks(20, seed=6)
    wire = b"".join(encode(TEXT, sender.compress(text.encode()), rsv1=True, client=False) for text in texts)
    for limit in [None, float("inf"), 10**30, 70_000.5]:
        messages = parser(codec, client=False, max_size=limit)
        third = len(wire) // 3
        items = messages.feed_messages(strided(wire[:third]))
        items += messages.feed_messages(array.array("B", wire[third : 2 * third]))
        items += messages.feed_messages(memoryview(bytearray(wire[2 * third :])))
        assert items == texts


def test_last_frame_count_leaves_out_inflated_messages(codec):
    sender = Sender()
    messages = parser(codec)
    wire = encode(TEXT, sender.compress(b"a"), rsv1=True) + encode(PING)
    wire += encode(BINARY, sender.compress(b"b"), rsv1=True)
    assert messages.feed_messages(wire) == ["a", codec.Frame(PING), b"b"]
    assert messages.last_frame_count == 1


def test_only_rsv1_alone_on_a_whole_data_frame_is_inflated(codec):
    payload = Sender().compress(b"abc")
    messages = codec.FrameParser(allowed_rsv=7, inflater=codec.Inflater())
    wire = _pure.encode_frame(TEXT, payload, rsv=6) + _pure.encode_frame(BINARY, payload, rsv=5)
    assert messages.feed_messages(wire) == [
        codec.Frame(TEXT, payload, rsv1=True, rsv2=True),
        codec.Frame(BINARY, payload, rsv1=True, rsv3=True),
    ]


def test_without_an_inflater_compressed_messages_come_as_frames(codec):
    payload = Sender().compress(b"abc")
    messages = codec.FrameParser(allowed_rsv=4)
    assert messages.inflater is None
    assert messages.feed_messages(encode(TEXT, payload, rsv1=True)) == [codec.Frame(TEXT, payload, rsv1=True)]


def test_the_other_twins_inflater_is_refused(twins):
    pure, compiled = twins
    for parser_codec, inflater in [(pure, compiled.Inflater()), (compiled, pure.Inflater()), (pure, object())]:
        with pytest.raises(TypeError) as info:
            parser_codec.FrameParser(inflater=inflater)
        kind = f"{type(inflater).__module__}.{type(inflater).__qualname__}"
        assert str(info.value) == f"inflater must be a {parser_codec.__name__}.Inflater or None, not {kind}"


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
def test_the_parser_limit_bounds_inflated_messages(codec, client):
    sender = Sender()
    wire = encode(TEXT, sender.compress(b"a" * 1000), rsv1=True, client=client)
    wire += encode(BINARY, sender.compress(b"b" * 1001), rsv1=True, client=client)
    for chunks in chunkings(wire, seed=2, count=5):
        messages = parser(codec, client, max_size=1000.7)  # a fractional limit works as its floor
        items = []
        with pytest.raises(PayloadTooBig) as info:
            for chunk in chunks:
                items += messages.feed_messages(chunk)
        assert items + info.value.frames == ["a" * 1000]
        assert info.value.code == 1009 and "once decompressed" in str(info.value)
        with pytest.raises(PayloadTooBig) as again:  # the parser stays failed
            messages.feed_messages(encode(TEXT, b"", client=client))
        assert again.value.frames == []


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
@pytest.mark.parametrize("bad", [b"\xff", b"ok \xc3", "é".encode()[:1] + b"x" * 10_000])
def test_inflated_text_must_be_utf8(codec, client, bad):
    sender = Sender()
    wire = encode(BINARY, sender.compress(b"fine"), rsv1=True, client=client) + encode(PING, client=client)
    wire += encode(TEXT, sender.compress(bad), rsv1=True, client=client)
    wire += encode(TEXT, sender.compress(b"later"), rsv1=True, client=client)
    messages = parser(codec, client)
    with pytest.raises(InvalidUTF8) as info:
        messages.feed_messages(wire)
    assert info.value.code == 1007
    assert info.value.frames == [b"fine", codec.Frame(PING)]


def test_corrupt_data_fails_the_parser(codec):
    wire = encode(BINARY, b"plain") + encode(BINARY, b"\xff\xff", rsv1=True) + encode(BINARY, b"after")
    messages = parser(codec)
    with pytest.raises(ProtocolError) as info:
        messages.feed_messages(wire)
    assert (info.value.code, info.value.frames) == (1007, [b"plain"])
    assert "invalid compressed data" in str(info.value)


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
def test_huge_messages_over_many_feeds(codec, client):
    rng = random.Random(5)
    words = [rng.randbytes(rng.randrange(1, 12)) for _ in range(3000)]
    message = b"".join(rng.choice(words) for _ in range(1_000_000))  # ~6 MiB, ~3 MiB compressed
    sender = Sender()
    payload = sender.compress(message)
    assert len(payload) > 2 * MiB
    wire = encode(BINARY, payload, rsv1=True, client=client)
    wire += encode(TEXT, sender.compress(b"next"), rsv1=True, client=client)
    messages = parser(codec, client)
    items = []
    for start in range(0, len(wire), 65536):
        window = messages.payload_window()  # what the I/O layers read into, when there is one
        chunk = wire[start : start + 65536]
        if window is not None and len(window) >= len(chunk):
            window[: len(chunk)] = chunk
            chunk = window[: len(chunk)]
        del window
        items += messages.feed_messages(chunk)
        del chunk  # a view of the window must go before the next window
    assert items == [message, "next"]


# --- Compressed messages stay in order --------------------------------------------------------


def ordering_stream(client: bool) -> tuple[bytes, list]:
    """Compressed fragmented messages followed, in the same bytes, by whole compressed
    messages that refer back to them (context takeover), with control frames between."""
    sender = Sender()
    texts = ticks(12, seed=3)
    expected = []
    wire = b""

    def fragmented(text, pieces):
        nonlocal wire
        payload = sender.compress(text.encode())
        cuts = [len(payload) * i // pieces for i in range(pieces + 1)]
        for i in range(pieces):
            opcode = TEXT if i == 0 else CONTINUATION
            wire += encode(opcode, payload[cuts[i] : cuts[i + 1]], fin=i == pieces - 1, rsv1=i == 0, client=client)
            if i == 0:
                wire += encode(PING, b"between", client=client)
                expected.append(Ping(b"between"))
        expected.append(text)

    def whole(text):
        nonlocal wire
        wire += encode(TEXT, sender.compress(text.encode()), rsv1=True, client=client)
        expected.append(text)

    fragmented(texts[0], 3)
    for text in texts[1:4]:
        whole(text)
    wire += encode(BINARY, b"plain", client=client)
    expected.append(b"plain")
    fragmented(texts[4], 2)
    fragmented(texts[5], 4)
    for text in texts[6:]:
        whole(text)
    return wire, expected


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
def test_fragments_are_inflated_before_the_messages_after_them(codec, client):
    wire, expected = ordering_stream(client)
    for chunks in chunkings(wire, seed=4):
        conn = connection(codec, client)
        assert receive(conn, chunks) == expected
        assert conn.error is None


def test_the_parser_defers_the_messages_after_a_compressed_fragment(codec):
    wire, _ = ordering_stream(client=True)
    items = parser(codec).feed_messages(wire)
    # After the first fragment, only uncompressed whole messages come as such.
    assert [item for item in items if type(item) is not codec.Frame] == [b"plain"]
    sender = Sender()
    first, second, third = (sender.compress(text.encode()) for text in ticks(3, seed=9))
    messages = parser(codec)
    wire = encode(TEXT, first[:5], fin=False, rsv1=True) + encode(CONTINUATION, first[5:])
    wire += encode(TEXT, second, rsv1=True)
    items = messages.feed_messages(wire)
    assert [type(item) for item in items] == [codec.Frame] * 3
    for frame in items:  # the caller inflates them, in order
        messages.inflater.inflate(frame.payload, frame.fin)
    # The next call inflates again.
    assert messages.feed_messages(encode(TEXT, third, rsv1=True)) == ticks(3, seed=9)[2:]


@pytest.mark.parametrize("compressed_first", [False, True])
def test_a_whole_compressed_message_inside_a_fragmented_one_fails_with_1002(codec, compressed_first):
    sender = Sender()
    first = sender.compress(b"first") if compressed_first else b"first"
    wire = encode(BINARY, b"before") + encode(TEXT, first, fin=False, rsv1=compressed_first)
    wire += encode(TEXT, b"\xff\xff\xff", rsv1=True)  # corrupt too: the 1002 comes first
    for chunks in chunkings(wire, seed=5):
        conn = connection(codec)
        assert receive(conn, chunks) == [b"before"]
        assert (type(conn.error), conn.error.code) == (ProtocolError, 1002)
        assert "new message started" in str(conn.error)


# --- The Connection ---------------------------------------------------------------------------


def test_a_deflate_built_for_another_codec_is_refused(twins):
    pure, compiled = twins
    for conn_codec, deflate_codec in [(pure, compiled), (compiled, pure)]:
        deflate = PerMessageDeflate(DeflateParams(), client=True, codec=deflate_codec)
        with pytest.raises(ValueError, match="deflate must be built for the codec"):
            Connection(client=True, codec=conn_codec, deflate=deflate)
        assert type(deflate.inflater) is deflate_codec.Inflater


def test_whole_compressed_messages_take_the_fast_path(codec, monkeypatch):
    conn = connection(codec)
    monkeypatch.setattr(conn, "_handle", None)  # any call would fail
    sender = Sender()
    texts = ticks(50)
    wire = b"".join(encode(TEXT, sender.compress(text.encode()), rsv1=True) for text in texts)
    assert conn.receive_data(wire) == texts


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
def test_receive_frames_inflates_every_frame(codec, client):
    wire, expected = ordering_stream(client)
    conn = connection(codec, client)
    frames = conn.receive_frames(wire)
    assert not any(frame.rsv1 for frame in frames)
    messages, parts = [], []
    for frame in frames:
        if frame.opcode == PING:
            messages.append(Ping(frame.payload))
            continue
        if frame.opcode != CONTINUATION:
            text = frame.opcode == TEXT
        parts.append(frame.payload)
        if frame.fin:
            messages.append(b"".join(parts).decode() if text else b"".join(parts))
            parts = []
    assert messages == expected


@pytest.mark.parametrize("fragmented", [False, True])
@pytest.mark.parametrize("feed", ["whole", "chunks"])
def test_a_bomb_fails_the_connection_with_1009_in_little_memory(codec, gigabyte_bomb, fragmented, feed):
    if fragmented:
        third = len(gigabyte_bomb) // 3
        pieces = [gigabyte_bomb[:third], gigabyte_bomb[third : 2 * third], gigabyte_bomb[2 * third :]]
        wire = b"".join(
            encode(BINARY if i == 0 else CONTINUATION, piece, fin=i == 2, rsv1=i == 0) for i, piece in enumerate(pieces)
        )
    else:
        wire = encode(BINARY, gigabyte_bomb, rsv1=True)
    wire = encode(TEXT, Sender().compress(b"first"), rsv1=True) + wire
    conn = connection(codec, max_message_size=MiB)
    chunks = [wire] if feed == "whole" else [wire[i : i + 65536] for i in range(0, len(wire), 65536)]
    result, peak = peak_memory(lambda: receive(conn, chunks))
    assert result == ("ok", ["first"])
    assert (type(conn.error), conn.error.code) == (PayloadTooBig, 1009)
    assert peak < 8 * MiB  # the payload collected, one MiB inflated, zlib's window


@pytest.mark.parametrize("max_message_size", [0, 50, 124])
def test_a_small_message_limit_still_applies_to_compressed_messages(codec, max_message_size):
    sender = Sender()
    conn = connection(codec, max_message_size=max_message_size)
    wire = encode(TEXT, sender.compress(b"a" * max_message_size), rsv1=True)
    wire += encode(TEXT, sender.compress(b"a" * (max_message_size + 1)), rsv1=True)
    assert conn.receive_data(wire) == ["a" * max_message_size]
    assert conn.error.code == 1009


# --- Both twins and plain zlib agree on any stream ----------------------------------------------


def reference(frames, *, bits: int, reset: bool, max_size):
    """What a receiver makes of ``frames`` [(opcode, fin, rsv1, payload)] by RFC 6455 and
    RFC 7692 §7.2.2, with plain zlib: (events, close code of the failure or None)."""
    frame_limit = None if max_size is None else max(max_size, 125)
    decompressor = zlib.decompressobj(-bits)
    events: list = []
    for opcode, fin, rsv1, payload in frames:
        if frame_limit is not None and len(payload) > frame_limit:
            return events, 1009
        if opcode >= 8:
            if opcode == Opcode.CLOSE:
                events.append(Close(int.from_bytes(payload[:2], "big"), payload[2:].decode()))
                return events, None
            events.append((Ping if opcode == PING else Pong)(payload))
            continue
        if opcode != CONTINUATION:
            compressed, parts, size = rsv1, [], 0
            decoder = codecs.getincrementaldecoder("utf-8")() if opcode == TEXT else None
        data = payload
        if compressed:
            try:
                data = decompressor.decompress(payload + (TRAILER if fin else b""))
            except zlib.error:
                return events, 1007
        size += len(data)
        if max_size is not None and size > max_size:
            return events, 1009
        if decoder is not None:
            try:
                data = decoder.decode(data, fin)
            except UnicodeDecodeError:
                return events, 1007
        parts.append(data)
        if fin:
            events.append(("" if decoder else b"").join(parts))
            if compressed and (reset or decompressor.eof):
                decompressor = zlib.decompressobj(-bits)
    return events, None


TICKS = st.sampled_from([t.encode() for t in ticks(8, seed=7)])
TEXTS = st.one_of(TICKS, st.text(max_size=100).map(str.encode), st.sampled_from([b"", "héllo €".encode() * 500]))
BINARIES = st.one_of(TICKS, st.binary(max_size=300), st.sampled_from([b"", bytes(3000), b"abc" * 2000, bytes(80_000)]))
NOT_UTF8 = st.sampled_from([b"\xff", b"ok \xc3", "é".encode()[:1] + b"x" * 500])
MODES = st.sampled_from(["plain"] * 4 + ["compressed"] * 12 + ["finished"] * 3 + ["corrupt"])


@st.composite
def conversations(draw):
    """(client, bits, reset, max_size, frames): data messages plain, compressed (also as
    whole DEFLATE streams, or corrupt), whole or fragmented, control frames between."""
    client = draw(st.booleans())
    bits = draw(st.integers(8, 15))
    reset = draw(st.booleans())
    max_size = draw(st.sampled_from([None, 100, 5000, 70_000]))
    sender = Sender(bits, reset)
    frames = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.integers(0, 5)) == 0:
            frames.append((draw(st.sampled_from([PING, Opcode.PONG])), True, False, draw(st.binary(max_size=8))))
            continue
        opcode = draw(st.sampled_from([TEXT, BINARY]))
        if opcode == BINARY:
            content = draw(BINARIES)
        else:
            content = draw(NOT_UTF8 if draw(st.integers(0, 19)) == 0 else TEXTS)
        mode = draw(MODES)
        if mode == "compressed":
            payload = sender.compress(content)
        elif mode == "finished":
            payload = sender.finish(content)
        elif mode == "corrupt":
            payload = b"\xff" + content[:20]
        else:
            payload = content
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            frames.append((opcode if i == 0 else CONTINUATION, last, i == 0 and mode != "plain", piece))
            if not last and draw(st.integers(0, 3)) == 0:
                frames.append((PING, True, False, b"between"))
    if draw(st.booleans()):
        frames.append((Opcode.CLOSE, True, False, (1000).to_bytes(2, "big") + b"bye"))
        frames.append((BINARY, True, False, b"ignored"))
    return client, bits, reset, max_size, frames


@settings(max_examples=400)
@given(conversation=conversations(), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_twins_and_zlib_agree(twins, conversation, cuts):
    client, bits, reset, max_size, frames = conversation
    wire = b"".join(encode(opcode, payload, fin, rsv1, client) for opcode, fin, rsv1, payload in frames)
    points = sorted({cut % (len(wire) + 1) for cut in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    expected_events, expected_code = reference(frames, bits=bits, reset=reset, max_size=max_size)
    params = DeflateParams(reset, reset, bits, bits)
    results = []
    for codec in twins:
        conn = connection(codec, client, max_size, params)
        events = receive(conn, chunks)
        error = None if conn.error is None else (type(conn.error), conn.error.code, str(conn.error))
        results.append((events, error))
    assert results[0] == results[1]
    events, error = results[0]
    assert events == expected_events
    assert (error and error[1]) == expected_code
