"""FrameParser.payload_window(): reading a large payload straight into place gives the
same frames as feeding the bytes; the pure-Python twin offers no window at all."""

import os
import tracemalloc

import pytest

from wsfast.enums import Opcode
from wsfast.protocol import Connection

KEY = b"\x01\x02\x03\x04"


def wire_of(codec, client, *payloads):
    mask_key = None if client else KEY
    return b"".join(codec.encode_frame(Opcode.BINARY, payload, mask_key=mask_key) for payload in payloads)


def read_through_windows(parser, wire, chunk):
    """Feed ``wire`` like a socket reader would: into the payload window when there is
    one, else as ``chunk``-byte pieces; return the frames and how many windows were used."""
    frames, pos, windows = [], 0, 0
    while pos < len(wire):
        window = parser.payload_window()
        if window is None:
            piece = wire[pos : pos + chunk]
        else:
            windows += 1
            piece = window[: min(len(window), chunk, len(wire) - pos)]
            piece[:] = wire[pos : pos + len(piece)]
        frames += parser.feed(piece)
        pos += len(piece)
        del window, piece  # a window must go before the parser may grow the payload
    return frames, windows


@pytest.mark.parametrize("client", [True, False], ids=["client", "server"])
@pytest.mark.parametrize("chunk", [1000, 4099, 65536, 1 << 20])
def test_window_reads_give_the_same_frames(codec, client, chunk):
    payloads = [os.urandom(100_000), b"small", os.urandom(16 * 1024), os.urandom(700_001), b""]
    wire = wire_of(codec, client, *payloads)
    frames, windows = read_through_windows(codec.FrameParser(client=client), wire, chunk)
    assert frames == [codec.Frame(Opcode.BINARY, payload) for payload in payloads]
    if chunk < len(wire):  # else every payload arrives whole: no window is needed
        assert (windows > 0) == (codec.__name__ == "wsfast._compiled")


def test_pure_twin_offers_no_window():
    from wsfast import _pure

    parser = _pure.FrameParser()
    parser.feed(wire_of(_pure, True, bytes(100_000))[:1000])
    assert parser.payload_window() is None


def test_no_window_for_small_payloads_or_between_frames(codec):
    parser = codec.FrameParser()
    assert parser.payload_window() is None
    parser.feed(wire_of(codec, True, bytes(1000))[:100])
    assert parser.payload_window() is None


def test_window_stops_short_of_the_last_byte(codec):
    parser = codec.FrameParser()
    wire = wire_of(codec, True, bytes(20_000), b"next")
    parser.feed(wire[:104])
    window = parser.payload_window()
    if window is not None:
        assert len(window) == 20_000 - 100 - 1
        assert not window.readonly
    parser.feed(wire[104 : len(wire) - 7])  # the last byte of the payload has not come
    assert parser.payload_window() is None


def test_window_messages_and_masking_phase(codec):
    """A server-side parser unmasks bytes read into a window with the right key phase."""
    text = "é" * 50_000
    wire = codec.encode_frame(Opcode.TEXT, text.encode(), mask_key=KEY)
    parser = codec.FrameParser(client=False)
    result = parser.feed_messages(wire[:1003])  # payload split at an odd offset
    window = parser.payload_window()
    if window is not None:
        window[:7] = wire[1003:1010]
        result += parser.feed_messages(window[:7])
        del window
        result += parser.feed_messages(wire[1010:])
    else:
        result += parser.feed_messages(wire[1003:])
    assert result == [text]


def test_feeding_other_data_while_a_window_exists(codec):
    """The window is only a place to read into: what is fed is what counts."""
    payload = os.urandom(50_000)
    wire = wire_of(codec, True, payload)
    parser = codec.FrameParser()
    parser.feed(wire[:5000])
    window = parser.payload_window()
    if window is not None:
        window[:100] = bytes(100)  # scribbled on, then not fed
    assert parser.feed(wire[5000:]) == [codec.Frame(Opcode.BINARY, payload)]


def test_a_window_fed_again_after_more_data(codec):
    """Bytes of an old window fed after the payload moved on are copied, not lost."""
    payload = os.urandom(50_000)
    wire = wire_of(codec, True, payload)
    parser = codec.FrameParser()
    frames = parser.feed(wire[:1000])
    window = parser.payload_window()
    if window is None:
        pytest.skip("this codec offers no window")
    window[:500] = wire[1000:1500]
    old = bytes(window[:500])
    frames += parser.feed(window[:500])
    frames += parser.feed(window[:500])  # the same bytes again, now at a later offset
    del window
    expected = wire[:1500] + old + wire[1500:-500]
    frames += parser.feed(wire[1500:-500])
    head = len(wire) - len(payload)
    assert frames == [codec.Frame(Opcode.BINARY, expected[head:])]


def held_window(codec, payload, received=1000):
    """A client parser that received ``received`` bytes of a frame carrying ``payload``,
    and a payload window it offers (the test skips for a codec that offers none)."""
    wire = wire_of(codec, True, payload)
    parser = codec.FrameParser(max_size=None)
    assert parser.feed(wire[:received]) == []
    window = parser.payload_window()
    if window is None:
        pytest.skip("this codec offers no window")
    return parser, wire, window


def test_growing_while_a_window_is_held_moves_the_payload(codec):
    payload = os.urandom(4_000_000)
    parser, wire, window = held_window(codec, payload)
    frames = parser.feed(wire[1000 : 1000 + len(window) + 100_000])  # more than the window
    window[:] = bytes(len(window))  # the window now shows memory no frame uses
    frames += parser.feed(wire[1000 + len(window) + 100_000 :])
    assert frames == [codec.Frame(Opcode.BINARY, payload)]


def test_a_window_kept_after_delivery_cannot_change_the_frame(codec):
    payload = os.urandom(100_000)
    parser, wire, window = held_window(codec, payload)
    head = len(wire) - len(payload)
    window[:] = wire[1000 : 1000 + len(window)]
    assert parser.feed(window) == []
    (frame,) = parser.feed(wire[1000 + len(window) :])
    window[:] = bytes(len(window))
    assert frame.payload == wire[head:]


def test_a_window_held_through_delivery_with_a_view_of_it(codec):
    payload = os.urandom(100_000)
    parser, wire, window = held_window(codec, payload)
    rest = wire[1000:]
    view = window[:100]
    view[:] = rest[:100]
    (frame,) = parser.feed(view) + parser.feed(rest[100:])
    view[:] = bytes(100)
    assert frame.payload == payload


def test_a_connection_takes_other_data_while_a_window_is_held(codec):
    payload = os.urandom(4_000_000)
    conn = Connection(client=True, max_message_size=None, codec=codec)
    wire = wire_of(codec, True, payload, b"after")
    assert conn.receive_data(wire[:1000]) == []
    window = conn.payload_window()
    events = conn.receive_data(wire[1000:])  # bytes read elsewhere, window still held
    if window is not None:
        window[:] = bytes(len(window))
    assert events == [payload, b"after"]
    assert conn.error is None


def test_a_window_for_a_huge_header_reserves_little(codec):
    header = b"\x82\x7f" + (2**40).to_bytes(8, "big")
    parser = codec.FrameParser(max_size=None)
    tracemalloc.start()
    try:
        parser.feed(header + bytes(1000))
        window = parser.payload_window()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    assert window is None or len(window) < 1024 * 1024


@pytest.mark.parametrize("how", ["close frame", "invalid UTF-8", "eof"])
def test_no_window_once_a_connection_stops_receiving(codec, how):
    """Bytes after the end of receiving are dropped: none is read into a payload."""
    conn = Connection(client=True, max_message_size=None, codec=codec)
    if how == "close frame":
        conn.receive_data(bytes([0x88, 0]) + wire_of(codec, True, bytes(100_000))[:1000])
    elif how == "invalid UTF-8":
        conn.receive_data(codec.encode_frame(Opcode.TEXT, b"\xff" * 100_000)[:1000])
        assert conn.error is not None
    else:
        conn.receive_data(wire_of(codec, True, bytes(100_000))[:1000])
        if codec.__name__.endswith("_compiled"):
            assert conn.payload_window() is not None
        conn.receive_eof()
    assert conn.payload_window() is None
