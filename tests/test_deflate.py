"""permessage-deflate (RFC 7692): negotiation, compression, limits, interoperability.

Decompression runs on the Inflater of each codec twin in turn (the ``codec`` fixture)."""

from __future__ import annotations

import random
import tracemalloc
import zlib

import pytest

from wsfast.deflate import DeflateOptions, DeflateParams, PerMessageDeflate, parse_extensions
from wsfast.exceptions import InvalidHeader, PayloadTooBig, ProtocolError

TRAILER = b"\x00\x00\xff\xff"
HELLO = bytes.fromhex("f248cdc9c90700")  # RFC 7692 §7.2.3.1
HELLO_AGAIN = bytes.fromhex("f200110000")  # RFC 7692 §7.2.3.2, with context takeover


def pair(codec, params=None, options=None):
    """A client and a server side for the same negotiated parameters, inflating with the
    Inflater of ``codec`` (None: the default codec)."""
    params = params or DeflateParams()
    return (
        PerMessageDeflate(params, client=True, options=options, codec=codec),
        PerMessageDeflate(params, client=False, options=options, codec=codec),
    )


def messages(seed, count=40):
    """A mix of repetitive text, random bytes, empty and single-byte messages."""
    rng = random.Random(seed)
    words = [b"price", b"bid", b"ask", b'{"symbol":', b"BTC-USD", b"0.0001", b"\xe2\x82\xac", b" "]
    result = [b"", b"x"]
    for _ in range(count):
        if rng.random() < 0.3:
            result.append(rng.randbytes(rng.randrange(0, 3000)))
        else:
            result.append(b"".join(rng.choice(words) for _ in range(rng.randrange(1, 800))))
    return result


# --- Options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 0},
        {"client_max_window_bits": True},
        {"client_max_window_bits": "10"},
        {"level": 10},
        {"level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"min_size": -1},
    ],
)
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        DeflateOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"server_max_window_bits": 16}, {"client_max_window_bits": 7}, {"server_max_window_bits": None}]
)
def test_invalid_params(kwargs):
    with pytest.raises(ValueError):
        DeflateParams(**kwargs)


# --- Header grammar ---------------------------------------------------------------------


def test_parse_extensions():
    assert parse_extensions(None) == []
    assert parse_extensions("") == []
    assert parse_extensions(" , ,") == []
    assert parse_extensions("permessage-deflate") == [("permessage-deflate", [])]
    assert parse_extensions(
        'foo ; a=1;b ,  permessage-deflate;client_max_window_bits ; server_max_window_bits = "1\\0"'
    ) == [
        ("foo", [("a", "1"), ("b", None)]),
        ("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]),
    ]
    assert parse_extensions(["a", "b; c"]) == [("a", []), ("b", [("c", None)])]


@pytest.mark.parametrize(
    "header",
    [
        "permessage-deflate;",
        "permessage-deflate; =1",
        "permessage-deflate; a=",
        'permessage-deflate; a="1',
        "permessage-deflate a",
        "permessage-deflate; a=1 2",
        "(bad)",
        "; a",
        'permessage-deflate; a="\x01"',
    ],
)
def test_parse_extensions_rejects_malformed(header):
    with pytest.raises(InvalidHeader):
        parse_extensions(header)


# --- Client negotiation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "options, offer",
    [
        (DeflateOptions(), "permessage-deflate; client_max_window_bits"),
        (DeflateOptions(client_max_window_bits=10), "permessage-deflate; client_max_window_bits=10"),
        (
            DeflateOptions(
                server_max_window_bits=12,
                client_max_window_bits=9,
                server_no_context_takeover=True,
                client_no_context_takeover=True,
            ),
            (
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9; "
                "server_no_context_takeover; client_no_context_takeover"
            ),
        ),
    ],
)
def test_client_offer(options, offer):
    assert options.client_offer() == offer


@pytest.mark.parametrize("header", [None, "", [], [""], " , "])
def test_client_accept_declined(header):
    assert DeflateOptions().client_accept(header) is None


@pytest.mark.parametrize(
    "options, header, expected",
    [
        (DeflateOptions(), "permessage-deflate", DeflateParams()),
        (DeflateOptions(), "Permessage-Deflate", DeflateParams()),
        (DeflateOptions(), ["permessage-deflate"], DeflateParams()),
        (
            DeflateOptions(),
            "permessage-deflate; server_no_context_takeover",
            DeflateParams(server_no_context_takeover=True),
        ),
        (
            DeflateOptions(),
            "permessage-deflate; client_no_context_takeover",
            DeflateParams(client_no_context_takeover=True),
        ),
        (DeflateOptions(), "permessage-deflate; server_max_window_bits=10", DeflateParams(server_max_window_bits=10)),
        (DeflateOptions(), 'permessage-deflate; server_max_window_bits="8"', DeflateParams(server_max_window_bits=8)),
        (DeflateOptions(), "permessage-deflate; client_max_window_bits=9", DeflateParams(client_max_window_bits=9)),
        (DeflateOptions(), "permessage-deflate; CLIENT_MAX_WINDOW_BITS=8", DeflateParams(client_max_window_bits=8)),
        # The offer's limits and promises hold whatever the server says.
        (DeflateOptions(client_max_window_bits=10), "permessage-deflate", DeflateParams(client_max_window_bits=10)),
        (
            DeflateOptions(client_max_window_bits=10),
            "permessage-deflate; client_max_window_bits=12",
            DeflateParams(client_max_window_bits=10),
        ),
        (
            DeflateOptions(client_no_context_takeover=True),
            "permessage-deflate",
            DeflateParams(client_no_context_takeover=True),
        ),
        (
            DeflateOptions(server_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=10",
            DeflateParams(server_max_window_bits=10),
        ),
        (
            DeflateOptions(server_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=9",
            DeflateParams(server_max_window_bits=9),
        ),
        (
            DeflateOptions(server_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover",
            DeflateParams(server_no_context_takeover=True),
        ),
        (
            DeflateOptions(),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=12; client_max_window_bits=11"
            ),
            DeflateParams(True, True, 12, 11),
        ),
    ],
)
def test_client_accept(options, header, expected):
    assert options.client_accept(header) == expected


@pytest.mark.parametrize(
    "options, header, complaint",
    [
        (DeflateOptions(), "x-webkit-deflate-frame", "not offered"),
        (DeflateOptions(), "permessage-deflate, permessage-deflate", "several extensions"),
        (DeflateOptions(), ["permessage-deflate", "foo"], "several extensions"),
        (DeflateOptions(), "permessage-deflate; foo", "unknown parameter"),
        (DeflateOptions(), "permessage-deflate; server_no_context_takeover; server_no_context_takeover", "repeated"),
        (DeflateOptions(), "permessage-deflate; server_max_window_bits=9; Server_Max_Window_Bits=9", "repeated"),
        (DeflateOptions(), "permessage-deflate; client_no_context_takeover=1", "must not have a value"),
        (DeflateOptions(), 'permessage-deflate; server_no_context_takeover=""', "must not have a value"),
        (DeflateOptions(), "permessage-deflate; server_max_window_bits=7", "8..15"),
        (DeflateOptions(), "permessage-deflate; server_max_window_bits=16", "8..15"),
        (DeflateOptions(), "permessage-deflate; server_max_window_bits=010", "8..15"),
        (DeflateOptions(), "permessage-deflate; client_max_window_bits=abc", "8..15"),
        (DeflateOptions(), 'permessage-deflate; client_max_window_bits=" 9"', "8..15"),
        (DeflateOptions(), "permessage-deflate; server_max_window_bits", "without a value"),
        (DeflateOptions(), "permessage-deflate; client_max_window_bits", "without a value"),
        (DeflateOptions(server_max_window_bits=10), "permessage-deflate; server_max_window_bits=11", "exceeds"),
        (DeflateOptions(server_no_context_takeover=True), "permessage-deflate", "server_no_context_takeover"),
        (DeflateOptions(), "permessage-deflate; a=1 b", "malformed"),
    ],
)
def test_client_accept_rejects(options, header, complaint):
    with pytest.raises(InvalidHeader, match=complaint):
        options.client_accept(header)


# --- Server negotiation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=09",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
    ],
)
def test_server_declines(header):
    assert DeflateOptions().server_accept(header) is None


def test_server_rejects_malformed_header():
    with pytest.raises(InvalidHeader):
        DeflateOptions().server_accept("permessage-deflate; =")


@pytest.mark.parametrize(
    "options, header, response, params",
    [
        (DeflateOptions(), "permessage-deflate", "permessage-deflate", DeflateParams()),
        (DeflateOptions(), "permessage-deflate; client_max_window_bits", "permessage-deflate", DeflateParams()),
        # The first acceptable offer wins; others and unknown extensions are skipped.
        (
            DeflateOptions(),
            "foo; bar, permessage-deflate; bogus, permessage-deflate; server_max_window_bits=10, permessage-deflate",
            "permessage-deflate; server_max_window_bits=10",
            DeflateParams(server_max_window_bits=10),
        ),
        (
            DeflateOptions(),
            ["permessage-deflate; server_max_window_bits=1", 'permessage-deflate; server_max_window_bits="9"'],
            "permessage-deflate; server_max_window_bits=9",
            DeflateParams(server_max_window_bits=9),
        ),
        (
            DeflateOptions(),
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
            DeflateParams(server_no_context_takeover=True),
        ),
        (
            DeflateOptions(),
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            DeflateParams(client_no_context_takeover=True),
        ),
        (
            DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
            "permessage-deflate",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
        ),
        (
            DeflateOptions(server_max_window_bits=12),
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=12",
            DeflateParams(server_max_window_bits=12),
        ),
        (
            DeflateOptions(server_max_window_bits=12),
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=8",
            DeflateParams(server_max_window_bits=8),
        ),
        (
            DeflateOptions(server_max_window_bits=12),
            "permessage-deflate; server_max_window_bits=14",
            "permessage-deflate; server_max_window_bits=12",
            DeflateParams(server_max_window_bits=12),
        ),
        # A client window limit needs the client to announce support for it.
        (DeflateOptions(client_max_window_bits=10), "permessage-deflate", "permessage-deflate", DeflateParams()),
        (
            DeflateOptions(client_max_window_bits=10),
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=10",
            DeflateParams(client_max_window_bits=10),
        ),
        (
            DeflateOptions(client_max_window_bits=10),
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; client_max_window_bits=9",
            DeflateParams(client_max_window_bits=9),
        ),
        (
            DeflateOptions(),
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate",
            DeflateParams(),
        ),
    ],
)
def test_server_accept(options, header, response, params):
    assert options.server_accept(header) == (params, response)


@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize("client_bits", [None, 8, 12])
@pytest.mark.parametrize("server_bits", [None, 8, 13])
@pytest.mark.parametrize(
    "server_side", [DeflateOptions(), DeflateOptions(server_max_window_bits=10, client_max_window_bits=9)]
)
def test_both_sides_agree(server_nct, client_nct, client_bits, server_bits, server_side):
    client_side = DeflateOptions(
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
    )
    server_params, response = server_side.server_accept(client_side.client_offer())
    client_params = client_side.client_accept(response)
    assert client_params.server_no_context_takeover == server_params.server_no_context_takeover
    assert client_params.server_max_window_bits == server_params.server_max_window_bits
    # The server may decompress with a larger window than the client compresses with.
    assert client_params.client_max_window_bits <= server_params.client_max_window_bits
    # Each side compresses within what the other decompresses with, and keeps its promises.
    assert client_params.server_no_context_takeover >= server_nct
    assert client_params.client_no_context_takeover >= client_nct
    assert client_params.server_max_window_bits <= (server_bits or 15)
    assert client_params.client_max_window_bits <= (client_bits or 15)


# --- RFC 7692 §7.2.3 examples -----------------------------------------------------------


def test_rfc_hello_with_context_takeover(codec):
    client, server = pair(codec)
    assert client.compress(b"Hello") == HELLO
    assert client.compress(b"Hello") == HELLO_AGAIN
    assert server.decompress(HELLO) == b"Hello"
    assert server.decompress(HELLO_AGAIN) == b"Hello"


def test_rfc_hello_without_context_takeover(codec):
    client, server = pair(codec, DeflateParams(client_no_context_takeover=True))
    for _ in range(3):
        payload = client.compress(b"Hello")
        assert payload == HELLO
        assert server.decompress(payload) == b"Hello"


def test_rfc_fragmented_hello(codec):
    _, server = pair(codec)
    assert server.decompress([HELLO[:3], HELLO[3:]]) == b"Hello"
    assert server.decompress_frame(HELLO_AGAIN[:1], False) + server.decompress_frame(HELLO_AGAIN[1:], True) == b"Hello"


@pytest.mark.parametrize(
    "payload",
    [
        "000500faff48656c6c6f00",  # §7.2.3.3: a stored (uncompressed) block
        "f348cdc9c9070000",  # §7.2.3.4: BFINAL set
        "f24805000000ffffcac9c90700",  # §7.2.3.5: two blocks
    ],
)
def test_rfc_decoding_examples(codec, payload):
    _, server = pair(codec)
    for _ in range(3):  # and the stream stays usable afterwards
        assert server.decompress(bytes.fromhex(payload)) == b"Hello"
        assert server.decompress(HELLO) == b"Hello"


def test_bfinal_in_fragmented_message_and_limit(codec):
    _, server = pair(codec)
    payload = bytes.fromhex("f348cdc9c9070000")
    assert server.decompress([payload[:4], payload[4:7], payload[7:]]) == b"Hello"
    # A final block, then a new DEFLATE stream in the same message.
    two_streams = payload[:-1] + HELLO
    assert server.decompress(two_streams, max_size=10) == b"HelloHello"
    with pytest.raises(PayloadTooBig):
        server.decompress(two_streams, max_size=9)


def finished_stream(message, wbits=15):
    """``message`` as a complete DEFLATE stream, ending with a BFINAL block and no padding byte."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    return compressor.compress(message) + compressor.flush(zlib.Z_FINISH)


@pytest.mark.parametrize("size", [5, 100_000])
def test_streams_ending_without_padding(codec, size):
    # Some senders finish a whole DEFLATE stream per message and omit RFC 7692's padding
    # byte; the receiver's trailer must then not start a stream of its own.
    message = random.Random(size).randbytes(size // 2) + b"Hello" * (size // 10)
    payload = finished_stream(message)
    assert len(payload) > 4096 or size == 5
    _, server = pair(codec)
    for _ in range(3):
        assert server.decompress(payload) == message
        assert server.decompress([payload, b""]) == message
        assert server.decompress([payload[:-1], payload[-1:]]) == message
        assert server.decompress(HELLO) == b"Hello"
        assert server.decompress(b"\x03\x00") == b""  # an empty message, the same way


def test_many_streams_in_one_message(codec):
    _, server = pair(codec)
    payload = b"".join(finished_stream(bytes([i % 256]) * 3) for i in range(20_000))
    assert server.decompress(payload) == b"".join(bytes([i % 256]) * 3 for i in range(20_000))
    assert server.decompress(b"\x03\x00" * 100_000 + HELLO) == b"Hello"
    with pytest.raises(PayloadTooBig):
        server.decompress(b"".join(finished_stream(b"abc") for _ in range(1000)), max_size=2999)


# --- Round trips ------------------------------------------------------------------------


def reference_decompress(wbits, reset):
    """Decode payloads with plain zlib, exactly as RFC 7692 §7.2.2 describes."""
    decompressor = zlib.decompressobj(-wbits)

    def decompress(payload):
        nonlocal decompressor
        if reset:
            decompressor = zlib.decompressobj(-wbits)
        return decompressor.decompress(payload + TRAILER)

    return decompress


def reference_compress(wbits, reset):
    """Encode messages with plain zlib, exactly as RFC 7692 §7.2.1 describes."""
    wbits = max(wbits, 9)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)

    def compress(message):
        nonlocal compressor
        if reset:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TRAILER)
        return data[:-4]

    return compress


@pytest.mark.parametrize("bits", range(8, 16))
@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("client", [False, True])
def test_round_trip_against_zlib(codec, bits, reset, client):
    params = DeflateParams(reset, reset, bits, bits)
    ours = PerMessageDeflate(params, client=client, codec=codec)
    # The reference decoder uses exactly the negotiated window: an 8-bit window proves that
    # compressing with zlib's 9-bit window stays within 256 bytes.
    decode = reference_decompress(bits, reset)
    encode = reference_compress(bits, reset)
    for message in messages(bits * 4 + reset * 2 + client):
        assert decode(ours.compress(message)) == message
        assert ours.decompress(encode(message)) == message


def inflate_bytewise(decompressor, payload):
    """Inflate one byte at a time, so that every back-reference must go through the window."""
    out = []
    data = payload + TRAILER
    while data:
        out.append(decompressor.decompress(data, 1))
        data = decompressor.unconsumed_tail
    return b"".join(out)


def test_eight_bit_window_is_respected():
    # Repeats at distances just beyond 256 bytes tempt the compressor to refer too far back.
    rng = random.Random(8)
    chunks = [rng.randbytes(40) for _ in range(10)]
    message = b"".join(rng.choice(chunks) for _ in range(60))
    # Control: an inflater with an 8-bit window rejects data compressed with a 10-bit one.
    wide = zlib.compressobj(6, zlib.DEFLATED, -10)
    with pytest.raises(zlib.error, match="too far back"):
        inflate_bytewise(zlib.decompressobj(-8), wide.compress(message) + wide.flush(zlib.Z_SYNC_FLUSH)[:-4])
    client, _ = pair(None, DeflateParams(client_max_window_bits=8))
    reference = zlib.decompressobj(-8)
    for _ in range(5):
        assert inflate_bytewise(reference, client.compress(message)) == message


@pytest.mark.parametrize("client_reset", [False, True])
@pytest.mark.parametrize("server_reset", [False, True])
def test_round_trip_both_ways(codec, client_reset, server_reset):
    params = DeflateParams(server_reset, client_reset, 11, 9)
    client, server = pair(codec, params, DeflateOptions(level=1, mem_level=4))
    for message in messages(7):
        assert server.decompress(client.compress(message)) == message
        assert client.decompress(server.compress(message)) == message


def test_context_takeover_shrinks_repeated_messages():
    message = b'{"channel":"ticker","product_id":"BTC-USD","price":"43000.01"}'
    with_context, _ = pair(None)
    without_context, _ = pair(None, DeflateParams(client_no_context_takeover=True))
    first = with_context.compress(message)
    assert len(with_context.compress(message)) < len(first) // 3
    assert without_context.compress(message) == without_context.compress(message) == first


def test_no_context_takeover_detects_a_peer_referring_back(codec):
    _, server = pair(codec, DeflateParams(client_no_context_takeover=True))
    assert server.decompress(HELLO) == b"Hello"
    with pytest.raises(ProtocolError) as info:
        server.decompress(HELLO_AGAIN)  # refers to the previous message
    assert info.value.code == 1007


@pytest.mark.parametrize("cut", [0, 1, 2, 5, 100, 1000, 4095, 4096, 5000])
def test_fragmented_messages(codec, cut):
    client, server = pair(codec)
    for message in messages(cut, count=10):
        payload = client.compress(message)
        fragments = [payload[:cut], payload[cut : cut * 2], payload[cut * 2 :]]
        assert server.decompress(fragments) == message
        assert server.decompress([client.compress(message)]) == message


def test_fragment_per_byte(codec):
    client, server = pair(codec)
    message = b"abc" * 1000
    payload = client.compress(message)
    pieces = [server.decompress_frame(payload[i : i + 1], False) for i in range(len(payload))]
    pieces.append(server.decompress_frame(b"", True))
    assert b"".join(pieces) == message
    assert server.decompress(client.compress(message)) == message


def test_empty_messages(codec):
    client, server = pair(codec)
    for _ in range(3):
        assert server.decompress(client.compress(b"")) == b""
        # An empty payload (some peers send one) is an empty message and harms nothing.
        assert server.decompress(b"") == b""
        assert server.decompress([]) == b""
        assert server.decompress([b"", b""]) == b""
        assert server.decompress(client.compress(b"Hello")) == b"Hello"


def test_accepts_bytes_like(codec):
    client, server = pair(codec)
    payload = client.compress(memoryview(bytearray(b"Hello" * 10)))
    assert server.decompress(bytearray(payload)) == b"Hello" * 10
    assert server.decompress([memoryview(payload[:3]), bytearray(payload[3:])], 50) == b"Hello" * 10


def test_min_size_and_repr():
    deflate = PerMessageDeflate(DeflateParams(), client=True, options=DeflateOptions(min_size=64))
    assert deflate.min_size == 64
    assert deflate.params == DeflateParams()
    assert "client=True" in repr(deflate)


# --- Limits and corrupt data ------------------------------------------------------------


def bomb(size):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(bytes(size)) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_decompression_bomb_is_stopped_with_bounded_memory(codec):
    payload = bomb(10 * 1024 * 1024)
    assert len(payload) < 20_000
    _, server = pair(codec)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig) as info:
            server.decompress(payload, max_size=1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code == 1009
    assert peak < 3 * 1024 * 1024


def test_decompression_bomb_in_fragments(codec):
    payload = bomb(10 * 1024 * 1024)
    _, server = pair(codec)
    with pytest.raises(PayloadTooBig):
        server.decompress([payload[:100], payload[100:200], payload[200:]], max_size=1024 * 1024)


@pytest.mark.parametrize("size", [0, 1, 1000, 4095, 4096, 100_000])
@pytest.mark.parametrize("fragments", [1, 3])
def test_limit_is_exact(codec, size, fragments):
    client, server = pair(codec)
    message = random.Random(size).randbytes(size // 2) + bytes(size - size // 2)
    payload = client.compress(message)
    step = len(payload) // fragments + 1
    parts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    assert server.decompress(parts, max_size=size) == message
    assert server.decompress(payload, max_size=size) == message
    if size:
        with pytest.raises(PayloadTooBig):
            server.decompress(client.compress(message), max_size=size - 1)


def test_frame_budget(codec):
    client, server = pair(codec)
    payload = client.compress(b"a" * 1000)
    first = server.decompress_frame(payload[:2], False, 1000)
    assert first == b"a" * len(first)
    with pytest.raises(PayloadTooBig, match="size limit once decompressed"):
        server.decompress_frame(payload[2:], True, 10)
    _, server = pair(codec)
    with pytest.raises(PayloadTooBig):  # a negative budget allows nothing, it does not lift the limit
        server.decompress_frame(payload, True, -5)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff" * 20,  # reserved block type
        bytes.fromhex("00 05 00 00 00 48 65 6c 6c 6f"),  # stored block with a bad length check
        bytes.fromhex("f2 00 11 00 00"),  # refers back before the start of the stream
    ],
)
def test_corrupt_data(codec, payload):
    _, server = pair(codec)
    with pytest.raises(ProtocolError) as info:
        server.decompress(payload)
    assert info.value.code == 1007
    assert "invalid compressed data" in str(info.value)


def test_random_garbage_never_crashes(codec):
    rng = random.Random(1)
    for _ in range(300):
        _, server = pair(codec)
        try:
            server.decompress(rng.randbytes(rng.randrange(1, 200)), max_size=10_000)
        except ProtocolError as exc:
            assert exc.code in (1007, 1009)


# --- Interoperability with the websockets package ---------------------------------------

# Only these tests need websockets: the wheels' tests run without it, and the rest of the
# module must still run there (an importorskip here would skip all of it).
try:
    import websockets.extensions.permessage_deflate as websockets_deflate
    import websockets.frames as websockets_frames
    import websockets.headers as websockets_headers
except ImportError:
    websockets_deflate = websockets_frames = websockets_headers = None
needs_websockets = pytest.mark.skipif(websockets_frames is None, reason="needs websockets")


def websockets_codec(params, client):
    """The websockets extension object for one side of ``params``."""
    ours = ("client", "server") if client else ("server", "client")
    local, remote = ours
    return websockets_deflate.PerMessageDeflate(
        remote_no_context_takeover=getattr(params, f"{remote}_no_context_takeover"),
        local_no_context_takeover=getattr(params, f"{local}_no_context_takeover"),
        remote_max_window_bits=getattr(params, f"{remote}_max_window_bits"),
        local_max_window_bits=max(getattr(params, f"{local}_max_window_bits"), 9),
    )


def exchange(ours, theirs, count=30):
    """Send messages both ways between a wsfast codec and a websockets codec."""
    Frame, Opcode = websockets_frames.Frame, websockets_frames.Opcode
    for message in messages(count, count):
        frame = theirs.encode(Frame(Opcode.BINARY, message))
        assert frame.rsv1
        assert ours.decompress(frame.data) == message
        decoded = theirs.decode(Frame(Opcode.BINARY, ours.compress(message), rsv1=True), max_size=None)
        assert decoded.data == message
    # A message in three frames from websockets, each compressed and flushed on its own.
    message = b"fragmented " * 500
    first = theirs.encode(Frame(Opcode.TEXT, message[:100], fin=False))
    middle = theirs.encode(Frame(Opcode.CONT, message[100:3000], fin=False))
    last = theirs.encode(Frame(Opcode.CONT, message[3000:]))
    assert ours.decompress([first.data, middle.data, last.data]) == message


@needs_websockets
@pytest.mark.parametrize("bits", [8, 9, 12, 15])
@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("client", [False, True])
def test_codec_interop_with_websockets(codec, bits, reset, client):
    params = DeflateParams(reset, reset, bits, bits)
    exchange(PerMessageDeflate(params, client=client, codec=codec), websockets_codec(params, not client))


@needs_websockets
@pytest.mark.parametrize(
    "options",
    [
        DeflateOptions(),
        DeflateOptions(server_max_window_bits=10, client_max_window_bits=12),
        DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
    ],
)
def test_negotiation_interop_wsfast_client_websockets_server(codec, options):
    factory = websockets_deflate.ServerPerMessageDeflateFactory(
        server_max_window_bits=11, client_max_window_bits=10, client_no_context_takeover=True
    )
    [(name, request)] = websockets_headers.parse_extension(options.client_offer())
    response, theirs = factory.process_request_params(request, [])
    params = options.client_accept(websockets_headers.build_extension([(name, response)]))
    assert params.server_max_window_bits == theirs.local_max_window_bits
    assert params.client_no_context_takeover
    exchange(PerMessageDeflate(params, client=True, options=options, codec=codec), theirs)


@needs_websockets
@pytest.mark.parametrize(
    "factory_kwargs",
    [
        {},
        {"server_max_window_bits": 9, "client_max_window_bits": 11},
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
    ],
)
def test_negotiation_interop_websockets_client_wsfast_server(codec, factory_kwargs):
    factory = websockets_deflate.ClientPerMessageDeflateFactory(**factory_kwargs)
    offer = websockets_headers.build_extension([(factory.name, factory.get_request_params())])
    options = DeflateOptions(server_max_window_bits=12)
    params, response = options.server_accept(offer)
    [(_, response_params)] = websockets_headers.parse_extension(response)
    theirs = factory.process_response_params(response_params, [])
    exchange(PerMessageDeflate(params, client=False, options=options, codec=codec), theirs)
