"""The examples of RFC 6455 section 5.7, encoded and parsed by both codec twins."""

import pytest

from wsfast.enums import Opcode

KEY = b"\x37\xfa\x21\x3d"  # the masking key the RFC's masked examples use
BINARY_256 = bytes(range(256))
BINARY_64K = bytes(range(256)) * 256

# name: (frames as (opcode, payload, fin), mask key or None, wire bytes)
EXAMPLES = {
    "unmasked-text": ([(Opcode.TEXT, b"Hello", True)], None, bytes.fromhex("810548656c6c6f")),
    "masked-text": ([(Opcode.TEXT, b"Hello", True)], KEY, bytes.fromhex("818537fa213d7f9f4d5158")),
    "fragmented-text": (
        [(Opcode.TEXT, b"Hel", False), (Opcode.CONTINUATION, b"lo", True)],
        None,
        bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"),
    ),
    "unmasked-ping": ([(Opcode.PING, b"Hello", True)], None, bytes.fromhex("890548656c6c6f")),
    "masked-pong": ([(Opcode.PONG, b"Hello", True)], KEY, bytes.fromhex("8a8537fa213d7f9f4d5158")),
    "binary-256": ([(Opcode.BINARY, BINARY_256, True)], None, bytes.fromhex("827e0100") + BINARY_256),
    "binary-64k": (
        [(Opcode.BINARY, BINARY_64K, True)],
        None,
        bytes.fromhex("827f0000000000010000") + BINARY_64K,
    ),
}


@pytest.fixture(params=list(EXAMPLES))
def example(request):
    return EXAMPLES[request.param]


def test_encode(codec, example):
    frames, key, wire = example
    assert b"".join(codec.encode_frame(op, payload, fin=fin, mask_key=key) for op, payload, fin in frames) == wire


def test_parse(codec, example):
    frames, key, wire = example
    # Masked examples come from a client, so a server-side parser reads them.
    parser = codec.FrameParser(client=key is None)
    expected = [codec.Frame(op, payload, fin) for op, payload, fin in frames]
    assert parser.feed(wire) == expected
    assert parser.buffered == 0


def test_parse_byte_by_byte(codec, example):
    frames, key, wire = example
    parser = codec.FrameParser(client=key is None)
    parsed = []
    for i in range(len(wire)):
        parsed += parser.feed(wire[i : i + 1])
    assert [(f.opcode, f.payload, f.fin) for f in parsed] == frames
