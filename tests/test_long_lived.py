"""Connections that live for days, blocking layer: keepalive, send timeouts, backpressure,
closing from any thread, and a threaded server that no client can wedge. Every peer here is
hostile in one way, and every wait is bounded."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import netns
from peers import TIMEOUT, RawServer, accept_response, elapsed, frame, read_request, silent, stop_reading
from wsfast import _pure
from wsfast.client import connect, reconnecting
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from wsfast.protocol import State
from wsfast.reconnect import Backoff
from wsfast.server import serve

pytestmark = pytest.mark.usefixtures("no_hang")

BIG = bytes(8 * 1024 * 1024)  # more than any socket buffer takes


# Keepalive -----------------------------------------------------------------------------------


def test_keepalive_measures_latency_while_receiving(codec):
    with serve(codec=codec) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with connect(url, ping_interval=0.1, ping_timeout=2, codec=codec) as ws:
            assert ws.latency is None
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)  # keepalive runs inside recv
            assert isinstance(ws.latency, float) and 0 <= ws.latency < 1
            ws.send("still open")
            assert ws.recv(timeout=TIMEOUT) == "still open"


def test_peer_that_never_answers_fails_with_1011(codec):
    with RawServer(silent) as server:
        ws = connect(server.url, ping_interval=0.1, ping_timeout=0.3, codec=codec)
        start = time.monotonic()
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert elapsed(start) < 2
        assert info.value.code == 1006 and info.value.sent_code == 1011
        assert ws.state is State.CLOSED


def test_keepalive_off():
    with RawServer(silent) as server, connect(server.url, ping_interval=None, close_timeout=0.2) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        assert ws.state is State.OPEN and ws.latency is None


def test_keepalive_finds_a_silently_dead_peer(codec):
    """The link goes down: no FIN, no reset, nothing. Keepalive notices within its bounds."""
    with netns.isolated_link() as link, netns.echo_server_in(link) as url:
        with connect(url, ping_interval=0.2, ping_timeout=0.5, close_timeout=0.5, codec=codec) as ws:
            ws.send("alive")
            assert ws.recv(timeout=TIMEOUT) == "alive"
            link.cut()
            start = time.monotonic()
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=TIMEOUT)
            assert elapsed(start) < 0.2 + 0.5 + 0.5
            assert info.value.sent_code == 1011


def test_data_keeps_a_connection_alive_even_without_pongs():
    """A peer busy sending (its pong stuck behind its messages) is not dropped."""

    def chatty(peer):
        for _ in range(30):
            peer.sendall(frame(Opcode.TEXT, b"tick"))
            time.sleep(0.05)
        silent(peer)

    with RawServer(chatty) as server, connect(server.url, ping_interval=0.05, ping_timeout=0.3) as ws:
        for _ in range(30):
            assert ws.recv(timeout=TIMEOUT) == "tick"
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)  # then the silence is noticed


# Sending to a peer that stops reading --------------------------------------------------------


def test_send_timeout_drops_a_peer_that_stops_reading(codec):
    with RawServer(stop_reading) as server, connect(server.url, compression=None, codec=codec) as ws:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.send(BIG, timeout=0.3)
        assert 0.3 <= elapsed(start) < 2
        assert ws.state is State.CLOSED
        with pytest.raises(ConnectionClosedError):
            ws.send("after")


def test_send_timeout_option():
    with RawServer(stop_reading) as server, connect(server.url, compression=None, send_timeout=0.2) as ws:
        with pytest.raises(TimeoutError):
            ws.send(BIG)


def test_close_and_recv_from_other_threads_while_a_send_is_stuck():
    with RawServer(stop_reading) as server:
        ws = connect(server.url, compression=None, send_timeout=None, close_timeout=0.5)
        outcome = {}

        def sender():
            try:
                ws.send(BIG)
            except (ConnectionClosed, OSError) as exc:
                outcome["send"] = exc

        def receiver():
            start = time.monotonic()
            try:
                ws.recv(timeout=1)
            except (TimeoutError, ConnectionClosed) as exc:
                outcome["recv"] = (type(exc), elapsed(start))

        threads = [threading.Thread(target=sender), threading.Thread(target=receiver)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)  # the send is stuck now
        start = time.monotonic()
        ws.close()
        assert elapsed(start) < 1.5  # close_timeout, whatever the stuck sender does
        for thread in threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
        assert isinstance(outcome["send"], ConnectionClosedError)
        assert outcome["recv"][1] < 1.5
        assert ws.state is State.CLOSED


# Ping floods ---------------------------------------------------------------------------------


def test_ping_flood_from_a_peer_that_never_reads_stays_bounded(codec):
    """The pongs of a flood the peer never reads cannot pile up: only the latest waits."""
    ping = frame(Opcode.PING, b"p" * 125) * 1000  # 127 KB a batch
    flooded = threading.Event()

    def flood(peer):
        peer.sock.settimeout(10)
        try:
            for _ in range(400):  # 50 MB of pings
                peer.sendall(ping)
        except OSError:
            pass
        flooded.set()
        peer.sendall(frame(Opcode.TEXT, b"done"))
        stop_reading(peer)

    with RawServer(flood) as server:
        ws = connect(server.url, codec=codec, close_timeout=0.5)
        largest = 0
        start = time.monotonic()
        while True:
            try:
                message = ws.recv(timeout=4)
            except TimeoutError:
                pytest.fail("recv(timeout) stalled under the ping flood")
            waiting = ws._stream.unsent + sum(map(len, ws._conn._outgoing)) + 127 * len(ws._conn._pongs)
            largest = max(largest, waiting)
            if message == "done":
                break
        assert elapsed(start) < 30
        assert flooded.is_set()
        assert largest < 1_000_000  # what the kernel would not take, at most a pong or so
        ws.close()


# Closing -------------------------------------------------------------------------------------


def test_close_returns_within_close_timeout_when_the_peer_reads_nothing():
    with RawServer(stop_reading) as server:
        ws = connect(server.url, close_timeout=0.3)
        start = time.monotonic()
        ws.close()
        assert elapsed(start) < 1.5
        assert ws.state is State.CLOSED


# The threaded server -------------------------------------------------------------------------


UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked(opcode, payload=b"") -> bytes:
    return _pure.encode_frame(opcode, payload, mask_key=b"\x01\x02\x03\x04")


@pytest.fixture
def errors_logged(caplog):
    """Whatever the server logged at WARNING or above, and uncaught thread exceptions."""
    uncaught = []
    previous = threading.excepthook
    threading.excepthook = uncaught.append
    caplog.set_level(logging.DEBUG, logger="wsfast")
    yield lambda: [r for r in caplog.records if r.levelno >= logging.WARNING] + uncaught
    threading.excepthook = previous


def test_client_resetting_right_after_the_101_is_not_a_traceback(errors_logged):
    with serve() as server:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(UPGRADE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # RST
        with connect(f"ws://127.0.0.1:{server.port}/") as ws:  # still serving
            ws.send("ok")
            assert ws.recv(timeout=TIMEOUT) == "ok"
    assert errors_logged() == []


def test_thread_start_failure_refuses_one_client_and_serves_the_next(monkeypatch, errors_logged):
    with serve() as server:
        url = f"ws://127.0.0.1:{server.port}/"
        real_start = threading.Thread.start
        failed = []

        def start_once_failing(thread):
            if thread.name.startswith("wsfast connection") and not failed:
                failed.append(thread)
                raise RuntimeError("can't start new thread")
            real_start(thread)

        monkeypatch.setattr(threading.Thread, "start", start_once_failing)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        sock.sendall(UPGRADE)
        assert sock.recv(4096).startswith(b"HTTP/1.1 503")
        sock.close()
        with connect(url) as ws:
            ws.send("served")
            assert ws.recv(timeout=TIMEOUT) == "served"
    assert failed
    logged = errors_logged()
    assert len(logged) == 1 and "cannot start a thread" in logged[0].getMessage()


def test_max_connections_answers_503_and_keeps_serving():
    with serve(max_connections=2) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        first, second = connect(url), connect(url)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        sock.sendall(UPGRADE)
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
        assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        sock.close()
        first.close()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the handler's thread ends a moment after the close
            try:
                with connect(url) as third:
                    third.send("room again")
                    assert third.recv(timeout=TIMEOUT) == "room again"
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        second.close()


def test_server_close_returns_while_a_handler_is_stuck_sending():
    def flood(ws):
        while True:
            ws.send(BIG)

    server = serve(flood, close_timeout=0.5, send_timeout=None, compression=None).start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(UPGRADE)
    sock.recv(4096)
    time.sleep(0.3)  # the handler is stuck in send: this client reads nothing more
    start = time.monotonic()
    server.close()
    assert elapsed(start) < 2
    sock.close()


def test_serve_forever_returns_after_every_client_got_1001(codec):
    server = serve(codec=codec, close_timeout=2)
    url = f"ws://127.0.0.1:{server.port}/"
    got_1001 = []
    ready = threading.Semaphore(0)

    def client():
        with connect(url, codec=codec) as ws:
            ready.release()
            with pytest.raises(ConnectionClosedOK) as info:
                ws.recv(timeout=TIMEOUT)
            assert info.value.code == 1001
            got_1001.append(True)

    returned = []
    serving = threading.Thread(target=lambda: (server.serve_forever(), returned.append(True)))
    serving.start()
    clients = [threading.Thread(target=client) for _ in range(3)]
    for thread in clients:
        thread.start()
    for _ in clients:
        assert ready.acquire(timeout=TIMEOUT)
    server.close()
    serving.join(TIMEOUT)
    for thread in clients:
        thread.join(TIMEOUT)
    # serve_forever returns once each closing handshake is complete: the clients may
    # still be on their way out of recv(), so only the outcome is compared, not the order.
    assert len(got_1001) == 3 and returned


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_close_from_a_signal_handler_stops_serve_forever():
    server = serve(close_timeout=2)
    url = f"ws://127.0.0.1:{server.port}/"
    codes = []

    def client():
        with connect(url) as ws:  # served once serve_forever runs, below
            try:
                ws.recv(timeout=TIMEOUT)
            except ConnectionClosedOK as exc:
                codes.append(exc.code)

    thread = threading.Thread(target=client)
    thread.start()
    previous = signal.signal(signal.SIGALRM, lambda *_: server.close())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        start = time.monotonic()
        server.serve_forever()  # in the main thread, where the signal handler runs
        assert elapsed(start) < 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    thread.join(TIMEOUT)
    assert codes == [1001]


def test_echo_command_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "wsfast", "echo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        assert "listening on ws://127.0.0.1:" in line
        port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
        with connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send("before")
            assert ws.recv(timeout=TIMEOUT) == "before"
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosedOK) as info:
                ws.recv(timeout=TIMEOUT)
            assert info.value.code == 1001
        assert process.wait(TIMEOUT) == 0
    finally:
        process.kill()
        process.wait()


# Reconnecting --------------------------------------------------------------------------------

FAST = Backoff(initial=0.01, factor=2, maximum=0.05)


def closing_with(code: int, times: int):
    """A handler that closes each connection at once with ``code``, ``times`` times, then
    closes normally."""
    seen = []

    def handler(ws):
        seen.append(ws.path)
        ws.close(code if len(seen) <= times else 1000)

    return handler, seen


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013])
def test_reconnecting_after_a_close_that_invites_it(code):
    handler, seen = closing_with(code, 2)
    with serve(handler) as server:
        codes = []
        for ws in reconnecting(f"ws://127.0.0.1:{server.port}/feed", backoff=FAST):
            try:
                ws.recv(timeout=TIMEOUT)
            except ConnectionClosed as exc:
                codes.append(exc.code)
        assert codes == [code, code, 1000]  # ended by the normal close
        assert seen == ["/feed"] * 3


def test_reconnecting_raises_for_other_close_codes():
    handler, _ = closing_with(1008, 5)
    with serve(handler) as server:
        loop = reconnecting(f"ws://127.0.0.1:{server.port}/", backoff=FAST)
        ws = next(loop)
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        with pytest.raises(ConnectionClosedError) as info:
            next(loop)
        assert info.value.code == 1008


def test_reconnecting_when_the_body_moves_on_while_open():
    with serve() as server:
        for count, ws in enumerate(reconnecting(f"ws://127.0.0.1:{server.port}/", backoff=FAST), 1):
            ws.send("hi")
            assert ws.recv(timeout=TIMEOUT) == "hi"
            if count == 3:
                break
        assert ws.state is State.CLOSED  # closed by the loop when it ended


def test_reconnecting_waits_for_a_server_that_is_down_then_comes_back():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    servers = []
    threading.Timer(0.3, lambda: servers.append(serve(host="127.0.0.1", port=port).start())).start()
    start = time.monotonic()
    try:
        for ws in reconnecting(f"ws://127.0.0.1:{port}/", backoff=Backoff(initial=0.05, maximum=0.2)):
            ws.send("back")
            assert ws.recv(timeout=TIMEOUT) == "back"
            break
        assert 0.3 <= elapsed(start) < TIMEOUT
    finally:
        for server in servers:
            server.close()


def test_reconnecting_raises_at_once_for_a_rejected_handshake():
    def reject(peer):
        pass

    def forbidden(request):
        return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"

    with RawServer(reject, response=forbidden) as server:
        start = time.monotonic()
        with pytest.raises(InvalidStatus) as info:
            next(reconnecting(server.url, backoff=Backoff(initial=5, maximum=5)))
        assert info.value.status == 403
        assert elapsed(start) < 2  # no retry, no delay


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

    thread = threading.Thread(target=unavailable_twice, daemon=True)
    thread.start()
    connections = 0
    for ws in reconnecting(f"ws://127.0.0.1:{port}/", backoff=FAST):
        connections += 1
        assert list(ws) == []  # closed normally at once: the loop ends
    thread.join(TIMEOUT)
    assert refused == [503, 503] and connections == 1
