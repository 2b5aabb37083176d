"""FrameParser.feed_messages: whole messages straight from the parser, in both twins,
and the Connection and clients that rely on it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast import _pure
from wsfast.enums import Opcode
from wsfast.exceptions import InvalidUTF8, PayloadTooBig, ProtocolError
from wsfast.protocol import Close, Connection, Ping

KEY = b"\x01\x02\x03\x04"


def frame(codec, opcode, payload=b"", fin=True, rsv=0, client=True):
    """Wire bytes for a parser with role ``client`` (a server-side parser reads masked frames)."""
    return codec.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=None if client else KEY)


def as_message(item):
    """What feed_messages() delivers for a frame feed() returned."""
    if item.fin and not (item.rsv1 or item.rsv2 or item.rsv3):
        if item.opcode == Opcode.BINARY:
            return item.payload
        if item.opcode == Opcode.TEXT:
            return item.payload.decode()  # UnicodeDecodeError: the parser must fail here
    return item


def expected_items(frames):
    """(items, None), or (items before it, "invalid") when a text message is not UTF-8."""
    items = []
    for item in frames:
        try:
            items.append(as_message(item))
        except UnicodeDecodeError:
            return items, "invalid"
    return items, None


@pytest.mark.parametrize("client", [True, False])
def test_messages_come_as_payloads_and_the_rest_as_frames(codec, client):
    parser = codec.FrameParser(client=client, allowed_rsv=4)
    wire = b"".join(
        [
            frame(codec, Opcode.BINARY, b"\x00\xff", client=client),
            frame(codec, Opcode.TEXT, "héllo €".encode(), client=client),
            frame(codec, Opcode.PING, b"hi", client=client),
            frame(codec, Opcode.TEXT, b"par", fin=False, client=client),
            frame(codec, Opcode.CONTINUATION, b"t", client=client),
            frame(codec, Opcode.BINARY, b"z", rsv=4, client=client),
            frame(codec, Opcode.TEXT, b"", client=client),
            frame(codec, Opcode.BINARY, bytes(70000), client=client),
        ]
    )
    items = parser.feed_messages(wire)
    assert items[:2] == [b"\x00\xff", "héllo €"]
    assert items[2] == codec.Frame(Opcode.PING, b"hi")
    assert items[3] == codec.Frame(Opcode.TEXT, b"par", fin=False)
    assert items[4] == codec.Frame(Opcode.CONTINUATION, b"t")
    assert items[5] == codec.Frame(Opcode.BINARY, b"z", rsv1=True)
    assert items[6:] == ["", bytes(70000)]
    assert type(items[0]) is bytes and type(items[1]) is str
    assert parser.last_frame_count == 4


def test_last_frame_count_is_per_call(codec):
    parser = codec.FrameParser()
    parser.feed_messages(frame(codec, Opcode.PING) + frame(codec, Opcode.BINARY, b"x"))
    assert parser.last_frame_count == 1
    assert parser.feed_messages(frame(codec, Opcode.BINARY, b"y")) == [b"y"]
    assert parser.last_frame_count == 0
    assert parser.feed_messages(frame(codec, Opcode.TEXT, b"abc")[:3]) == []
    assert parser.last_frame_count == 0


@pytest.mark.parametrize("client", [True, False])
@pytest.mark.parametrize("size", [10, 300, 70000])
def test_a_text_message_split_anywhere_is_decoded_whole(codec, client, size):
    text = ("aé€😀" * size)[:size]
    wire = frame(codec, Opcode.TEXT, text.encode(), client=client)
    for cut in sorted({1, 2, 5, len(wire) // 3, len(wire) // 2, len(wire) - 1}):
        parser = codec.FrameParser(client=client)
        assert parser.feed_messages(wire[:cut]) == []
        assert parser.feed_messages(wire[cut:]) == [text]


@pytest.mark.parametrize("client", [True, False])
@pytest.mark.parametrize("bad", [b"\xff", b"a\xc3", b"\xed\xa0\x80", "é".encode()[:1] + b"x" * 200])
def test_invalid_utf8_fails_with_1007_after_the_items_before(codec, client, bad):
    parser = codec.FrameParser(client=client)
    wire = (
        frame(codec, Opcode.BINARY, b"ok", client=client)
        + frame(codec, Opcode.PING, client=client)
        + frame(codec, Opcode.TEXT, bad, client=client)
        + frame(codec, Opcode.BINARY, b"after", client=client)
    )
    with pytest.raises(InvalidUTF8) as info:
        parser.feed_messages(wire)
    assert info.value.code == 1007
    assert info.value.frames == [b"ok", codec.Frame(Opcode.PING)]
    with pytest.raises(InvalidUTF8) as again:  # the parser stays failed
        parser.feed_messages(frame(codec, Opcode.BINARY, b"x", client=client))
    assert again.value.frames == []


def test_invalid_utf8_in_fragments_is_left_to_the_connection(codec):
    parser = codec.FrameParser()
    wire = frame(codec, Opcode.TEXT, b"\xff", fin=False) + frame(codec, Opcode.CONTINUATION, b"\xfe")
    assert parser.feed_messages(wire) == [
        codec.Frame(Opcode.TEXT, b"\xff", fin=False),
        codec.Frame(Opcode.CONTINUATION, b"\xfe"),
    ]


def test_other_violations_keep_the_items_before(codec):
    parser = codec.FrameParser(max_size=10)
    with pytest.raises(PayloadTooBig) as info:
        parser.feed_messages(frame(codec, Opcode.TEXT, b"fine") + frame(codec, Opcode.BINARY, bytes(11)))
    assert info.value.frames == ["fine"]


# --- feed_messages agrees with feed on any stream, in both twins --------------------------

PAYLOADS = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20).map(str.encode),
    st.sampled_from([b"\xff", b"\xc3", "€".encode()[:2], bytes(300), "é".encode() * 40000]),
)


@st.composite
def streams(draw):
    """(client, wire): mostly valid frames, some with RSV bits, bad UTF-8 or junk bytes."""
    client = draw(st.booleans())
    pieces = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["data"] * 6 + ["control", "junk"]))
        if kind == "junk":
            pieces.append(draw(st.binary(max_size=6)))
            continue
        opcode = draw(st.sampled_from([0, 1, 2]) if kind == "data" else st.sampled_from([8, 9, 10]))
        payload = draw(PAYLOADS if opcode < 8 else st.binary(max_size=125))
        if opcode == 8 and len(payload) == 1:
            payload = b""
        fin = True if opcode >= 8 else draw(st.booleans())
        rsv = draw(st.sampled_from([0, 0, 0, 4]))
        pieces.append(_pure.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=None if client else KEY))
    return client, b"".join(pieces)


def split(data, cuts):
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300)
@given(
    stream=streams(),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    max_size=st.sampled_from([None, 100, 70000]),
    allowed_rsv=st.sampled_from([0, 4]),
)
def test_feed_messages_agrees_with_feed(codec, stream, cuts, max_size, allowed_rsv):
    client, wire = stream
    plain = codec.FrameParser(client=client, max_size=max_size, allowed_rsv=allowed_rsv)
    fast = codec.FrameParser(client=client, max_size=max_size, allowed_rsv=allowed_rsv)
    for chunk in split(wire, cuts):
        try:
            frames, error = plain.feed(chunk), None
        except ProtocolError as exc:
            frames, error = exc.frames, exc
        items, utf8 = expected_items(frames)
        if utf8 or error:
            with pytest.raises(ProtocolError) as info:
                fast.feed_messages(chunk)
            expected_type = InvalidUTF8 if utf8 else type(error)
            assert type(info.value) is expected_type
            assert info.value.code == (1007 if utf8 else error.code)
            assert info.value.frames == items
            return
        assert fast.feed_messages(chunk) == items
        assert fast.last_frame_count == sum(type(item) not in (bytes, str) for item in items)
        assert fast.buffered == plain.buffered


@settings(max_examples=200)
@given(stream=streams(), cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_twins_agree_on_feed_messages(twins, stream, cuts):
    client, wire = stream
    parsers = [codec.FrameParser(client=client) for codec in twins]
    for chunk in split(wire, cuts):
        outcomes = []
        for parser in parsers:
            try:
                items = parser.feed_messages(chunk)
                outcomes.append(("items", items, [type(item).__name__ for item in items], parser.last_frame_count))
            except ProtocolError as exc:
                outcomes.append(("error", type(exc), exc.code, str(exc), exc.frames))
        assert outcomes[0] == outcomes[1]
        if outcomes[0][0] == "error":
            break


# --- the Connection's fast path ----------------------------------------------------------


def server_bytes(codec, *frames):
    return b"".join(codec.encode_frame(opcode, payload, fin=fin) for opcode, payload, fin in frames)


def test_connection_returns_messages_and_handles_the_rest(codec):
    conn = Connection(client=True, codec=codec)
    events = conn.receive_data(
        server_bytes(codec, (2, b"a", True), (1, b"b", True), (9, b"p", True), (1, b"c", False), (0, b"d", True))
    )
    assert events == [b"a", "b", Ping(b"p"), "cd"]
    assert conn.data_to_send()  # the pong
    assert conn.receive_data(server_bytes(codec, (2, b"x", True), (1, b"y", True))) == [b"x", "y"]


def test_a_whole_message_inside_a_fragmented_one_fails_with_1002(codec):
    conn = Connection(client=True, codec=codec)
    assert conn.receive_data(server_bytes(codec, (1, b"a", False))) == []
    assert conn.receive_data(server_bytes(codec, (2, b"b", True))) == []
    assert conn.error.code == 1002


def test_invalid_utf8_inside_a_fragmented_message_is_still_1002(codec):
    conn = Connection(client=True, codec=codec)
    events = conn.receive_data(server_bytes(codec, (2, b"ok", True), (1, b"a", False), (1, b"\xff", True)))
    assert events == [b"ok"]
    assert type(conn.error) is ProtocolError and conn.error.code == 1002


def test_invalid_utf8_message_fails_with_1007_keeping_earlier_messages(codec):
    conn = Connection(client=True, codec=codec)
    assert conn.receive_data(server_bytes(codec, (2, b"ok", True), (1, b"\xff", True), (2, b"no", True))) == [b"ok"]
    assert conn.error.code == 1007
    assert conn.receive_data(server_bytes(codec, (2, b"later", True))) == []


def test_nothing_after_the_close_frame_counts(codec):
    conn = Connection(client=True, codec=codec)
    close = codec.encode_frame(8, (1000).to_bytes(2, "big"))
    assert conn.receive_data(server_bytes(codec, (2, b"a", True)) + close + server_bytes(codec, (2, b"b", True))) == [
        b"a",
        Close(1000, ""),
    ]


def test_small_message_limit_still_applies(codec):
    conn = Connection(client=True, codec=codec, max_message_size=3)
    assert conn.receive_data(server_bytes(codec, (2, b"abc", True), (2, b"abcd", True))) == [b"abc"]
    assert conn.error.code == 1009


# --- the blocking client's read buffer ---------------------------------------------------


def test_a_long_fast_feed_keeps_the_read_buffer_bounded():
    import socket
    import threading

    from wsfast import _io
    from wsfast._codec import encode_frame

    ours, theirs = socket.socketpair()
    wire = b"".join(encode_frame(Opcode.BINARY, bytes([i % 251]) * 1000) for i in range(2000))
    count = 40 * 2000  # 80 MB in all

    def feed():
        with theirs:
            for _ in range(40):
                theirs.sendall(wire)
            theirs.sendall(encode_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
            theirs.recv(100)  # our close reply

    sender = threading.Thread(target=feed)
    sender.start()
    ws = _io.WebSocket(ours, Connection(client=True))
    received = []
    for message in ws:
        assert len(ws._buffer) <= _io._MAX_READ_SIZE
        received.append(len(message))
        if len(received) % 2000 == 1:
            assert message == bytes([(len(received) - 1) % 2000 % 251]) * 1000
    ws.close()
    sender.join()
    assert len(received) == count and set(received) == {1000}
