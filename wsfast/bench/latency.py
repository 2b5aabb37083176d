"""The tick-latency contestants, and the floors of the echo and tick-latency cases.

In a tick-latency case the server sends ``count`` binary ticks of ``size`` bytes at a
fixed rate, open loop (see ``/ticks-at`` in :mod:`wsfast.bench.server`), each stamped
with :func:`time.monotonic_ns` as it is sent: its first 8 bytes, little-endian, then a
sequence number. Server and client run on one machine and ``monotonic_ns`` reads the
same clock in both (``CLOCK_MONOTONIC`` on Linux), so a client that reads the clock as
its own code gets a tick, and subtracts the stamp, has that tick's delay: from the
server's send() to the client's handler, through the kernel, the event loop and the
library. Every client starts the feed with a start signal once connected, like the
ticks feed, and returns a :class:`~wsfast.bench.clients.Timed` whose samples are the
delays, in nanoseconds, in arrival order.

The floors read the same bytes with a bare socket and no library: ``raw-echo`` sends a
frame built once and reads the echoed frame back; ``raw-ticks`` parses the ticks' frames
by hand. Each does the WebSocket handshake with :class:`wsfast.handshake.ClientHandshake`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import urllib.parse
from dataclasses import dataclass
from time import monotonic_ns, perf_counter_ns, process_time
from typing import TYPE_CHECKING, Any

from .clients import (
    START,
    Contestant,
    Echo,
    Mismatch,
    Timed,
    _aiohttp_connect,
    _check,
    _picows_close,
    _websockets_options,
    _wsfast_options,
    on_both_loops,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import picows

    from wsfast.asyncio import Client as AsyncioClient

# The stamp at the start of every tick: monotonic_ns() when the server sent it.
STAMP = struct.Struct("<q")
LATE_NS = 1_000_000  # a tick later than this is counted as late
_FLOOR_TIMEOUT = 30.0  # seconds a floor waits for the server's next bytes
_FLOOR_AVOIDS = frozenset({"json", "deflate", "decoded"})


@dataclass(frozen=True)
class Ticks:
    """Receive ``count`` stamped binary ticks of ``size`` bytes from ``url``, timing each."""

    url: str
    count: int
    size: int
    ssl_context: ssl.SSLContext | None = None


def _check_ticks(job: Ticks, received: int, total: int) -> None:
    _check(received, job.count, "ticks")
    _check(total, job.count * job.size, "bytes")


# The clients --------------------------------------------------------------------------
# Each reads the clock, then the stamp, as its code gets each tick: the delay a handler
# of that library would see.


def _time_ticks(job: Ticks, recv: Callable[[], Any], send: Callable[[str], object]) -> Timed:
    delays = [0] * job.count  # allocated before the clock starts
    stamp, clock = STAMP.unpack_from, monotonic_ns
    total = 0
    cpu = process_time()
    start = perf_counter_ns()
    send(START)
    for index in range(job.count):
        message = recv()
        delays[index] = clock() - stamp(message)[0]
        total += len(message)
    end = perf_counter_ns()
    cpu = process_time() - cpu
    _check_ticks(job, job.count, total)
    return Timed((end - start) / 1e9, delays, cpu)


async def _time_ticks_async(
    job: Ticks, recv: Callable[[], Awaitable[Any]], send: Callable[[str], Awaitable[object]]
) -> Timed:
    delays = [0] * job.count
    stamp, clock = STAMP.unpack_from, monotonic_ns
    total = 0
    cpu = process_time()
    start = perf_counter_ns()
    await send(START)
    for index in range(job.count):
        message = await recv()
        delays[index] = clock() - stamp(message)[0]
        total += len(message)
    end = perf_counter_ns()
    cpu = process_time() - cpu
    _check_ticks(job, job.count, total)
    return Timed((end - start) / 1e9, delays, cpu)


def wsfast_ticks(job: Ticks) -> Timed:
    from wsfast.client import connect

    with connect(job.url, **_wsfast_options(_as_echo(job))) as ws:
        return _time_ticks(job, ws.recv, ws.send)


def wsfast_many_ticks(job: Ticks) -> Timed:
    """recv_many(): each message of the list is timed when the loop over it gets there."""
    from wsfast.client import connect

    with connect(job.url, **_wsfast_options(_as_echo(job))) as ws:
        recv_many = ws.recv_many
        delays = [0] * job.count
        stamp, clock = STAMP.unpack_from, monotonic_ns
        received = total = 0
        cpu = process_time()
        start = perf_counter_ns()
        ws.send(START)
        while received < job.count:
            for message in recv_many():
                delays[received] = clock() - stamp(message)[0]
                received += 1
                total += len(message)
        end = perf_counter_ns()
        cpu = process_time() - cpu
    _check_ticks(job, received, total)
    return Timed((end - start) / 1e9, delays, cpu)


def wsfast_batch_ticks(job: Ticks) -> Timed:
    """recv_batch(): each message of the batch is timed as its stamp is read from the
    batch's buffer, with no object per message."""
    from wsfast.client import connect

    with connect(job.url, **_wsfast_options(_as_echo(job))) as ws:
        recv_batch = ws.recv_batch
        delays = [0] * job.count
        stamp, clock = STAMP.unpack_from, monotonic_ns
        received = total = 0
        cpu = process_time()
        start = perf_counter_ns()
        ws.send(START)
        while received < job.count:
            batch = recv_batch()
            data, offsets = batch.data, batch.offsets
            for index in range(len(batch)):
                delays[received] = clock() - stamp(data, offsets[index])[0]
                received += 1
            total += batch.nbytes
        end = perf_counter_ns()
        cpu = process_time() - cpu
    _check_ticks(job, received, total)
    return Timed((end - start) / 1e9, delays, cpu)


async def wsfast_asyncio_ticks(job: Ticks) -> Timed:
    from wsfast.asyncio import connect

    async with connect(job.url, **_wsfast_options(_as_echo(job))) as ws:
        return await _time_ticks_async(job, ws.recv, ws.send)


async def wsfast_callback_ticks(job: Ticks) -> Timed:
    from wsfast.asyncio import connect

    count = job.count
    delays = [0] * count
    stamp, clock = STAMP.unpack_from, monotonic_ns
    done: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()
    received = total = 0

    def on_message(ws: AsyncioClient, message: str | bytes) -> None:
        nonlocal received, total
        delays[received] = clock() - stamp(message)[0]  # type: ignore[arg-type]  # binary
        received += 1
        total += len(message)
        if received == count:
            done.set_result((perf_counter_ns(), process_time()))

    async with connect(job.url, on_message=on_message, **_wsfast_options(_as_echo(job))) as ws:
        cpu = process_time()
        start = perf_counter_ns()
        ws.send_nowait(START)
        end, cpu_end = await done
    _check_ticks(job, received, total)
    return Timed((end - start) / 1e9, delays, cpu_end - cpu)


async def picows_ticks(job: Ticks) -> Timed:
    import picows

    count = job.count
    delays = [0] * count
    stamp, clock = STAMP.unpack_from, monotonic_ns
    binary = picows.WSMsgType.BINARY
    done: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()

    class Listener(picows.WSListener):
        received = 0
        total = 0

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type != binary:
                return
            payload = frame.get_payload_as_memoryview()
            delays[self.received] = clock() - stamp(payload)[0]
            self.received += 1
            self.total += len(payload)
            if self.received == count:
                done.set_result((perf_counter_ns(), process_time()))

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            if not done.done():
                done.set_exception(Mismatch("disconnected before the last tick"))

    transport, listener = await picows.ws_connect(Listener, job.url, ssl_context=job.ssl_context)
    assert isinstance(listener, Listener)
    cpu = process_time()
    start = perf_counter_ns()
    transport.send(picows.WSMsgType.TEXT, START.encode())
    end, cpu_end = await done
    await _picows_close(transport)
    _check_ticks(job, listener.received, listener.total)
    return Timed((end - start) / 1e9, delays, cpu_end - cpu)


async def aiohttp_ticks(job: Ticks) -> Timed:
    import aiohttp

    delays = [0] * job.count
    stamp, clock = STAMP.unpack_from, monotonic_ns
    async with aiohttp.ClientSession() as session, _aiohttp_connect(session, _as_echo(job)) as ws:
        receive = ws.receive
        total = 0
        cpu = process_time()
        start = perf_counter_ns()
        await ws.send_str(START)
        for index in range(job.count):
            data = (await receive()).data
            delays[index] = clock() - stamp(data)[0]
            total += len(data)
        end = perf_counter_ns()
        cpu = process_time() - cpu
    _check_ticks(job, job.count, total)
    return Timed((end - start) / 1e9, delays, cpu)


async def websockets_asyncio_ticks(job: Ticks) -> Timed:
    from websockets.asyncio.client import connect

    async with connect(job.url, **_websockets_options(_as_echo(job))) as ws:
        return await _time_ticks_async(job, ws.recv, ws.send)


def _as_echo(job: Ticks) -> Echo:
    """The connection options of ``job``, in the job type the clients' helpers take."""
    return Echo(job.url, job.count, b"", ssl_context=job.ssl_context)


# The floors ---------------------------------------------------------------------------


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A final masked frame, what a client sends (the mask drawn once, at random)."""
    import os

    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    from wsfast import mask

    key = os.urandom(4)
    return head + key + mask(payload, key)


def _raw_connect(url: str, ssl_context: ssl.SSLContext | None) -> tuple[socket.socket, bytes]:
    """A socket (TCP_NODELAY, TLS when given a context) past the WebSocket handshake, and
    the bytes that came after the server's answer."""
    from wsfast.handshake import ClientHandshake

    uri = urllib.parse.urlsplit(url)
    assert uri.hostname is not None and uri.port is not None  # the server's URL
    sock = socket.create_connection((uri.hostname, uri.port), timeout=_FLOOR_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ssl_context is not None:
        sock = ssl_context.wrap_socket(sock, server_hostname=uri.hostname)
    try:
        handshake = ClientHandshake(uri.hostname, uri.port, uri.path, secure=ssl_context is not None)
        sock.sendall(handshake.request())
        while True:
            data = sock.recv(65536)
            if not data:
                raise Mismatch("the server closed the connection during the handshake")
            if handshake.receive_data(data):
                return sock, handshake.leftover
    except BaseException:
        sock.close()
        raise


def _raw_close(sock: socket.socket) -> None:
    """Send a close frame and read until the server closes."""
    sock.sendall(_client_frame(0x8, b"\x03\xe8"))
    while sock.recv(65536):
        pass


def raw_echo(job: Echo) -> Timed:
    """The echo's floor: send a frame built once, read the echoed frame back, no library."""
    from .server import frame_header  # here: the runner starts the server as a module of its own

    data = job.payload.encode() if isinstance(job.payload, str) else job.payload
    opcode = 0x1 if isinstance(job.payload, str) else 0x2
    frame = _client_frame(opcode, data)
    expected = frame_header(opcode, len(data)) + data
    size = len(expected)
    trips = [0] * job.count
    sock, leftover = _raw_connect(job.url, job.ssl_context)
    with sock:
        if leftover:
            raise Mismatch(f"the server sent {len(leftover)} bytes before any request")
        view = memoryview(bytearray(size))
        sendall, recv_into = sock.sendall, sock.recv_into
        cpu = process_time()
        start = then = perf_counter_ns()
        for index in range(job.count):
            sendall(frame)
            got = recv_into(view)
            while got < size:
                n = recv_into(view[got:])
                if not n:
                    raise Mismatch("the server closed the connection in a round trip")
                got += n
            now = perf_counter_ns()
            trips[index] = now - then
            then = now
        cpu = process_time() - cpu
        if view != expected:
            raise Mismatch("the echoed frame differs from the frame sent")
        _raw_close(sock)
    return Timed((then - start) / 1e9, trips, cpu)


def raw_ticks(job: Ticks) -> Timed:
    """The tick-latency floor: read the ticks' frames with a bare socket, timing each tick
    as its frame is parsed."""
    if job.size >= 126:
        raise LookupError(f"the raw floor parses short frames only, not {job.size} bytes")
    delays = [0] * job.count
    stamp, clock = STAMP.unpack_from, monotonic_ns
    sock, leftover = _raw_connect(job.url, job.ssl_context)
    with sock:
        pending = bytearray(leftover)
        view = memoryview(bytearray(1 << 20))
        recv_into = sock.recv_into
        received = total = 0
        cpu = process_time()
        start = perf_counter_ns()
        sock.sendall(_client_frame(0x1, START.encode()))
        while received < job.count:
            n = recv_into(view)
            if not n:
                raise Mismatch("the server closed the connection before the last tick")
            pending += view[:n]
            position, end = 0, len(pending)
            while end - position >= 2:
                stop = position + 2 + (pending[position + 1] & 0x7F)
                if stop > end:
                    break
                if pending[position] == 0x82:  # a final binary frame: a tick
                    delays[received] = clock() - stamp(pending, position + 2)[0]
                    received += 1
                    total += stop - position - 2
                position = stop
            del pending[:position]
        end_ns = perf_counter_ns()
        cpu = process_time() - cpu
        _raw_close(sock)
    _check_ticks(job, received, total)
    return Timed((end_ns - start) / 1e9, delays, cpu)


# The tables ---------------------------------------------------------------------------


def _twin(prefix: str) -> dict[str, Callable[[Ticks], Timed]]:
    return {
        prefix: wsfast_ticks,
        f"{prefix}-many": wsfast_many_ticks,
        f"{prefix}-batch": wsfast_batch_ticks,
        **on_both_loops(f"{prefix}-asyncio", wsfast_asyncio_ticks),
        **on_both_loops(f"{prefix}-callback", wsfast_callback_ticks),
    }


# The tick-latency jobs of the clients' contestants, by name.
JOBS: dict[str, Callable[[Ticks], Timed]] = {
    **_twin("wsfast-c"),
    **_twin("wsfast-python"),
    **on_both_loops("picows", picows_ticks),
    **on_both_loops("aiohttp", aiohttp_ticks),
    **on_both_loops("websockets-asyncio", websockets_asyncio_ticks),
}

FLOORS = {
    "raw-echo": Contestant(None, raw_echo, avoids=_FLOOR_AVOIDS, floor=True),
    "raw-ticks": Contestant(None, latency=raw_ticks, avoids=_FLOOR_AVOIDS | {"tls"}, floor=True),
}
