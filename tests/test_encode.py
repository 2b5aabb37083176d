"""encode_frame(): the RFC 6455 examples, every length encoding and every argument check."""

import array

import pytest

from wsfast.enums import Opcode

MASK_KEY = b"\x37\xfa\x21\x3d"
CONTROL = [Opcode.CLOSE, Opcode.PING, Opcode.PONG]
UNKNOWN_OPCODES = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF, 16, 255, -1]


def unmasked_header(opcode, n):
    if n < 126:
        return bytes([0x80 | opcode, n])
    if n < 65536:
        return bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    return bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 65537])
def test_length_boundaries_use_the_shortest_encoding(codec, n):
    payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    header = unmasked_header(Opcode.BINARY, n)
    assert codec.encode_frame(Opcode.BINARY, payload) == header + payload
    masked = codec.encode_frame(Opcode.BINARY, payload, mask_key=MASK_KEY)
    assert masked[: len(header)] == bytes([header[0], header[1] | 0x80]) + header[2:]
    assert masked[len(header) : len(header) + 4] == MASK_KEY
    assert codec.mask(masked[len(header) + 4 :], MASK_KEY) == payload


@pytest.mark.parametrize("rsv, first_byte", [(0, 0x81), (4, 0xC1), (2, 0xA1), (1, 0x91), (7, 0xF1)])
def test_reserved_bits(codec, rsv, first_byte):
    assert codec.encode_frame(Opcode.TEXT, b"x", rsv=rsv)[0] == first_byte


def test_fin_clear_and_continuation(codec):
    assert codec.encode_frame(Opcode.TEXT, b"a", fin=False) == b"\x01\x01a"
    assert codec.encode_frame(Opcode.CONTINUATION, b"b") == b"\x80\x01b"


@pytest.mark.parametrize("opcode", [Opcode.TEXT, 1])
def test_opcode_may_be_an_int_or_an_opcode(codec, opcode):
    assert codec.encode_frame(opcode, b"") == b"\x81\x00"


@pytest.mark.parametrize(
    "payload",
    [bytearray(b"abc"), memoryview(b"abc"), array.array("B", b"abc"), memoryview(b"xabcx")[1:4]],
    ids=["bytearray", "memoryview", "array", "memoryview-slice"],
)
def test_payload_may_be_any_bytes_like(codec, payload):
    assert codec.encode_frame(Opcode.BINARY, payload) == b"\x82\x03abc"
    assert codec.encode_frame(Opcode.BINARY, payload, mask_key=b"\0\0\0\0") == b"\x82\x83\0\0\0\0abc"


def test_returns_bytes(codec):
    assert type(codec.encode_frame(Opcode.BINARY, bytearray(b"abc"))) is bytes
    assert type(codec.encode_frame(Opcode.BINARY, b"abc", mask_key=MASK_KEY)) is bytes


def test_control_frame_at_the_limit(codec):
    assert codec.encode_frame(Opcode.PING, bytes(125)) == b"\x89\x7d" + bytes(125)


@pytest.mark.parametrize("opcode", UNKNOWN_OPCODES)
def test_unknown_opcode(codec, opcode):
    with pytest.raises(ValueError):
        codec.encode_frame(opcode, b"")


@pytest.mark.parametrize("opcode", [1.0, "1", None])
def test_opcode_must_be_an_integer(codec, opcode):
    with pytest.raises(TypeError):
        codec.encode_frame(opcode, b"")


@pytest.mark.parametrize("rsv", [-1, 8, 16])
def test_rsv_out_of_range(codec, rsv):
    with pytest.raises(ValueError):
        codec.encode_frame(Opcode.TEXT, b"", rsv=rsv)


@pytest.mark.parametrize("opcode", CONTROL)
def test_control_frame_too_long(codec, opcode):
    with pytest.raises(ValueError):
        codec.encode_frame(opcode, bytes(126))


@pytest.mark.parametrize("opcode", CONTROL)
def test_control_frame_fragmented(codec, opcode):
    with pytest.raises(ValueError):
        codec.encode_frame(opcode, b"", fin=False)


@pytest.mark.parametrize("payload", ["text", 3, None])
def test_payload_must_be_bytes_like(codec, payload):
    with pytest.raises(TypeError):
        codec.encode_frame(Opcode.TEXT, payload)


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
def test_mask_key_must_be_four_bytes(codec, key):
    with pytest.raises(ValueError):
        codec.encode_frame(Opcode.TEXT, b"hi", mask_key=key)


@pytest.mark.parametrize("key", ["abcd", 4])
def test_mask_key_must_be_bytes_like(codec, key):
    with pytest.raises(TypeError):
        codec.encode_frame(Opcode.TEXT, b"hi", mask_key=key)
