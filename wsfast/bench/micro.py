"""Codec micro-benchmarks: masking and parsing, for wsfast's twins and the peers' public codecs.

Cases:

- ``mask-16``, ``mask-1k``, ``mask-1m``: XOR a payload of that size with a 4-byte key.
- ``parse-100``: split a buffer of 10,000 unmasked 100-byte binary frames into frames.
- ``receive-100``: the same buffer through a sans-I/O connection, down to messages.
- ``receive-json-deflate``: the first 10,000 messages of the ``tls-json-deflate`` feed
  (the same bytes: JSON ticks, compressed with context takeover) through a sans-I/O
  connection with permessage-deflate, down to messages. The ``zlib`` contestant, its
  floor, only decompresses each payload with one ``zlib.decompressobj``.

Each contestant uses its own public call for the job (named in the result); wsfast shows
both its copying ``mask`` and its ``mask_inplace``. Libraries that expose no such call are
left out of that case.
"""

from __future__ import annotations

import inspect
import os
import zlib
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from aiohttp.base_protocol import BaseProtocol

    # What a maker gives for a case: the API's name, a callable doing one operation (it
    # returns what the library returns), and the items and bytes one call handles.
    _Made = tuple[str, Callable[[], Any], int, int]
    _Maker = Callable[[str], _Made]

MASK_SIZES = {"mask-16": 16, "mask-1k": 1024, "mask-1m": 1 << 20}
PARSE_FRAMES = 10_000
PARSE_SIZE = 100
KEY = b"\x12\x34\x56\x78"
JSON_TICKS = 10_000
CASES = (*MASK_SIZES, "parse-100", "receive-100", "receive-json-deflate")
FLOORS = ("zlib",)  # limits to measure the others against, not peers


def _feed_buffer() -> bytes:
    from .server import frame_header

    return (frame_header(0x2, PARSE_SIZE) + os.urandom(PARSE_SIZE)) * PARSE_FRAMES


def _deflate_feed() -> tuple[bytes, list[str]]:
    """The first JSON_TICKS frames of the compressed ticks feed, and the messages they carry."""
    from .server import ticks_frames
    from .ticks import ticks

    return ticks_frames(JSON_TICKS, deflate=True), ticks(JSON_TICKS)


def _checked(
    api: str, receive: Callable[[], Any], messages: list[str], convert: Callable[[Any], Any] = lambda items: items
) -> None:
    """Fail unless ``receive()`` gives ``messages``, twice: the stream replays in one context.

    A compressed message refers only to the ones before it, which a replay has just
    produced again, so one decompressor can take the same stream over and over.
    """
    for _ in range(2):
        if convert(receive()) != messages:
            raise RuntimeError(f"{api} did not return the ticks that were sent")


# Each maker takes a case it supports and returns (api name, callable doing one
# operation, items one call handles, bytes one call handles).


def _wsfast(codec_name: str, inplace: bool = False) -> _Maker:
    def make(case: str) -> _Made:
        import importlib

        codec = importlib.import_module(codec_name)
        if inplace:
            buffer = bytearray(os.urandom(MASK_SIZES[case]))
            mask_inplace = codec.mask_inplace
            return "mask_inplace", lambda: mask_inplace(buffer, KEY), 1, len(buffer)
        if case in MASK_SIZES:
            data = os.urandom(MASK_SIZES[case])
            mask = codec.mask
            return "mask", lambda: mask(data, KEY), 1, len(data)
        if case == "receive-json-deflate":
            return _wsfast_deflate(codec)
        buf = _feed_buffer()
        if case == "parse-100":
            feed = codec.FrameParser(client=True, max_size=None).feed
            return "FrameParser.feed", lambda: feed(buf), PARSE_FRAMES, len(buf)
        from wsfast.protocol import Connection

        receive = Connection(client=True, max_message_size=None, codec=codec).receive_data
        return "Connection.receive_data", lambda: receive(buf), PARSE_FRAMES, len(buf)

    return make


def _wsfast_deflate(codec: ModuleType) -> _Made:
    from wsfast.deflate import DeflateParams, PerMessageDeflate
    from wsfast.protocol import Connection

    # Newer PerMessageDeflate takes the codec too; older ones have none to take.
    takes_codec = "codec" in inspect.signature(PerMessageDeflate).parameters
    options: dict[str, Any] = {"codec": codec} if takes_codec else {}
    deflate = PerMessageDeflate(DeflateParams(), client=True, **options)
    buf, messages = _deflate_feed()
    receive = Connection(client=True, max_message_size=None, codec=codec, deflate=deflate).receive_data
    api = "Connection.receive_data (deflate)"
    _checked(api, lambda: receive(buf), messages)
    return api, lambda: receive(buf), JSON_TICKS, len(buf)


def _zlib(case: str) -> _Made:
    from .ticks import TRAILER, deflate_payloads

    buf, messages = _deflate_feed()
    payloads = deflate_payloads(messages)
    decompress = zlib.decompressobj(-15).decompress

    def inflate() -> list[bytes]:
        return [decompress(payload + TRAILER) for payload in payloads]

    api = "decompressobj.decompress"
    _checked(api, inflate, messages, lambda items: [item.decode() for item in items])
    return api, inflate, JSON_TICKS, len(buf)


def _websockets(case: str) -> _Made:
    if case == "receive-json-deflate":
        return _websockets_deflate()
    if case in MASK_SIZES:
        from websockets.speedups import apply_mask

        data = os.urandom(MASK_SIZES[case])
        return "speedups.apply_mask", lambda: apply_mask(data, KEY), 1, len(data)
    buf = _feed_buffer()
    if case == "parse-100":
        from websockets.frames import Frame
        from websockets.streams import StreamReader

        def parse() -> list[Frame]:
            reader = StreamReader()
            reader.feed_data(buf)
            frames = []
            for _ in range(PARSE_FRAMES):
                try:
                    next(Frame.parse(reader.read_exact, mask=False))
                except StopIteration as done:  # a generator returns its frame this way
                    frames.append(done.value)
            return frames

        return "frames.Frame.parse", parse, PARSE_FRAMES, len(buf)
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri

    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)

    def receive() -> Any:  # websockets' events
        protocol.receive_data(buf)
        return protocol.events_received()

    return "ClientProtocol.receive_data", receive, PARSE_FRAMES, len(buf)


def _websockets_deflate() -> _Made:
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.protocol import State
    from websockets.uri import parse_uri

    protocol = ClientProtocol(parse_uri("wss://localhost/"), state=State.OPEN, max_size=None)
    # What the handshake sets up when the server accepts the offer with context takeover.
    protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
    buf, messages = _deflate_feed()

    def receive() -> Any:  # websockets' events
        protocol.receive_data(buf)
        return protocol.events_received()

    api = "ClientProtocol.receive_data (deflate)"
    _checked(api, receive, messages, lambda frames: [frame.data.decode() for frame in frames])
    return api, receive, JSON_TICKS, len(buf)


def _aiohttp(case: str) -> _Made:
    if case in MASK_SIZES:
        from aiohttp._websocket.helpers import websocket_mask

        data = bytearray(os.urandom(MASK_SIZES[case]))  # masked in place: XOR twice is a no-op
        return (
            "websocket_mask (in place)",
            lambda: websocket_mask(KEY, data),
            1,
            len(data),
        )
    import asyncio

    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

    class _Protocol:
        _reading_paused = True  # never asked to pause

    deflate = case == "receive-json-deflate"
    # A stand-in for aiohttp's protocol: the queue only reads _reading_paused.
    queue = WebSocketDataQueue(cast("BaseProtocol", _Protocol()), 1 << 30, loop=asyncio.new_event_loop())
    # Compressed ticks come out as str, like every contestant's in that case.
    reader = WebSocketReader(queue, 0, deflate, deflate)
    buf, messages = _deflate_feed() if deflate else (_feed_buffer(), None)

    def receive() -> list[Any]:
        reader.feed_data(buf)
        messages = list(queue._buffer)  # (message, size) pairs
        queue._buffer.clear()
        return messages

    if not deflate:
        return "WebSocketReader.feed_data", receive, PARSE_FRAMES, len(buf)
    assert messages is not None  # the deflate case has them
    api = "WebSocketReader.feed_data (deflate)"
    _checked(api, receive, messages, lambda items: [message.data for message, _ in items])
    return api, receive, JSON_TICKS, len(buf)


def _wsproto(case: str) -> _Made:
    if case in MASK_SIZES:
        from wsproto.frame_protocol import XorMaskerSimple

        data = bytearray(os.urandom(MASK_SIZES[case]))  # process() copies it
        return (
            "XorMaskerSimple.process",
            lambda: XorMaskerSimple(KEY).process(data),
            1,
            len(data),
        )
    buf = _feed_buffer()
    if case == "parse-100":
        from wsproto.frame_protocol import FrameProtocol

        frames = FrameProtocol(client=True, extensions=[])

        def parse() -> list[Any]:
            frames.receive_bytes(buf)
            return list(frames.received_frames())

        return "FrameProtocol.received_frames", parse, PARSE_FRAMES, len(buf)
    from wsproto.connection import Connection, ConnectionType

    connection = Connection(ConnectionType.CLIENT)

    def receive() -> list[Any]:
        connection.receive_data(buf)
        return list(connection.events())

    return "Connection.events", receive, PARSE_FRAMES, len(buf)


def _websocket_client(case: str) -> _Made:
    from websocket import ABNF

    data = os.urandom(MASK_SIZES[case])
    return "ABNF.mask", lambda: ABNF.mask(KEY, data), 1, len(data)


_MASKING = tuple(MASK_SIZES)
# contestant -> (maker, the cases its library has a public call for); picows has none.
MAKERS: dict[str, tuple[_Maker, tuple[str, ...]]] = {
    "wsfast-c": (_wsfast("wsfast._compiled"), CASES),
    "wsfast-c-inplace": (_wsfast("wsfast._compiled", inplace=True), _MASKING),
    "wsfast-python": (_wsfast("wsfast._pure"), CASES),
    "wsfast-python-inplace": (_wsfast("wsfast._pure", inplace=True), _MASKING),
    "websockets": (_websockets, CASES),
    "aiohttp": (
        _aiohttp,
        (*_MASKING, "receive-100", "receive-json-deflate"),
    ),  # its reader yields messages, not frames
    "wsproto": (_wsproto, CASES[:-1]),
    "websocket-client": (
        _websocket_client,
        _MASKING,
    ),  # its parser reads from its socket
    "zlib": (_zlib, ("receive-json-deflate",)),
}


def run(contestant: str, case: str, min_time: float = 0.2) -> dict[str, Any]:
    """Time one codec operation; return calls, items and bytes per second, best of 5 rounds."""
    api, call, items, nbytes = MAKERS[contestant][0](case)
    result = call()  # warm up, and check the work is really done
    if items > 1 and len(result) != items:
        raise RuntimeError(f"{api} returned {len(result)} items, expected {items}")
    loops = 1
    while True:  # find a loop count that runs about min_time / 5
        start = perf_counter()
        for _ in range(loops):
            call()
        took = perf_counter() - start
        if took >= min_time / 5:
            break
        loops *= 2 if took == 0 else max(2, min(10, int(min_time / 5 / took) + 1))
    best = took
    for _ in range(4):
        start = perf_counter()
        for _ in range(loops):
            call()
        best = min(best, perf_counter() - start)
    per_call = best / loops
    return {"api": api, "seconds": per_call, "items": items, "bytes": nbytes}
