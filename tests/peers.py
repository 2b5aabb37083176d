"""Raw-socket fake servers for the client tests: they send exactly the bytes a test needs
(slow, broken, fragmented or hostile peers) and read back what the client sent."""

from __future__ import annotations

import base64
import collections
import hashlib
import select
import socket
import threading
import time

from wsfast import _pure
from wsfast.enums import Opcode

TIMEOUT = 5  # seconds any single wait of a fake server may take


def frame(opcode, payload=b"", fin=True, rsv=0) -> bytes:
    """An unmasked frame, as a server sends it."""
    return _pure.encode_frame(opcode, payload, fin=fin, rsv=rsv)


def accept_response(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept
        + b"\r\n\r\n"
    )


def read_request(sock) -> bytes:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        if not chunk:
            break
        request += chunk
    return request


class Peer:
    """The server end of a RawServer connection: send bytes, read the client's frames."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.sendall = sock.sendall
        self._parser = _pure.FrameParser(client=False, max_size=None)
        self._frames: collections.deque = collections.deque()

    def next_frame(self):
        """The client's next frame, or None at EOF."""
        while not self._frames:
            data = self.sock.recv(65536)
            if not data:
                return None
            self._frames.extend(self._parser.feed(data))
        return self._frames.popleft()

    def drain(self) -> None:
        """Read and discard until the client closes the connection."""
        while self.sock.recv(65536):
            pass


class RawServer:
    """Accepts one connection and runs ``script(peer)`` on it, after answering the upgrade
    with ``response(request)`` (by default a valid 101; None: no handshake at all); over
    TLS with the server ``context`` given."""

    def __init__(self, script=None, response=accept_response, context=None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.script = script
        self.response = response
        self.context = context
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sock, _ = self.listener.accept()
        sock.settimeout(TIMEOUT)
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_side=True)
            if self.response is not None:
                sock.sendall(self.response(read_request(sock)))
            if self.script is not None:
                self.script(Peer(sock))
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
        finally:
            sock.close()

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        self.listener.close()
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.join()


def close_politely(peer) -> None:
    """Answer the client's close frame, as a server does, then end TCP."""
    close = peer.next_frame()
    if close is not None and close.opcode == Opcode.CLOSE:
        peer.sendall(frame(Opcode.CLOSE, close.payload[:2]))


# Hostile peers ---------------------------------------------------------------------


def stop_reading(peer) -> None:
    """A peer that completed the handshake, then reads nothing until the client is gone."""
    poller = select.poll()
    # POLLRDHUP: the client closed its side, even though its bytes are still unread.
    poller.register(peer.sock, getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR)
    poller.poll(30_000)


def silent(peer) -> None:
    """A peer that reads everything and answers nothing (not even pings)."""
    peer.sock.settimeout(30)
    try:
        while peer.sock.recv(65536):
            pass
    except OSError:
        pass


def elapsed(start: float) -> float:
    return time.monotonic() - start
