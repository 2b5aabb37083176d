"""The contestants: one small client per library, each written the way its docs advise.

Every client connects, then times only the work, in one of two jobs:

- :class:`Feed`: receive ``count`` messages and check their total length. The binary
  feeds start at once; the JSON ticks feed starts when the client sends its start
  signal, so the client starts its clock right before sending it, and receives the
  ticks as ``str``, as a JSON consumer does. Returns the elapsed seconds.
- :class:`Echo`: ``count`` round trips of one payload. Returns a :class:`Timed`: the
  elapsed seconds, every round trip's nanoseconds and the CPU time the client spent.

Asyncio clients run on asyncio's own event loop, or on uvloop's for the ``-uvloop``
contestants. A library that is not installed raises ImportError, which the runner
reports as a skip. The floors (``raw-tcp``, ``raw-tls``, ``zlib``) are contestants too:
the limits a client's receiving is measured against. The contestants that decode every
tick (the ``tls-json-decoded`` case) are in :mod:`wsfast.bench.decoded`; those of the
tick-latency cases and the echo floor in :mod:`wsfast.bench.latency`; those of the echo
over many connections in :mod:`wsfast.bench.fanout`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sized
from dataclasses import dataclass
from time import perf_counter, perf_counter_ns, process_time
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

if TYPE_CHECKING:
    import aiohttp
    import picows
    import websocket
    from aiohttp.client import _WSRequestContextManager

    from wsfast.asyncio import Client as AsyncioClient

    from .latency import Ticks

_Job = TypeVar("_Job")
_Outcome = TypeVar("_Outcome")
# A send() of the clients: it takes the job's payload, str or bytes, which some split
# into two methods.
_Send = Callable[[Any], object]
_AsyncSend = Callable[[Any], Awaitable[object]]

START = "go"  # the start signal of the ticks feed
_FLOOR_TIMEOUT = 30.0  # seconds a floor waits for the server's next bytes


class Mismatch(Exception):
    """A client received something other than what the server sent."""


@dataclass(frozen=True)
class Feed:
    """Receive ``count`` messages from ``url``, ``total`` bytes (or characters of text)."""

    url: str
    count: int
    total: int
    json: bool = False  # the ticks feed: text messages, sent once the client says START
    deflate: bool = False  # negotiate permessage-deflate (the server insists)
    ssl_context: ssl.SSLContext | None = None  # verifies the server, for wss:// URLs
    px_total: float | None = None  # the ticks' prices added up, for the contestants that decode them


@dataclass(frozen=True)
class Echo:
    """Send ``payload`` to ``url`` and wait for it to come back, ``count`` times.

    With ``connections`` above 1 (:mod:`wsfast.bench.fanout`), that many connections do
    ``count`` round trips each, all at once, each with one message in flight.
    """

    url: str
    count: int
    payload: bytes | str
    deflate: bool = False
    ssl_context: ssl.SSLContext | None = None
    connections: int = 1


class Timed(NamedTuple):
    """What a timed job returns."""

    seconds: float  # wall-clock time of the timed loop
    samples: list[int]  # nanoseconds: every round trip (echo) or every tick's delay (latency)
    cpu: float  # seconds of CPU (user and system) the client's process spent in the loop


def _check(received: int, expected: int, what: str) -> None:
    if received != expected:
        raise Mismatch(f"received {received} {what}, expected {expected}")


def _check_feed(job: Feed, total: int, last: object) -> None:
    _check(total, job.total, "characters" if job.json else "bytes")
    wanted = str if job.json else bytes
    if not isinstance(last, wanted):
        raise Mismatch(f"received {type(last).__name__} messages, expected {wanted.__name__}")


def _check_echo(job: Echo, total: int) -> None:
    _check(total, job.count * len(job.payload), "bytes")


# The timed loops that clients with a plain recv() (and send()) share; recv and send
# come in as bound methods, so every contestant's loop costs the same.


def _time_feed(job: Feed, recv: Callable[[], Sized], send: _Send) -> float:
    total = 0
    message = None
    start = perf_counter()
    if job.json:
        send(START)
    for _ in range(job.count):
        message = recv()
        total += len(message)
    elapsed = perf_counter() - start
    _check_feed(job, total, message)
    return elapsed


def _time_echo(job: Echo, send: _Send, recv: Callable[[], Sized]) -> Timed:
    payload = job.payload
    trips = [0] * job.count  # allocated before the clock starts
    total = 0
    cpu = process_time()
    start = then = perf_counter_ns()
    for index in range(job.count):
        send(payload)
        total += len(recv())
        now = perf_counter_ns()
        trips[index] = now - then
        then = now
    cpu = process_time() - cpu
    _check_echo(job, total)
    return Timed((then - start) / 1e9, trips, cpu)


async def _time_feed_async(job: Feed, recv: Callable[[], Awaitable[Sized]], send: _AsyncSend) -> float:
    total = 0
    message = None
    start = perf_counter()
    if job.json:
        await send(START)
    for _ in range(job.count):
        message = await recv()
        total += len(message)
    elapsed = perf_counter() - start
    _check_feed(job, total, message)
    return elapsed


async def _time_echo_async(job: Echo, send: _AsyncSend, recv: Callable[[], Awaitable[Sized]]) -> Timed:
    payload = job.payload
    trips = [0] * job.count
    total = 0
    cpu = process_time()
    start = then = perf_counter_ns()
    for index in range(job.count):
        await send(payload)
        total += len(await recv())
        now = perf_counter_ns()
        trips[index] = now - then
        then = now
    cpu = process_time() - cpu
    _check_echo(job, total)
    return Timed((then - start) / 1e9, trips, cpu)


# wsfast ------------------------------------------------------------------------------


def _wsfast_options(job: Feed | Echo) -> dict[str, Any]:
    return {
        "max_message_size": None,
        "compression": "deflate" if job.deflate else None,
        "ssl": job.ssl_context,
    }


def wsfast_feed(job: Feed) -> float:
    from wsfast.client import connect

    with connect(job.url, **_wsfast_options(job)) as ws:
        return _time_feed(job, ws.recv, ws.send)


def wsfast_many_feed(job: Feed) -> float:
    from wsfast.client import connect

    with connect(job.url, **_wsfast_options(job)) as ws:
        recv_many = ws.recv_many
        received = total = 0
        batch: list[str | bytes] = []
        start = perf_counter()
        if job.json:
            ws.send(START)
        while received < job.count:
            batch = recv_many()
            received += len(batch)
            total += sum(map(len, batch))
        elapsed = perf_counter() - start
    _check(received, job.count, "messages")
    _check_feed(job, total, batch[-1])
    return elapsed


def wsfast_echo(job: Echo) -> Timed:
    from wsfast.client import connect

    with connect(job.url, **_wsfast_options(job)) as ws:
        return _time_echo(job, ws.send, ws.recv)


async def wsfast_asyncio_feed(job: Feed) -> float:
    from wsfast.asyncio import connect

    async with connect(job.url, **_wsfast_options(job)) as ws:
        return await _time_feed_async(job, ws.recv, ws.send)


async def wsfast_asyncio_echo(job: Echo) -> Timed:
    from wsfast.asyncio import connect

    async with connect(job.url, **_wsfast_options(job)) as ws:
        return await _time_echo_async(job, ws.send, ws.recv)


async def wsfast_callback_feed(job: Feed) -> float:
    from wsfast.asyncio import connect

    count = job.count  # a local: the callback runs once per message
    done: asyncio.Future[tuple[float, str | bytes]] = asyncio.get_running_loop().create_future()
    received = total = 0
    first = float("inf")

    def on_message(ws: AsyncioClient, message: str | bytes) -> None:
        nonlocal received, total, first
        if not received:
            first = perf_counter()  # a binary feed may start before connect() returns
        received += 1
        total += len(message)
        if received == count:
            done.set_result((perf_counter(), message))

    async with connect(job.url, on_message=on_message, **_wsfast_options(job)) as ws:
        start = perf_counter()
        if job.json:
            ws.send_nowait(START)
        end, last = await done
    _check_feed(job, total, last)
    return end - min(start, first)


async def wsfast_callback_echo(job: Echo) -> Timed:
    from wsfast.asyncio import connect

    payload, count = job.payload, job.count
    done: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()
    trips = [0] * count
    received = total = sent = 0

    def on_message(ws: AsyncioClient, message: str | bytes) -> None:
        nonlocal received, total, sent
        now = perf_counter_ns()
        trips[received] = now - sent
        received += 1
        total += len(message)
        if received == count:
            done.set_result((now, process_time()))
        else:
            sent = now
            ws.send_nowait(payload)

    async with connect(job.url, on_message=on_message, **_wsfast_options(job)) as ws:
        cpu = process_time()
        start = sent = perf_counter_ns()
        ws.send_nowait(payload)
        end, cpu_end = await done
    _check_echo(job, total)
    return Timed((end - start) / 1e9, trips, cpu_end - cpu)


# websockets ---------------------------------------------------------------------------


def _websockets_options(job: Feed | Echo) -> dict[str, Any]:
    return {
        "max_size": None,
        "compression": "deflate" if job.deflate else None,
        "ssl": job.ssl_context,
    }


def websockets_sync_feed(job: Feed) -> float:
    from websockets.sync.client import connect

    with connect(job.url, **_websockets_options(job)) as ws:
        return _time_feed(job, ws.recv, ws.send)


def websockets_sync_echo(job: Echo) -> Timed:
    from websockets.sync.client import connect

    with connect(job.url, **_websockets_options(job)) as ws:
        return _time_echo(job, ws.send, ws.recv)


async def websockets_asyncio_feed(job: Feed) -> float:
    from websockets.asyncio.client import connect

    async with connect(job.url, **_websockets_options(job)) as ws:
        return await _time_feed_async(job, ws.recv, ws.send)


async def websockets_asyncio_echo(job: Echo) -> Timed:
    from websockets.asyncio.client import connect

    async with connect(job.url, **_websockets_options(job)) as ws:
        return await _time_echo_async(job, ws.send, ws.recv)


# websocket-client (no permessage-deflate) ---------------------------------------------


def _websocket_client_connect(job: Feed | Echo) -> websocket.WebSocket:
    import websocket

    options: dict[str, Any] = {"sslopt": {"context": job.ssl_context}} if job.ssl_context else {}
    return websocket.create_connection(job.url, **options)


def websocket_client_feed(job: Feed) -> float:
    ws = _websocket_client_connect(job)
    try:
        return _time_feed(job, ws.recv, ws.send)
    finally:
        ws.close()


def websocket_client_echo(job: Echo) -> Timed:
    ws = _websocket_client_connect(job)
    try:
        send = ws.send if isinstance(job.payload, str) else ws.send_binary
        return _time_echo(job, send, ws.recv)
    finally:
        ws.close()


# aiohttp ------------------------------------------------------------------------------


def _aiohttp_connect(session: aiohttp.ClientSession, job: Feed | Echo) -> _WSRequestContextManager:
    return session.ws_connect(
        job.url,
        max_msg_size=0,
        compress=15 if job.deflate else 0,
        ssl=job.ssl_context or True,  # True: aiohttp's default checks
    )


async def aiohttp_feed(job: Feed) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as session, _aiohttp_connect(session, job) as ws:
        receive = ws.receive
        total = 0
        data = None
        start = perf_counter()
        if job.json:
            await ws.send_str(START)
        for _ in range(job.count):
            data = (await receive()).data
            total += len(data)
        elapsed = perf_counter() - start
    _check_feed(job, total, data)
    return elapsed


async def aiohttp_echo(job: Echo) -> Timed:
    import aiohttp

    payload = job.payload
    trips = [0] * job.count
    async with aiohttp.ClientSession() as session, _aiohttp_connect(session, job) as ws:
        send: _AsyncSend = ws.send_str if isinstance(payload, str) else ws.send_bytes
        receive = ws.receive
        total = 0
        cpu = process_time()
        start = then = perf_counter_ns()
        for index in range(job.count):
            await send(payload)
            total += len((await receive()).data)
            now = perf_counter_ns()
            trips[index] = now - then
            then = now
        cpu = process_time() - cpu
    _check_echo(job, total)
    return Timed((then - start) / 1e9, trips, cpu)


# picows (callbacks; no permessage-deflate) ---------------------------------------------


async def picows_feed(job: Feed) -> float:
    import picows

    count, text = job.count, job.json  # locals: the callback runs once per message
    wanted = picows.WSMsgType.TEXT if text else picows.WSMsgType.BINARY
    done: asyncio.Future[tuple[float, str | bytes]] = asyncio.get_running_loop().create_future()

    class Listener(picows.WSListener):
        received = 0
        total = 0

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type != wanted:
                return
            self.received += 1
            # Text as str, what a JSON consumer needs; binary as a zero-copy view,
            # picows's own way to read a frame.
            message: str | memoryview
            if text:
                message = frame.get_payload_as_utf8_text()
            else:
                message = frame.get_payload_as_memoryview()
            self.total += len(message)
            if self.received == count:
                done.set_result((perf_counter(), message if isinstance(message, str) else bytes(message)))

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            if not done.done():
                done.set_exception(Mismatch("disconnected before the last message"))

    transport, listener = await picows.ws_connect(
        Listener, job.url, ssl_context=job.ssl_context, max_frame_size=1 << 30
    )
    assert isinstance(listener, Listener)
    start = perf_counter()
    if job.json:
        transport.send(picows.WSMsgType.TEXT, START)
    end, last = await done
    await _picows_close(transport)
    _check(listener.received, job.count, "messages")
    _check_feed(job, listener.total, last)
    return end - start


async def picows_echo(job: Echo) -> Timed:
    import picows

    payload, count = job.payload, job.count
    text = isinstance(payload, str)
    kind = picows.WSMsgType.TEXT if text else picows.WSMsgType.BINARY
    done: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()
    trips = [0] * count
    sent = 0

    class Listener(picows.WSListener):
        received = 0
        total = 0

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            nonlocal sent
            if frame.msg_type != kind:
                return
            now = perf_counter_ns()
            trips[self.received] = now - sent
            self.received += 1
            if text:
                self.total += len(frame.get_payload_as_utf8_text())
            else:
                self.total += len(frame.get_payload_as_memoryview())
            if self.received == count:
                done.set_result((now, process_time()))
            else:
                sent = now
                transport.send(kind, payload)

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            if not done.done():
                done.set_exception(Mismatch("disconnected before the last message"))

    transport, listener = await picows.ws_connect(
        Listener, job.url, ssl_context=job.ssl_context, max_frame_size=1 << 30
    )
    assert isinstance(listener, Listener)
    cpu = process_time()
    start = sent = perf_counter_ns()
    transport.send(kind, payload)
    end, cpu_end = await done
    await _picows_close(transport)
    _check_echo(job, listener.total)
    return Timed((end - start) / 1e9, trips, cpu_end - cpu)


async def _picows_close(transport: picows.WSTransport) -> None:
    transport.send_close()
    transport.disconnect()
    await transport.wait_disconnected()


# The floors ---------------------------------------------------------------------------


def raw_feed(job: Feed) -> float:
    """Read the bytes of the feed over the same TCP or TLS, with no WebSocket work at all.

    The server's ``/raw/...`` path answers with every frame its WebSocket feed carries.
    """
    uri = urllib.parse.urlsplit(job.url)
    request = f"GET /raw{uri.path} HTTP/1.1\r\nHost: {uri.netloc}\r\n\r\n".encode()
    assert uri.port is not None  # the server's URL
    sock = socket.create_connection((uri.hostname, uri.port), timeout=_FLOOR_TIMEOUT)
    if job.ssl_context is not None:
        sock = job.ssl_context.wrap_socket(sock, server_hostname=uri.hostname)
    with sock:
        view = memoryview(bytearray(1 << 20))  # reused by every read; as large as wsfast reads
        recv_into = sock.recv_into
        start = perf_counter()
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:  # the head comes with the first bytes of the body
            head += view[: _read_some(recv_into, view)]
        head, _, body = head.partition(b"\r\n\r\n")
        length = _content_length(head)
        received = len(body)
        while received < length:
            received += _read_some(recv_into, view)
        elapsed = perf_counter() - start
    _check(received, length, "bytes")
    return elapsed


def _read_some(recv_into: Callable[[memoryview], int], view: memoryview) -> int:
    n = recv_into(view)
    if not n:
        raise Mismatch("the server closed the connection before the end of the feed")
    return n


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise Mismatch(f"no Content-Length in {head!r}")


def zlib_feed(job: Feed) -> float:
    """Decompress the feed's payloads as a receiver must (trailer appended), with no I/O."""
    from .ticks import TRAILER, deflate_payloads, ticks

    payloads = deflate_payloads(ticks(job.count))
    decompress = zlib.decompressobj(-15).decompress
    total = 0
    start = perf_counter()
    for payload in payloads:
        total += len(decompress(payload + TRAILER))
    elapsed = perf_counter() - start
    _check(total, job.total, "bytes")
    return elapsed


# The table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contestant:
    """One contestant's jobs (None: it sits out that kind of case), as blocking calls.

    The jobs of the ``fanout`` cases (one echo over many connections, see
    :mod:`wsfast.bench.fanout`) and of the ``latency`` cases (see
    :mod:`wsfast.bench.latency`) are added to the contestants those modules name.
    """

    feed: Callable[[Feed], float] | None
    echo: Callable[[Echo], Timed] | None = None
    deflate: bool = True  # negotiates permessage-deflate when a case asks for it
    needs: frozenset[str] = frozenset()  # what a case must have for it to take part: json, tls, deflate, decoded
    # What a case must not have for it to take part: by default the decoded case, whose
    # contestants (wsfast.bench.decoded) decode every message.
    avoids: frozenset[str] = frozenset({"decoded"})
    floor: bool = False  # a limit to measure the clients against, not a peer
    fanout: Callable[[Echo], Timed] | None = None
    latency: Callable[[Ticks], Timed] | None = None


def _on_loop(
    coroutine_function: Callable[[_Job], Coroutine[Any, Any, _Outcome]], uvloop: bool
) -> Callable[[_Job], _Outcome]:
    """A blocking call that runs ``coroutine_function(job)`` on a fresh event loop."""

    def run(job: _Job) -> _Outcome:
        if uvloop:
            import uvloop as module  # ImportError: the runner reports a skip

            outcome: _Outcome = module.run(coroutine_function(job))
            return outcome
        return asyncio.run(coroutine_function(job))

    return run


def on_both_loops(
    name: str, coroutine_function: Callable[[_Job], Coroutine[Any, Any, _Outcome]]
) -> dict[str, Callable[[_Job], _Outcome]]:
    """Blocking calls of ``coroutine_function``: ``name`` on asyncio's event loop and
    ``name-uvloop`` on uvloop's."""
    return {name: _on_loop(coroutine_function, False), f"{name}-uvloop": _on_loop(coroutine_function, True)}


def _asyncio_pair(
    name: str,
    feed: Callable[[Feed], Coroutine[Any, Any, float]],
    echo: Callable[[Echo], Coroutine[Any, Any, Timed]],
    *,
    deflate: bool = True,
) -> dict[str, Contestant]:
    """``name`` on asyncio's event loop and ``name-uvloop`` on uvloop's."""
    return {
        name: Contestant(_on_loop(feed, False), _on_loop(echo, False), deflate=deflate),
        f"{name}-uvloop": Contestant(_on_loop(feed, True), _on_loop(echo, True), deflate=deflate),
    }


def _wsfast_twin(prefix: str) -> dict[str, Contestant]:
    # The twins differ only in WSFAST_NO_EXTENSIONS, set by the runner from the name.
    return {
        prefix: Contestant(wsfast_feed, wsfast_echo),
        f"{prefix}-many": Contestant(wsfast_many_feed),
        **_asyncio_pair(f"{prefix}-asyncio", wsfast_asyncio_feed, wsfast_asyncio_echo),
        **_asyncio_pair(f"{prefix}-callback", wsfast_callback_feed, wsfast_callback_echo),
    }


# "-many" receives with recv_many(): every message parsed from one read at once;
# "-callback" is the asyncio client with on_message, the style picows is measured in.
CLIENTS: dict[str, Contestant] = {
    **_wsfast_twin("wsfast-c"),
    **_wsfast_twin("wsfast-python"),
    **_asyncio_pair("picows", picows_feed, picows_echo, deflate=False),
    **_asyncio_pair("aiohttp", aiohttp_feed, aiohttp_echo),
    **_asyncio_pair("websockets-asyncio", websockets_asyncio_feed, websockets_asyncio_echo),
    "websockets-sync": Contestant(websockets_sync_feed, websockets_sync_echo),
    "websocket-client": Contestant(websocket_client_feed, websocket_client_echo, deflate=False),
    "raw-tcp": Contestant(raw_feed, avoids=frozenset({"json", "tls", "deflate"}), floor=True),
    # The wire's limit in the decoded case too, where the decoders alone are the floors.
    "raw-tls": Contestant(raw_feed, needs=frozenset({"json", "tls"}), avoids=frozenset(), floor=True),
    "zlib": Contestant(zlib_feed, needs=frozenset({"json", "deflate"}), floor=True),
}
