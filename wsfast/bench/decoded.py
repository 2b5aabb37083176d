"""The contestants of the ``tls-json-decoded`` case: the ``tls-json`` feed, every tick decoded.

Each contestant receives the same 200,000 JSON ticks over ``wss://`` as in ``tls-json``,
but ends with every tick's price (``px``) read from a decoded object, with the best
decoder it has, and adds the prices up: the worker compares the sum with the one the
runner computed from :func:`~wsfast.bench.ticks.ticks` (to a relative 1e-9, as batches
and polars add in another order), so a contestant that decoded something else fails
with :class:`~wsfast.bench.clients.Mismatch`.

The decoders: ``msgspec`` (a ``msgspec.json.Decoder`` of the typed :func:`tick_type`,
all eight fields), ``orjson`` (``orjson.loads``: a dict), and for batches of messages
``msgspec-lines`` (``Decoder.decode_lines`` over one NDJSON buffer) and ``polars``
(``polars.read_ndjson`` with :data:`POLARS_SCHEMA`, the ``px`` column added up).

- wsfast, each twin: ``decode=`` with msgspec and with orjson in every way of receiving
  (blocking ``recv()`` and ``recv_many()``, asyncio ``await recv()`` and ``on_message``
  callbacks, these on asyncio's loop and uvloop's), and its batches: ``recv_batch()``
  then ``Batch.decode_lines`` (``-batch-lines``) or ``Batch.to_polars`` (``-batch-polars``),
  and the same through ``wsfast.pipeline.decoded_batches`` (``-pipeline-...``), which
  decodes in a worker thread while the next batches are received.
- The peers, each in its best way: picows decoding every frame's payload as a view;
  aiohttp's ``receive_json(loads=orjson.loads)``; websockets' ``recv(decode=False)``
  (the text frame's bytes, not a ``str``) through ``orjson.loads``.
- The floors, with no network: each decoder alone over the same ticks as bytes, in
  memory: a per-message loop for msgspec and orjson, one call per NDJSON buffer of 2048
  ticks (about what one read brings) for ``msgspec-lines`` and ``polars``. ``raw-tls``
  (of :mod:`.clients`) reads the feed's bytes over TLS too: the wire's limit, no decoder's.

A contestant's name says its decoder and its kind (:func:`decoder_of`, :func:`kind_of`):
the report compares each with the floor of its decoder, and with the fastest peer of the
same decoder (per-message contestants) or of any decoder (batch contestants).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Coroutine
from operator import attrgetter, itemgetter
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .clients import START, Contestant, Feed, Mismatch, _check, _on_loop, _picows_close, _wsfast_options

if TYPE_CHECKING:
    import picows

    from wsfast.asyncio import Client as AsyncioClient
    from wsfast.batch import Batch

# The decoders, as contestant names spell them; a floor is named after its decoder.
MSGSPEC, ORJSON, MSGSPEC_LINES, POLARS = "msgspec", "orjson", "msgspec-lines", "polars"
MESSAGE, BATCH = "message", "batch"  # the kinds: decoding every message, or batches of them

NEEDS = frozenset({"decoded"})  # what a case must have: only tls-json-decoded has it
LINES_PER_BUFFER = 2048  # ticks in a floor's NDJSON buffer: about what a 256 KiB read holds
_REL_TOL = 1e-9  # the prices' sum, compared to this relative tolerance


def decoder_of(name: str) -> str | None:
    """The decoder of the contestant ``name`` (``msgspec``, ``orjson``, ``msgspec-lines``
    or ``polars``), or None for one that decodes nothing (``raw-tls``)."""
    parts = name.split("-")
    if POLARS in parts:
        return POLARS
    if "lines" in parts:
        return MSGSPEC_LINES
    if MSGSPEC in parts:
        return MSGSPEC
    if ORJSON in parts:
        return ORJSON
    return None


def kind_of(name: str) -> str:
    """``batch`` for a contestant that decodes batches of messages in one call (and for
    their floors), ``message`` for one that decodes each message."""
    return BATCH if decoder_of(name) in (MSGSPEC_LINES, POLARS) else MESSAGE


@functools.cache
def tick_type() -> type[Any]:
    """The msgspec Struct of a tick, every field typed (needs msgspec)."""
    import msgspec

    # gc=False: a Struct of scalars is never part of a reference cycle, so the collector
    # need not track the millions of them a feed makes (msgspec's own advice; ~10% faster).
    class Tick(msgspec.Struct, gc=False):  # type: ignore[call-arg, unused-ignore]  # where msgspec is untyped
        sym: str
        id: int
        px: float
        qty: float
        side: str
        ts: int
        buyer: int
        seller: int

    return Tick


def _polars_schema() -> dict[str, Any]:
    """The polars schema of a tick (needs polars)."""
    import polars

    text, integer, number = polars.String, polars.Int64, polars.Float64
    return {
        "sym": text,
        "id": integer,
        "px": number,
        "qty": number,
        "side": text,
        "ts": integer,
        "buyer": integer,
        "seller": integer,
    }


def _decoder(decoder: str) -> Callable[[Any], Any]:
    """The per-message decode function of ``decoder``: it takes bytes or a buffer."""
    if decoder == MSGSPEC:
        import msgspec

        decode: Callable[[Any], Any] = msgspec.json.Decoder(tick_type()).decode
        return decode
    import orjson

    loads: Callable[[Any], Any] = orjson.loads  # Any where orjson is not installed
    return loads


def _price(decoder: str) -> Callable[[Any], float]:
    """Reads the price of one decoded tick: an attribute of a Struct, an item of a dict."""
    return attrgetter("px") if decoder in (MSGSPEC, MSGSPEC_LINES) else itemgetter("px")


def _check_prices(job: Feed, received: int, px: float) -> None:
    _check(received, job.count, "messages")
    assert job.px_total is not None  # the runner's spec has it in this case
    if not math.isclose(px, job.px_total, rel_tol=_REL_TOL):
        raise Mismatch(f"the prices add up to {px!r}, expected {job.px_total!r}")


# wsfast: decode= ----------------------------------------------------------------------


def wsfast_feed(decoder: str, job: Feed) -> float:
    from wsfast.client import connect

    count = job.count
    px = 0.0
    with connect(job.url, decode=_decoder(decoder), **_wsfast_options(job)) as ws:
        recv: Callable[[], Any] = ws.recv  # with decode=, it returns what decode returns
        start = perf_counter()
        ws.send(START)
        if decoder == MSGSPEC:
            for _ in range(count):
                px += recv().px
        else:
            for _ in range(count):
                px += recv()["px"]
        elapsed = perf_counter() - start
    _check_prices(job, count, px)
    return elapsed


def wsfast_many_feed(decoder: str, job: Feed) -> float:
    from wsfast.client import connect

    price = _price(decoder)
    received = 0
    px = 0.0
    with connect(job.url, decode=_decoder(decoder), **_wsfast_options(job)) as ws:
        recv_many = ws.recv_many
        start = perf_counter()
        ws.send(START)
        while received < job.count:
            ticks = recv_many()
            received += len(ticks)
            px += sum(map(price, ticks))
        elapsed = perf_counter() - start
    _check_prices(job, received, px)
    return elapsed


async def wsfast_asyncio_feed(decoder: str, job: Feed) -> float:
    from wsfast.asyncio import connect

    count = job.count
    px = 0.0
    async with connect(job.url, decode=_decoder(decoder), **_wsfast_options(job)) as ws:
        recv: Callable[[], Awaitable[Any]] = ws.recv  # with decode=, what decode returns
        start = perf_counter()
        await ws.send(START)
        if decoder == MSGSPEC:
            for _ in range(count):
                px += (await recv()).px
        else:
            for _ in range(count):
                px += (await recv())["px"]
        elapsed = perf_counter() - start
    _check_prices(job, count, px)
    return elapsed


async def wsfast_callback_feed(decoder: str, job: Feed) -> float:
    from wsfast.asyncio import connect

    count = job.count  # a local: the callback runs once per message
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    received = 0
    px = 0.0

    def on_struct(ws: AsyncioClient, tick: Any) -> None:
        nonlocal received, px
        received += 1
        px += tick.px
        if received == count:
            done.set_result(perf_counter())

    def on_dict(ws: AsyncioClient, tick: Any) -> None:
        nonlocal received, px
        received += 1
        px += tick["px"]
        if received == count:
            done.set_result(perf_counter())

    on_message = on_struct if decoder == MSGSPEC else on_dict
    options = _wsfast_options(job)
    async with connect(job.url, decode=_decoder(decoder), on_message=on_message, **options) as ws:
        start = perf_counter()
        ws.send_nowait(START)
        end = await done
    _check_prices(job, received, px)
    return end - start


# wsfast: batches ----------------------------------------------------------------------


def _batch_decoder(decoder: str) -> Callable[[Batch], Any]:
    """Decodes a whole batch: to a list of Structs, or to a polars DataFrame."""
    if decoder == POLARS:
        schema = _polars_schema()
        return functools.partial(_to_polars, schema=schema)
    import msgspec

    lines = msgspec.json.Decoder(tick_type())
    return functools.partial(_decode_lines, decoder=lines)


def _to_polars(batch: Batch, schema: dict[str, Any]) -> Any:
    return batch.to_polars(schema)


def _decode_lines(batch: Batch, decoder: Any) -> list[Any]:
    return batch.decode_lines(decoder)


def _batch_prices(decoder: str) -> Callable[[Any], tuple[int, float]]:
    """The number of ticks a decoded batch holds and their prices added up."""
    if decoder == POLARS:
        return lambda frame: (frame.height, float(frame["px"].sum()))
    price = _price(decoder)
    return lambda ticks: (len(ticks), sum(map(price, ticks)))


def wsfast_batch_feed(decoder: str, job: Feed) -> float:
    from wsfast.client import connect

    decode, prices = _batch_decoder(decoder), _batch_prices(decoder)
    received = 0
    px = 0.0
    with connect(job.url, **_wsfast_options(job)) as ws:
        recv_batch = ws.recv_batch
        start = perf_counter()
        ws.send(START)
        while received < job.count:
            count, total = prices(decode(recv_batch()))
            received += count
            px += total
        elapsed = perf_counter() - start
    _check_prices(job, received, px)
    return elapsed


def wsfast_pipeline_feed(decoder: str, job: Feed) -> float:
    from wsfast.client import connect
    from wsfast.pipeline import decoded_batches

    decode, prices = _batch_decoder(decoder), _batch_prices(decoder)
    received = 0
    px = 0.0
    with connect(job.url, **_wsfast_options(job)) as ws:
        start = perf_counter()
        ws.send(START)
        for decoded in decoded_batches(ws, decode):
            count, total = prices(decoded)
            received += count
            px += total
            if received >= job.count:
                break
        elapsed = perf_counter() - start
    _check_prices(job, received, px)
    return elapsed


# The peers ----------------------------------------------------------------------------


async def picows_feed(decoder: str, job: Feed) -> float:
    import picows

    decode = _decoder(decoder)
    count = job.count  # locals: the callback runs once per message
    text = picows.WSMsgType.TEXT
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    # The payload as a view into picows's read buffer: no copy, and both decoders take
    # buffers; the view is only decoded within the callback, while it is valid.
    class Listener(picows.WSListener):
        received = 0
        px = 0.0

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            if not done.done():
                done.set_exception(Mismatch("disconnected before the last message"))

    class StructListener(Listener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type != text:
                return
            self.px += decode(frame.get_payload_as_memoryview()).px
            self.received += 1
            if self.received == count:
                done.set_result(perf_counter())

    class DictListener(Listener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type != text:
                return
            self.px += decode(frame.get_payload_as_memoryview())["px"]
            self.received += 1
            if self.received == count:
                done.set_result(perf_counter())

    factory = StructListener if decoder == MSGSPEC else DictListener
    transport, listener = await picows.ws_connect(factory, job.url, ssl_context=job.ssl_context, max_frame_size=1 << 30)
    assert isinstance(listener, Listener)
    start = perf_counter()
    transport.send(text, START)
    end = await done
    await _picows_close(transport)
    _check_prices(job, listener.received, listener.px)
    return end - start


async def aiohttp_feed(job: Feed) -> float:
    import aiohttp
    import orjson

    from .clients import _aiohttp_connect

    loads = orjson.loads
    px = 0.0
    async with aiohttp.ClientSession() as session, _aiohttp_connect(session, job) as ws:
        receive_json = ws.receive_json
        start = perf_counter()
        await ws.send_str(START)
        for _ in range(job.count):
            px += (await receive_json(loads=loads))["px"]
        elapsed = perf_counter() - start
    _check_prices(job, job.count, px)
    return elapsed


async def websockets_asyncio_feed(job: Feed) -> float:
    import orjson
    from websockets.asyncio.client import connect

    from .clients import _websockets_options

    loads = orjson.loads
    px = 0.0
    async with connect(job.url, **_websockets_options(job)) as ws:
        recv = ws.recv
        start = perf_counter()
        await ws.send(START)
        for _ in range(job.count):
            px += loads(await recv(decode=False))["px"]  # the text frame as bytes, not str
        elapsed = perf_counter() - start
    _check_prices(job, job.count, px)
    return elapsed


def websockets_sync_feed(job: Feed) -> float:
    import orjson
    from websockets.sync.client import connect

    from .clients import _websockets_options

    loads = orjson.loads
    px = 0.0
    with connect(job.url, **_websockets_options(job)) as ws:
        recv = ws.recv
        start = perf_counter()
        ws.send(START)
        for _ in range(job.count):
            px += loads(recv(decode=False))["px"]  # the text frame as bytes, not str
        elapsed = perf_counter() - start
    _check_prices(job, job.count, px)
    return elapsed


# The floors ---------------------------------------------------------------------------


def _payloads(job: Feed) -> list[bytes]:
    """The feed's payloads, as bytes in memory."""
    from .ticks import ticks

    return [tick.encode() for tick in ticks(job.count)]


def message_floor(decoder: str, job: Feed) -> float:
    """Decode every payload from a list in memory, one call each, and read its price."""
    payloads = _payloads(job)
    decode = _decoder(decoder)
    px = 0.0
    start = perf_counter()
    if decoder == MSGSPEC:
        for payload in payloads:
            px += decode(payload).px
    else:
        for payload in payloads:
            px += decode(payload)["px"]
    elapsed = perf_counter() - start
    _check_prices(job, len(payloads), px)
    return elapsed


def lines_floor(decoder: str, job: Feed) -> float:
    """Decode NDJSON buffers of :data:`LINES_PER_BUFFER` payloads, one call each (a batch
    of a read holds about as many), and add up the prices."""
    payloads = _payloads(job)
    buffers = [
        b"".join(payload + b"\n" for payload in payloads[i : i + LINES_PER_BUFFER])
        for i in range(0, len(payloads), LINES_PER_BUFFER)
    ]
    received = 0
    px = 0.0
    if decoder == POLARS:
        import polars

        schema = _polars_schema()
        start = perf_counter()
        for buffer in buffers:
            frame = polars.read_ndjson(buffer, schema=schema)
            received += frame.height
            px += float(frame["px"].sum())
        elapsed = perf_counter() - start
    else:
        import msgspec

        decode_lines = msgspec.json.Decoder(tick_type()).decode_lines
        price = _price(decoder)
        start = perf_counter()
        for buffer in buffers:
            ticks = decode_lines(buffer)
            received += len(ticks)
            px += sum(map(price, ticks))
        elapsed = perf_counter() - start
    _check_prices(job, received, px)
    return elapsed


# The table ----------------------------------------------------------------------------


def _contestant(feed: Callable[[Feed], float], *, floor: bool = False) -> Contestant:
    return Contestant(feed, needs=NEEDS, avoids=frozenset(), deflate=False, floor=floor)


def _on_loops(name: str, feed: Callable[[Feed], Coroutine[Any, Any, float]]) -> dict[str, Contestant]:
    """``name`` on asyncio's event loop and ``name-uvloop`` on uvloop's."""
    return {name: _contestant(_on_loop(feed, False)), f"{name}-uvloop": _contestant(_on_loop(feed, True))}


def _wsfast_twin(prefix: str) -> dict[str, Contestant]:
    # The twins differ only in WSFAST_NO_EXTENSIONS, set by the runner from the name.
    table: dict[str, Contestant] = {}
    for decoder in (MSGSPEC, ORJSON):
        table[f"{prefix}-{decoder}"] = _contestant(functools.partial(wsfast_feed, decoder))
        table[f"{prefix}-many-{decoder}"] = _contestant(functools.partial(wsfast_many_feed, decoder))
        table.update(_on_loops(f"{prefix}-asyncio-{decoder}", functools.partial(wsfast_asyncio_feed, decoder)))
        table.update(_on_loops(f"{prefix}-callback-{decoder}", functools.partial(wsfast_callback_feed, decoder)))
    for decoder, suffix in ((MSGSPEC_LINES, "lines"), (POLARS, "polars")):
        table[f"{prefix}-batch-{suffix}"] = _contestant(functools.partial(wsfast_batch_feed, decoder))
        table[f"{prefix}-pipeline-{suffix}"] = _contestant(functools.partial(wsfast_pipeline_feed, decoder))
    return table


CONTESTANTS: dict[str, Contestant] = {
    **_wsfast_twin("wsfast-c"),
    **_wsfast_twin("wsfast-python"),
    **_on_loops("picows-msgspec", functools.partial(picows_feed, MSGSPEC)),
    **_on_loops("picows-orjson", functools.partial(picows_feed, ORJSON)),
    **_on_loops("aiohttp-orjson", aiohttp_feed),
    **_on_loops("websockets-asyncio-orjson", websockets_asyncio_feed),
    "websockets-sync-orjson": _contestant(websockets_sync_feed),
    MSGSPEC: _contestant(functools.partial(message_floor, MSGSPEC), floor=True),
    ORJSON: _contestant(functools.partial(message_floor, ORJSON), floor=True),
    MSGSPEC_LINES: _contestant(functools.partial(lines_floor, MSGSPEC_LINES), floor=True),
    POLARS: _contestant(functools.partial(lines_floor, POLARS), floor=True),
}
