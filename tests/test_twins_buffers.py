"""The twins agree on any object with the buffer protocol, and on any odd argument.

Every entry point takes bytes, bytearray, memoryviews of any shape and stride (multi-byte
items, several dimensions, negative steps), array.array, numpy arrays in C or Fortran
order (when numpy is installed) and mmap; both twins must return the same thing for
them, or raise the same exception with the same message.
"""

import array
import itertools
import math
import mmap
import sys
import zlib
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast.deflate import DeflateParams, PerMessageDeflate
from wsfast.enums import Opcode
from wsfast.protocol import Connection

try:
    import numpy
except ImportError:  # its layouts are left out
    numpy = None

KEY = b"\x01\x02\x03\x04"


# --- objects exporting given bytes ---------------------------------------------------
# Each maker takes the bytes an object must export (in C order, as memoryview.tobytes()
# gives them) and a draw function, and returns a function that builds such an object,
# afresh at each call: the twins must not share one that mask_inplace changes.


def sizes_dividing(n, sizes=(2, 4, 8)):
    return [size for size in sizes if n % size == 0]


def plain(kind):
    return lambda content, draw: lambda: kind(content)


def offset_view(content, draw):
    return lambda: memoryview(bytearray(b"..") + content)[2:]


def strided_view(content, draw):
    step = draw(st.sampled_from([2, 3, -1, -2]))

    def make():
        backing = bytearray(len(content) * abs(step))
        backing[::step] = content
        return memoryview(backing)[::step]

    return make


def item_view(content, draw):
    """A C-contiguous view of multi-byte items, in one to three dimensions."""
    size = draw(st.sampled_from(sizes_dividing(len(content)) or [1]))
    code = {1: "B", 2: "H", 4: draw(st.sampled_from("Iif")), 8: draw(st.sampled_from("Qd"))}[size]
    items = len(content) // size
    rows = draw(st.sampled_from([d for d in (1, 2, 3, 4) if items % d == 0] or [1]))
    if rows == 1 or not items:  # memoryview casts to no shape with a zero in it
        return lambda: memoryview(bytearray(content)).cast(code)
    return lambda: memoryview(bytearray(content)).cast(code, (rows, items // rows))


def strided_item_view(content, draw):
    """Multi-byte items at every other place of a larger buffer: not contiguous."""
    size = draw(st.sampled_from(sizes_dividing(len(content)) or [1]))
    code = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]

    def make():
        backing = bytearray(2 * len(content))
        for index in range(len(content) // size):
            backing[2 * index * size : (2 * index + 1) * size] = content[index * size : (index + 1) * size]
        return memoryview(backing).cast(code)[::2]

    return make


def array_of_items(content, draw):
    code = draw(st.sampled_from([code for code in "BbHhIiLlQqfd" if len(content) % array.array(code).itemsize == 0]))

    def make():
        items = array.array(code)
        items.frombytes(content)
        return items

    return make


def numpy_array(content, draw):
    """C or Fortran order, sliced or not, native or swapped byte order."""
    size = draw(st.sampled_from(sizes_dividing(len(content), (1, 2, 4, 8))))
    dtype = numpy.dtype(draw(st.sampled_from(["u", "i", "f"] if size > 1 else ["u", "i"])) + str(size))
    if size > 1 and draw(st.booleans()):
        dtype = dtype.newbyteorder()
    items = len(content) // size
    rows = draw(st.sampled_from([d for d in (1, 2, 3, 4) if items % d == 0]))
    layout = draw(st.sampled_from(["C", "F", "sliced"]))

    def make():
        c_order = numpy.frombuffer(bytearray(content), dtype).reshape(rows, items // rows).copy()
        if layout == "F":
            return numpy.asfortranarray(c_order)
        if layout == "sliced":  # every other column of an array twice as wide
            wide = numpy.zeros((rows, 2 * (items // rows)), dtype)
            wide[:, ::2] = c_order
            return wide[:, ::2]
        return c_order

    return make


def mapped(content, draw):
    def make():
        if not content:
            return b""  # an mmap cannot be empty
        region = mmap.mmap(-1, len(content))
        region.write(content)
        return region

    return make


MAKERS = [
    plain(bytes),
    plain(bytearray),
    plain(memoryview),
    offset_view,
    strided_view,
    item_view,
    strided_item_view,
    array_of_items,
    mapped,
]
if numpy is not None:
    MAKERS.append(numpy_array)


@st.composite
def exporters(draw, content):
    """A function building an object that exports ``content``, of any kind and layout."""
    return draw(st.sampled_from(MAKERS))(content, draw)


@st.composite
def contents_and_exporters(draw, max_size=600):
    content = draw(st.binary(max_size=max_size))
    return content, draw(exporters(content))


def outcome(call):
    """What ``call()`` did: ("result", its value with frames as tuples) or ("error",
    the exception's type and message)."""
    try:
        return "result", plain_value(call())
    except Exception as exc:  # noqa: BLE001 - compared between the twins, never hidden
        return "error", type(exc), str(exc)


def plain_value(value):
    if isinstance(value, list):
        return [plain_value(item) for item in value]
    if hasattr(value, "opcode") and hasattr(value, "payload"):
        return (value.opcode, value.payload, value.fin, value.rsv1, value.rsv2, value.rsv3)
    return value


def exported(buffer) -> bytes:
    return memoryview(buffer).tobytes()


# --- codec entry points ----------------------------------------------------------------


@given(data=contents_and_exporters(), key=contents_and_exporters(max_size=5))
def test_mask(twins, data, key):
    (content, make), (key_content, make_key) = data, key
    results = [outcome(lambda: codec.mask(make(), make_key())) for codec in twins]
    assert results[0] == results[1]
    if len(key_content) == 4:
        assert results[0] == ("result", bytes(b ^ key_content[i % 4] for i, b in enumerate(content)))


@given(data=contents_and_exporters(), key=contents_and_exporters(max_size=5))
def test_mask_inplace(twins, data, key):
    (content, make), (key_content, make_key) = data, key
    results = []
    for codec in twins:
        buffer = make()
        results.append((outcome(lambda: codec.mask_inplace(buffer, make_key())), exported(buffer)))
    assert results[0] == results[1]
    done, after = results[0]
    if done[0] == "result":
        assert after == bytes(b ^ key_content[i % 4] for i, b in enumerate(content))


@given(data=contents_and_exporters(max_size=300), masked=st.booleans(), opcode=st.sampled_from([1, 2, 9]))
def test_encode_frame(twins, data, masked, opcode):
    content, make = data
    results = [outcome(lambda: codec.encode_frame(opcode, make(), mask_key=KEY if masked else None)) for codec in twins]
    assert results[0] == results[1]
    if results[0][0] == "result":
        assert results[0] == outcome(lambda: twins[0].encode_frame(opcode, content, mask_key=KEY if masked else None))


@given(data=contents_and_exporters(), later=contents_and_exporters())
def test_frame_payload(twins, data, later):
    (content, make), (later_content, make_later) = data, later

    def build(codec):
        frame = codec.Frame(Opcode.BINARY, make())
        assert frame.payload == content
        frame.payload = make_later()
        return frame

    results = [outcome(lambda: build(codec)) for codec in twins]
    assert results[0] == results[1] == ("result", (2, later_content, True, False, False, False))


@st.composite
def chunked_streams(draw):
    """(client, wire, pieces): valid frames as a parser of that side gets them, cut into
    pieces, each piece wrapped in an object of its own kind."""
    client = draw(st.booleans())
    specs = draw(st.lists(st.tuples(st.sampled_from([0, 1, 2, 9]), st.binary(max_size=200), st.booleans()), max_size=6))
    wire = b""
    for opcode, data, fin in specs:
        payload = data.decode("utf-8", "replace").encode() if opcode == 1 else data
        if opcode >= 8:  # a control frame: whole, and short
            wire += _encode(opcode, payload[:125], True, None if client else KEY)
        else:
            wire += _encode(opcode, payload, fin, None if client else KEY)
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    bounds = [0, *cuts, len(wire)]
    pieces = [draw(exporters(wire[a:b])) for a, b in itertools.pairwise(bounds)]
    return client, wire, pieces


def _encode(opcode, payload, fin, key):
    from wsfast import _pure

    return _pure.encode_frame(opcode, payload, fin=fin, mask_key=key)


@settings(max_examples=300)
@given(stream=chunked_streams(), messages=st.booleans(), text_as_bytes=st.booleans())
def test_feeding_any_buffer(twins, stream, messages, text_as_bytes):
    """feed / feed_messages agree after every piece, whatever the piece's kind, also
    when bytes of an earlier piece are held (the pure twin appends to them), and with
    text delivered as bytes."""
    client, _, pieces = stream
    parsers = [codec.FrameParser(client=client, max_size=None, text_as_bytes=text_as_bytes) for codec in twins]
    for make in pieces:
        results = [outcome(lambda: (parser.feed_messages if messages else parser.feed)(make())) for parser in parsers]
        assert results[0] == results[1]
        assert [parser.buffered for parser in parsers] == [parsers[0].buffered] * 2
        held = [outcome(lambda: parser.partial_frame(3)) for parser in parsers]
        assert held[0] == held[1]


@settings(max_examples=200)
@given(stream=chunked_streams(), text_as_bytes=st.booleans())
def test_receiving_any_buffer(twins, stream, text_as_bytes):
    client, wire, pieces = stream
    options = {"client": client, "max_message_size": None, "text_as_bytes": text_as_bytes}
    connections = [Connection(codec=codec, **options) for codec in twins]
    expected = Connection(codec=twins[0], **options).receive_data(wire)
    received = [[], []]
    for make in pieces:
        for index, conn in enumerate(connections):
            received[index] += conn.receive_data(make())
    assert received[0] == received[1]
    assert [conn.error for conn in connections] == [None, None] or type(connections[0].error) is type(
        connections[1].error
    )
    if connections[0].error is None:
        assert received[0] == expected


@st.composite
def compressed(draw):
    """Messages compressed as a permessage-deflate sender does, with a wrapped payload."""
    texts = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
    compressor = zlib.compressobj(wbits=-15)
    payloads = [compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)[:-4] for text in texts]
    return texts, [draw(exporters(payload)) for payload in payloads]


@given(messages=compressed())
def test_inflating_any_buffer(twins, messages):
    texts, makers = messages
    inflaters = [codec.Inflater(15) for codec in twins]
    for text, make in zip(texts, makers, strict=False):
        results = [outcome(lambda: inflater.inflate(make(), True, None)) for inflater in inflaters]
        assert results[0] == results[1] == ("result", text)


@given(messages=compressed(), cuts=st.lists(st.integers(0, 2000), max_size=4))
def test_parser_inflating_any_buffer(twins, messages, cuts):
    _, makers = messages
    wire = b"".join(_encode_compressed(exported(make())) for make in makers)
    bounds = sorted({0, len(wire), *(cut % (len(wire) + 1) for cut in cuts)})
    results = []
    for codec in twins:
        parser = codec.FrameParser(client=True, max_size=None, allowed_rsv=4, inflater=codec.Inflater(15))
        results.append(
            [outcome(lambda: parser.feed_messages(bytearray(wire[a:b]))) for a, b in itertools.pairwise(bounds)]
        )
    assert results[0] == results[1]


def _encode_compressed(payload):
    from wsfast import _pure

    return _pure.encode_frame(Opcode.BINARY, payload, rsv=4)


def test_a_deflate_connection_takes_any_buffer(twins):
    texts = [b"hello " * 50, b"", b"\x00\xff" * 300]
    compressor = zlib.compressobj(wbits=-15)
    wire = b"".join(
        _encode_compressed(compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]) for text in texts
    )
    for codec in twins:
        deflate = PerMessageDeflate(DeflateParams(), client=True, codec=codec)
        conn = Connection(client=True, deflate=deflate, codec=codec)
        events = conn.receive_data(wire[:7]) + conn.receive_data(memoryview(bytearray(wire[7:])).cast("B"))
        assert events == texts


def memoryless_view(writable=False):
    """An empty view whose memory pointer is NULL, as some exporters give: no copy from
    or to it may take place, even of no bytes (C forbids memcpy from NULL)."""
    import ctypes

    from_memory = ctypes.pythonapi["PyMemoryView_FromMemory"]
    from_memory.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
    from_memory.restype = ctypes.py_object
    return from_memory(None, 0, 0x200 if writable else 0x100)  # PyBUF_WRITE, PyBUF_READ


def test_buffers_without_memory(twins):
    actions = [
        lambda codec: codec.mask(memoryless_view(), KEY),
        lambda codec: codec.mask_inplace(memoryless_view(True), KEY),
        lambda codec: codec.encode_frame(2, memoryless_view()),
        lambda codec: codec.encode_frame(2, memoryless_view(), mask_key=KEY),
        lambda codec: codec.Frame(2, memoryless_view()).payload,
        lambda codec: codec.Inflater().inflate(memoryless_view()),
        lambda codec: codec.mask(b"data", memoryless_view()),
    ]
    for feeding in ([b""], [b"\x82"], [_encode(2, bytes(70000), True, None)[:100]]):  # between, in a header, a payload
        for messages in (False, True):
            actions.append(
                lambda codec, feeding=feeding, messages=messages: feed_all(
                    codec.FrameParser(allowed_rsv=4, inflater=codec.Inflater()), [*feeding, memoryless_view()], messages
                )
            )
    for action in actions:
        assert outcome(lambda: action(twins[0])) == outcome(lambda: action(twins[1]))


def feed_all(parser, pieces, messages):
    feed = parser.feed_messages if messages else parser.feed
    return [feed(piece) for piece in pieces], parser.buffered


# --- odd arguments ---------------------------------------------------------------------

ODD_NUMBERS = [
    -1,
    -0.5,
    0,
    0.5,
    1.5,
    7,
    8,
    4.0,
    True,
    2**31,
    2**40,
    2**63,
    2**70,
    math.nan,
    math.inf,
    -math.inf,
    Fraction(5, 2),
    "4",
    None,
    b"4",
    object(),
]


def frame_parser_outcome(codec, kwargs):
    """The parser's attributes and how it takes a frame at its size limit, or the error."""

    def build():
        parser = codec.FrameParser(**kwargs)
        limit = 300 if parser.max_size is None else math.floor(min(parser.max_size, 300))
        frames = parser.feed(_encode(2, bytes(limit), True, None if parser.client else KEY))
        over = outcome(lambda: parser.feed(_encode(2, bytes(limit + 1), True, None if parser.client else KEY)))
        return parser.client, parser.max_size, parser.allowed_rsv, plain_value(frames), over

    return outcome(build)


@pytest.mark.parametrize("value", ODD_NUMBERS, ids=repr)
@pytest.mark.parametrize("name", ["max_size", "allowed_rsv", "client"])
def test_odd_parser_arguments(twins, name, value):
    results = [frame_parser_outcome(codec, {name: value}) for codec in twins]
    if isinstance(value, float) and math.isnan(value):
        assert results[0][0] == "error" or name == "client"
    assert results[0] == results[1]


@pytest.mark.parametrize("value", [*ODD_NUMBERS, 16, 15, 2.0], ids=repr)
def test_odd_opcodes(twins, value):
    def build(codec):
        frame = codec.Frame(value)
        return frame.opcode

    def assign(codec):
        frame = codec.Frame(1)
        frame.opcode = value
        return frame.opcode

    for action in (build, assign, lambda codec: codec.encode_frame(value, b"")):
        assert outcome(lambda: action(twins[0])) == outcome(lambda: action(twins[1]))


@pytest.mark.parametrize("value", ["text", 5, None, 1.5, [1, 2], object()], ids=repr)
def test_odd_payloads(twins, value):
    def assign(codec):
        frame = codec.Frame(2)
        frame.payload = value
        return frame.payload

    for action in (
        lambda codec: codec.Frame(2, value),
        assign,
        lambda codec: codec.encode_frame(2, value),
        lambda codec: codec.mask(value, KEY),
        lambda codec: codec.mask_inplace(value, KEY),
        lambda codec: codec.mask(b"data", value),
        lambda codec: codec.FrameParser().feed(value),
        lambda codec: codec.Inflater().inflate(value),
    ):
        assert outcome(lambda: action(twins[0])) == outcome(lambda: action(twins[1]))


@pytest.mark.parametrize("value", [0, 1, "", "x", None, [], [0], 2.5], ids=repr)
def test_odd_flags(twins, value):
    def build(codec):
        frame = codec.Frame(2, b"", fin=value, rsv1=value)
        frame.rsv2 = value
        frame.rsv3 = value
        return frame

    assert outcome(lambda: build(twins[0])) == outcome(lambda: build(twins[1]))


@pytest.mark.parametrize("value", ODD_NUMBERS, ids=repr)
def test_odd_encode_and_inflate_arguments(twins, value):
    for action in (
        lambda codec: codec.encode_frame(2, b"x", rsv=value),
        lambda codec: codec.Inflater(value).window_bits,
        lambda codec: codec.Inflater().inflate(b"\x03\x00", True, value),
        lambda codec: codec.FrameParser().partial_frame(value),
    ):
        assert outcome(lambda: action(twins[0])) == outcome(lambda: action(twins[1]))


def test_partial_frames(twins):
    wire = _encode(1, "héllo wörld".encode(), True, KEY)
    for cut in range(len(wire)):
        frames = []
        for codec in twins:
            parser = codec.FrameParser(client=False)
            parser.feed(wire[:cut])
            frames.append([plain_value(parser.partial_frame(start)) for start in (0, 1, 5, 100, sys.maxsize)])
        assert frames[0] == frames[1]
