"""Strided (non-contiguous) buffers: both codec twins encode and parse them like their bytes."""

import pytest

from wsfast.enums import Opcode

KEY = b"\x01\x02\x03\x04"


def strided(data: bytes) -> memoryview:
    """A view showing ``data`` through every other byte of a larger buffer."""
    backing = bytearray(2 * len(data))
    backing[::2] = data
    return memoryview(backing)[::2]


@pytest.mark.parametrize("size", [0, 10, 125, 600, 70_000])
@pytest.mark.parametrize("mask_key", [None, KEY], ids=["unmasked", "masked"])
def test_encode_a_strided_payload(codec, size, mask_key):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    view = strided(payload)
    assert not view.c_contiguous or size < 2
    assert codec.encode_frame(Opcode.BINARY, view, mask_key=mask_key) == codec.encode_frame(
        Opcode.BINARY, payload, mask_key=mask_key
    )


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
@pytest.mark.parametrize("size", [10, 600, 70_000])
def test_parse_strided_data(codec, client, size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    wire = codec.encode_frame(Opcode.BINARY, payload, mask_key=None if client else KEY) * 2
    parser = codec.FrameParser(client=client)
    # The first piece leaves bytes buffered, so the later strided pieces are appended to them.
    frames = parser.feed(strided(wire[:1]))
    frames += parser.feed(strided(wire[1:7]))
    frames += parser.feed(strided(wire[7:]))
    assert frames == [codec.Frame(Opcode.BINARY, payload)] * 2
    assert parser.buffered == 0


def test_feed_messages_takes_strided_data(codec):
    wire = codec.encode_frame(Opcode.TEXT, "héllo".encode())
    parser = codec.FrameParser()
    assert parser.feed_messages(strided(wire[:3])) == []
    assert parser.feed_messages(strided(wire[3:])) == ["héllo"]
