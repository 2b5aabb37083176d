"""The sans-I/O connection: framing, validation, close handshake and limits.

The ``codec`` fixture (tests/conftest.py) runs every test with both codec twins.
"""

import array
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsfast import CloseCode, Opcode
from wsfast.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
)
from wsfast.protocol import Close, Connection, Ping, Pong, State

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
KEY = b"\x11\x22\x33\x44"


@pytest.fixture(params=[True, False], ids=["client", "server"])
def client(request):
    return request.param


def make(codec, client=True, **kwargs):
    return Connection(client=client, codec=codec, **kwargs)


def incoming(codec, conn, opcode, payload=b"", fin=True, rsv=0):
    """Wire bytes of a frame as conn's peer sends it (masked when the peer is a client)."""
    key = None if conn.client else KEY
    return codec.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key)


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


def sent_frames(codec, conn):
    """Parse what conn queued for sending, as its peer would."""
    return codec.FrameParser(client=not conn.client, max_size=None).feed(conn.data_to_send())


def assert_failed(codec, conn, code, error_type=ProtocolError):
    """conn found a violation with ``code``; fail() then closes with that code."""
    assert isinstance(conn.error, error_type)
    assert conn.error.code == code
    conn.fail()
    assert conn.state is State.CLOSING
    assert conn.close_transport
    frames = sent_frames(codec, conn)
    assert frames[-1].opcode == CLOSE
    assert frames[-1].close_code == code
    assert isinstance(conn.closed_exception(), ConnectionClosedError)


# Events -----------------------------------------------------------------------------


def test_state_values():
    assert [s.value for s in State] == [0, 1, 2, 3]
    assert [s.name for s in State] == ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]


def test_events_compare_and_repr():
    assert Ping(b"a") == Ping(b"a") != Ping(b"b")
    assert Ping(b"a") != Pong(b"a")
    assert not isinstance(Pong(b""), Ping)
    assert Close(1000, "x") == Close(1000, "x") != Close(1001, "x")
    assert {Ping(b"a"), Ping(b"a"), Pong(b"a")} == {Ping(b"a"), Pong(b"a")}
    assert repr(Ping(b"a")) == "Ping(b'a')"
    assert repr(Pong(b"")) == "Pong(b'')"
    assert repr(Close(1000, "bye")) == "Close(1000, 'bye')"
    with pytest.raises(AttributeError):
        Ping(b"").other = 1


def test_starts_open(codec, client):
    conn = make(codec, client)
    assert conn.state is State.OPEN
    assert conn.close_code is conn.close_reason is conn.close_sent_code is conn.error is None
    assert not conn.close_transport
    assert conn.data_to_send() == b""
    assert "OPEN" in repr(conn)


def test_invalid_arguments(codec):
    with pytest.raises(ValueError):
        make(codec, max_message_size=-1)
    with pytest.raises(ValueError):
        make(codec, max_frame_size=0)


# Data messages ----------------------------------------------------------------------


def test_round_trip(codec, client):
    sender, receiver = make(codec, client), make(codec, not client)
    sender.send_text("héllo €")
    sender.send_binary(b"\x00\xff" * 100)
    sender.send_text("")
    sender.send_binary(b"")
    sender.send_binary(b"x" * 70000)
    assert receiver.receive_data(sender.data_to_send()) == ["héllo €", b"\x00\xff" * 100, "", b"", b"x" * 70000]
    assert receiver.error is None


def test_many_frames_in_one_chunk_and_byte_by_byte(codec, client):
    conn = make(codec, client)
    wire = b"".join(incoming(codec, conn, TEXT if i % 2 else BINARY, b"%d" % i) for i in range(200))
    expected = [str(i) if i % 2 else b"%d" % i for i in range(200)]
    assert conn.receive_data(wire) == expected
    conn = make(codec, client)
    events = []
    for i in range(len(wire)):
        events += conn.receive_data(wire[i : i + 1])
    assert events == expected


def test_accepts_any_bytes_like(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, BINARY, b"abc")
    assert conn.receive_data(bytearray(wire)) == [b"abc"]
    assert conn.receive_data(memoryview(wire)) == [b"abc"]


def test_received_buffer_may_be_reused(codec, client):
    conn = make(codec, client)
    buffer = bytearray(incoming(codec, conn, BINARY, b"first") + incoming(codec, conn, TEXT, b"sec", fin=False))
    events = conn.receive_data(memoryview(buffer))
    buffer[:] = b"\x00" * len(buffer)
    assert events == [b"first"]
    buffer[:] = incoming(codec, conn, CONT, b"ond")
    assert conn.receive_data(memoryview(buffer)) == ["second"]


def test_default_codec():
    sender, receiver = Connection(client=True), Connection(client=False)
    sender.send_text("hi")
    assert receiver.receive_data(sender.data_to_send()) == ["hi"]


messages = st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=20)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=messages, frame_size=st.one_of(st.none(), st.integers(1, 50)), cuts=st.lists(st.integers(0, 20000)))
def test_any_messages_any_fragmentation_any_chunking(codec, messages, frame_size, cuts):
    for client in (True, False):
        sender, receiver = make(codec, client, max_frame_size=frame_size), make(codec, not client)
        for message in messages:
            (sender.send_text if isinstance(message, str) else sender.send_binary)(message)
        sender.send_ping(b"p")
        wire = sender.data_to_send()
        bounds = sorted({0, len(wire), *(cut % (len(wire) + 1) for cut in cuts)})
        events = []
        for start, stop in itertools.pairwise(bounds):
            events += receiver.receive_data(wire[start:stop])
        assert events == [*messages, Ping(b"p")]
        assert receiver.error is None


def test_send_accepts_bytes_like(codec, client):
    sender, receiver = make(codec, client), make(codec, not client)
    sender.send_binary(bytearray(b"ab"))
    sender.send_binary(memoryview(b"cd"))
    sender.send_binary(array.array("H", [1, 2]))
    assert receiver.receive_data(sender.data_to_send()) == [b"ab", b"cd", array.array("H", [1, 2]).tobytes()]


def test_send_picks_text_or_binary(codec, client):
    sender, receiver = make(codec, client), make(codec, not client)
    for message in ("héllo", b"ab", bytearray(b"cd"), memoryview(b"ef"), array.array("H", [1, 2])):
        sender.send(message)
    expected = ["héllo", b"ab", b"cd", b"ef", array.array("H", [1, 2]).tobytes()]
    assert receiver.receive_data(sender.data_to_send()) == expected
    with pytest.raises(TypeError, match="send\\(\\) needs a str or a bytes-like object, not int"):
        sender.send(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="contiguous"):
        sender.send(memoryview(b"abcd")[::2])
    assert sender.data_to_send() == b""


def test_send_type_errors(codec):
    conn = make(codec)
    with pytest.raises(TypeError):
        conn.send_text(b"bytes")
    with pytest.raises(TypeError):
        conn.send_binary("text")
    assert conn.data_to_send() == b""


def test_invalid_utf8_in_single_frame(codec, client):
    conn = make(codec, client)
    wire = b"".join(incoming(codec, conn, TEXT, payload) for payload in (b"ok", b"\xc3\x28", b"x"))
    assert conn.receive_data(wire) == ["ok"]
    assert_failed(codec, conn, 1007, InvalidUTF8)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"more")) == []


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x80", b"\xe2\x82"],
    ids=["ff", "overlong", "surrogate", "above-max", "continuation", "truncated"],
)
def test_invalid_utf8_variants(codec, client, payload):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, payload)) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)


def test_binary_is_not_validated(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, BINARY, b"\xff\xfe")) == [b"\xff\xfe"]


# Fragmentation (receiving) ----------------------------------------------------------


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_fragmented_message(codec, client, opcode):
    conn = make(codec, client)
    parts = [b"ab", b"", b"cd", b"e"]
    wire = incoming(codec, conn, opcode, parts[0], fin=False)
    wire += incoming(codec, conn, CONT, parts[1], fin=False)
    wire += incoming(codec, conn, CONT, parts[2], fin=False)
    wire += incoming(codec, conn, CONT, parts[3])
    expected = "abcde" if opcode == TEXT else b"abcde"
    assert conn.receive_data(wire + incoming(codec, conn, BINARY, b"next")) == [expected, b"next"]
    assert conn.error is None


def test_fragments_across_calls(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"he", fin=False)) == []
    assert conn.receive_data(incoming(codec, conn, CONT, b"ll", fin=False)) == []
    assert conn.receive_data(incoming(codec, conn, CONT, b"o")) == ["hello"]
    # The fast path resumes once the message is complete.
    assert conn.receive_data(incoming(codec, conn, TEXT, b"x")) == ["x"]


def test_control_frames_interleave_fragments(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"a", fin=False)
    wire += incoming(codec, conn, PING, b"p1")
    wire += incoming(codec, conn, CONT, b"b", fin=False)
    wire += incoming(codec, conn, PONG, b"p2")
    wire += incoming(codec, conn, CONT, b"c")
    assert conn.receive_data(wire) == [Ping(b"p1"), Pong(b"p2"), "abc"]
    [pong] = sent_frames(codec, conn)
    assert (pong.opcode, pong.payload) == (PONG, b"p1")


def test_close_in_the_middle_of_a_fragmented_message(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"a", fin=False) + incoming(codec, conn, CLOSE, close_payload(1001))
    assert conn.receive_data(wire) == [Close(1001, "")]
    assert conn.error is None


def test_utf8_split_across_fragments_at_every_position(codec, client):
    text = "aé€😀z"
    data = text.encode("utf-8")
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            conn = make(codec, client)
            wire = incoming(codec, conn, TEXT, data[:i], fin=False)
            wire += incoming(codec, conn, CONT, data[i:j], fin=False)
            wire += incoming(codec, conn, CONT, data[j:])
            assert conn.receive_data(wire) == [text], (i, j)


def test_utf8_split_fed_byte_by_byte(codec, client):
    text = "€😀" * 3
    data = text.encode("utf-8")
    conn = make(codec, client)
    events = []
    for i, byte in enumerate(data):
        opcode = TEXT if i == 0 else CONT
        events += conn.receive_data(incoming(codec, conn, opcode, bytes([byte]), fin=i == len(data) - 1))
    assert events == [text]


def test_truncated_utf8_at_message_end(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"a\xe2", fin=False) + incoming(codec, conn, CONT, b"\x82")
    assert conn.receive_data(wire) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)


def test_invalid_utf8_fails_on_first_bad_fragment(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"fine ", fin=False)) == []
    assert conn.error is None
    # The message is not over, but the bad fragment already fails the connection.
    assert conn.receive_data(incoming(codec, conn, CONT, b"\xff", fin=False)) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)
    assert conn.receive_data(incoming(codec, conn, CONT, b"end")) == []


def test_invalid_utf8_in_first_fragment(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"\xc0", fin=False)) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)


# Bytes that can begin no valid UTF-8, the byte after a valid prefix (RFC 3629 §4).
CANNOT_BEGIN_UTF8 = [b"\xff", b"\xc0", b"\xe0\x80", b"\xed\xa0", b"\xf0\x80", b"\xf4\x90", b"\xce\xba\x80"]
# Valid characters cut after a prefix that the rest completes.
VALID_PREFIXES = [
    (b"\xc2", b"\xa9"),
    (b"\xe0\xa0", b"\x80"),
    (b"\xed\x9f", b"\xbf"),
    (b"\xf0\x90\x80", b"\x80"),
    (b"\xf4\x8f", b"\xbf\xbf"),
]


@pytest.mark.parametrize("prefix", CANNOT_BEGIN_UTF8, ids=bytes.hex)
def test_invalid_utf8_fails_in_the_middle_of_a_frame(codec, client, prefix):
    """Autobahn 6.4.3: the frame's rest has not arrived, but cannot make it valid."""
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"valid " + prefix + b"rest of the frame")
    cut = len(wire) - len(b"rest of the frame")
    assert conn.receive_data(wire[: cut - len(prefix)]) == []
    assert conn.error is None
    for end in range(cut - len(prefix) + 1, cut + 1):  # byte by byte
        conn.receive_data(wire[end - 1 : end])
    assert_failed(codec, conn, 1007, InvalidUTF8)


@pytest.mark.parametrize("prefix, rest", VALID_PREFIXES, ids=[prefix.hex() for prefix, _ in VALID_PREFIXES])
def test_a_valid_prefix_in_the_middle_of_a_frame_waits(codec, client, prefix, rest):
    conn = make(codec, client)
    text = b"ok " + prefix + rest
    wire = incoming(codec, conn, TEXT, text)
    events = [event for end in range(1, len(wire) + 1) for event in conn.receive_data(wire[end - 1 : end])]
    assert conn.error is None
    assert events == [text.decode()]


@pytest.mark.parametrize("prefix", CANNOT_BEGIN_UTF8, ids=bytes.hex)
def test_invalid_utf8_fails_in_the_middle_of_a_continuation_frame(codec, client, prefix):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"start \xce", fin=False)) == []
    wire = incoming(codec, conn, CONT, b"\xba" + prefix + b"rest")
    assert conn.receive_data(wire[: len(wire) - 4]) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)


def test_a_character_split_across_frames_is_checked_across_them(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"\xf0", fin=False)) == []
    wire = incoming(codec, conn, CONT, b"\x9f\x98\x80 rest")
    assert conn.receive_data(wire[:-4]) == []
    assert conn.error is None
    assert conn.receive_data(wire[-4:]) == ["\U0001f600 rest"]


@pytest.mark.parametrize("prefix", CANNOT_BEGIN_UTF8, ids=bytes.hex)
def test_a_fragment_ending_in_bytes_that_cannot_begin_utf8_fails(codec, client, prefix):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"ok " + prefix, fin=False)) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)


def test_binary_and_compressed_frames_in_pieces_are_not_checked(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, BINARY, b"\xff" * 1000)
    for start in range(0, len(wire), 100):
        conn.receive_data(wire[start : start + 100])
    assert conn.error is None


def test_a_new_text_message_in_pieces_inside_another_fails_with_1002(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"a", fin=False)) == []
    wire = incoming(codec, conn, TEXT, b"\xff and more")
    assert conn.receive_data(wire[:4]) == []  # not checked: it breaks the sequence
    assert conn.error is None
    assert conn.receive_data(wire[4:]) == []
    assert_failed(codec, conn, 1002)


def test_continuation_without_start(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"ok") + incoming(codec, conn, CONT, b"x")
    assert conn.receive_data(wire) == ["ok"]
    assert_failed(codec, conn, 1002)


@pytest.mark.parametrize("second", [TEXT, BINARY])
def test_new_message_while_fragmented(codec, client, second):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"a", fin=False) + incoming(codec, conn, second, b"b")
    assert conn.receive_data(wire) == []
    assert_failed(codec, conn, 1002)


# Fragmentation (sending) ------------------------------------------------------------


def test_max_frame_size_splits_messages(codec, client):
    sender = make(codec, client, max_frame_size=3)
    sender.send_binary(b"abcdefgh")
    frames = codec.FrameParser(client=not client).feed(sender.data_to_send())
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (BINARY, False, b"abc"),
        (CONT, False, b"def"),
        (CONT, True, b"gh"),
    ]
    sender.send_binary(b"abcdef")  # an exact multiple: no empty trailing frame
    frames = codec.FrameParser(client=not client).feed(sender.data_to_send())
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [(BINARY, False, b"abc"), (CONT, True, b"def")]
    sender.send_binary(b"abc")
    sender.send_text("")
    frames = codec.FrameParser(client=not client).feed(sender.data_to_send())
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [(BINARY, True, b"abc"), (TEXT, True, b"")]


def test_max_frame_size_may_split_a_character(codec, client):
    sender, receiver = make(codec, client, max_frame_size=1), make(codec, not client)
    sender.send_text("é€😀")
    wire = sender.data_to_send()
    assert len(codec.FrameParser(client=not client).feed(wire)) == 9
    assert receiver.receive_data(wire) == ["é€😀"]


def test_max_frame_size_with_bytes_like(codec, client):
    sender, receiver = make(codec, client, max_frame_size=4), make(codec, not client)
    sender.send_binary(array.array("I", [1, 2, 3]))
    sender.send_binary(bytearray(b"0123456789"))
    assert receiver.receive_data(sender.data_to_send()) == [array.array("I", [1, 2, 3]).tobytes(), b"0123456789"]


# Limits -----------------------------------------------------------------------------


def test_frame_over_max_message_size(codec, client):
    conn = make(codec, client, max_message_size=1000)
    wire = incoming(codec, conn, BINARY, b"x" * 1000) + incoming(codec, conn, BINARY, b"x" * 1001)
    assert conn.receive_data(wire) == [b"x" * 1000]
    assert_failed(codec, conn, 1009, PayloadTooBig)


def test_fragments_over_max_message_size(codec, client):
    conn = make(codec, client, max_message_size=1000)
    ok = incoming(codec, conn, TEXT, b"x" * 600, fin=False) + incoming(codec, conn, CONT, b"x" * 400)
    assert conn.receive_data(ok) == ["x" * 1000]
    assert conn.receive_data(incoming(codec, conn, BINARY, b"x" * 600, fin=False)) == []
    assert conn.receive_data(incoming(codec, conn, CONT, b"x" * 401, fin=False)) == []
    assert_failed(codec, conn, 1009, PayloadTooBig)


def test_no_message_size_limit(codec, client):
    conn = make(codec, client, max_message_size=None)
    assert conn.receive_data(incoming(codec, conn, BINARY, b"x" * 100_000)) == [b"x" * 100_000]


def test_small_message_limit_still_allows_control_frames(codec, client):
    conn = make(codec, client, max_message_size=10)
    wire = incoming(codec, conn, PING, b"p" * 125) + incoming(codec, conn, TEXT, b"t" * 10)
    assert conn.receive_data(wire) == [Ping(b"p" * 125), "t" * 10]
    assert conn.receive_data(incoming(codec, conn, TEXT, b"t" * 11)) == []
    assert_failed(codec, conn, 1009, PayloadTooBig)


def test_zero_message_limit(codec, client):
    conn = make(codec, client, max_message_size=0)
    assert conn.receive_data(incoming(codec, conn, BINARY, b"")) == [b""]
    assert conn.receive_data(incoming(codec, conn, BINARY, b"x")) == []
    assert_failed(codec, conn, 1009, PayloadTooBig)


# Parser errors ----------------------------------------------------------------------


def test_frames_before_a_parser_error_are_delivered(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"one") + incoming(codec, conn, PING, b"p")
    wire += incoming(codec, conn, BINARY, b"bad", rsv=4)
    assert conn.receive_data(wire) == ["one", Ping(b"p")]
    assert conn.error.code == 1002
    assert conn.receive_data(incoming(codec, conn, TEXT, b"more")) == []
    conn.fail()
    pong, close = sent_frames(codec, conn)
    assert (pong.opcode, pong.payload) == (PONG, b"p")
    assert (close.opcode, close.close_code) == (CLOSE, 1002)
    assert conn.state is State.CLOSING
    assert conn.close_transport


def test_messages_before_a_violation_can_be_answered_first(codec, client):
    """The close of a failed connection waits for fail(): answers go out before it."""
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"one") + incoming(codec, conn, TEXT, b"two")
    wire += incoming(codec, conn, TEXT, b"bad", rsv=2)
    assert conn.receive_data(wire) == ["one", "two"]
    assert conn.state is State.OPEN and not conn.close_transport
    assert conn.data_to_send() == b""
    conn.send_text("one")
    conn.send_text("two")
    conn.fail()
    conn.fail()  # once is enough
    frames = sent_frames(codec, conn)
    assert [(frame.opcode, frame.payload) for frame in frames[:2]] == [(TEXT, b"one"), (TEXT, b"two")]
    assert frames[2].close_code == 1002 and len(frames) == 3
    with pytest.raises(ConnectionClosedError):
        conn.send_text("three")
    assert isinstance(conn.closed_exception(), ConnectionClosedError)


def test_closing_after_a_violation_sends_its_code(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, BINARY, b"", rsv=1)) == []
    conn.send_close(1000, "bye")
    (close,) = sent_frames(codec, conn)
    assert close.close_code == 1002
    assert conn.close_transport


def test_fail_without_a_violation_does_nothing(codec, client):
    conn = make(codec, client)
    conn.fail()
    assert conn.state is State.OPEN
    assert conn.data_to_send() == b""


def test_validation_error_before_parser_error_wins(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"\xff") + incoming(codec, conn, BINARY, b"", rsv=2)
    assert conn.receive_data(wire) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)


def test_wrong_masking_direction(codec, client):
    conn = make(codec, client)
    # A client must not get masked frames, a server must not get unmasked ones.
    wire = codec.encode_frame(TEXT, b"x", mask_key=KEY if client else None)
    assert conn.receive_data(wire) == []
    assert_failed(codec, conn, 1002)


@pytest.mark.parametrize(
    "wire",
    [
        bytes([0x83, 0x00]),  # reserved opcode
        bytes([0x09, 0x00]),  # fragmented ping
        bytes([0x89, 126, 0, 126]) + b"x" * 126,  # control frame over 125 bytes
    ],
    ids=["opcode", "fragmented-control", "long-control"],
)
def test_malformed_frames(codec, wire):
    conn = make(codec, client=True)
    assert conn.receive_data(wire) == []
    assert_failed(codec, conn, 1002)


def test_error_after_close_sent_sends_no_second_close(codec, client):
    conn = make(codec, client)
    conn.send_close(1000)
    assert len(sent_frames(codec, conn)) == 1
    assert conn.receive_data(incoming(codec, conn, CONT, b"x")) == []
    assert conn.error is not None
    assert conn.data_to_send() == b""
    assert conn.close_transport
    assert conn.close_sent_code == 1000


# Ping / pong ------------------------------------------------------------------------


def test_ping_is_answered(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, PING, b"") + incoming(codec, conn, PING, b"x" * 125)
    assert conn.receive_data(wire) == [Ping(b""), Ping(b"x" * 125)]
    frames = sent_frames(codec, conn)
    assert [(f.opcode, f.payload) for f in frames] == [(PONG, b""), (PONG, b"x" * 125)]


def test_pong_is_reported(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, PONG, b"hb")) == [Pong(b"hb")]
    assert conn.data_to_send() == b""


def test_send_ping_and_pong(codec, client):
    sender, receiver = make(codec, client), make(codec, not client)
    sender.send_ping(b"a")
    sender.send_ping("é")
    sender.send_pong()
    sender.send_ping(bytearray(b"x" * 125))
    assert receiver.receive_data(sender.data_to_send()) == [
        Ping(b"a"),
        Ping("é".encode()),
        Pong(b""),
        Ping(b"x" * 125),
    ]
    with pytest.raises(ValueError):
        sender.send_ping(b"x" * 126)
    with pytest.raises(ValueError):
        sender.send_pong(b"x" * 126)


def test_no_pong_after_close_sent(codec, client):
    conn = make(codec, client)
    conn.send_close()
    conn.data_to_send()
    assert conn.receive_data(incoming(codec, conn, PING, b"p")) == [Ping(b"p")]
    assert conn.data_to_send() == b""


# Close frames -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes_are_echoed(codec, client, code):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, CLOSE, close_payload(code, "ré".encode()))) == [Close(code, "ré")]
    assert (conn.close_code, conn.close_reason) == (code, "ré")
    assert conn.state is State.CLOSING
    assert conn.error is None
    [echo] = sent_frames(codec, conn)
    assert (echo.opcode, echo.close_code) == (CLOSE, code)
    assert conn.close_sent_code == code


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes(codec, client, code):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, CLOSE, close_payload(code))) == []
    assert_failed(codec, conn, 1002)
    assert conn.close_code is None


def test_close_with_one_byte_payload(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, CLOSE, b"\x03")) == []
    assert_failed(codec, conn, 1002)


def test_close_with_invalid_utf8_reason(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, CLOSE, close_payload(1000, b"\xff"))) == []
    assert_failed(codec, conn, 1007, InvalidUTF8)


def test_empty_close_is_answered_with_empty_close(codec, client):
    conn = make(codec, client)
    assert conn.receive_data(incoming(codec, conn, CLOSE)) == [Close(1005, "")]
    assert conn.close_code == 1005
    [echo] = sent_frames(codec, conn)
    assert (echo.opcode, echo.payload) == (CLOSE, b"")
    conn.receive_eof()
    exc = conn.closed_exception()
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.code, exc.sent_code) == (1005, None)


def test_data_after_close_is_ignored(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"before") + incoming(codec, conn, CLOSE, close_payload(1000))
    wire += incoming(codec, conn, TEXT, b"after") + b"\xff\xff garbage"
    assert conn.receive_data(wire) == ["before", Close(1000, "")]
    assert conn.receive_data(incoming(codec, conn, TEXT, b"later")) == []
    assert conn.receive_frames(incoming(codec, conn, TEXT, b"later")) == []
    assert conn.error is None


def test_client_initiated_close(codec):
    client, server = make(codec, True), make(codec, False)
    client.send_close(1000, "done")
    assert client.state is State.CLOSING
    assert server.receive_data(client.data_to_send()) == [Close(1000, "done")]
    assert server.state is State.CLOSING
    assert server.close_transport  # the server closes TCP once it has echoed the close
    assert client.receive_data(server.data_to_send()) == [Close(1000, "done")]
    assert client.state is State.CLOSING
    assert not client.close_transport  # the client waits for the server to close TCP
    assert client.data_to_send() == b""
    client.receive_eof()
    server.receive_eof()
    for conn in (client, server):
        assert conn.state is State.CLOSED
        assert conn.error is None
        assert isinstance(conn.closed_exception(), ConnectionClosedOK)
    assert (client.close_code, client.close_sent_code) == (1000, 1000)
    exc = server.closed_exception()
    assert (exc.code, exc.reason, exc.sent_code) == (1000, "done", 1000)


def test_server_initiated_close(codec):
    client, server = make(codec, True), make(codec, False)
    server.send_close(1001, "bye")
    assert not server.close_transport
    assert client.receive_data(server.data_to_send()) == [Close(1001, "bye")]
    assert not client.close_transport
    assert server.receive_data(client.data_to_send()) == [Close(1001, "bye")]
    assert server.close_transport
    exc = client.closed_exception()
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.code, exc.reason, exc.sent_code) == (1001, "bye", 1001)


def test_unclean_close_codes_give_error(codec):
    client, server = make(codec, True), make(codec, False)
    server.send_close(1011, "oops")
    client.receive_data(server.data_to_send())
    exc = client.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, exc.reason, exc.sent_code) == (1011, "oops", 1011)


def test_data_still_received_while_closing(codec, client):
    conn = make(codec, client)
    conn.send_close()
    assert conn.receive_data(incoming(codec, conn, TEXT, b"late")) == ["late"]


def test_eof_without_close(codec, client):
    conn = make(codec, client)
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_code == 1006
    assert conn.close_transport
    exc = conn.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, exc.sent_code) == (1006, None)
    assert conn.receive_data(incoming(codec, conn, TEXT, b"x")) == []
    with pytest.raises(ConnectionClosedError):
        conn.send_text("x")


def test_eof_after_own_close_only(codec, client):
    conn = make(codec, client)
    conn.send_close()
    conn.receive_eof()
    exc = conn.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, exc.sent_code) == (1006, 1000)


def test_sending_when_not_open(codec, client):
    conn = make(codec, client)
    conn.send_close(1000)
    for call in (lambda: conn.send_text("x"), lambda: conn.send_binary(b"x"), conn.send_ping, conn.send_pong):
        with pytest.raises(ConnectionClosed):
            call()
    conn.data_to_send()
    conn.send_close(1001)  # a second close is ignored
    assert conn.data_to_send() == b""
    assert conn.close_sent_code == 1000


def test_sending_after_peer_closed(codec, client):
    conn = make(codec, client)
    conn.receive_data(incoming(codec, conn, CLOSE, close_payload(1000)))
    with pytest.raises(ConnectionClosedOK) as info:
        conn.send_text("x")
    assert info.value.code == 1000


def test_send_close_payloads(codec, client):
    conn = make(codec, client)
    conn.send_close(4000, "é" * 100)  # 200 bytes: cut to 122 without splitting a character
    [frame] = sent_frames(codec, conn)
    assert frame.close_code == 4000
    assert frame.payload[2:] == "é".encode() * 61
    conn = make(codec, client)
    conn.send_close(1000, "a" * 200)
    assert sent_frames(codec, conn)[0].payload[2:] == b"a" * 123
    conn = make(codec, client)
    conn.send_close(None)
    [frame] = sent_frames(codec, conn)
    assert frame.payload == b""
    assert conn.close_sent_code is None
    assert conn.state is State.CLOSING
    conn = make(codec, client)
    conn.send_close()
    assert sent_frames(codec, conn)[0].payload == b"\x03\xe8"


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, "1000", 1000.0])
def test_send_close_rejects_bad_codes(codec, code):
    conn = make(codec)
    with pytest.raises(ValueError):
        conn.send_close(code)
    assert conn.state is State.OPEN
    assert conn.data_to_send() == b""


def test_send_close_rejects_reason_without_code(codec):
    conn = make(codec)
    with pytest.raises(ValueError):
        conn.send_close(None, "why")
    with pytest.raises(TypeError):
        conn.send_close(1000, b"bytes")


def test_close_code_enum_is_accepted(codec, client):
    conn = make(codec, client)
    conn.send_close(CloseCode.GOING_AWAY)
    assert sent_frames(codec, conn)[0].close_code == 1001


# Masking and roles ------------------------------------------------------------------


def test_client_masks_with_fresh_keys_and_server_does_not(codec):
    client, server = make(codec, True), make(codec, False)
    for _ in range(1100):  # more keys than one batch from the random pool
        client.send_binary(b"\x00" * 4)
    wire = client.data_to_send()
    frames = [wire[i : i + 10] for i in range(0, len(wire), 10)]
    assert all(frame[1] == 0x84 for frame in frames)
    # The payload is zeros, so the masked bytes equal the key.
    keys = {frame[2:6] for frame in frames}
    assert {frame[6:10] for frame in frames} == keys
    assert len(keys) > 1090
    server.send_binary(b"\x00" * 4)
    assert server.data_to_send() == b"\x82\x04" + b"\x00" * 4


def test_data_to_send_clears(codec, client):
    conn = make(codec, client)
    conn.send_text("a")
    conn.send_text("b")
    assert len(conn.data_to_send()) > 0
    assert conn.data_to_send() == b""


# receive_frames ---------------------------------------------------------------------


def test_receive_frames(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, TEXT, b"a", fin=False)
    wire += incoming(codec, conn, PING, b"p")
    wire += incoming(codec, conn, CONT, b"b")
    wire += incoming(codec, conn, BINARY, b"c")
    frames = conn.receive_frames(wire)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (TEXT, False, b"a"),
        (PING, True, b"p"),
        (CONT, True, b"b"),
        (BINARY, True, b"c"),
    ]
    assert [(f.opcode, f.payload) for f in sent_frames(codec, conn)] == [(PONG, b"p")]
    wire = incoming(codec, conn, TEXT, b"ok") + incoming(codec, conn, TEXT, b"\xff") + incoming(codec, conn, TEXT, b"x")
    assert [f.payload for f in conn.receive_frames(wire)] == [b"ok"]
    assert_failed(codec, conn, 1007, InvalidUTF8)


def test_receive_frames_close_and_parser_error(codec, client):
    conn = make(codec, client)
    wire = incoming(codec, conn, BINARY, b"a") + bytes([0x83, 0x00])
    assert [f.payload for f in conn.receive_frames(wire)] == [b"a"]
    assert_failed(codec, conn, 1002)
    conn = make(codec, client)
    wire = incoming(codec, conn, CLOSE, close_payload(1000)) + incoming(codec, conn, TEXT, b"after")
    [close] = conn.receive_frames(wire)
    assert close.close_code == 1000
    assert conn.close_code == 1000
    assert conn.state is State.CLOSING


def test_receive_frames_enforces_message_limit(codec, client):
    conn = make(codec, client, max_message_size=4)
    wire = incoming(codec, conn, TEXT, b"ab", fin=False) + incoming(codec, conn, CONT, b"cde")
    assert len(conn.receive_frames(wire)) == 1
    assert_failed(codec, conn, 1009, PayloadTooBig)
