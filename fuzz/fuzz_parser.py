"""Fuzz target for the compiled frame parser, checked against its pure-Python twin (atheris).

    python fuzz/fuzz_parser.py [libFuzzer options and corpus folders]
    python fuzz/fuzz_parser.py --write-seeds DIR     # inputs to start a corpus with

An input is two bytes of settings, the places to cut the rest at, then the bytes to
parse (see :func:`decode`): which side parses, the size limit, the reserved bits allowed,
whether an inflater takes compressed messages, feed or feed_messages, and whether the
compiled twin reads its pieces through payload windows. Both twins parse every piece;
they must return the same frames and messages, hold the same bytes and show the same
partial frame after each one, or fail at the same piece with the same error. Any
difference raises, and libFuzzer keeps the input. ``fuzz/sanitized.py`` runs this under
AddressSanitizer and UndefinedBehaviorSanitizer, which turn memory errors into crashes.
"""

from __future__ import annotations

import itertools
import struct
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["wsfast._pure"]):  # its coverage guides the search
    from wsfast import _compiled, _pure
    from wsfast.exceptions import ProtocolError

MAX_SIZES = [None, 0, 1, 125, 126, 1000, 65536, 1 << 20]


def decode(data: bytes):
    """Settings, cut points and wire bytes of one input.

    Byte 0: bit 0 client, bit 1 inflater, bit 2 feed_messages, bit 3 payload windows,
    bits 4-6 the index in MAX_SIZES. Byte 1: bits 0-2 allowed_rsv, bits 3-5 how many
    cut points follow, as big-endian 16-bit offsets into the wire bytes.
    """
    if len(data) < 2:
        return None
    flags, extra = data[0], data[1]
    count = (extra >> 3) & 7
    cuts = struct.unpack_from(f">{count}H", data, 2) if len(data) >= 2 + 2 * count else ()
    wire = data[2 + 2 * len(cuts) :]
    settings = {
        "client": bool(flags & 1),
        "max_size": MAX_SIZES[(flags >> 4) & 7],
        "allowed_rsv": extra & 7,
    }
    return settings, bool(flags & 2), bool(flags & 4), bool(flags & 8), sorted(cuts), wire


def pieces(wire: bytes, cuts) -> list[bytes]:
    bounds = sorted({0, len(wire), *(min(cut, len(wire)) for cut in cuts)})
    return [wire[a:b] for a, b in itertools.pairwise(bounds)]


def plain(items) -> list:
    return [
        (item.opcode, item.payload, item.fin, item.rsv1, item.rsv2, item.rsv3) if hasattr(item, "opcode") else item
        for item in items
    ]


def outcome(feed, piece) -> tuple:
    try:
        return "parsed", plain(feed(piece))
    except ProtocolError as exc:
        return "failed", type(exc), exc.code, str(exc), plain(exc.frames)


def through_windows(parser, feed, piece: bytes) -> list:
    """Feed ``piece`` as a reader with payload windows does: into each window offered,
    then whatever the windows did not take."""
    items = []
    while piece:
        window = parser.payload_window()
        if window is None:
            break
        taken = min(len(window), len(piece))
        window[:taken] = piece[:taken]
        items += feed(window[:taken])
        del window
        piece = piece[taken:]
    return items + feed(piece) if piece else items


def partial(parser):
    frame = parser.partial_frame(1)
    return None if frame is None else plain([frame])


def parser_of(codec, settings: dict, inflater: bool):
    return codec.FrameParser(**settings, inflater=codec.Inflater() if inflater else None)


def TestOneInput(data: bytes) -> None:
    decoded = decode(data)
    if decoded is None:
        return
    settings, inflater, messages, windows, cuts, wire = decoded
    pure, compiled = parser_of(_pure, settings, inflater), parser_of(_compiled, settings, inflater)
    pure_feed = pure.feed_messages if messages else pure.feed
    compiled_feed = compiled.feed_messages if messages else compiled.feed
    for piece in pieces(wire, cuts):
        expected = outcome(pure_feed, piece)
        if windows:
            got = outcome(lambda piece: through_windows(compiled, compiled_feed, piece), piece)
        else:
            got = outcome(compiled_feed, piece)
        if got != expected:
            raise AssertionError(f"the twins differ on a piece of {len(piece)} bytes:\n{expected}\n{got}")
        if pure.buffered != compiled.buffered:
            raise AssertionError(f"the twins hold {pure.buffered} and {compiled.buffered} bytes")
        shown = [partial(parser) for parser in (pure, compiled)]
        if shown[0] != shown[1]:
            raise AssertionError(f"the twins show different partial frames: {shown}")
        if expected[0] == "failed":
            return


def seeds() -> list[bytes]:
    """Inputs to start from: valid streams for each side, cut or not, parsed in every
    way, and one with a payload large enough for windows."""
    frames = [
        (1, "héllo".encode(), True),
        (2, bytes(300), True),
        (9, b"ping", True),
        (1, b"frag", False),
        (0, b"ment", True),
        (8, b"\x03\xe8bye", True),
    ]
    inputs = []
    for client in (True, False):
        key = None if client else b"\x01\x02\x03\x04"
        wire = b"".join(_pure.encode_frame(op, payload, fin=fin, mask_key=key) for op, payload, fin in frames)
        cuts = struct.pack(">3H", 3, 40, 350)
        inputs += [bytes([flags | client | 0x70, 3 << 3]) + cuts + wire for flags in (0, 2, 4, 6)]
        large = _pure.encode_frame(2, bytes(range(256)) * 80, mask_key=key)
        inputs.append(bytes([8 | client | 0x70, 2 << 3]) + struct.pack(">2H", 1000, 9000) + large)
    return inputs


def main() -> None:
    if sys.argv[1:2] == ["--write-seeds"]:  # python fuzz/fuzz_parser.py --write-seeds DIR
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for number, seed in enumerate(seeds()):
            (folder / f"seed-{number}").write_bytes(seed)
        return
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
