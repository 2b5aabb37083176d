"""The contestants of the echo over many connections (``echo-256-100``).

Each client opens ``job.connections`` connections to the server's ``/echo-group/<n>``
path, which serves them all at once, then, on the clock, has every connection do
``job.count`` round trips with one message in flight: the styles where that is
natural in asyncio, callbacks (one handler per connection sends the next message when
the echo arrives) and tasks (one task per connection, each awaiting ``recv()``). The
blocking clients sit this case out. Every client returns a
:class:`~wsfast.bench.clients.Timed`: the time until the last connection finished, every
round trip of every connection, and the CPU the client spent, which is what limits it
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from time import perf_counter_ns, process_time
from typing import TYPE_CHECKING, Any

from .clients import (
    Echo,
    Mismatch,
    Timed,
    _aiohttp_connect,
    _check_echo,
    _picows_close,
    _time_echo_async,
    _websockets_options,
    _wsfast_options,
    on_both_loops,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence, Sized

    import picows

    from wsfast.asyncio import Client as AsyncioClient


def _per_connection(job: Echo) -> Echo:
    """The job of one connection."""
    return Echo(job.url, job.count, job.payload, job.deflate, job.ssl_context)


# Tasks: one per connection, each runs the echo loop of the single-connection clients.


async def _time_tasks(
    job: Echo, pairs: list[tuple[Callable[[Any], Awaitable[object]], Callable[[], Awaitable[Sized]]]]
) -> Timed:
    one = _per_connection(job)
    cpu = process_time()
    start = perf_counter_ns()
    runs = await asyncio.gather(*(_time_echo_async(one, send, recv) for send, recv in pairs))
    end = perf_counter_ns()
    cpu = process_time() - cpu
    return Timed((end - start) / 1e9, [trip for run in runs for trip in run.samples], cpu)


async def wsfast_asyncio_fanout(job: Echo) -> Timed:
    from wsfast.asyncio import connect

    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(stack.enter_async_context(connect(job.url, **_wsfast_options(job))) for _ in range(job.connections))
        )
        return await _time_tasks(job, [(ws.send, ws.recv) for ws in clients])


async def websockets_asyncio_fanout(job: Echo) -> Timed:
    from websockets.asyncio.client import connect

    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(stack.enter_async_context(connect(job.url, **_websockets_options(job))) for _ in range(job.connections))
        )
        return await _time_tasks(job, [(ws.send, ws.recv) for ws in clients])


async def aiohttp_fanout(job: Echo) -> Timed:
    import aiohttp

    payload = job.payload
    one = _per_connection(job)

    async def trips(ws: aiohttp.ClientWebSocketResponse[bool]) -> list[int]:
        # The loop of clients.aiohttp_echo: aiohttp's receive() returns a message object.
        send = ws.send_str if isinstance(payload, str) else ws.send_bytes
        receive = ws.receive
        times = [0] * one.count
        total = 0
        then = perf_counter_ns()
        for index in range(one.count):
            await send(payload)  # type: ignore[arg-type, unused-ignore]  # str or bytes, as the method takes
            total += len((await receive()).data)
            now = perf_counter_ns()
            times[index] = now - then
            then = now
        _check_echo(one, total)
        return times

    async with aiohttp.ClientSession() as session, contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.gather(
            *(stack.enter_async_context(_aiohttp_connect(session, job)) for _ in range(job.connections))
        )
        cpu = process_time()
        start = perf_counter_ns()
        runs = await asyncio.gather(*(trips(ws) for ws in sockets))
        end = perf_counter_ns()
        cpu = process_time() - cpu
    return Timed((end - start) / 1e9, [trip for run in runs for trip in run], cpu)


# Callbacks: each connection's message handler sends the next message.


class _Group:
    """The round trips of every connection of a callback client, and when they are done."""

    def __init__(self, job: Echo) -> None:
        self.count = job.count
        self.trips = [0] * (job.count * job.connections)
        self.total = 0
        self.running = job.connections
        self.done: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()

    def relay(self, index: int) -> _Relay:
        return _Relay(self, index * self.count)


class _Relay:
    """One connection of a :class:`_Group`: :meth:`echoed` says whether to send again."""

    __slots__ = ("group", "last", "position", "sent", "trips")

    def __init__(self, group: _Group, first: int) -> None:
        self.group = group
        self.trips = group.trips
        self.position = first
        self.last = first + group.count - 1
        self.sent = 0

    def echoed(self, length: int) -> bool:
        now = perf_counter_ns()
        position = self.position
        self.trips[position] = now - self.sent
        group = self.group
        group.total += length
        if position < self.last:
            self.position = position + 1
            self.sent = now
            return True
        group.running -= 1
        if not group.running:
            group.done.set_result((now, process_time()))
        return False


async def _run_group(group: _Group, relays: list[_Relay], sends: Sequence[Callable[[], object]], job: Echo) -> Timed:
    """Start every connection's first round trip; wait for the last one's end."""
    cpu = process_time()
    start = perf_counter_ns()
    for relay, send in zip(relays, sends, strict=True):
        relay.sent = perf_counter_ns()
        send()
    end, cpu_end = await group.done
    _check(group, job)
    return Timed((end - start) / 1e9, group.trips, cpu_end - cpu)


def _check(group: _Group, job: Echo) -> None:
    if group.total != job.count * job.connections * len(job.payload):
        raise Mismatch(f"received {group.total} bytes, expected {job.count * job.connections * len(job.payload)}")


async def wsfast_callback_fanout(job: Echo) -> Timed:
    from wsfast.asyncio import connect

    payload = job.payload
    group = _Group(job)
    relays = [group.relay(index) for index in range(job.connections)]

    def handler(relay: _Relay) -> Callable[[AsyncioClient, str | bytes], None]:
        echoed = relay.echoed

        def on_message(ws: AsyncioClient, message: str | bytes) -> None:
            if echoed(len(message)):
                ws.send_nowait(payload)

        return on_message

    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(
                stack.enter_async_context(connect(job.url, on_message=handler(relay), **_wsfast_options(job)))
                for relay in relays
            )
        )
        sends = [functools.partial(ws.send_nowait, payload) for ws in clients]
        return await _run_group(group, relays, sends, job)


async def picows_fanout(job: Echo) -> Timed:
    import picows

    payload = job.payload
    kind = picows.WSMsgType.TEXT if isinstance(payload, str) else picows.WSMsgType.BINARY
    group = _Group(job)

    class Listener(picows.WSListener):
        def __init__(self, relay: _Relay) -> None:
            super().__init__()
            self.echoed = relay.echoed

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == kind and self.echoed(len(frame.get_payload_as_memoryview())):
                transport.send(kind, payload)

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            if not group.done.done():
                group.done.set_exception(Mismatch("disconnected before the last round trip"))

    relays = [group.relay(index) for index in range(job.connections)]
    connected = await asyncio.gather(
        *(
            picows.ws_connect(lambda relay=relay: Listener(relay), job.url, ssl_context=job.ssl_context)
            for relay in relays
        ),
        return_exceptions=True,
    )
    transports = [c[0] for c in connected if not isinstance(c, BaseException)]
    try:
        failed = next((c for c in connected if isinstance(c, BaseException)), None)
        if failed is not None:
            raise failed
        sends = [functools.partial(transport.send, kind, payload) for transport in transports]
        return await _run_group(group, relays, sends, job)
    finally:
        await asyncio.gather(*map(_picows_close, transports))


def _twin(prefix: str) -> dict[str, Callable[[Echo], Timed]]:
    return {
        **on_both_loops(f"{prefix}-asyncio", wsfast_asyncio_fanout),
        **on_both_loops(f"{prefix}-callback", wsfast_callback_fanout),
    }


# The many-connection echo jobs of the clients' contestants, by name.
JOBS: dict[str, Callable[[Echo], Timed]] = {
    **_twin("wsfast-c"),
    **_twin("wsfast-python"),
    **on_both_loops("picows", picows_fanout),
    **on_both_loops("aiohttp", aiohttp_fanout),
    **on_both_loops("websockets-asyncio", websockets_asyncio_fanout),
}
