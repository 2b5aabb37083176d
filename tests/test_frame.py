"""The Frame value object of both codec twins."""

import pytest

from wsfast.enums import Opcode


def test_defaults(codec):
    frame = codec.Frame(Opcode.TEXT)
    assert (frame.opcode, frame.payload, frame.fin) == (1, b"", True)
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)
    assert type(frame.opcode) is int


def test_attributes(codec):
    frame = codec.Frame(Opcode.BINARY, b"\x01\x02", fin=False, rsv1=True, rsv2=False, rsv3=True)
    assert frame.opcode == Opcode.BINARY
    assert frame.payload == b"\x01\x02"
    assert frame.fin is False
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (True, False, True)


@pytest.mark.parametrize("payload", [bytearray(b"abc"), memoryview(b"abc")])
def test_payload_becomes_bytes(codec, payload):
    frame = codec.Frame(Opcode.BINARY, payload)
    assert type(frame.payload) is bytes
    assert frame.payload == b"abc"


def test_length_and_indexing(codec):
    frame = codec.Frame(Opcode.BINARY, b"hello")
    assert len(frame) == 5
    assert frame[0] == ord("h")
    assert frame[-1] == ord("o")
    assert frame[1:3] == b"el"
    with pytest.raises(IndexError):
        frame[5]


def test_text(codec):
    assert codec.Frame(Opcode.TEXT, "héllo".encode()).text == "héllo"
    with pytest.raises(UnicodeDecodeError):
        _ = codec.Frame(Opcode.TEXT, b"\xff").text


@pytest.mark.parametrize(
    "payload, code, reason",
    [(b"", 1005, ""), (b"\x03\xe8", 1000, ""), (b"\x03\xe9bye", 1001, "bye"), (b"\x0f\xa0\xc3\xa9", 4000, "é")],
)
def test_close_frame(codec, payload, code, reason):
    frame = codec.Frame(Opcode.CLOSE, payload)
    assert frame.close_code == code
    assert frame.text == reason


def test_close_code_of_other_frames_is_none(codec):
    assert codec.Frame(Opcode.TEXT, b"\x03\xe8").close_code is None


@pytest.mark.parametrize("opcode, control", [(0, False), (1, False), (2, False), (8, True), (9, True), (10, True)])
def test_is_control(codec, opcode, control):
    assert codec.Frame(opcode).is_control is control


def test_equality_and_hash(codec):
    frame = codec.Frame(Opcode.TEXT, b"x", fin=False)
    same = codec.Frame(1, bytearray(b"x"), fin=False)
    assert frame == same
    assert hash(frame) == hash(same)
    assert (frame != same) is False
    for different in (
        codec.Frame(Opcode.BINARY, b"x", fin=False),
        codec.Frame(Opcode.TEXT, b"y", fin=False),
        codec.Frame(Opcode.TEXT, b"x"),
        codec.Frame(Opcode.TEXT, b"x", fin=False, rsv1=True),
        codec.Frame(Opcode.TEXT, b"x", fin=False, rsv2=True),
        codec.Frame(Opcode.TEXT, b"x", fin=False, rsv3=True),
    ):
        assert frame != different
    assert frame != b"x"
    assert frame != (1, b"x")


def test_equal_across_twins(twins):
    pure, compiled = twins
    a = pure.Frame(Opcode.PING, b"p", rsv1=True)
    b = compiled.Frame(Opcode.PING, b"p", rsv1=True)
    assert a == b and b == a
    assert hash(a) == hash(b)
    assert a != compiled.Frame(Opcode.PING, b"q", rsv1=True)
    assert compiled.Frame(Opcode.PING, b"q") != a


def test_repr(codec):
    assert repr(codec.Frame(Opcode.TEXT, b"hi", rsv1=True)) == "<Frame TEXT fin=True rsv1 2 bytes b'hi'>"
    assert repr(codec.Frame(3)) == "<Frame 3 fin=True 0 bytes b''>"
    long = repr(codec.Frame(Opcode.BINARY, bytes(100), fin=False))
    assert long.startswith("<Frame BINARY fin=False 100 bytes ") and long.endswith("...'>")


def test_parsed_frames_equal_constructed_frames(codec):
    [frame] = codec.FrameParser().feed(codec.encode_frame(Opcode.CLOSE, b"\x03\xe8ok"))
    assert frame == codec.Frame(Opcode.CLOSE, b"\x03\xe8ok")
    assert frame.close_code == 1000 and frame.text == "ok"


@pytest.mark.parametrize(
    "args", [(1, 5), (1, "text"), (1.5,), ("1",)], ids=["int-payload", "str-payload", "float", "str"]
)
def test_bad_arguments(codec, args):
    with pytest.raises(TypeError):
        codec.Frame(*args)
