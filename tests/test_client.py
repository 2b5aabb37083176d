"""The blocking client: against wsfast's own server and against raw-socket fake servers
that send exactly the bytes a test needs (slow, broken, fragmented or hostile peers)."""

from __future__ import annotations

import base64
import socket
import threading
import time

import pytest

from peers import Peer, RawServer, accept_response, close_politely, elapsed, frame, silent
from wsfast import _io
from wsfast._stream import READ_SLICE
from wsfast.client import Client, connect
from wsfast.enums import Opcode
from wsfast.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidHeader,
    InvalidStatus,
    InvalidURI,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
)
from wsfast.protocol import State
from wsfast.server import serve

TIMEOUT = 5  # seconds any single wait in these tests may take


pytestmark = pytest.mark.usefixtures("no_hang")


@pytest.fixture
def echo_url(codec):
    with serve(codec=codec) as server:
        yield f"ws://127.0.0.1:{server.port}/"


def server_url(handler, **options) -> tuple:
    server = serve(handler, **options).start()
    return server, f"ws://127.0.0.1:{server.port}/"


# Messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    ["hello", "", "ünïcødé ✓ 🚀", b"\x00\x01\xff", b"", "x" * 126, b"y" * 65536, "z" * 70000],
    ids=["text", "empty-text", "unicode", "binary", "empty-binary", "len126", "len64k", "len70000"],
)
def test_echo(echo_url, codec, message):
    with connect(echo_url, codec=codec) as ws:
        ws.send(message)
        assert ws.recv(timeout=TIMEOUT) == message


def test_bytes_like_messages_are_binary(echo_url):
    with connect(echo_url) as ws:
        ws.send(bytearray(b"abc"))
        ws.send(memoryview(b"defg")[1:])
        ws.send(memoryview(bytes(8)).cast("I"))  # lengths count bytes, not items
        assert [ws.recv(timeout=TIMEOUT) for _ in range(3)] == [b"abc", b"efg", bytes(8)]


def test_sixteen_mib_messages(echo_url, codec):
    big_binary = bytes(range(256)) * (1 << 16)
    big_text = "€" * ((16 << 20) // 3)
    with connect(echo_url, codec=codec) as ws:
        ws.send(big_binary)
        assert ws.recv(timeout=TIMEOUT) == big_binary
        ws.send(big_text)
        assert ws.recv(timeout=TIMEOUT) == big_text


def test_send_rejects_other_types(echo_url):
    with connect(echo_url) as ws:
        for bad in (123, None, ["list"], object()):
            with pytest.raises(TypeError, match="str or a bytes-like"):
                ws.send(bad)
        ws.send("still open")
        assert ws.recv(timeout=TIMEOUT) == "still open"


def test_iteration_ends_on_normal_close(codec):
    def handler(ws):
        for i in range(3):
            ws.send(f"message {i}")
        ws.close(1000, "done")

    server, url = server_url(handler, codec=codec)
    with server, connect(url, codec=codec) as ws:
        assert list(ws) == ["message 0", "message 1", "message 2"]
        assert ws.close_code == 1000
        assert ws.close_reason == "done"
        assert ws.state is State.CLOSED
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)


def test_iteration_raises_on_error_close():
    def handler(ws):
        ws.send("last words")
        ws.close(4000, "custom failure")

    server, url = server_url(handler)
    with server, connect(url) as ws:
        received = []
        with pytest.raises(ConnectionClosedError) as info:
            for message in ws:
                received.append(message)
        assert received == ["last words"]
        assert info.value.code == 4000
        assert info.value.reason == "custom failure"
        assert info.value.sent_code == 4000  # the client echoed the code


def test_recv_many_returns_every_message_once(codec):
    count = 5000

    def script(peer):
        peer.sendall(b"".join(frame(Opcode.BINARY, i.to_bytes(4, "big")) for i in range(count)))
        peer.sendall(frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        peer.next_frame()  # the client's reply

    with RawServer(script) as server, connect(server.url, codec=codec) as ws:
        received: list = []
        with pytest.raises(ConnectionClosedOK):
            while True:
                received += ws.recv_many(timeout=TIMEOUT)
        assert received == [i.to_bytes(4, "big") for i in range(count)]
        assert ws.pending == 0


def test_memory_stays_bounded_whatever_the_stream_length(codec):
    """A 64 MB feed of small messages, then large ones: the read buffer never passes its
    cap, and no more messages wait than one read can hold."""
    small = frame(Opcode.BINARY, bytes(100)) * 1000
    large = bytes(range(256)) * (3 * 4096)  # 3 MiB

    def script(peer):
        for _ in range(640):
            peer.sendall(small)
        for _ in range(4):
            peer.sendall(frame(Opcode.BINARY, large))
        peer.sendall(frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        peer.next_frame()

    with RawServer(script) as server, connect(server.url, codec=codec) as ws:
        most_pending = largest_buffer = received = 0
        for message in ws:
            received += 1
            most_pending = max(most_pending, ws.pending)
            largest_buffer = max(largest_buffer, len(ws._buffer))
            assert message == (bytes(100) if received <= 640_000 else large)
        assert received == 640_004
        assert largest_buffer <= _io._MAX_READ_SIZE
        assert most_pending <= _io._MAX_READ_SIZE // len(frame(Opcode.BINARY, bytes(100)))


def test_pending_counts_parsed_messages():
    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"a") + frame(Opcode.TEXT, b"b") + frame(Opcode.TEXT, b"c"))
        close_politely(peer)

    with RawServer(script) as server, connect(server.url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "a"
        assert ws.pending == 2
        assert ws.recv_many() == ["b", "c"]


def test_frames_in_the_handshake_packet_are_kept():
    def response(request):
        return accept_response(request) + frame(Opcode.TEXT, b"early") + frame(Opcode.BINARY, b"bird")

    with RawServer(close_politely, response=response) as server, connect(server.url) as ws:
        assert ws.pending == 0  # not parsed before the first read ...
        assert ws.recv(timeout=TIMEOUT) == "early"  # ... but never lost
        assert ws.recv(timeout=TIMEOUT) == b"bird"


def test_recv_frame_sees_frames_from_the_handshake_packet():
    def response(request):
        return accept_response(request) + frame(Opcode.TEXT, b"fr", fin=False) + frame(Opcode.CONTINUATION, b"ame")

    with RawServer(close_politely, response=response) as server, connect(server.url) as ws:
        first, second = ws.recv_frame(timeout=TIMEOUT), ws.recv_frame(timeout=TIMEOUT)
        assert (first.opcode, first.fin, first.payload) == (Opcode.TEXT, False, b"fr")
        assert (second.opcode, second.fin, second.payload) == (Opcode.CONTINUATION, True, b"ame")


# Fragmentation -------------------------------------------------------------------------------


def frame_counter(ws):
    """Answers each message with how many frames it came in."""
    count = 0
    while True:
        received = ws.recv_frame()
        if received.opcode == Opcode.CLOSE:
            return
        count += 1
        if received.fin:
            ws.send(f"{count} frames, opcode {received.opcode} last")
            count = 0


def test_max_frame_size_splits_outgoing_messages(codec):
    server, url = server_url(frame_counter, compression=None)  # counts the frames of the message as sent
    with server, connect(url, max_frame_size=1000, codec=codec) as ws:
        ws.send(b"x" * 10_000)
        assert ws.recv(timeout=TIMEOUT) == "10 frames, opcode 0 last"
        ws.send("y" * 1001)
        assert ws.recv(timeout=TIMEOUT) == "2 frames, opcode 0 last"
        ws.send("fits")
        assert ws.recv(timeout=TIMEOUT) == "1 frames, opcode 1 last"


def test_max_frame_size_messages_reassemble_on_the_server(echo_url, codec):
    message = "fragmented ✓ " * 1000
    with connect(echo_url, max_frame_size=7, codec=codec) as ws:
        ws.send(message)
        assert ws.recv(timeout=TIMEOUT) == message


def test_receives_fragmented_message_with_interleaved_ping(codec):
    text = "ü" * 200  # a two-byte character is cut between fragments
    encoded = text.encode()

    def script(peer):
        peer.sendall(
            frame(Opcode.TEXT, encoded[:101], fin=False)
            + frame(Opcode.PING, b"in between")
            + frame(Opcode.CONTINUATION, encoded[101:301], fin=False)
            + frame(Opcode.CONTINUATION, encoded[301:])
        )
        pong = peer.next_frame()
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"in between")
        close_politely(peer)

    with RawServer(script) as server, connect(server.url, codec=codec) as ws:
        assert ws.recv(timeout=TIMEOUT) == text


def test_slow_peer_sends_one_byte_at_a_time(codec):
    text = "slow ✓ " * 50  # over 125 bytes: a 16-bit length, split like everything else
    data = frame(Opcode.TEXT, text.encode()) + frame(Opcode.BINARY, b"\x01\x02")

    def script(peer):
        peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            peer.sendall(data[i : i + 1])
            if i % 16 == 0:
                time.sleep(0.001)  # give the client separate reads
        close_politely(peer)

    with RawServer(script) as server, connect(server.url, codec=codec) as ws:
        assert ws.recv(timeout=TIMEOUT) == text
        assert ws.recv(timeout=TIMEOUT) == b"\x01\x02"


# Control frames ------------------------------------------------------------------------------


def test_ping_is_answered_by_the_server(echo_url, codec):
    with connect(echo_url, codec=codec) as ws:
        ws.ping(b"are you there")
        pong = ws.recv_frame(timeout=TIMEOUT)
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"are you there")
        ws.ping("text payload")
        assert ws.recv_frame(timeout=TIMEOUT).payload == b"text payload"
        with pytest.raises(ValueError):
            ws.ping(bytes(126))


def test_pings_from_the_server_are_answered_and_skipped_by_recv():
    def script(peer):
        peer.sendall(frame(Opcode.PING, b"1") + frame(Opcode.TEXT, b"data") + frame(Opcode.PONG, b"unsolicited"))
        pong = peer.next_frame()
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"1")
        close_politely(peer)

    with RawServer(script) as server, connect(server.url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "data"
        ws.pong(b"heartbeat")  # unsolicited pongs are allowed


def test_unsolicited_pong_reaches_the_server():
    def script(peer):
        pong = peer.next_frame()
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"heartbeat")
        close_politely(peer)

    with RawServer(script) as server, connect(server.url) as ws:
        ws.pong(b"heartbeat")


# Closing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, reason, clean", [(1000, "", True), (1001, "going", True), (3000, "app", False), (4999, "ü" * 70, False)]
)
def test_close_codes_and_reasons_reach_the_server(code, reason, clean):
    seen = []

    def handler(ws):
        try:
            for _ in ws:
                pass
        except ConnectionClosed as exc:
            seen.append(exc)
        seen.append((ws.close_code, ws.close_reason))

    server, url = server_url(handler)
    with server:
        ws = connect(url)
        ws.close(code, reason)
        assert ws.state is State.CLOSED
        server.close()
    expected_reason = reason.encode()[:123].decode("utf-8", "ignore")
    assert seen[-1] == (code, expected_reason)
    assert (len(seen) == 1) == clean  # iteration ends silently only for a clean close


def test_close_is_idempotent_and_sending_afterwards_fails(echo_url):
    ws = connect(echo_url)
    ws.close()
    ws.close()
    ws.close(4000)
    assert ws.state is State.CLOSED
    with pytest.raises(ConnectionClosed):
        ws.send("too late")
    with pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=TIMEOUT)


def test_close_rejects_invalid_codes(echo_url):
    with connect(echo_url) as ws:
        for code in (999, 1005, 1006, 1015, 5000):
            with pytest.raises(ValueError):
                ws.close(code)
        assert ws.state is State.OPEN


def test_close_waits_for_the_server_then_returns():
    def script(peer):
        close = peer.next_frame()
        assert close.close_code == 1000 and close.text == "good bye"
        peer.sendall(frame(Opcode.CLOSE, close.payload[:2]))
        # The server closes TCP first (RFC 6455 §7.1.1); the client sees EOF.

    with RawServer(script) as server:
        ws = connect(server.url)
        ws.close(1000, "good bye")
        assert ws.state is State.CLOSED
        assert ws.close_code == 1000


def test_close_gives_up_after_close_timeout():
    def script(peer):
        peer.next_frame()  # the close frame, never answered
        peer.drain()

    with RawServer(script) as server:
        ws = connect(server.url, close_timeout=0.2)
        ws.close()
        assert ws.state is State.CLOSED
        assert ws.close_code == 1006
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert info.value.code == 1006


def test_server_that_never_closes_tcp_is_dropped_after_close_timeout():
    def script(peer):
        peer.sendall(frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        peer.next_frame()  # the echoed close, then keep TCP open
        peer.drain()

    with RawServer(script) as server:
        ws = connect(server.url, close_timeout=0.2)
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
        assert ws.state is State.CLOSED


def test_messages_before_a_close_are_not_lost():
    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"one") + frame(Opcode.TEXT, b"two") + frame(Opcode.CLOSE, b"\x03\xe8bye"))
        peer.next_frame()

    with RawServer(script) as server, connect(server.url) as ws:
        time.sleep(0.1)
        assert list(ws) == ["one", "two"]
        assert (ws.close_code, ws.close_reason) == (1000, "bye")


def test_abrupt_drop_is_1006_after_the_queued_messages():
    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"before the drop"))

    with RawServer(script) as server, connect(server.url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "before the drop"
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert info.value.code == 1006
        assert ws.state is State.CLOSED
        with pytest.raises(ConnectionClosedError):
            ws.send("nobody listens")


def test_drop_in_the_middle_of_a_frame():
    def script(peer):
        peer.sendall(frame(Opcode.BINARY, bytes(1000))[:500])

    with RawServer(script) as server, connect(server.url) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert info.value.code == 1006


def test_close_from_another_thread_ends_a_blocked_recv(echo_url):
    ws = connect(echo_url)
    outcome = []

    def reader():
        try:
            outcome.append(ws.recv())
        except ConnectionClosed as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)  # let the reader block
    ws.close(1000, "from elsewhere")
    thread.join(TIMEOUT)
    assert isinstance(outcome[0], ConnectionClosedOK)
    assert ws.state is State.CLOSED


def test_close_from_another_thread_when_the_server_never_answers():
    def script(peer):
        peer.next_frame()
        peer.drain()

    with RawServer(script) as server:
        ws = connect(server.url, close_timeout=0.2)
        outcome = []

        def reader():
            try:
                ws.recv()
            except ConnectionClosed as exc:
                outcome.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        time.sleep(0.1)
        ws.close()
        thread.join(TIMEOUT)
        assert isinstance(outcome[0], ConnectionClosedError)
        assert outcome[0].code == 1006


# Protocol errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, code, error",
    [
        (b"\x81\x85abcdhello", 1002, ProtocolError),  # masked frame from a server
        (frame(Opcode.TEXT, b"\xff\xfe"), 1007, InvalidUTF8),
        (frame(Opcode.TEXT, b"x", rsv=4), 1002, ProtocolError),
        (frame(Opcode.CONTINUATION, b"x"), 1002, ProtocolError),
        (frame(Opcode.BINARY, bytes(2000)), 1009, PayloadTooBig),
        (frame(Opcode.CLOSE, b"\x03"), 1002, ProtocolError),
        (frame(Opcode.CLOSE, (1006).to_bytes(2, "big")), 1002, ProtocolError),
    ],
    ids=["masked", "utf8", "rsv", "continuation", "too-big", "close-1-byte", "close-1006"],
)
def test_protocol_errors_close_with_the_right_code(codec, data, code, error):
    received = []

    def script(peer):
        peer.sendall(frame(Opcode.TEXT, b"valid first") + data)
        received.append(peer.next_frame())

    with RawServer(script) as server, connect(server.url, max_message_size=1000, codec=codec) as ws:
        assert ws.recv(timeout=TIMEOUT) == "valid first"
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert info.value.sent_code == code
        assert isinstance(info.value.__cause__, error)
        assert ws.state is State.CLOSED
    assert received[0].opcode == Opcode.CLOSE
    assert received[0].close_code == code


# Timeouts ------------------------------------------------------------------------------------


def test_recv_timeout_leaves_the_connection_usable(echo_url):
    with connect(echo_url) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        with pytest.raises(TimeoutError):
            ws.recv_many(timeout=0)
        with pytest.raises(TimeoutError):
            ws.recv_frame(timeout=0.01)
        ws.send("after the timeouts")
        assert ws.recv_frame(timeout=TIMEOUT).payload == b"after the timeouts"


@pytest.mark.parametrize("timeout", [0.2, READ_SLICE * 2.3])
def test_reads_that_wait_in_recv_keep_every_deadline(timeout):
    # A plain TCP connection's reads wait inside recv() itself, a slice at a time: a
    # timeout shorter than a slice, or one that ends within the last slice, still ends
    # the wait on time, and the connection stays usable.
    with RawServer(silent) as server, connect(server.url, ping_interval=None, close_timeout=0.3) as ws:
        assert ws._stream.waits_in_read
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.recv(timeout=timeout)
        assert timeout <= elapsed(start) < timeout + READ_SLICE / 2
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)


def test_a_thread_blocked_in_recv_wakes_when_another_one_aborts():
    # The reader waits inside recv() with no deadline; closing from another thread, to a
    # peer that never answers, ends that wait once close_timeout passes.
    with RawServer(silent) as server, connect(server.url, ping_interval=None, close_timeout=0.3) as ws:
        failure: list[BaseException] = []

        def read() -> None:
            try:
                ws.recv()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                failure.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.1)  # in recv() by now, or about to be: either way it must end
        ws.close()
        reader.join(TIMEOUT)
        assert not reader.is_alive()
        assert isinstance(failure[0], ConnectionClosed)


def test_recv_timeout_with_a_partial_frame_keeps_it():
    data = frame(Opcode.BINARY, b"0123456789")
    gate = threading.Event()

    def script(peer):
        peer.sendall(data[:5])
        gate.wait(TIMEOUT)
        peer.sendall(data[5:])
        close_politely(peer)

    with RawServer(script) as server, connect(server.url) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.1)
        gate.set()
        assert ws.recv(timeout=TIMEOUT) == b"0123456789"


def test_connect_timeout_when_the_handshake_never_comes():
    with RawServer(Peer.drain, response=None) as server:
        with pytest.raises(TimeoutError):
            connect(server.url, timeout=0.2)


def test_connect_timeout_when_the_response_trickles():
    def response(request):
        return b"HTTP/1.1 101 Switching Protocols\r\n"  # and then nothing

    with RawServer(Peer.drain, response=response) as server, pytest.raises(TimeoutError):
        connect(server.url, timeout=0.2)


# Handshake failures --------------------------------------------------------------------------


def fixed_response(text: bytes):
    return lambda request: text


def test_non_101_status_raises_invalid_status():
    response = fixed_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here!")
    with RawServer(response=response) as server, pytest.raises(InvalidStatus) as info:
        connect(server.url, timeout=TIMEOUT)
    assert info.value.status == 404
    assert info.value.body == b"not here!"


def test_wrong_accept_raises_invalid_header():
    response = fixed_response(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
    )
    with RawServer(response=response) as server, pytest.raises(InvalidHeader, match="Accept"):
        connect(server.url, timeout=TIMEOUT)


def test_missing_upgrade_raises_invalid_header():
    def response(request):
        return accept_response(request).replace(b"Upgrade: websocket\r\n", b"")

    with RawServer(response=response) as server, pytest.raises(InvalidHeader, match="Upgrade"):
        connect(server.url, timeout=TIMEOUT)


def test_oversized_response_head_raises_invalid_handshake():
    def response(request):
        return b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Filler: " + b"a" * 100_000 + b"\r\n\r\n"

    with RawServer(response=response) as server, pytest.raises(InvalidHandshake, match="max_header_size"):
        connect(server.url, timeout=TIMEOUT)


def test_server_hanging_up_during_the_handshake_raises_invalid_handshake():
    with RawServer(response=fixed_response(b"HTTP/1.1 101 Swi")) as server, pytest.raises(InvalidHandshake):
        connect(server.url, timeout=TIMEOUT)


def test_refused_connection_raises_oserror():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{port}/", timeout=TIMEOUT)


def test_bad_arguments():
    import ssl

    with pytest.raises(InvalidURI):
        connect("http://example.com/")
    with pytest.raises(ValueError):
        connect("ws://example.com/", ssl=ssl.create_default_context())
    with pytest.raises(ValueError):
        connect("wss://example.com/", ssl=False)
    with pytest.raises(ValueError):
        connect("ws://127.0.0.1:1/", max_message_size=-1)
    with pytest.raises(ValueError):
        connect("ws://127.0.0.1:1/", max_frame_size=0)
    with pytest.raises(ValueError):
        connect("ws://127.0.0.1:1/", headers={"Bad Name": "x"})


# Handshake options ---------------------------------------------------------------------------


def test_headers_origin_subprotocols_and_credentials():
    seen = {}

    def handler(ws):
        seen["path"] = ws.path
        seen["headers"] = ws.request_headers
        ws.send(ws.subprotocol)

    server, url = server_url(handler, subprotocols=["chat", "superchat"])
    url = url.replace("ws://", "ws://user:secret@") + "feed?symbol=X"
    with (
        server,
        connect(
            url, headers={"X-Token": "abc"}, origin="https://example.com", subprotocols=["superchat", "chat"]
        ) as ws,
    ):
        assert ws.subprotocol == "superchat"
        assert ws.recv(timeout=TIMEOUT) == "superchat"
        assert ws.response_headers["Sec-WebSocket-Protocol"] == "superchat"
    assert seen["path"] == "/feed?symbol=X"
    assert seen["headers"]["X-Token"] == "abc"
    assert seen["headers"]["Origin"] == "https://example.com"
    assert seen["headers"]["Authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()


def test_addresses_state_and_repr(echo_url):
    with connect(echo_url) as ws:
        assert isinstance(ws, Client)
        assert ws.state is State.OPEN
        assert ws.remote_address[1] == int(echo_url.rsplit(":", 1)[1].strip("/"))
        assert ws.local_address[0] == "127.0.0.1"
        assert ws.certificate is None
        assert "OPEN" in repr(ws)
    assert ws.state is State.CLOSED


def test_ipv6(codec):
    try:
        server = serve(host="::1", codec=codec).start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    with server, connect(f"ws://[::1]:{server.port}/", codec=codec) as ws:
        ws.send("over IPv6")
        assert ws.recv(timeout=TIMEOUT) == "over IPv6"
        assert ws.remote_address[0] == "::1"


# Threads -------------------------------------------------------------------------------------


def test_send_from_another_thread_while_receiving(echo_url, codec):
    count = 2000
    with connect(echo_url, codec=codec) as ws:

        def sender():
            for i in range(count):
                ws.send(f"{i}" if i % 2 else i.to_bytes(4, "big"))

        thread = threading.Thread(target=sender)
        thread.start()
        received = [ws.recv(timeout=TIMEOUT) for _ in range(count)]
        thread.join(TIMEOUT)
    assert received == [f"{i}" if i % 2 else i.to_bytes(4, "big") for i in range(count)]


def test_threads_waiting_to_read_are_woken_by_the_reader_that_finishes():
    # Three threads call recv() at once: one reads, the others wait their turn, and each
    # of the messages the server sends apart from one another reaches one of them.
    def script(peer):
        for index in range(3):
            time.sleep(0.2)
            peer.sendall(frame(Opcode.TEXT, f"message {index}".encode()))
        close_politely(peer)

    received = []
    with RawServer(script) as server, connect(server.url) as ws:
        threads = [threading.Thread(target=lambda: received.append(ws.recv(timeout=TIMEOUT))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
    assert sorted(received) == [f"message {index}" for index in range(3)]


def test_big_sends_do_not_block_the_receiving_thread(echo_url):
    # Both directions carry megabytes at once: the reader must keep draining while
    # another thread's send waits for the server to read.
    big = bytes(8 << 20)
    with connect(echo_url) as ws:
        thread = threading.Thread(target=lambda: [ws.send(big) for _ in range(3)])
        thread.start()
        for _ in range(3):
            assert ws.recv(timeout=TIMEOUT) == big
        thread.join(TIMEOUT)
