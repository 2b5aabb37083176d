"""Properties of the codec over generated input: round trips, chunking, and twin agreement."""

import itertools
import operator

from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast.enums import Opcode
from wsfast.exceptions import ProtocolError

DATA_OPCODES = [Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY]
CONTROL_OPCODES = [Opcode.CLOSE, Opcode.PING, Opcode.PONG]
KNOWN_OPCODES = DATA_OPCODES + CONTROL_OPCODES

mask_keys = st.binary(min_size=4, max_size=4)
# Mostly small payloads, now and then one at a length-encoding boundary.
data_payloads = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([125, 126, 127, 65535, 65536]).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)),
)


@st.composite
def frame_specs(draw, payloads=data_payloads):
    """(opcode, payload, fin, rsv) of a valid frame."""
    opcode = draw(st.sampled_from(KNOWN_OPCODES))
    if opcode >= 8:
        return opcode, draw(st.binary(max_size=125)), True, draw(st.integers(0, 7))
    return opcode, draw(payloads), draw(st.booleans()), draw(st.integers(0, 7))


@st.composite
def streams(draw, max_frames=12, payloads=data_payloads):
    """(client, specs, wire frames): frames as a parser of that side receives them."""
    client = draw(st.booleans())
    specs = draw(st.lists(frame_specs(payloads), max_size=max_frames))
    wire = [encode(*spec, key=None if client else draw(mask_keys)) for spec in specs]
    return client, specs, wire


def encode(opcode, payload, fin, rsv, key):
    """Reference encoder written from RFC 6455 section 5.2, independent of both twins."""
    n = len(payload)
    mask_bit = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if key is None:
        return head + payload
    return head + key + bytes(map(operator.xor, payload, itertools.cycle(key)))


def split(data, cuts):
    """data cut at the given offsets (in any order, repeats allowed) into consecutive pieces."""
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def as_tuples(frames):
    return [(f.opcode, f.payload, f.fin, 4 * f.rsv1 + 2 * f.rsv2 + f.rsv3) for f in frames]


# --- one twin at a time ----------------------------------------------------------------


@given(spec=frame_specs(), key=st.one_of(st.none(), mask_keys))
def test_encode_matches_the_rfc(codec, spec, key):
    opcode, payload, fin, rsv = spec
    assert codec.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key) == encode(opcode, payload, fin, rsv, key)


@given(stream=streams(), key=mask_keys)
def test_encode_parse_round_trip(codec, stream, key):
    """What a client encodes (masked) a server parses, and what a server encodes a client parses."""
    client, specs, _ = stream
    wire = b"".join(
        codec.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=None if client else key)
        for opcode, payload, fin, rsv in specs
    )
    parser = codec.FrameParser(client=client, max_size=None, allowed_rsv=7)
    assert as_tuples(parser.feed(wire)) == specs
    assert parser.buffered == 0


@given(stream=streams(), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_gives_the_same_frames(codec, stream, cuts):
    client, specs, wire = stream
    parser = codec.FrameParser(client=client, max_size=None, allowed_rsv=7)
    frames = []
    for piece in split(b"".join(wire), cuts):
        frames += parser.feed(piece)
    assert as_tuples(frames) == specs
    assert parser.buffered == 0


@given(stream=streams(max_frames=6, payloads=st.binary(max_size=300)))
def test_one_byte_feeds(codec, stream):
    client, specs, wire = stream
    frame_ends = list(itertools.accumulate(map(len, wire)))
    parser = codec.FrameParser(client=client, max_size=None, allowed_rsv=7)
    frames = []
    for fed, byte in enumerate(b"".join(wire), 1):
        frames += parser.feed(bytes([byte]))
        # Held: everything after the last complete frame.
        assert parser.buffered == fed - ([0] + frame_ends)[len(frames)]
    assert as_tuples(frames) == specs


@given(data=st.binary(max_size=3000), key=mask_keys, offset=st.integers(0, 31))
def test_mask_matches_the_definition_at_any_offset(codec, data, key, offset):
    expected = bytes(map(operator.xor, data, itertools.cycle(key)))
    backing = bytearray(offset) + bytearray(data)
    view = memoryview(backing)[offset:]
    assert codec.mask(view, key) == expected
    codec.mask_inplace(view, key)
    assert view == expected
    codec.mask_inplace(view, key)
    assert view == data


# --- the twins agree on anything -------------------------------------------------------


@st.composite
def headers(draw, client):
    """A frame header that is usually valid, with each field sometimes going wrong."""
    fin = draw(st.booleans())
    rsv = draw(st.sampled_from([0, 0, 0, 0, 4, 2, 1, 7]))
    opcode = draw(st.sampled_from(KNOWN_OPCODES * 3 + list(range(16))))
    masked = draw(st.sampled_from([not client] * 7 + [client]))
    length = draw(
        st.one_of(
            st.integers(0, 125),
            st.integers(126, 70000),
            st.sampled_from([2**16, 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]),
        )
    )
    form = draw(st.sampled_from(["shortest", "shortest", "shortest", "16", "64"]))
    if (form == "16" and length < 65536) or (form == "shortest" and 126 <= length < 65536):
        encoded = bytes([126]) + length.to_bytes(2, "big")
    elif form == "64" or length >= 65536:
        encoded = bytes([127]) + length.to_bytes(8, "big")
    else:
        encoded = bytes([length])
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode, (0x80 if masked else 0) | encoded[0]]) + encoded[1:]
    if masked:
        head += draw(mask_keys)
    # The payload as announced when it is small, else whatever bytes happen to follow.
    body_size = length if length <= 2000 else draw(st.integers(0, 2000))
    return head + draw(st.binary(min_size=body_size, max_size=body_size))


@st.composite
def valid_frames(draw, client):
    """A frame that breaks no rule, apart from using RSV1 now and then."""
    opcode, payload, fin, _ = draw(frame_specs(st.binary(max_size=200)))
    rsv = draw(st.sampled_from([0, 0, 0, 0, 4]))
    return encode(opcode, payload, fin, rsv, key=None if client else draw(mask_keys))


@st.composite
def hostile_streams(draw):
    """Mostly valid frames, mixed with odd headers and junk bytes."""
    client = draw(st.booleans())
    valid = valid_frames(client)
    pieces = st.one_of(valid, valid, valid, headers(client), st.binary(max_size=20))
    return client, b"".join(draw(st.lists(pieces, max_size=10)))


def outcome(parser, chunk):
    """What one feed did: ("frames", frames, buffered) or ("error", type, code, frames)."""
    try:
        frames = parser.feed(chunk)
    except ProtocolError as exc:
        return "error", type(exc), exc.code, as_tuples(exc.frames)
    return "frames", as_tuples(frames), parser.buffered


@settings(max_examples=500)
@given(
    stream=hostile_streams(),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
    max_size=st.sampled_from([None, 0, 125, 1000, 65536, 64 * 1024 * 1024]),
    allowed_rsv=st.sampled_from([0, 4, 7]),
)
def test_twins_agree_on_any_stream(twins, stream, cuts, max_size, allowed_rsv):
    """Same frames after every feed, or the same error (type, code, frames) at the same feed."""
    client, wire = stream
    pure, compiled = (codec.FrameParser(client=client, max_size=max_size, allowed_rsv=allowed_rsv) for codec in twins)
    for chunk in split(wire, cuts):
        expected = outcome(pure, chunk)
        assert outcome(compiled, chunk) == expected
        if expected[0] == "error":
            break
