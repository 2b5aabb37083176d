"""Frame codec speed, each case on both twins (pytest-benchmark).

    python -m pytest benchmarks/bench_codec.py --benchmark-only
    python -m pytest benchmarks/bench_codec.py --benchmark-only --benchmark-json=codec.json

Masking is shown next to a plain copy of the same buffer: the floor any masking
must pay for producing a new buffer. Parsing feeds a prepared stream in 64 KiB chunks,
as a socket delivers it; frames/s and MB/s (from the median) are in each parse
result's ``extra_info`` in the JSON report.
"""

import pytest

from wsfast.enums import Opcode

KEY = b"\x37\xfa\x21\x3d"
CHUNK = 64 * 1024
KIB, MIB = 1024, 1024 * 1024
MASK_SIZES = {"16B": 16, "125B": 125, "1KiB": KIB, "16KiB": 16 * KIB, "1MiB": MIB, "16MiB": 16 * MIB}
# name: (payload size, frames in the stream): about 1-8 MiB per stream.
STREAMS = {"100B": (100, 10_000), "4KiB": (4 * KIB, 256), "1MiB": (MIB, 8)}


def payload(size):
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


def report_rate(benchmark, items, nbytes):
    median = benchmark.stats.stats.median
    benchmark.extra_info["frames_per_s"] = round(items / median)
    benchmark.extra_info["MB_per_s"] = round(nbytes / median / 1e6, 1)


@pytest.mark.parametrize("size", MASK_SIZES)
def test_mask(benchmark, codec, size):
    data = payload(MASK_SIZES[size])
    benchmark.group = f"mask {size}"
    benchmark.extra_info["bytes"] = len(data)
    assert benchmark(codec.mask, data, KEY) == codec.mask(data, KEY)


@pytest.mark.parametrize("size", MASK_SIZES)
def test_mask_inplace(benchmark, codec, size):
    buffer = bytearray(payload(MASK_SIZES[size]))
    benchmark.group = f"mask {size}"
    benchmark.extra_info["bytes"] = len(buffer)
    benchmark(codec.mask_inplace, buffer, KEY)


@pytest.mark.parametrize("size", MASK_SIZES)
def test_copy_reference(benchmark, size):
    """Not codec code: copying the buffer, the cost masking is measured against."""
    data = payload(MASK_SIZES[size])
    benchmark.group = f"mask {size}"
    benchmark.extra_info["bytes"] = len(data)
    benchmark(bytearray, data)


@pytest.mark.parametrize(
    "size, masked", [(100, False), (100, True), (64 * KIB, True)], ids=["100B", "100B-masked", "64KiB-masked"]
)
def test_encode(benchmark, codec, size, masked):
    data = payload(size)
    key = KEY if masked else None
    benchmark.group = f"encode {'masked ' if masked else ''}{size} B"
    frame = benchmark(codec.encode_frame, Opcode.BINARY, data, mask_key=key)
    assert codec.FrameParser(client=not masked).feed(frame) == [codec.Frame(Opcode.BINARY, data)]


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("stream", STREAMS)
def test_parse(benchmark, codec, stream, side):
    """A client reads unmasked frames; a server reads masked ones and unmasks them."""
    size, count = STREAMS[stream]
    client = side == "client"
    opcode = Opcode.TEXT if size == 100 else Opcode.BINARY
    frame = codec.encode_frame(opcode, payload(size), mask_key=None if client else KEY)
    wire = frame * count
    chunks = [wire[i : i + CHUNK] for i in range(0, len(wire), CHUNK)]

    def parse_stream():
        parser = codec.FrameParser(client=client)
        feed = parser.feed
        parsed = 0
        for chunk in chunks:
            parsed += len(feed(chunk))
        return parsed

    benchmark.group = f"parse {stream} frames ({side})"
    assert benchmark(parse_stream) == count
    report_rate(benchmark, count, len(wire))
