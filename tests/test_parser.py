"""FrameParser: framing, every validation rule, size limits, chunking and large streams."""

import array
import os
import subprocess
import sys
import tracemalloc

import pytest

from wsfast.enums import Opcode
from wsfast.exceptions import PayloadTooBig, ProtocolError

KEY = b"\x01\x02\x03\x04"
UNKNOWN_OPCODES = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]
CONTROL = [Opcode.CLOSE, Opcode.PING, Opcode.PONG]


def server_frame(codec, opcode, payload=b"", fin=True, rsv=0):
    """Wire bytes a server sends: unmasked, read by a client-side parser."""
    return codec.encode_frame(opcode, payload, fin=fin, rsv=rsv)


def client_frame(codec, opcode, payload=b"", fin=True, rsv=0):
    """Wire bytes a client sends: masked, read by a server-side parser."""
    return codec.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=KEY)


def header(first, length, masked=False):
    """A raw frame header with any length encoding, valid or not."""
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes([first, mask_bit | length])
    if length < 65536:
        return bytes([first, mask_bit | 126]) + length.to_bytes(2, "big")
    return bytes([first, mask_bit | 127]) + length.to_bytes(8, "big")


def feed_rejected(parser, data, error=ProtocolError, code=1002):
    """Feed data that must fail; return the error after checking its type and code."""
    with pytest.raises(error) as info:
        parser.feed(data)
    assert type(info.value) is error
    assert info.value.code == code
    return info.value


# --- framing ---------------------------------------------------------------------------


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 65537])
def test_length_boundaries(codec, client, n):
    payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    make = server_frame if client else client_frame
    wire = make(codec, Opcode.BINARY, payload)
    parser = codec.FrameParser(client=client)
    # Everything but the last byte: nothing yet, all of it held.
    assert parser.feed(wire[:-1]) == []
    assert parser.buffered == len(wire) - 1
    [frame] = parser.feed(wire[-1:])
    assert frame == codec.Frame(Opcode.BINARY, payload)
    assert type(frame.payload) is bytes
    assert parser.buffered == 0


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
def test_all_frame_kinds_in_one_chunk(codec, client):
    make = server_frame if client else client_frame
    expected = [
        codec.Frame(Opcode.TEXT, b"frag", fin=False),
        codec.Frame(Opcode.PING, b"ping"),
        codec.Frame(Opcode.CONTINUATION, b"ment"),
        codec.Frame(Opcode.BINARY, b"\x00\xff"),
        codec.Frame(Opcode.PONG, b""),
        codec.Frame(Opcode.CLOSE, b"\x03\xe8bye"),
    ]
    wire = b"".join(make(codec, f.opcode, f.payload, f.fin) for f in expected)
    assert codec.FrameParser(client=client).feed(wire) == expected


def test_flags_and_opcodes_are_plain_values(codec):
    wire = server_frame(codec, Opcode.TEXT, b"x", fin=False, rsv=5)
    [frame] = codec.FrameParser(allowed_rsv=7).feed(wire)
    assert type(frame.opcode) is int and frame.opcode == 1
    assert (frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (False, True, False, True)
    assert all(type(flag) is bool for flag in (frame.fin, frame.rsv1, frame.rsv2, frame.rsv3))


@pytest.mark.parametrize(
    "make",
    [bytearray, memoryview, lambda b: array.array("B", b), lambda b: memoryview(b"__" + b)[2:]],
    ids=["bytearray", "memoryview", "array", "memoryview-slice"],
)
def test_feed_accepts_any_bytes_like(codec, make):
    wire = server_frame(codec, Opcode.TEXT, b"hello") * 2
    parser = codec.FrameParser()
    assert parser.feed(make(wire[:3])) == []
    assert parser.feed(make(wire[3:])) == [codec.Frame(Opcode.TEXT, b"hello")] * 2


def test_feed_does_not_keep_a_reference_to_mutable_input(codec):
    parser = codec.FrameParser()
    chunk = bytearray(server_frame(codec, Opcode.BINARY, b"abcdef"))
    assert parser.feed(chunk[:5]) == []
    rest = chunk[5:]
    chunk[:] = bytes(len(chunk))  # the caller reuses its buffer
    assert parser.feed(rest) == [codec.Frame(Opcode.BINARY, b"abcdef")]


@pytest.mark.parametrize("data", ["text", 5, None])
def test_feed_rejects_non_bytes(codec, data):
    with pytest.raises(TypeError):
        codec.FrameParser().feed(data)


def test_feed_empty(codec):
    parser = codec.FrameParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"\x81") == []
    assert parser.feed(b"") == []
    assert parser.buffered == 1
    assert parser.feed(b"\x00") == [codec.Frame(Opcode.TEXT)]


def test_buffered_counts_held_bytes(codec):
    wire = client_frame(codec, Opcode.BINARY, bytes(300))  # 4-byte header, key, payload
    for fed in (1, 3, 7, 100, len(wire) - 1):
        parser = codec.FrameParser(client=False)
        assert parser.feed(wire[:fed]) == []
        assert parser.buffered == fed
    # The rest of the frame and the start of the next one: only the latter stays held.
    assert parser.feed(wire[-1:] + wire[:2]) == [codec.Frame(Opcode.BINARY, bytes(300))]
    assert parser.buffered == 2


def test_non_minimal_length_encodings_are_accepted(codec):
    # RFC 6455 asks senders for the shortest encoding; receivers need not enforce it.
    wire = b"\x82\x7e\x00\x03abc" + b"\x82\x7f" + (2).to_bytes(8, "big") + b"de"
    assert codec.FrameParser().feed(wire) == [codec.Frame(Opcode.BINARY, b"abc"), codec.Frame(Opcode.BINARY, b"de")]


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("rsv", [1, 2, 3, 4, 5, 6, 7])
def test_reserved_bits_need_an_extension(codec, rsv):
    wire = server_frame(codec, Opcode.TEXT, b"x", rsv=rsv)
    feed_rejected(codec.FrameParser(), wire)
    allowed = codec.FrameParser(allowed_rsv=rsv).feed(wire)
    assert allowed == [codec.Frame(Opcode.TEXT, b"x", rsv1=rsv & 4 > 0, rsv2=rsv & 2 > 0, rsv3=rsv & 1 > 0)]


def test_allowed_rsv_permits_only_its_bits(codec):
    parser = codec.FrameParser(allowed_rsv=4)
    [frame] = parser.feed(server_frame(codec, Opcode.BINARY, b"z", rsv=4))
    assert frame.rsv1 and not frame.rsv2 and not frame.rsv3
    feed_rejected(parser, server_frame(codec, Opcode.BINARY, b"z", rsv=2))


@pytest.mark.parametrize("opcode", UNKNOWN_OPCODES)
@pytest.mark.parametrize("fin", [0x80, 0])
def test_unknown_opcodes(codec, opcode, fin):
    feed_rejected(codec.FrameParser(), bytes([fin | opcode, 0]))


@pytest.mark.parametrize("opcode", CONTROL)
def test_fragmented_control_frame(codec, opcode):
    feed_rejected(codec.FrameParser(), bytes([opcode, 0]))


@pytest.mark.parametrize("opcode", CONTROL)
@pytest.mark.parametrize("length", [126, 127, 200, 65536])
def test_control_frame_longer_than_125(codec, opcode, length):
    # Rejected from the first two bytes, before the extended length arrives.
    feed_rejected(codec.FrameParser(), header(0x80 | opcode, length)[:2])


@pytest.mark.parametrize("opcode", CONTROL)
def test_control_frame_of_125_bytes(codec, opcode):
    assert codec.FrameParser().feed(header(0x80 | opcode, 125) + bytes(125)) == [codec.Frame(opcode, bytes(125))]


def test_masked_frame_to_client(codec):
    feed_rejected(codec.FrameParser(client=True), client_frame(codec, Opcode.TEXT, b"hi"))


def test_unmasked_frame_to_server(codec):
    feed_rejected(codec.FrameParser(client=False), server_frame(codec, Opcode.TEXT, b"hi"))


@pytest.mark.parametrize("max_size", [None, 2**62, 2**64])
def test_length_with_top_bit_set(codec, max_size):
    wire = b"\x82\x7f" + (2**63 + 5).to_bytes(8, "big")
    feed_rejected(codec.FrameParser(max_size=max_size), wire)


# --- size limits -----------------------------------------------------------------------


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
@pytest.mark.parametrize("max_size, length", [(0, 1), (125, 126), (126, 127), (65535, 65536), (1000, 2**40)])
def test_too_big_is_rejected_from_the_header_alone(codec, client, max_size, length):
    parser = codec.FrameParser(client=client, max_size=max_size)
    feed_rejected(parser, header(0x82, length, masked=not client), PayloadTooBig, 1009)


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
@pytest.mark.parametrize("size", [0, 125, 126, 65536])
def test_frame_of_exactly_max_size_passes(codec, client, size):
    make = server_frame if client else client_frame
    parser = codec.FrameParser(client=client, max_size=size)
    assert parser.feed(make(codec, Opcode.BINARY, bytes(size))) == [codec.Frame(Opcode.BINARY, bytes(size))]


def test_default_max_size_rejects_a_huge_header(codec):
    assert codec.DEFAULT_MAX_SIZE == 64 * 1024 * 1024
    parser = codec.FrameParser()
    assert parser.max_size == codec.DEFAULT_MAX_SIZE
    assert parser.feed(header(0x82, codec.DEFAULT_MAX_SIZE)) == []
    feed_rejected(codec.FrameParser(), header(0x82, codec.DEFAULT_MAX_SIZE + 1), PayloadTooBig, 1009)
    feed_rejected(codec.FrameParser(), header(0x82, 2**33), PayloadTooBig, 1009)


@pytest.mark.parametrize("length", [2**31, 2**40])
def test_no_max_size_waits_for_a_huge_frame(codec, length):
    """A header announcing gigabytes is accepted without reserving memory for it."""
    parser = codec.FrameParser(max_size=None)
    tracemalloc.start()
    try:
        assert parser.feed(header(0x82, length)) == []
        assert parser.feed(bytes(1000)) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    assert parser.buffered == 1010


def test_limit_applies_per_frame(codec):
    parser = codec.FrameParser(max_size=10)
    frames = parser.feed(server_frame(codec, Opcode.TEXT, bytes(10), fin=False) * 5)
    assert len(frames) == 5


@pytest.mark.parametrize("kwargs", [{"max_size": -1}, {"allowed_rsv": 8}, {"allowed_rsv": -1}])
def test_invalid_arguments(codec, kwargs):
    with pytest.raises(ValueError):
        codec.FrameParser(**kwargs)


def test_constructor_attributes(codec):
    parser = codec.FrameParser(client=False, max_size=None, allowed_rsv=4)
    assert (parser.client, parser.max_size, parser.allowed_rsv) == (False, None, 4)
    parser = codec.FrameParser()
    assert (parser.client, parser.max_size, parser.allowed_rsv) == (True, codec.DEFAULT_MAX_SIZE, 0)


# --- after an error --------------------------------------------------------------------


def test_error_carries_frames_completed_earlier_in_the_same_feed(codec):
    parser = codec.FrameParser()
    assert parser.feed(server_frame(codec, Opcode.TEXT, b"earlier")) == [codec.Frame(Opcode.TEXT, b"earlier")]
    good = server_frame(codec, Opcode.TEXT, b"one") + server_frame(codec, Opcode.PING, b"two")
    error = feed_rejected(parser, good + b"\x83\x00" + server_frame(codec, Opcode.TEXT, b"after"))
    assert error.frames == [codec.Frame(Opcode.TEXT, b"one"), codec.Frame(Opcode.PING, b"two")]


def test_error_in_a_completed_header_after_buffered_data(codec):
    parser = codec.FrameParser(max_size=100)
    wire = server_frame(codec, Opcode.TEXT, b"held") + header(0x82, 101)
    assert parser.feed(wire[:3]) == []
    error = feed_rejected(parser, wire[3:], PayloadTooBig, 1009)
    assert error.frames == [codec.Frame(Opcode.TEXT, b"held")]


def test_error_frames_is_empty_when_nothing_completed(codec):
    error = feed_rejected(codec.FrameParser(), b"\xc1\x00")
    assert error.frames == []


@pytest.mark.parametrize(
    "bad, error, code",
    [(b"\x83\x00", ProtocolError, 1002), (header(0x82, 2000), PayloadTooBig, 1009)],
    ids=["protocol-error", "too-big"],
)
def test_parser_stays_failed(codec, bad, error, code):
    parser = codec.FrameParser(max_size=1000)
    feed_rejected(parser, server_frame(codec, Opcode.TEXT, b"ok") + bad, error, code)
    for data in (server_frame(codec, Opcode.TEXT, b"valid"), b"", bad):
        again = feed_rejected(parser, data, error, code)
        # Frames are delivered once, with the first error only.
        assert again.frames == []


# --- large streams ---------------------------------------------------------------------


def test_a_million_small_frames_in_64k_chunks(codec):
    """Work is linear in the input: a million frames in 64 KiB chunks all come out, in order."""
    block_frames = [(i % 3, bytes([i]) * (i % 11)) for i in range(256)]  # cont/text/binary, 0-10 bytes
    block = b"".join(codec.encode_frame(op, payload, fin=op != 1) for op, payload in block_frames)
    repeats = 1_000_000 // len(block_frames) + 1
    stream = block * repeats
    parser = codec.FrameParser()
    count = 0
    mismatches = 0
    for start in range(0, len(stream), 65536):
        for frame in parser.feed(stream[start : start + 65536]):
            opcode, payload = block_frames[count % 256]
            mismatches += frame.opcode != opcode or frame.payload != payload or frame.fin != (opcode != 1)
            count += 1
    assert count == repeats * len(block_frames) >= 1_000_000
    assert mismatches == 0
    assert parser.buffered == 0


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
@pytest.mark.parametrize("chunk", [1024, 65536, 1_000_003])
def test_16_mib_frame_in_chunks(codec, client, chunk):
    """A big frame arriving in many small pieces is assembled without re-copying what it holds."""
    payload = bytes(range(256)) * (16 * 4096)
    make = server_frame if client else client_frame
    wire = make(codec, Opcode.BINARY, payload)
    parser = codec.FrameParser(client=client)
    view = memoryview(wire)
    frames = []
    for start in range(0, len(wire), chunk):
        frames += parser.feed(view[start : start + chunk])
        assert parser.buffered == (start + len(view[start : start + chunk])) % len(wire)
    assert frames == [codec.Frame(Opcode.BINARY, payload)]


def test_small_frames_after_a_big_one_in_the_same_chunk(codec):
    big = server_frame(codec, Opcode.BINARY, bytes(100_000))
    small = server_frame(codec, Opcode.TEXT, b"s")
    wire = big + small * 1000
    parser = codec.FrameParser()
    frames = parser.feed(wire[:50_000]) + parser.feed(wire[50_000:])
    assert len(frames) == 1001
    assert frames[0].payload == bytes(100_000)
    assert frames[1:] == [codec.Frame(Opcode.TEXT, b"s")] * 1000


# Out of memory ----------------------------------------------------------------------

# Runs in a child whose address space is capped, so that collecting a 1 GiB payload runs
# out of memory: the parser must fail for good, never parse the rest as frames.
OUT_OF_MEMORY = r"""
import resource, sys
import {codec} as codec
from wsfast.exceptions import PayloadTooBig
from wsfast.protocol import Connection

with open("/proc/self/statm") as statm:
    used = int(statm.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 256 * 2**20, resource.RLIM_INFINITY))
smuggled = codec.encode_frame(1, b"smuggled")
header = b"\x82\x7f" + (2**30).to_bytes(8, "big")
chunk = smuggled * (2**20 // len(smuggled))

parser = codec.FrameParser(max_size=None)
parser.feed(header)
try:
    for _ in range(1024):  # read as the I/O layers do: into the window when there is one
        window = parser.payload_window()  # None in the pure twin, or once memory is out
        if window is None:
            parser.feed(chunk)
        else:
            for start in range(0, len(window), len(chunk)):
                piece = window[start : start + len(chunk)]
                piece[:] = chunk[: len(piece)]
            parser.feed(window)
            del window, piece
    sys.exit("a 1 GiB payload fitted in 256 MiB")
except PayloadTooBig as exc:
    assert exc.code == 1009 and exc.frames == [], exc
for data in (chunk, smuggled):
    try:
        parser.feed(data)
        sys.exit("fed after failing")
    except PayloadTooBig as exc:
        assert exc.frames == []

conn = Connection(client=True, max_message_size=None, codec=codec)
events = conn.receive_data(header)
while conn.error is None:
    events += conn.receive_data(chunk)
assert events == [] and conn.error.code == 1009, (events, conn.error)
assert conn.receive_data(smuggled) == []
print("ok")
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""), reason="AddressSanitizer reserves the address space")
def test_running_out_of_memory_fails_the_parser(codec):
    script = OUT_OF_MEMORY.replace("{codec}", codec.__name__)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert child.stdout.strip() == "ok", child.stdout + child.stderr
