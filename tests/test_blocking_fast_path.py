"""The blocking connection's hot paths (``BlockingCore``): ``recv()`` with no timeout reads
and parses plain frames itself, ``send()`` writes a message to the socket (or the TLS
object) itself. Each test drives them with a raw-socket peer, over plain TCP and over TLS,
and checks that whatever they cannot finish goes the Python way without loss, reordering
or a wait past its bound. The pure twin runs these too (tests/test_pure_cores.py)."""

from __future__ import annotations

import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, NamedTuple

import pytest

from peers import RawServer, close_politely, elapsed, frame, stop_reading
from wsfast import _codec, _io
from wsfast.client import connect
from wsfast.enums import Opcode
from wsfast.exceptions import ConnectionClosed, ConnectionClosedError
from wsfast.server import serve

TIMEOUT = 5  # seconds any single wait in these tests may take
COMPILED = _codec.IMPLEMENTATION == "c"

pytestmark = pytest.mark.usefixtures("no_hang")


class Wire(NamedTuple):
    """How a test's connection travels: plain TCP (no contexts) or TLS."""

    server: Any  # ssl.SSLContext | None
    client: Any

    def raw_server(self, script) -> RawServer:
        return RawServer(script, context=self.server)

    def connect(self, url: str, **options: Any):
        if self.client is None:
            return connect(url, **options)
        return connect(url.replace("ws://", "wss://"), ssl=self.client, **options)

    def serve(self, *args: Any, **options: Any):
        return serve(*args, ssl=self.server, **options)


@pytest.fixture(params=["tcp", "tls"])
def wire(request) -> Wire:
    if request.param == "tcp":
        return Wire(None, None)
    return Wire(*request.getfixturevalue("tls"))


def read_in_thread(ws, count: int) -> tuple[threading.Thread, list]:
    """A thread that calls recv() with no timeout ``count`` times (the fast path's case);
    what it got, or the exception that ended it, lands in the list."""
    got: list = []

    def run() -> None:
        try:
            for _ in range(count):
                got.append(ws.recv())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            got.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, got


def test_the_fast_paths_are_taken(wire, monkeypatch):
    # An echo exchange: the compiled twin reads and sends in C, all but the first read
    # (which learns the keepalive's deadline) and any that a signal or a slice passing
    # sends the Python way; the pure twin takes the Python way every time.
    count = 50
    calls = {"_read": 0, "_send": 0}

    def counted(name):
        method = getattr(_io.WebSocket, name)

        def call(self, *args):
            calls[name] += 1
            return method(self, *args)

        monkeypatch.setattr(_io.WebSocket, name, call)

    counted("_read")
    counted("_send")

    def script(peer):
        for index in range(count):
            peer.sendall(frame(Opcode.TEXT, str(index).encode()))
            assert peer.next_frame().payload == str(index).encode()
        close_politely(peer)

    with wire.raw_server(script) as server, wire.connect(server.url) as ws:
        for index in range(count):
            assert ws.recv() == str(index)
            ws.send(str(index))
        assert (ws._fd >= 0) is COMPILED
        if COMPILED:
            assert calls == {"_read": calls["_read"], "_send": 0}
            assert calls["_read"] <= count // 5
        else:
            assert calls["_send"] == count
            assert calls["_read"] >= count
    assert ws._fd == -1  # forgotten once the socket closed: its number may be reused


def test_everything_but_whole_messages_goes_the_python_way(wire):
    # Between whole messages: a ping (answered), a fragmented message with a ping inside
    # it, a frame sent in pieces, a pong nobody asked for; then text that is not UTF-8.
    # Every message comes once, in order, and the violation closes with 1007.
    fragmented = (
        frame(Opcode.TEXT, b"frag", fin=False) + frame(Opcode.PING, b"p2") + frame(Opcode.CONTINUATION, b"ment")
    )
    pieces = frame(Opcode.BINARY, b"x" * 300)

    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"a") + frame(Opcode.PING, b"p1") + frame(Opcode.TEXT, b"b"))
        assert peer.next_frame().payload == b"p1"
        peer.sendall(fragmented + frame(Opcode.TEXT, b"c"))
        assert peer.next_frame().payload == b"p2"
        for start in range(0, len(pieces), 100):
            peer.sendall(pieces[start : start + 100])
            time.sleep(0.02)
        peer.sendall(frame(Opcode.PONG, b"?") + frame(Opcode.TEXT, b"d") + frame(Opcode.TEXT, b"\xff"))
        close = peer.next_frame()
        assert close.opcode == Opcode.CLOSE
        assert struct.unpack("!H", close.payload[:2])[0] == 1007

    with wire.raw_server(script) as server, wire.connect(server.url, ping_interval=None) as ws:
        reader, got = read_in_thread(ws, 7)
        reader.join(TIMEOUT)
    assert got[:6] == ["a", "b", "fragment", "c", b"x" * 300, "d"]
    assert isinstance(got[6], ConnectionClosedError)
    assert got[6].sent_code == 1007


def test_messages_before_a_violation_in_the_same_read_come_first(wire):
    def script(peer):
        # One write: two messages, then a frame with a reserved bit set.
        peer.sendall(frame(Opcode.TEXT, b"1") + frame(Opcode.TEXT, b"2") + frame(Opcode.TEXT, b"3", rsv=2))
        close = peer.next_frame()
        assert struct.unpack("!H", close.payload[:2])[0] == 1002

    with wire.raw_server(script) as server, wire.connect(server.url) as ws:
        assert ws.recv() == "1"
        assert ws.recv() == "2"
        with pytest.raises(ConnectionClosedError) as caught:
            ws.recv()
    assert caught.value.sent_code == 1002


@pytest.mark.parametrize("ending", ["fin", "reset"])
def test_a_peer_that_goes_away_ends_a_waiting_recv(wire, ending):
    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"last"))
        time.sleep(0.3)  # the client waits in recv() by now
        if ending == "reset":
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:  # over TLS: TCP ends with no close_notify
            socket.socket.shutdown(peer.sock, socket.SHUT_WR)
        time.sleep(0.3)  # the client sees the end before the peer closes

    with wire.raw_server(script) as server, wire.connect(server.url) as ws:
        start = time.monotonic()
        reader, got = read_in_thread(ws, 2)
        reader.join(TIMEOUT)
        assert elapsed(start) < 2
    assert got[0] == "last"
    assert isinstance(got[1], ConnectionClosedError)
    assert got[1].code == 1006  # no close frame came


def test_keepalive_pings_while_reads_are_fast_and_a_silent_peer_is_dropped():
    # A feed of messages keeps the reads on the fast path; keepalive still pings when due
    # (reads near the deadline go the Python way). When the feed stops and the pong never
    # comes, recv() fails within ping_interval + ping_timeout.
    pinged = threading.Event()

    def script(peer):
        peer.sock.setblocking(False)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not pinged.is_set():
            peer.sendall(frame(Opcode.TEXT, b"tick"))
            try:
                data = peer.sock.recv(65536)
            except BlockingIOError:
                data = b""
            if data and data[0] & 0x0F == Opcode.PING:
                pinged.set()
            time.sleep(0.01)
        peer.sock.setblocking(True)
        stop_reading(peer)

    with RawServer(script) as server, connect(server.url, ping_interval=1.5, ping_timeout=1) as ws:
        start = time.monotonic()
        count = 0
        with pytest.raises(ConnectionClosedError) as caught:
            while True:
                assert ws.recv() == "tick"
                count += 1
        assert pinged.is_set()
        assert count > 20
        assert elapsed(start) < 1.5 + 1 + 3  # interval + timeout, plus slack for a loaded machine
    assert caught.value.sent_code == 1011


@pytest.mark.skipif(sys.platform == "win32" or not hasattr(signal, "setitimer"), reason="needs SIGALRM")
def test_a_signal_handler_that_raises_interrupts_a_waiting_recv(wire):
    # KeyboardInterrupt (or any handler's exception) reaches the caller of a recv() that
    # waits in the system call; the connection stays usable.
    gate = threading.Event()

    def script(peer):
        gate.wait(TIMEOUT)
        peer.sendall(frame(Opcode.TEXT, b"after"))
        close_politely(peer)

    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with wire.raw_server(script) as server, wire.connect(server.url) as ws:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            start = time.monotonic()
            with pytest.raises(Alarm):
                ws.recv()
            assert elapsed(start) < 1
            gate.set()
            assert ws.recv() == "after"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_sends_from_many_threads_arrive_whole_and_in_order(wire):
    # Small and large messages from three threads at once, some while another thread is
    # inside the Connection's lock or the socket takes part of a frame: the echo of each
    # thread's messages comes back whole, in its order.
    sizes = {"small": 10, "medium": 5000, "large": 300_000}
    count = 200

    with wire.serve() as server, wire.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        errors: list[BaseException] = []

        def sender(name: str) -> None:
            try:
                for index in range(count):
                    ws.send(f"{name} {index} ".encode() + b"." * sizes[name])
                    if index % 50 == 0:
                        ws.ping()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(name,)) for name in sizes]
        for thread in threads:
            thread.start()
        received = [ws.recv(timeout=TIMEOUT) for _ in range(count * len(sizes))]
        for thread in threads:
            thread.join(TIMEOUT)
    assert not errors
    for name, size in sizes.items():
        mine = [message for message in received if message.startswith(name.encode())]
        assert mine == [f"{name} {index} ".encode() + b"." * size for index in range(count)]


def test_a_send_to_a_peer_that_stopped_reading_times_out(wire):
    # send() without a timeout argument (the fast path's case) still waits at most the
    # connection's send_timeout once the socket takes no more, then drops the connection.
    with wire.raw_server(stop_reading) as server, wire.connect(server.url, send_timeout=0.5, close_timeout=0.5) as ws:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            for _ in range(10_000):
                ws.send(b"x" * 65536)
        assert elapsed(start) < TIMEOUT
        with pytest.raises(ConnectionClosedError):
            ws.send(b"more")


def test_a_closed_connection_sends_nothing_on_a_reused_socket_number():
    # Once dropped, the socket's number may be given to a new socket at once: a send()
    # on the closed connection raises, and the new socket sees none of its bytes.
    def script(peer):
        peer.sendall(frame(Opcode.CLOSE, struct.pack("!H", 1000)))
        close_politely(peer)

    with RawServer(script) as server, connect(server.url) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv()
    left, right = socket.socketpair()
    with left, right:
        with pytest.raises(ConnectionClosed):
            ws.send(b"late")
        right.setblocking(False)
        with pytest.raises(BlockingIOError):
            right.recv(100)


def test_threads_reading_at_once_get_each_message_once(wire):
    count = 3000

    def script(peer):
        for index in range(count):
            peer.sendall(frame(Opcode.TEXT, str(index).encode()))
            if index % 500 == 0:
                time.sleep(0.01)
        peer.sendall(frame(Opcode.CLOSE, struct.pack("!H", 1000)))  # ends every reader
        peer.next_frame()  # the client's answer

    with wire.raw_server(script) as server, wire.connect(server.url) as ws:
        readers = [read_in_thread(ws, count) for _ in range(3)]
        for thread, _ in readers:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
    messages = [item for _, got in readers for item in got if isinstance(item, str)]
    assert sorted(messages, key=int) == [str(index) for index in range(count)]


def test_the_server_side_takes_the_fast_paths_too(wire):
    # A server's connections send unmasked frames: its handler echoes with recv() and
    # send() on the fast paths.
    fast: list[bool] = []

    def handler(ws):
        fast.append(ws._fd >= 0)
        for message in ws:
            ws.send(message)

    with wire.serve(handler) as server, wire.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        for index in range(100):
            ws.send(str(index) * index)
            assert ws.recv(timeout=TIMEOUT) == str(index) * index
    assert fast == [COMPILED]
