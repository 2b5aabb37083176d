"""The message types that type checkers see, with and without ``decode=``: mypy --strict
checks this module (tests/test_typing.py), which never runs. Each ``assert_type`` is an
expectation, and each ``type: ignore`` one too: a call mypy must refuse (an ignore that
is not needed fails the check).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import wsfast
import wsfast.asyncio
import wsfast.client
import wsfast.server

if TYPE_CHECKING:
    from typing_extensions import assert_type

URL = "ws://127.0.0.1:8765/feed"


@dataclass
class Tick:
    symbol: str
    px: float


def tick(payload: bytes) -> Tick:
    fields = json.loads(payload)
    return Tick(fields["symbol"], fields["px"])


# The blocking client ----------------------------------------------------------------


def blocking_client() -> None:
    with wsfast.connect(URL) as ws:
        assert_type(ws, wsfast.Client[str | bytes])
        assert_type(ws.recv(), str | bytes)
        assert_type(ws.recv(timeout=1.0), str | bytes)
        assert_type(ws.recv_many(), list[str | bytes])
        for message in ws:
            assert_type(message, str | bytes)
        assert_type(ws.recv_batch(), wsfast.Batch)
    with wsfast.connect(URL, decode=json.loads) as ws_any:
        assert_type(ws_any, wsfast.Client[Any])
        assert_type(ws_any.recv(), Any)
        assert_type(ws_any.recv_many(), list[Any])
    with wsfast.client.connect(URL, decode=tick) as ticks:
        assert_type(ticks, wsfast.Client[Tick])
        assert_type(ticks.recv(), Tick)
        assert_type(ticks.recv().px, float)
        assert_type(ticks.recv_many(), list[Tick])
        for decoded in ticks:
            assert_type(decoded, Tick)
        assert_type(next(ticks), Tick)
        ticks.recv().symbol.encode()
        print(ticks.recv().volume)  # type: ignore[attr-defined]
    plain: wsfast.Client = wsfast.connect(URL)  # a bare Client hands out str | bytes
    assert_type(plain.recv(), str | bytes)
    wrong: wsfast.Client = wsfast.connect(URL, decode=tick)  # type: ignore[arg-type]
    del wrong


def blocking_reconnecting() -> None:
    for ws in wsfast.reconnecting(URL):
        assert_type(ws, wsfast.Client[str | bytes])
    for ticks in wsfast.client.reconnecting(URL, decode=tick, ping_interval=None):
        assert_type(ticks, wsfast.Client[Tick])
        assert_type(ticks.recv(), Tick)


# The blocking server ----------------------------------------------------------------


def plain_handler(ws: wsfast.ServerConnection) -> None:
    assert_type(ws, wsfast.ServerConnection[str | bytes])
    assert_type(ws.recv(), str | bytes)
    for message in ws:
        assert_type(message, str | bytes)


def tick_handler(ws: wsfast.ServerConnection[Tick]) -> None:
    assert_type(ws.recv(), Tick)
    assert_type(ws.recv_many(), list[Tick])
    for message in ws:
        assert_type(message, Tick)


def any_handler(ws: wsfast.server.ServerConnection[Any]) -> None:
    assert_type(ws.recv(), Any)


def blocking_server() -> None:
    wsfast.serve(plain_handler)
    wsfast.serve()  # echo
    wsfast.serve(tick_handler, decode=tick)
    wsfast.server.serve(any_handler, decode=json.loads)
    wsfast.serve(plain_handler, "127.0.0.1", 0, decode=json.loads)  # Any fits str | bytes
    wsfast.serve(tick_handler)  # type: ignore[arg-type]
    wsfast.serve(plain_handler, decode=tick)  # type: ignore[misc]
    handler: wsfast.server.Handler[Tick] = tick_handler
    wsfast.serve(handler, decode=tick)


# The asyncio client -----------------------------------------------------------------


async def asyncio_client() -> None:
    async with wsfast.asyncio.connect(URL) as ws:
        assert_type(ws, wsfast.asyncio.Client[str | bytes])
        assert_type(await ws.recv(), str | bytes)
        assert_type(await ws.recv_many(), list[str | bytes])
        async for message in ws:
            assert_type(message, str | bytes)
        assert_type(await ws.recv_batch(), wsfast.Batch)
    async with wsfast.asyncio.connect(URL, decode=json.loads) as ws_any:
        assert_type(await ws_any.recv(), Any)
    async with wsfast.asyncio.connect(URL, decode=tick) as ticks:
        assert_type(ticks, wsfast.asyncio.Client[Tick])
        assert_type(await ticks.recv(), Tick)
        assert_type((await ticks.recv(timeout=1.0)).px, float)
        assert_type(await ticks.recv_many(), list[Tick])
        async for decoded in ticks:
            assert_type(decoded, Tick)
        assert_type(await anext(ticks), Tick)
    awaited = await wsfast.asyncio.connect(URL, decode=tick)
    assert_type(awaited, wsfast.asyncio.Client[Tick])
    async for reconnected in wsfast.asyncio.connect(URL, decode=tick):  # reconnecting
        assert_type(reconnected, wsfast.asyncio.Client[Tick])
        async for decoded in reconnected:
            assert_type(decoded, Tick)
    async for plain in wsfast.asyncio.connect(URL):
        assert_type(plain, wsfast.asyncio.Client[str | bytes])


def on_plain(ws: wsfast.asyncio.Client, message: str | bytes) -> None:
    assert_type(ws, wsfast.asyncio.Client[str | bytes])


def on_tick(ws: wsfast.asyncio.Client[Tick], message: Tick) -> None:
    ws.send_nowait(message.symbol)


def on_any(ws: wsfast.asyncio.Client[Any], message: Any) -> None:
    pass


async def asyncio_on_message() -> None:
    await wsfast.asyncio.connect(URL, on_message=on_plain)
    assert_type(await wsfast.asyncio.connect(URL, decode=tick, on_message=on_tick), wsfast.asyncio.Client[Tick])
    await wsfast.asyncio.connect(URL, decode=json.loads, on_message=on_any)
    await wsfast.asyncio.connect(URL, on_message=on_tick)  # type: ignore[arg-type]
    await wsfast.asyncio.connect(URL, decode=tick, on_message=on_plain)  # type: ignore[misc]


# The asyncio server -----------------------------------------------------------------


async def plain_async_handler(ws: wsfast.asyncio.ServerConnection) -> None:
    assert_type(await ws.recv(), str | bytes)
    async for message in ws:
        assert_type(message, str | bytes)


async def tick_async_handler(ws: wsfast.asyncio.ServerConnection[Tick]) -> None:
    assert_type(await ws.recv(), Tick)
    assert_type(await ws.recv_many(), list[Tick])
    async for message in ws:
        assert_type(message, Tick)


async def asyncio_server() -> None:
    async with wsfast.asyncio.serve(plain_async_handler):
        pass
    async with wsfast.asyncio.serve(tick_async_handler, decode=tick) as server:
        await server.serve_forever()
    await wsfast.asyncio.serve(tick_async_handler)  # type: ignore[arg-type]
    await wsfast.asyncio.serve(plain_async_handler, decode=tick)  # type: ignore[misc]
