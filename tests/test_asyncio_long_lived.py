"""Connections that live for days, asyncio layer: keepalive, send timeouts, backpressure on
automatic replies, closing while a send is stuck, and reconnection. Every peer here is
hostile in one way (raw sockets on 127.0.0.1, in threads), and every wait is bounded."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time

import pytest

import netns
from peers import TIMEOUT, RawServer, accept_response, elapsed, frame, read_request, silent, stop_reading
from wsfast.asyncio import connect, serve
from wsfast.enums import Opcode
from wsfast.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HTTPProxyError,
    InvalidStatus,
    ProxyError,
    SOCKSProxyError,
)
from wsfast.protocol import State
from wsfast.reconnect import Backoff, is_retryable

pytestmark = pytest.mark.usefixtures("no_hang")

BIG = bytes(8 * 1024 * 1024)  # more than any socket buffer takes
FAST = Backoff(initial=0.01, factor=2, maximum=0.05)


def run(coro, timeout=20):
    """Run a test coroutine in a fresh event loop, failing it after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def rss() -> int:
    """This process's resident memory in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


# Keepalive -----------------------------------------------------------------------------------


def test_keepalive_measures_latency_without_anyone_receiving(codec):
    async def main():
        async with serve(codec=codec) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with connect(url, ping_interval=0.1, ping_timeout=2, codec=codec) as ws:
                assert ws.latency is None
                await asyncio.sleep(0.5)  # nobody receives: the event loop pings
                assert isinstance(ws.latency, float) and 0 <= ws.latency < 1
                await ws.send("still open")
                assert await ws.recv(timeout=TIMEOUT) == "still open"

    run(main())


def test_peer_that_never_answers_fails_with_1011(codec):
    async def main():
        with RawServer(silent) as server:
            ws = await connect(server.url, ping_interval=0.1, ping_timeout=0.3, codec=codec)
            start = time.monotonic()
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv(timeout=TIMEOUT)
            assert elapsed(start) < 2
            assert info.value.code == 1006 and info.value.sent_code == 1011
            assert ws.state is State.CLOSED
            await asyncio.wait_for(ws.wait_closed(), 1)
            with pytest.raises(ConnectionClosedError):
                async for _ in ws:
                    pass

    run(main())


def test_keepalive_fails_a_silent_peer_even_with_on_message():
    async def main():
        with RawServer(silent) as server:
            ws = await connect(server.url, ping_interval=0.1, ping_timeout=0.3, on_message=lambda ws, m: None)
            await asyncio.wait_for(ws.wait_closed(), 2)
            assert ws.close_code == 1006 and ws._conn.close_sent_code == 1011

    run(main())


def test_keepalive_off():
    async def main():
        with RawServer(silent) as server:
            async with connect(server.url, ping_interval=None, close_timeout=0.2) as ws:
                with pytest.raises(TimeoutError):
                    await ws.recv(timeout=0.5)
                assert ws.state is State.OPEN and ws.latency is None

    run(main())


def test_keepalive_finds_a_silently_dead_peer(codec):
    """The link goes down: no FIN, no reset, nothing. Keepalive notices within its bounds."""

    async def main(url):
        async with connect(url, ping_interval=0.2, ping_timeout=0.5, close_timeout=0.5, codec=codec) as ws:
            await ws.send("alive")
            assert await ws.recv(timeout=TIMEOUT) == "alive"
            link.cut()
            start = time.monotonic()
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv(timeout=TIMEOUT)
            assert elapsed(start) < 0.2 + 0.5 + 0.5
            assert info.value.sent_code == 1011

    with netns.isolated_link() as link, netns.echo_server_in(link, "--asyncio") as url:
        run(main(url))


def test_data_keeps_a_connection_alive_even_without_pongs():
    """A peer busy sending (its pong stuck behind its messages) is not dropped."""

    def chatty(peer):
        for _ in range(30):
            peer.sendall(frame(Opcode.TEXT, b"tick"))
            time.sleep(0.05)
        silent(peer)

    async def main():
        with RawServer(chatty) as server:
            async with connect(server.url, ping_interval=0.05, ping_timeout=0.3, close_timeout=0.3) as ws:
                for _ in range(30):
                    assert await ws.recv(timeout=TIMEOUT) == "tick"
                with pytest.raises(ConnectionClosedError):
                    await ws.recv(timeout=TIMEOUT)  # then the silence is noticed

    run(main())


def test_keepalive_waits_while_reading_is_paused_for_a_slow_consumer():
    """Reading pauses when the application lags behind a feed; the pong then waits behind
    unread messages, which is no reason to drop a busy peer."""

    def feed(peer):
        message = frame(Opcode.BINARY, bytes(60_000))
        peer.sock.settimeout(10)
        try:
            while True:
                peer.sendall(message)
        except OSError:
            pass

    async def main():
        with RawServer(feed) as server:
            async with connect(
                server.url, max_queued_bytes=100_000, ping_interval=0.05, ping_timeout=0.2, close_timeout=0.2
            ) as ws:
                await asyncio.sleep(0.6)  # the application takes nothing meanwhile
                assert ws._reading_paused and ws.state is State.OPEN
                assert len(await ws.recv(timeout=TIMEOUT)) == 60_000

    run(main())


# Sending to a peer that stops reading --------------------------------------------------------


def test_send_timeout_drops_a_peer_that_stops_reading(codec):
    async def main():
        with RawServer(stop_reading) as server:
            async with connect(server.url, compression=None, codec=codec) as ws:
                start = time.monotonic()
                with pytest.raises(TimeoutError):
                    for _ in range(10):  # the first may fit in the socket buffers
                        await ws.send(BIG, timeout=0.3)
                assert 0.3 <= elapsed(start) < 2
                assert ws.state is State.CLOSED
                with pytest.raises(ConnectionClosedError):
                    await ws.send("after")

    run(main())


def test_send_timeout_option():
    async def main():
        with RawServer(stop_reading) as server:
            async with connect(server.url, compression=None, send_timeout=0.2) as ws:
                with pytest.raises(TimeoutError):
                    for _ in range(10):
                        await ws.send(BIG)

    run(main())


def test_cancelled_send_with_a_timeout_keeps_the_connection():
    async def main():
        with RawServer(stop_reading) as server:
            async with connect(server.url, compression=None, send_timeout=30, close_timeout=0.2) as ws:
                task = asyncio.create_task(ws.send(BIG))
                while not ws._writing_paused:
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert ws.state is State.OPEN  # the whole frame is in the transport

    run(main())


def test_close_returns_while_another_task_is_stuck_sending():
    async def main():
        with RawServer(stop_reading) as server:
            ws = await connect(server.url, compression=None, send_timeout=None, close_timeout=0.5)

            async def send_forever():
                while True:
                    await ws.send(BIG)

            sender = asyncio.create_task(send_forever())
            receiver = asyncio.create_task(ws.recv(timeout=1))
            while not ws._writing_paused:
                await asyncio.sleep(0.01)
            start = time.monotonic()
            await ws.close()
            assert elapsed(start) < 1.5  # close_timeout, whatever the stuck sender does
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(sender, 1)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(receiver, 1)
            assert ws.state is State.CLOSED

    run(main())


def test_close_returns_within_close_timeout_when_the_peer_reads_nothing():
    async def main():
        with RawServer(stop_reading) as server:
            ws = await connect(server.url, close_timeout=0.3)
            start = time.monotonic()
            await ws.close()
            assert elapsed(start) < 1.5
            assert ws.state is State.CLOSED

    run(main())


# Ping floods ---------------------------------------------------------------------------------


def test_ping_flood_from_a_peer_that_never_reads_stays_bounded(codec):
    """The pongs of a flood the peer never reads cannot pile up: while the transport's
    buffer is full, only the latest few wait in the Connection."""
    ping = frame(Opcode.PING, b"p" * 125) * 1000  # 127 KB a batch
    flooded = threading.Event()
    timed = threading.Event()

    def flood(peer):
        peer.sock.settimeout(10)
        try:
            for _ in range(400):  # 50 MB of pings
                peer.sendall(ping)
        except OSError:
            pass
        flooded.set()
        timed.wait(TIMEOUT)  # no message before the client's recv(timeout) timed out
        peer.sendall(frame(Opcode.TEXT, b"done"))
        stop_reading(peer)

    async def main():
        with RawServer(flood) as server:
            ws = await connect(server.url, codec=codec, compression=None, close_timeout=0.5)
            ws.send_nowait(BIG)  # more than the socket takes: the transport's buffer is full
            assert ws._writing_paused
            base = ws._transport.get_write_buffer_size()
            before = rss()
            largest = 0
            start = time.monotonic()

            async def watch():
                nonlocal largest
                while True:
                    waiting = ws._transport.get_write_buffer_size() - base + len(ws._conn._pongs) * 127
                    largest = max(largest, waiting)
                    await asyncio.sleep(0.001)

            watcher = asyncio.create_task(watch())
            # recv(timeout) keeps its timeout under the flood, give or take the work of the
            # read under way (seconds on a loaded machine): the flood does not hold it up.
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await ws.recv(timeout=0.2)
            assert elapsed(started) < 5
            timed.set()
            while True:
                try:
                    message = await ws.recv(timeout=4)
                except TimeoutError:
                    pytest.fail("recv(timeout) stalled under the ping flood")
                if message == "done":
                    break
            watcher.cancel()
            assert elapsed(start) < 30
            assert flooded.is_set()
            assert ws._writing_paused  # the peer reads nothing: the buffer stayed full
            assert largest <= 16 * 127  # the latest pongs, waiting in the Connection
            assert rss() - before < 30_000_000  # 50 MB of pongs would not fit
            await ws.close()

    run(main(), timeout=40)


def test_pings_from_the_application_do_not_pile_up_while_the_peer_reads_nothing():
    async def main():
        with RawServer(stop_reading) as server:
            async with connect(server.url, compression=None, close_timeout=0.2) as ws:
                ws.send_nowait(BIG)  # fills the socket buffers and the transport's
                assert ws._writing_paused
                size = ws._transport.get_write_buffer_size()
                first = ws.ping(b"1")
                assert all(ws.ping(str(n)) is first for n in range(1000))
                for _ in range(1000):
                    ws.pong(b"heartbeat")
                assert ws._transport.get_write_buffer_size() - size < 200
                assert len(ws._pings) == 1
                with pytest.raises(ValueError):
                    ws.ping(b"x" * 126)

    run(main())


# Reconnecting --------------------------------------------------------------------------------


def closing_with(code: int, times: int):
    """A handler that closes each connection at once with ``code``, ``times`` times, then
    closes normally."""
    seen = []

    async def handler(ws):
        seen.append(ws.path)
        await ws.close(code if len(seen) <= times else 1000)

    return handler, seen


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013])
def test_reconnecting_after_a_close_that_invites_it(code):
    handler, seen = closing_with(code, 2)

    async def main():
        async with serve(handler) as server:
            codes = []
            async for ws in connect(f"ws://127.0.0.1:{server.port}/feed", backoff=FAST):
                try:
                    await ws.recv(timeout=TIMEOUT)
                except ConnectionClosed as exc:
                    codes.append(exc.code)
            assert codes == [code, code, 1000]  # ended by the normal close
            assert seen == ["/feed"] * 3

    run(main())


def test_reconnecting_ends_when_async_for_ends_normally():
    handler, seen = closing_with(1001, 1)

    async def main():
        async with serve(handler) as server:
            received = []
            async for ws in connect(f"ws://127.0.0.1:{server.port}/", backoff=FAST):
                received += [message async for message in ws]  # ends quietly on 1001 and 1000
            assert len(seen) == 2 and received == []

    run(main())


def test_reconnecting_raises_for_other_close_codes():
    handler, _ = closing_with(1008, 5)

    async def main():
        async with serve(handler) as server:
            loop = connect(f"ws://127.0.0.1:{server.port}/", backoff=FAST).__aiter__()
            ws = await loop.__anext__()
            with pytest.raises(ConnectionClosedError):
                await ws.recv(timeout=TIMEOUT)
            with pytest.raises(ConnectionClosedError) as info:
                await loop.__anext__()
            assert info.value.code == 1008

    run(main())


def test_reconnecting_when_the_body_moves_on_while_open():
    async def main():
        async with serve() as server:
            loop = connect(f"ws://127.0.0.1:{server.port}/", backoff=FAST).__aiter__()
            count = 0
            async for ws in loop:
                count += 1
                await ws.send("hi")
                assert await ws.recv(timeout=TIMEOUT) == "hi"
                if count == 3:
                    break
            await loop.aclose()  # what asyncio does soon after a break by itself
            assert ws.state is State.CLOSED and ws.close_code == 1000

    run(main())


def test_reconnecting_waits_for_a_server_that_is_down_then_comes_back(caplog):
    caplog.set_level(logging.INFO, logger="wsfast")

    async def main():
        probe = socket.create_server(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        servers = []

        async def start_later():
            await asyncio.sleep(0.3)
            servers.append(await serve(port=port))

        starter = asyncio.create_task(start_later())
        start = time.monotonic()
        try:
            async for ws in connect(f"ws://127.0.0.1:{port}/", backoff=Backoff(initial=0.05, maximum=0.2)):
                await ws.send("back")
                assert await ws.recv(timeout=TIMEOUT) == "back"
                await ws.close()
                break
            assert 0.3 <= elapsed(start) < TIMEOUT
        finally:
            await starter
            for server in servers:
                server.close()
                await server.wait_closed()

    run(main())
    retries = [r.getMessage() for r in caplog.records if "trying again in" in r.getMessage()]
    assert retries and all(r.levelno == logging.INFO for r in caplog.records if "trying again" in r.getMessage())


def test_reconnecting_to_a_server_restarted_on_the_same_port():
    """The server goes away (1001 to its clients), stays down a while, and a new one comes
    up on the same port: the loop carries on with it."""

    async def main():
        first = await serve()
        port = first.port
        received = []

        async def restart():
            await asyncio.sleep(0.2)
            first.close()
            await first.wait_closed()
            await asyncio.sleep(0.3)  # refused meanwhile
            return await serve(port=port)

        restarting = asyncio.create_task(restart())
        async for ws in connect(f"ws://127.0.0.1:{port}/", backoff=Backoff(initial=0.05, maximum=0.1)):
            await ws.send(f"hello {len(received)}")
            received.append(await ws.recv(timeout=TIMEOUT))
            if len(received) == 2:
                break
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv(timeout=TIMEOUT)
            assert info.value.code == 1001  # the first server went away
        second = await restarting
        assert received == ["hello 0", "hello 1"]
        await ws.close()
        second.close()
        await second.wait_closed()

    run(main())


def test_reconnecting_raises_at_once_for_a_rejected_handshake():
    def forbidden(request):
        return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"

    async def main():
        with RawServer(response=forbidden) as server:
            start = time.monotonic()
            with pytest.raises(InvalidStatus) as info:
                async for _ in connect(server.url, backoff=Backoff(initial=5, maximum=5)):
                    pass
            assert info.value.status == 403
            assert elapsed(start) < 2  # no retry, no delay

    run(main())


def test_reconnecting_retries_a_server_error():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    refused = []

    def unavailable_twice():
        with listener:
            for _ in range(2):
                sock, _ = listener.accept()
                with sock:
                    read_request(sock)
                    sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                    refused.append(503)
            sock, _ = listener.accept()
            with sock:
                sock.sendall(accept_response(read_request(sock)) + frame(Opcode.CLOSE, b"\x03\xe8"))
                sock.recv(100)

    async def main():
        connections = 0
        async for ws in connect(f"ws://127.0.0.1:{port}/", backoff=FAST):
            connections += 1
            assert [message async for message in ws] == []  # closed normally at once: the loop ends
        return connections

    thread = threading.Thread(target=unavailable_twice, daemon=True)
    thread.start()
    assert run(main()) == 1
    thread.join(TIMEOUT)
    assert refused == [503, 503]


def test_reconnecting_raises_at_once_for_a_certificate_that_fails(tls):
    server_context, client_context = tls

    async def main():
        async with serve(ssl=server_context) as server:
            start = time.monotonic()
            with pytest.raises(ssl.SSLCertVerificationError):
                # The certificate is for 127.0.0.1 and localhost: checked against example.org.
                url = f"wss://127.0.0.1:{server.port}/"
                loop = connect(url, ssl=client_context, server_hostname="example.org", backoff=Backoff(5, 1, 5))
                async for _ in loop:
                    pass
            assert elapsed(start) < 2

    run(main())


def fake_proxy(*answers: int):
    """An HTTP proxy on a free port answering each CONNECT with the next status of
    ``answers``; after a 200 it plays the WebSocket server itself, closing at once.
    Returns its URL and the statuses it sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    sent = []

    def run_proxy():
        with listener:
            for status in answers:
                sock, _ = listener.accept()
                with sock:
                    sock.settimeout(TIMEOUT)
                    read_request(sock)
                    sock.sendall(f"HTTP/1.1 {status} Proxy Says\r\nContent-Length: 0\r\n\r\n".encode())
                    sent.append(status)
                    if status == 200:
                        sock.sendall(accept_response(read_request(sock)) + frame(Opcode.CLOSE, b"\x03\xe8"))
                        sock.recv(100)

    threading.Thread(target=run_proxy, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", sent


@pytest.mark.parametrize("status", [407, 403])
def test_reconnecting_raises_at_once_for_a_proxy_that_refuses(status):
    """A proxy that wants credentials, or forbids the target, would answer the same again."""
    proxy, sent = fake_proxy(status)

    async def main():
        start = time.monotonic()
        with pytest.raises(HTTPProxyError) as info:
            async for _ in connect("ws://example.invalid/", proxy=proxy, backoff=Backoff(5, 1, 5)):
                pass
        assert info.value.status == status
        assert elapsed(start) < 2

    run(main())
    assert sent == [status]


def test_reconnecting_retries_a_proxy_that_could_not_reach_the_server():
    proxy, sent = fake_proxy(502, 200)

    async def main():
        connections = 0
        async for ws in connect("ws://example.invalid/", proxy=proxy, backoff=FAST):
            connections += 1
            assert [message async for message in ws] == []
        return connections

    assert run(main()) == 1
    assert sent == [502, 200]


@pytest.mark.parametrize(
    "exc, retried",
    [
        (HTTPProxyError(407), False),
        (HTTPProxyError(403), False),
        (HTTPProxyError(502), True),
        (HTTPProxyError(504), True),
        (SOCKSProxyError("authentication refused", None), False),
        (SOCKSProxyError("not allowed by its rules", 2), False),
        (SOCKSProxyError("address type not supported", 8), False),
        (SOCKSProxyError("connection refused", 5), True),
        (SOCKSProxyError("host unreachable", 4), True),
        (ProxyError("the proxy hung up"), True),
        (InvalidStatus(404), False),
        (InvalidStatus(503), True),
        (ConnectionRefusedError(), True),
        (ssl.SSLCertVerificationError(), False),
    ],
)
def test_which_failures_to_connect_are_retried(exc, retried):
    assert is_retryable(exc) is retried


def test_backoff_starts_again_after_a_connection_that_lasted(monkeypatch):
    """A connection open for reset_after seconds counts as a success: the delay after it
    is the initial one again."""
    failures = []
    monkeypatch.setattr(Backoff, "delay", lambda self, n, rng=None: failures.append(n) or 0.01)
    served = []

    async def handler(ws):
        served.append(ws)
        if len(served) == 2:
            await asyncio.sleep(0.3)  # this one lasts
        await ws.close(1012 if len(served) < 3 else 1000)

    async def main():
        async with serve(handler) as server:
            async for ws in connect(f"ws://127.0.0.1:{server.port}/", backoff=Backoff(reset_after=0.25)):
                with pytest.raises(ConnectionClosed):
                    await ws.recv(timeout=TIMEOUT)

    run(main())
    assert failures == [1, 0]  # after the short connection, then after the long one
