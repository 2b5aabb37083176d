"""A closed connection is freed by reference counting alone, with its read buffer and
deflate state: consumers that disable or freeze the cyclic garbage collector (as
latency-sensitive ones do) must not grow with every reconnect. Every client and server
connection, both twins, with ``gc.disable()``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import ssl
import time

import pytest

import wsfast.asyncio
import wsfast.asyncio.server
import wsfast.server
from wsfast.client import Client, connect
from wsfast.server import serve

TIMEOUT = 5
RECONNECTS = 100

pytestmark = pytest.mark.usefixtures("no_hang")


@pytest.fixture
def collector_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def echo_url(codec):
    with serve(codec=codec) as server:
        yield f"ws://127.0.0.1:{server.port}/"


def max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def alive(*types: type) -> int:
    """How many objects of ``types`` exist (the connections have no __weakref__ slot;
    the collector, though off, still lists what it tracks)."""
    return sum(type(o) in types for o in gc.get_objects())


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_blocking_clients_are_freed(echo_url, codec, collector_off, compression):
    before = alive(Client)
    for _ in range(RECONNECTS):
        with connect(echo_url, codec=codec, compression=compression) as ws:
            ws.send("x")
            assert ws.recv(TIMEOUT) == "x"
        del ws
    assert alive(Client) == before


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_asyncio_clients_are_freed(echo_url, codec, collector_off, compression):
    async def main():
        for _ in range(RECONNECTS):
            async with wsfast.asyncio.connect(echo_url, codec=codec, compression=compression) as ws:
                await ws.send("x")
                assert await ws.recv(TIMEOUT) == "x"
            del ws
        await asyncio.sleep(0)  # the transports' last callbacks

    before = alive(wsfast.asyncio.Client)
    asyncio.run(asyncio.wait_for(main(), 60))
    assert alive(wsfast.asyncio.Client) == before


def test_asyncio_tls_clients_are_freed(codec, collector_off, tls):
    """wss://: the connection and wsfast's TLS under it, also after failed handshakes."""
    from wsfast.asyncio._tls import TLSTransport

    server_context, client_context = tls
    untrusting = ssl.create_default_context()  # does not know the test CA

    async def main(url):
        for _ in range(RECONNECTS // 2):
            async with wsfast.asyncio.connect(url, ssl=client_context, codec=codec, proxy=None) as ws:
                await ws.send("x")
                assert await ws.recv(TIMEOUT) == "x"
            del ws
            with pytest.raises(ssl.SSLCertVerificationError):
                await wsfast.asyncio.connect(url, ssl=untrusting, codec=codec, proxy=None)
        await asyncio.sleep(0)  # the transports' last callbacks

    before = alive(wsfast.asyncio.Client, TLSTransport)
    with serve(codec=codec, ssl=server_context) as server:
        asyncio.run(asyncio.wait_for(main(f"wss://127.0.0.1:{server.port}/"), 60))
    assert alive(wsfast.asyncio.Client, TLSTransport) == before


def test_reconnecting_asyncio_clients_are_freed_and_memory_stays_flat(echo_url, codec, collector_off):
    async def main():
        rss = []
        attempts = 0
        # The body moves on while the connection is open: the loop closes it and opens
        # the next one, at once with this backoff.
        now = wsfast.Backoff(initial=0.0, maximum=0.0, jitter=0.0)
        connecting = wsfast.asyncio.connect(echo_url, codec=codec, compression="deflate", backoff=now)
        # aclosing(): the loop's generator, which holds the last connection, is closed on
        # leaving, not whenever asyncio finalizes it (at the loop's end, or on 3.13 not
        # before the collector runs).
        async with contextlib.aclosing(aiter(connecting)) as clients:
            async for ws in clients:
                attempts += 1
                await ws.send("x" * 1000)
                await ws.recv(TIMEOUT)
                if attempts == RECONNECTS // 2:
                    rss.append(max_rss_kib())
                if attempts == RECONNECTS:
                    break
        del ws
        await asyncio.sleep(0)
        rss.append(max_rss_kib())
        return attempts, rss

    before = alive(wsfast.asyncio.Client)
    attempts, (halfway, end) = asyncio.run(asyncio.wait_for(main(), 60))
    assert attempts == RECONNECTS
    assert alive(wsfast.asyncio.Client) == before
    # 50 more connections, each with a read buffer of 256 KiB and deflate state, would
    # add well over 10 MiB if they were kept.
    assert end - halfway < 10 * 1024


def test_closed_connections_of_the_threaded_server_are_freed(codec, collector_off):
    handled = []

    def handler(ws):
        handled.append(1)
        for message in ws:
            ws.send(message)

    with serve(handler, codec=codec) as server:
        for _ in range(RECONNECTS // 4):
            with connect(f"ws://127.0.0.1:{server.port}/", codec=codec) as ws:
                ws.send("x")
                assert ws.recv(TIMEOUT) == "x"
        for _ in range(50):  # the last handler's thread ends once its client closed
            if not alive(wsfast.server.ServerConnection):
                break
            time.sleep(0.02)
    assert len(handled) == RECONNECTS // 4
    assert alive(wsfast.server.ServerConnection) == 0


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_closed_connections_of_the_asyncio_server_are_freed(codec, collector_off, secure, request):
    server_context, client_context = request.getfixturevalue("tls") if secure else (None, None)
    handled = []

    async def handler(ws):
        handled.append(1)
        async for message in ws:
            await ws.send(message)

    async def main():
        async with wsfast.asyncio.serve(handler, "127.0.0.1", 0, codec=codec, ssl=server_context) as server:
            url = f"{'wss' if secure else 'ws'}://127.0.0.1:{server.port}/"
            for _ in range(RECONNECTS // 4):
                async with wsfast.asyncio.connect(url, codec=codec, ssl=client_context, proxy=None) as ws:
                    await ws.send("x")
                    assert await ws.recv(TIMEOUT) == "x"
                del ws
            for _ in range(50):  # the handlers end once their clients closed
                if not alive(wsfast.asyncio.server.ServerConnection):
                    break
                await asyncio.sleep(0.02)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert len(handled) == RECONNECTS // 4
    assert alive(wsfast.asyncio.server.ServerConnection) == 0
