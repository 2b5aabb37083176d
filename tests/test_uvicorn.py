"""wsfast as uvicorn's WebSocket implementation, served by a real uvicorn on this machine.

A websockets client plays the well-behaved browser, a raw TCP client the misbehaving one.
uvicorn's own WebSocket tests run too, in ``.ci/run`` (see ``tests/uvicorn_conformance.py``).
"""

import asyncio
import contextlib
import socket
import ssl

import pytest
import websockets
from websockets.asyncio.client import connect

from wsfast import FrameParser, Opcode, encode_frame

uvicorn = pytest.importorskip("uvicorn")

from wsfast.uvicorn import WebSocketProtocol  # noqa: E402 - needs uvicorn

KEY = b"\x01\x02\x03\x04"
UPGRADE = (
    "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)

pytestmark = pytest.mark.usefixtures("no_hang")


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def serving(app, protocol=WebSocketProtocol, **options):
    """uvicorn serving ``app`` on a free port with wsfast's protocol; yields the server."""
    sock = socket.create_server(("127.0.0.1", 0))
    options = {"http": "h11", "lifespan": "off", "log_level": "warning", **options}
    server = uvicorn.Server(uvicorn.Config(app, ws=protocol, **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    server.url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield server
    finally:
        server.should_exit = True
        await task


def the_protocol(server) -> WebSocketProtocol:
    (protocol,) = server.server_state.connections
    return protocol


async def handed_over(server) -> None:
    """Wait until uvicorn has handed a connection over to wsfast's protocol."""
    while not any(isinstance(protocol, WebSocketProtocol) for protocol in server.server_state.connections):
        await asyncio.sleep(0.01)


async def echo(scope, receive, send):
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "bytes": event.get("bytes"), "text": event.get("text")})
        else:
            return


class Recorder:
    """An app that accepts, records every event it receives, and runs ``then`` after accepting."""

    def __init__(self, then=None, **accept):
        self.events = []
        self.then = then
        self.accept = accept
        self.done = asyncio.Event()

    async def __call__(self, scope, receive, send):
        self.scope = scope
        try:
            self.events.append(await receive())
            await send({"type": "websocket.accept", **self.accept})
            if self.then is not None:
                await self.then(receive, send)
            while not self.events or self.events[-1]["type"] != "websocket.disconnect":
                self.events.append(await receive())
        finally:
            self.done.set()

    @property
    def disconnect(self):
        return self.events[-1]


async def send_request(url: str, request: str):
    """Open a TCP connection to ``url``'s server and send ``request``; return the reader,
    the writer, the response head and the bytes that came after it."""
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request.encode("latin-1"))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return reader, writer, head, rest


async def http_response(url: str, request: str = UPGRADE.format(target="/", extra="")) -> tuple[bytes, bytes]:
    """Send an upgrade request; return the response head and everything after it."""
    reader, writer, head, rest = await send_request(url, request)
    body = rest + await reader.read()
    writer.close()
    return head, body


class RawClient:
    """A WebSocket client speaking bytes, to send what no library would."""

    def __init__(self, reader, writer, rest: bytes):
        self.reader, self.writer = reader, writer
        self.parser = FrameParser(client=True)
        self.frames = self.parser.feed(rest)

    @classmethod
    async def open(cls, url: str, target: str = "/", extra: str = ""):
        reader, writer, head, rest = await send_request(url, UPGRADE.format(target=target, extra=extra))
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer, rest)

    def send(self, opcode, payload=b"", fin=True, rsv=0):
        self.writer.write(encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=KEY))

    async def frame(self):
        """The next frame from the server; None once it closed TCP."""
        while not self.frames:
            data = await self.reader.read(65536)
            if not data:
                return None
            self.frames = self.parser.feed(data)
        return self.frames.pop(0)

    async def close_frame(self):
        """Skip to the server's close frame; return (code, reason)."""
        while True:
            frame = await self.frame()
            assert frame is not None, "the server closed TCP without a close frame"
            if frame.opcode == Opcode.CLOSE:
                return frame.close_code, frame.text

    async def rest(self) -> bytes:
        """Everything the server sends until it closes TCP."""
        chunks = []
        while chunk := await self.reader.read(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def header_values(head: bytes, name: bytes) -> list[bytes]:
    lines = head.split(b"\r\n")[1:]
    return [line.partition(b":")[2].strip() for line in lines if line.partition(b":")[0].lower() == name]


# Messages ----------------------------------------------------------------------------


def test_messages_go_both_ways_as_text_or_bytes():
    async def main():
        async with serving(echo) as server, connect(server.url) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            await ws.send(["frag", "mented"])
            assert await ws.recv() == "fragmented"

    run(main())


def test_a_burst_of_messages_arrives_whole_and_in_order():
    async def burst(receive, send):
        for number in range(20000):
            await send({"type": "websocket.send", "text": str(number)})
        await send({"type": "websocket.close"})

    async def main():
        async with serving(Recorder(burst)) as server, connect(server.url, max_queue=None) as ws:
            received = [message async for message in ws]
        assert received == [str(number) for number in range(20000)]

    run(main())


def test_sending_waits_while_the_client_reads_nothing():
    sent = 0

    async def flood(receive, send):
        nonlocal sent
        with contextlib.suppress(OSError):
            while True:
                await send({"type": "websocket.send", "bytes": bytes(1 << 20)})
                sent += 1

    async def main():
        app = Recorder(flood)
        async with serving(app) as server:
            client = await RawClient.open(server.url)
            await asyncio.sleep(0.5)
            assert 0 < sent < 64  # bounded by the socket buffers, not by the app's speed
            client.writer.close()
            await asyncio.wait_for(app.done.wait(), 5)
        assert app.disconnect == {"type": "websocket.disconnect", "code": 1006}

    run(main())


def test_reading_pauses_while_too_many_messages_wait_for_the_app():
    release = asyncio.Event()

    async def slow(receive, send):
        await release.wait()

    async def main():
        app = Recorder(slow)
        async with serving(app, ws_max_queue=8) as server:
            client = await RawClient.open(server.url)
            client.writer.write(encode_frame(Opcode.BINARY, bytes(1000), mask_key=KEY) * 20000)  # 20 MB
            await asyncio.sleep(0.5)
            protocol = the_protocol(server)
            assert not protocol.transport.is_reading()
            assert len(protocol._events) < 8 + 300  # past the limit, one read of 256 KiB at most
            assert client.writer.transport.get_write_buffer_size() > 0  # the rest waits in the client
            release.set()
            client.send(Opcode.CLOSE, b"\x03\xe8")
            assert await client.close_frame() == (1000, "")
            await app.done.wait()
        assert sum(event["type"] == "websocket.receive" for event in app.events) == 20000
        assert app.disconnect == {"type": "websocket.disconnect", "code": 1000, "reason": ""}

    run(main())


def test_a_message_over_ws_max_size_closes_with_1009():
    async def main():
        app = Recorder()
        async with serving(app, ws_max_size=1000) as server, connect(server.url, compression=None) as ws:
            await ws.send(bytes(1000))
            with pytest.raises(websockets.ConnectionClosedError) as caught:
                await ws.send(bytes(1001))
                await ws.recv()
        assert caught.value.rcvd.code == 1009
        assert app.disconnect["code"] == 1009

    run(main())


def test_a_compressed_message_over_ws_max_size_closes_with_1009():
    async def main():
        async with serving(Recorder(), ws_max_size=100_000) as server, connect(server.url) as ws:
            with pytest.raises(websockets.ConnectionClosedError) as caught:
                await ws.send(bytes(1_000_000))  # a few KiB on the wire
                await ws.recv()
        assert caught.value.rcvd.code == 1009

    run(main())


def test_permessage_deflate_uses_small_windows_and_can_be_off():
    async def main():
        async with serving(echo) as server, connect(server.url) as ws:
            answer = ws.response.headers["Sec-WebSocket-Extensions"]
            assert answer == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
            await ws.send("abc" * 10000)
            assert await ws.recv() == "abc" * 10000
        async with serving(echo, ws_per_message_deflate=False) as server, connect(server.url) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers

    run(main())


# The opening handshake and the scope --------------------------------------------------


def test_the_scope_describes_the_request():
    async def main():
        app = Recorder()
        async with serving(app, root_path="/api") as server:
            client = await RawClient.open(
                server.url, "/a%2Fb/c?x=1&y=%20", "Sec-WebSocket-Protocol: chat, superchat\r\nX-Name: ab\xe3o\r\n"
            )
            client.send(Opcode.CLOSE, b"\x03\xe8")
            await client.close_frame()
            await app.done.wait()
        scope = app.scope
        assert scope["type"] == "websocket"
        assert scope["asgi"]["spec_version"] == "2.4"
        assert scope["scheme"] == "ws"
        assert scope["path"] == "/api/a/b/c"
        assert scope["raw_path"] == b"/api/a%2Fb/c"
        assert scope["root_path"] == "/api"
        assert scope["query_string"] == b"x=1&y=%20"
        assert scope["subprotocols"] == ["chat", "superchat"]
        assert (b"x-name", b"ab\xe3o") in scope["headers"]  # the bytes received
        assert scope["client"][0] == scope["server"][0] == "127.0.0.1"
        assert "websocket.http.response" in scope["extensions"]
        assert app.events[0] == {"type": "websocket.connect"}

    run(main())


def test_the_scheme_is_wss_over_tls(tmp_path):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async def main():
        app = Recorder()
        options = {"ssl_certfile": str(tmp_path / "server.pem")}
        async with serving(app, **options) as server:
            url = server.url.replace("ws://", "wss://")
            async with connect(url, ssl=client_context) as ws:
                await ws.send("x")
        await app.done.wait()
        assert app.scope["scheme"] == "wss"

    run(main())


def test_proxy_headers_set_the_scheme_and_the_client():
    async def main():
        app = Recorder()
        async with serving(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as server:
            headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
            async with connect(server.url, additional_headers=headers):
                pass
            await app.done.wait()
        assert app.scope["scheme"] == "wss"
        assert app.scope["client"] == ("203.0.113.7", 0)

    run(main())


def test_accept_chooses_the_subprotocol_and_adds_headers():
    async def main():
        app = Recorder(subprotocol="superchat", headers=[(b"x-extra", b"1"), (b"server", b"mine")])
        async with (
            serving(app, headers=[("X-Configured", "yes")]) as server,
            connect(server.url, subprotocols=["chat", "superchat"]) as ws,
        ):
            assert ws.subprotocol == "superchat"
            headers = ws.response.headers
        assert headers["x-extra"] == "1"
        assert headers["x-configured"] == "yes"
        assert headers.get_all("server") == ["uvicorn", "mine"]
        assert len(headers.get_all("date")) == 1

    run(main())


@pytest.mark.parametrize(
    "accept",
    [
        {"headers": [(b"x-evil", b"1\r\nSet-Cookie: a=b")]},
        {"headers": [(b"bad name", b"1")]},
        {"subprotocol": "chat\r\nSet-Cookie: a=b"},
    ],
)
def test_accept_refuses_what_would_break_the_response(accept):
    async def main():
        app = Recorder(**accept)
        async with serving(app) as server:
            with pytest.raises(websockets.InvalidStatus) as caught:
                async with connect(server.url, subprotocols=["chat"]):
                    pass
        assert caught.value.response.status_code == 500

    run(main())


@pytest.mark.parametrize(
    ("old", "new", "status", "said"),
    [
        ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426, b"Sec-WebSocket-Version: 13"),
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Key: short", 400, b"Sec-WebSocket-Key"),
        ("Host: 127.0.0.1", "Host: 127.0.0.1\r\nSec-WebSocket-Extensions: permessage-deflate; =", 400, b"Extensions"),
    ],
)
def test_a_bad_upgrade_request_gets_an_http_error(old, new, status, said):
    async def main():
        async with serving(echo) as server:
            head, body = await http_response(server.url, UPGRADE.format(target="/", extra="").replace(old, new))
        assert head.startswith(b"HTTP/1.1 %d " % status), head
        assert said in head + body

    run(main())


def test_messages_sent_before_the_app_accepts_are_kept():
    async def slow_accept(scope, receive, send):
        await receive()
        await asyncio.sleep(0.2)
        await send({"type": "websocket.accept"})
        event = await receive()
        await send({"type": "websocket.send", "text": event["text"].upper()})

    async def main():
        async with serving(slow_accept) as server:
            host, port = server.url.split("//")[1].split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(UPGRADE.format(target="/", extra="").encode())
            await handed_over(server)
            writer.write(encode_frame(Opcode.TEXT, b"early", mask_key=KEY))  # before the 101
            data = b""
            while b"EARLY" not in data:
                chunk = await reader.read(65536)
                assert chunk, data
                data += chunk
            writer.close()

    run(main())


# Rejecting: close before accept, the Denial Response extension ------------------------


def test_close_before_accept_answers_403():
    events = []

    async def refuse(scope, receive, send):
        events.append(await receive())
        await send({"type": "websocket.close", "reason": "not now"})
        events.append(await receive())

    async def main():
        async with serving(refuse) as server:
            with pytest.raises(websockets.InvalidStatus) as caught:
                async with connect(server.url):
                    pass
        assert caught.value.response.status_code == 403
        assert events == [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1006}]

    run(main())


def response_app(status, headers, *bodies):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        for index, body in enumerate(bodies):
            await send({"type": "websocket.http.response.body", "body": body, "more_body": index < len(bodies) - 1})

    return app


@pytest.mark.parametrize(
    ("headers", "bodies", "framing"),
    [
        ([(b"content-type", b"application/json")], [b'{"detail": "no"}'], b"content-length: 16"),
        ([], [b"part one, ", b"part two"], b"transfer-encoding: chunked"),
        ([(b"content-length", b"18")], [b"part one, ", b"part two"], b"content-length: 18"),
    ],
)
def test_the_app_can_answer_with_its_own_http_response(headers, bodies, framing):
    async def main():
        async with serving(response_app(401, headers, *bodies)) as server:
            head, body = await http_response(server.url)
        assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
        assert framing in head.lower()
        assert header_values(head, b"connection") == [b"close"]
        assert header_values(head, b"server") == [b"uvicorn"]
        if b"chunked" in framing:
            assert body == b"a\r\npart one, \r\n8\r\npart two\r\n0\r\n\r\n"
        else:
            assert body == b"".join(bodies)

    run(main())


def test_a_response_that_never_starts_its_body_becomes_a_500():
    async def main():
        async with serving(response_app(404, [])) as server:
            head, body = await http_response(server.url)
        assert head.startswith(b"HTTP/1.1 500 ")
        assert body == b"Internal Server Error"

    run(main())


@pytest.mark.parametrize("fault", ["returns", "raises", "sends first", "bad status", "bad header"])
def test_an_app_that_fails_before_accepting_gets_a_500(fault):
    async def app(scope, receive, send):
        await receive()
        if fault == "raises":
            raise ValueError("boom")
        if fault == "sends first":
            await send({"type": "websocket.send", "text": "too early"})
        if fault == "bad status":
            await send({"type": "websocket.http.response.start", "status": 99, "headers": []})
        if fault == "bad header":
            headers = [(b"content-length", b"0"), (b"x", b"\n")]
            await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})

    async def main():
        async with serving(app) as server:
            with pytest.raises(websockets.InvalidStatus) as caught:
                async with connect(server.url):
                    pass
        assert caught.value.response.status_code == 500

    run(main())


# Closing -------------------------------------------------------------------------------


def test_the_app_closes_with_a_code_and_a_reason():
    async def close(receive, send):
        await send({"type": "websocket.close", "code": 4000, "reason": "é" * 100})
        with pytest.raises(RuntimeError, match="already closed"):
            await send({"type": "websocket.send", "text": "late"})

    async def main():
        app = Recorder(close)
        async with serving(app) as server, connect(server.url) as ws:
            with pytest.raises(websockets.ConnectionClosedError):
                await ws.recv()
        assert ws.close_code == 4000
        assert ws.close_reason == "é" * 61  # 123 bytes of UTF-8 at most
        assert app.disconnect == {"type": "websocket.disconnect", "code": 4000, "reason": "é" * 100}

    run(main())


def test_the_clients_close_reaches_the_app_and_sending_then_raises_oserror():
    async def after_close(receive, send):
        event = await receive()
        with pytest.raises(OSError):
            await send({"type": "websocket.send", "text": "too late"})
        assert await receive() == event  # the disconnect event is returned again

    async def main():
        app = Recorder(after_close)
        async with serving(app) as server:
            async with connect(server.url) as ws:
                await ws.close(1001, "going away")
            await app.done.wait()
        assert app.disconnect == {"type": "websocket.disconnect", "code": 1001, "reason": "going away"}

    run(main())


def test_a_dropped_connection_is_1006():
    async def main():
        app = Recorder()
        async with serving(app) as server:
            client = await RawClient.open(server.url)
            client.writer.transport.abort()
            await app.done.wait()
        assert app.disconnect == {"type": "websocket.disconnect", "code": 1006}

    run(main())


def test_returning_without_closing_drops_the_connection_after_the_messages_sent():
    async def say_and_leave(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    async def main():
        async with serving(say_and_leave) as server, connect(server.url) as ws:
            assert await ws.recv() == "bye"
            with pytest.raises(websockets.ConnectionClosedError):
                await ws.recv()
        assert ws.close_code == 1006

    run(main())


def test_the_client_must_answer_a_close_in_time():
    class QuickClose(WebSocketProtocol):
        close_timeout = 0.2

    async def close(receive, send):
        await send({"type": "websocket.close"})

    async def main():
        app = Recorder(close)
        async with serving(app, protocol=QuickClose) as server:
            client = await RawClient.open(server.url)
            assert await client.close_frame() == (1000, "")
            assert await asyncio.wait_for(client.rest(), 2) == b""  # TCP closed, unanswered
            client.writer.close()

    run(main())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (encode_frame(Opcode.TEXT, b"\xff", mask_key=KEY), 1007),
        (encode_frame(Opcode.CLOSE, b"\x03\xec", mask_key=KEY), 1002),  # close code 1004
        (b"\x89\xfe\x00\x7e" + KEY + bytes(126), 1002),  # a ping of 126 bytes
        (b"\x83\x80" + KEY, 1002),  # reserved opcode 3
        (b"\xc1\x80" + KEY, 1002),  # RSV1 without permessage-deflate
    ],
)
def test_a_protocol_violation_closes_with_its_code(frame, code):
    async def main():
        app = Recorder()
        async with serving(app) as server:
            client = await RawClient.open(server.url)
            client.writer.write(frame)
            assert (await client.close_frame())[0] == code
            assert await asyncio.wait_for(client.rest(), 2) == b""  # the server ended its side
            await app.done.wait()
            client.writer.close()
        assert app.disconnect["code"] == code
        assert app.disconnect["reason"]

    run(main())


def test_an_unmasked_frame_closes_with_1002():
    async def main():
        async with serving(Recorder()) as server:
            client = await RawClient.open(server.url)
            client.writer.write(encode_frame(Opcode.TEXT, b"naked"))
            assert (await client.close_frame())[0] == 1002
            client.writer.close()

    run(main())


def test_messages_before_a_violation_are_answered_before_the_close():
    async def main():
        async with serving(echo) as server:
            client = await RawClient.open(server.url)
            client.writer.write(
                encode_frame(Opcode.TEXT, b"first", mask_key=KEY) + encode_frame(Opcode.TEXT, b"\xff", mask_key=KEY)
            )
            answer = await client.frame()
            assert (answer.opcode, answer.payload) == (Opcode.TEXT, b"first")
            assert (await client.close_frame())[0] == 1007
            client.writer.close()

    run(main())


def test_shutting_down_closes_with_1012():
    async def main():
        app = Recorder()
        async with serving(app) as server:
            async with connect(server.url) as ws:
                await server.shutdown()
                with pytest.raises(websockets.ConnectionClosedError):
                    await ws.recv()
            await app.done.wait()
        assert ws.close_code == 1012
        assert app.disconnect == {"type": "websocket.disconnect", "code": 1012}

    run(main())


def test_shutting_down_before_the_app_decided_answers_503():
    accepting = asyncio.Event()

    async def undecided(scope, receive, send):
        await receive()
        await accepting.wait()
        with pytest.raises(OSError):
            await send({"type": "websocket.accept"})

    async def main():
        async with serving(undecided) as server:
            opening = asyncio.create_task(http_response(server.url))
            await handed_over(server)
            shutdown = asyncio.create_task(server.shutdown())  # it waits for the app to finish
            head, _ = await opening
            accepting.set()
            await shutdown
        assert head.startswith(b"HTTP/1.1 503 ")

    run(main())


# Keepalive -----------------------------------------------------------------------------


def test_keepalive_pings_a_client_that_answers():
    async def main():
        options = {"ws_ping_interval": 0.05, "ws_ping_timeout": 0.1}
        async with serving(Recorder(), **options) as server, connect(server.url, ping_interval=None) as ws:
            protocol = the_protocol(server)
            await asyncio.sleep(0.4)
            assert protocol._keepalive.latency is not None
            await ws.send("still here")

    run(main())


def test_keepalive_closes_with_1011_when_the_client_is_silent():
    async def main():
        app = Recorder()
        async with serving(app, ws_ping_interval=0.05, ws_ping_timeout=0.1) as server:
            client = await RawClient.open(server.url)
            frame = await client.frame()
            assert frame.opcode == Opcode.PING
            assert await client.close_frame() == (1011, "keepalive ping timeout")
            await app.done.wait()
            client.writer.close()
        assert app.disconnect == {"type": "websocket.disconnect", "code": 1011, "reason": "keepalive ping timeout"}

    run(main())


@pytest.mark.parametrize("interval", [None, 0])
def test_keepalive_can_be_off(interval):
    async def main():
        async with serving(Recorder(), ws_ping_interval=interval) as server, connect(server.url):
            assert the_protocol(server)._keepalive is None

    run(main())
