"""The contestants: one small client per library, each written the way its docs advise.

Every client connects, then times only the work: receiving a feed of ``count`` binary
messages (checking the total size) or ``count`` echo round trips of ``size`` bytes.
Each returns the elapsed seconds. A library that is not installed raises ImportError,
which the runner reports as a skip.
"""

from __future__ import annotations

import asyncio
from time import perf_counter


class Mismatch(Exception):
    """A client received something other than what the server sent."""


def _check(received: int, expected: int, what: str) -> None:
    if received != expected:
        raise Mismatch(f"received {received} {what}, expected {expected}")


# The timed loops that clients with a plain recv() (and send()) share; recv and send
# come in as bound methods, so every contestant's loop costs the same.


def _time_feed(recv, count: int, size: int) -> float:
    total = 0
    start = perf_counter()
    for _ in range(count):
        total += len(recv())
    elapsed = perf_counter() - start
    _check(total, count * size, "bytes")
    return elapsed


def _time_echo(send, recv, count: int, size: int) -> float:
    payload = bytes(size)
    total = 0
    start = perf_counter()
    for _ in range(count):
        send(payload)
        total += len(recv())
    elapsed = perf_counter() - start
    _check(total, count * size, "bytes")
    return elapsed


async def _time_feed_async(recv, count: int, size: int) -> float:
    total = 0
    start = perf_counter()
    for _ in range(count):
        total += len(await recv())
    elapsed = perf_counter() - start
    _check(total, count * size, "bytes")
    return elapsed


async def _time_echo_async(send, recv, count: int, size: int) -> float:
    payload = bytes(size)
    total = 0
    start = perf_counter()
    for _ in range(count):
        await send(payload)
        total += len(await recv())
    elapsed = perf_counter() - start
    _check(total, count * size, "bytes")
    return elapsed


# wsfast ------------------------------------------------------------------------------


def wsfast_feed(url: str, count: int, size: int) -> float:
    from wsfast.client import connect

    with connect(url, max_message_size=None, compression=None) as ws:
        return _time_feed(ws.recv, count, size)


def wsfast_many_feed(url: str, count: int, size: int) -> float:
    from wsfast.client import connect

    with connect(url, max_message_size=None, compression=None) as ws:
        recv_many = ws.recv_many
        received = total = 0
        start = perf_counter()
        while received < count:
            batch = recv_many()
            received += len(batch)
            total += sum(map(len, batch))
        elapsed = perf_counter() - start
    _check(received, count, "messages")
    _check(total, count * size, "bytes")
    return elapsed


def wsfast_echo(url: str, count: int, size: int) -> float:
    from wsfast.client import connect

    with connect(url, max_message_size=None, compression=None) as ws:
        return _time_echo(ws.send, ws.recv, count, size)


async def _wsfast_asyncio_feed(url: str, count: int, size: int) -> float:
    from wsfast.asyncio import connect

    async with connect(url, max_message_size=None, compression=None) as ws:
        return await _time_feed_async(ws.recv, count, size)


async def _wsfast_asyncio_echo(url: str, count: int, size: int) -> float:
    from wsfast.asyncio import connect

    async with connect(url, max_message_size=None, compression=None) as ws:
        return await _time_echo_async(ws.send, ws.recv, count, size)


async def _wsfast_callback_run(url: str, count: int, size: int, echo: bool) -> float:
    from wsfast.asyncio import connect

    payload = bytes(size)
    done = asyncio.get_running_loop().create_future()
    received = total = 0
    first = float("inf")

    def on_message(ws, message) -> None:
        nonlocal received, total, first
        if not received:
            first = perf_counter()  # the feed may start before connect() returns
        received += 1
        total += len(message)
        if received == count:
            done.set_result(perf_counter())
        elif echo:
            ws.send_nowait(payload)

    async with connect(url, max_message_size=None, compression=None, on_message=on_message) as ws:
        start = perf_counter()
        if echo:
            ws.send_nowait(payload)
        end = await done
    _check(total, count * size, "bytes")
    return end - min(start, first)


def wsfast_callback_feed(url: str, count: int, size: int) -> float:
    return asyncio.run(_wsfast_callback_run(url, count, size, echo=False))


def wsfast_callback_echo(url: str, count: int, size: int) -> float:
    return asyncio.run(_wsfast_callback_run(url, count, size, echo=True))


def wsfast_asyncio_feed(url: str, count: int, size: int) -> float:
    return asyncio.run(_wsfast_asyncio_feed(url, count, size))


def wsfast_asyncio_echo(url: str, count: int, size: int) -> float:
    return asyncio.run(_wsfast_asyncio_echo(url, count, size))


# websockets (threads) -------------------------------------------------------------------


def websockets_sync_feed(url: str, count: int, size: int) -> float:
    from websockets.sync.client import connect

    with connect(url, max_size=None, compression=None) as ws:
        return _time_feed(ws.recv, count, size)


def websockets_sync_echo(url: str, count: int, size: int) -> float:
    from websockets.sync.client import connect

    with connect(url, max_size=None, compression=None) as ws:
        return _time_echo(ws.send, ws.recv, count, size)


# websockets (asyncio) -------------------------------------------------------------------


async def _websockets_asyncio_feed(url: str, count: int, size: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None, compression=None) as ws:
        return await _time_feed_async(ws.recv, count, size)


async def _websockets_asyncio_echo(url: str, count: int, size: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None, compression=None) as ws:
        return await _time_echo_async(ws.send, ws.recv, count, size)


def websockets_asyncio_feed(url: str, count: int, size: int) -> float:
    return asyncio.run(_websockets_asyncio_feed(url, count, size))


def websockets_asyncio_echo(url: str, count: int, size: int) -> float:
    return asyncio.run(_websockets_asyncio_echo(url, count, size))


# websocket-client -----------------------------------------------------------------------


def websocket_client_feed(url: str, count: int, size: int) -> float:
    import websocket

    ws = websocket.create_connection(url)
    try:
        return _time_feed(ws.recv, count, size)
    finally:
        ws.close()


def websocket_client_echo(url: str, count: int, size: int) -> float:
    import websocket

    ws = websocket.create_connection(url)
    try:
        return _time_echo(ws.send_binary, ws.recv, count, size)
    finally:
        ws.close()


# aiohttp --------------------------------------------------------------------------------


async def _aiohttp_feed(url: str, count: int, size: int) -> float:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=0) as ws,
    ):
        receive = ws.receive
        total = 0
        start = perf_counter()
        for _ in range(count):
            total += len((await receive()).data)
        elapsed = perf_counter() - start
    _check(total, count * size, "bytes")
    return elapsed


async def _aiohttp_echo(url: str, count: int, size: int) -> float:
    import aiohttp

    payload = bytes(size)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=0) as ws,
    ):
        send, receive = ws.send_bytes, ws.receive
        total = 0
        start = perf_counter()
        for _ in range(count):
            await send(payload)
            total += len((await receive()).data)
        elapsed = perf_counter() - start
    _check(total, count * size, "bytes")
    return elapsed


def aiohttp_feed(url: str, count: int, size: int) -> float:
    return asyncio.run(_aiohttp_feed(url, count, size))


def aiohttp_echo(url: str, count: int, size: int) -> float:
    return asyncio.run(_aiohttp_echo(url, count, size))


# picows (callbacks) ---------------------------------------------------------------------


async def _picows_run(url: str, count: int, size: int, echo: bool) -> float:
    import picows

    binary = picows.WSMsgType.BINARY
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    payload = bytes(size)

    class Listener(picows.WSListener):
        received = 0
        total = 0

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type != binary:
                return
            self.received += 1
            # A zero-copy view: picows's own way to read a frame.
            self.total += len(frame.get_payload_as_memoryview())
            if self.received == count:
                done.set_result(perf_counter())
            elif echo:
                transport.send(binary, payload)

        def on_ws_disconnected(self, transport) -> None:
            if not done.done():
                done.set_exception(Mismatch("disconnected before the last message"))

    transport, listener = await picows.ws_connect(Listener, url, max_frame_size=1 << 30)
    start = perf_counter()
    if echo:
        transport.send(binary, payload)
    end = await done
    transport.send_close()
    transport.disconnect()
    await transport.wait_disconnected()
    _check(listener.received, count, "messages")
    _check(listener.total, count * size, "bytes")
    return end - start


def picows_feed(url: str, count: int, size: int) -> float:
    return asyncio.run(_picows_run(url, count, size, echo=False))


def picows_echo(url: str, count: int, size: int) -> float:
    return asyncio.run(_picows_run(url, count, size, echo=True))


# name -> (feed, echo); the wsfast twins differ only in WSFAST_NO_EXTENSIONS, and
# "-many" receives with recv_many(): every message parsed from one read at once;
# "-callback" is the asyncio client with on_message, the style picows is measured in.
CLIENTS = {
    "wsfast-c": (wsfast_feed, wsfast_echo),
    "wsfast-c-many": (wsfast_many_feed, None),
    "wsfast-c-asyncio": (wsfast_asyncio_feed, wsfast_asyncio_echo),
    "wsfast-c-callback": (wsfast_callback_feed, wsfast_callback_echo),
    "wsfast-python": (wsfast_feed, wsfast_echo),
    "wsfast-python-many": (wsfast_many_feed, None),
    "wsfast-python-asyncio": (wsfast_asyncio_feed, wsfast_asyncio_echo),
    "wsfast-python-callback": (wsfast_callback_feed, wsfast_callback_echo),
    "picows": (picows_feed, picows_echo),
    "aiohttp": (aiohttp_feed, aiohttp_echo),
    "websockets-asyncio": (websockets_asyncio_feed, websockets_asyncio_echo),
    "websockets-sync": (websockets_sync_feed, websockets_sync_echo),
    "websocket-client": (websocket_client_feed, websocket_client_echo),
}
