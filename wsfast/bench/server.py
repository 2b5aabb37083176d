"""The benchmark server: a raw-socket WebSocket peer that every contestant meets.

Run it as its own process (``python -m wsfast.bench.server``) so that a client's
process spends its time on receiving only. It listens on 127.0.0.1, prints the port,
serves one connection at a time and exits by itself: after ``--idle`` seconds without a
connection, after ``--lifetime`` seconds in all, or (with ``--stdin-lifeline``) when its
standard input closes because the process that started it is gone. The request path
picks the job:

- ``/feed/<count>/<size>``: send ``count`` binary messages of ``size`` bytes as fast as
  the kernel takes them (pre-encoded frames in big ``sendall`` chunks), then a close frame.
- ``/echo``: send every data message back, unchanged, until the client closes.

It depends on nothing but the standard library (and a C mask from ``websockets`` when
installed), so it treats every client alike.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import select
import socket
import sys
import time

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CHUNK = 1 << 20  # bytes per sendall: big enough that syscalls are not the limit
_CLOSE_1000 = b"\x88\x02\x03\xe8"
_IO_TIMEOUT = 30.0  # a client silent this long is gone

try:
    from websockets.speedups import apply_mask as _unmask
except ImportError:

    def _unmask(data: bytes, key: bytes) -> bytes:
        n = len(data)
        stream = (key * (n // 4 + 1))[:n]
        return (
            int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
        ).to_bytes(n, "little")


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked final frame (what a server sends)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")


def _read_request(conn: socket.socket) -> tuple[str, bytes, bytes]:
    """Read the upgrade request; return its path, Sec-WebSocket-Key and any bytes after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk or len(data) > 65536:
            raise ConnectionError("no complete upgrade request")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    path = lines[0].split(b" ")[1].decode("ascii")
    key = b""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    return path, key, rest


def _accept(key: bytes) -> bytes:
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


class _FeedCache:
    """Pre-built chunks per (count, size), so repeated runs pay the encoding once."""

    def __init__(self) -> None:
        self._chunks: dict[tuple[int, int], tuple[bytes, int, bytes]] = {}

    def get(self, count: int, size: int) -> tuple[bytes, int, bytes]:
        """Return (full chunk, how many full chunks, the remainder) for one feed."""
        if (count, size) not in self._chunks:
            frame = frame_header(0x2, size) + bytes(size)
            per_chunk = max(1, _CHUNK // len(frame))
            full, rest = divmod(count, per_chunk)
            self._chunks.clear()  # keep one feed in memory at a time
            self._chunks[(count, size)] = (frame * per_chunk, full, frame * rest)
        return self._chunks[(count, size)]


def _client_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Parse the complete masked client frames in ``buf``: ([(opcode, payload)], bytes used)."""
    frames = []
    pos = 0
    end = len(buf)
    while end - pos >= 6:
        length = buf[pos + 1] & 0x7F
        start = pos + 2
        if length == 126:
            length = int.from_bytes(buf[start : start + 2], "big")
            start += 2
        elif length == 127:
            length = int.from_bytes(buf[start : start + 8], "big")
            start += 8
        stop = start + 4 + length
        if end < stop:
            break  # wait for the rest of the frame (or of its extended length)
        frames.append(
            (buf[pos] & 0x0F, _unmask(buf[start + 4 : stop], buf[start : start + 4]))
        )
        pos = stop
    return frames, pos


def _serve_feed(conn: socket.socket, chunk: bytes, repeat: int, rest: bytes) -> None:
    for _ in range(repeat):
        conn.sendall(chunk)
    conn.sendall(rest + _CLOSE_1000)
    # Close TCP once the client answered our close frame, as a server should.
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        frames, used = _client_frames(buf)
        if any(opcode == 0x8 for opcode, _ in frames):
            return
        buf = buf[used:]


def _serve_echo(conn: socket.socket, buf: bytes) -> None:
    recv = conn.recv
    sendall = conn.sendall
    while True:
        frames, used = _client_frames(buf)
        out = []
        for opcode, payload in frames:
            if opcode == 0x8:
                sendall(b"".join(out) + _CLOSE_1000)
                return  # the close handshake is complete: close TCP
            if opcode == 0xA:
                continue
            out.append(frame_header(0xA if opcode == 0x9 else opcode, len(payload)))
            out.append(payload)
        if out:
            sendall(b"".join(out))
        data = recv(1 << 20)
        if not data:
            return
        buf = buf[used:] + data


def _handle(conn: socket.socket, feeds: _FeedCache) -> None:
    conn.settimeout(_IO_TIMEOUT)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    path, key, rest = _read_request(conn)
    parts = path.strip("/").split("/")
    if parts[0] == "feed" and len(parts) == 3:
        chunk, repeat, remainder = feeds.get(int(parts[1]), int(parts[2]))
        conn.sendall(_accept(key))
        _serve_feed(conn, chunk, repeat, remainder)
    elif parts[0] == "echo":
        conn.sendall(_accept(key))
        _serve_echo(conn, rest)
    else:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def serve(
    idle: float, lifetime: float, port: int = 0, stdin_lifeline: bool = False
) -> None:
    """Serve benchmark connections on 127.0.0.1 until idle, out of time, or orphaned."""
    deadline = time.monotonic() + lifetime
    feeds = _FeedCache()
    with socket.create_server(("127.0.0.1", port)) as listener:
        print(listener.getsockname()[1], flush=True)
        watched = [listener, sys.stdin] if stdin_lifeline else [listener]
        while True:
            wait = min(idle, deadline - time.monotonic())
            if wait <= 0:
                return
            ready, _, _ = select.select(watched, [], [], wait)
            if not ready:
                return  # idle too long
            if (
                stdin_lifeline
                and sys.stdin in ready
                and not sys.stdin.buffer.read1(4096)
            ):
                return  # the runner went away
            if listener in ready:
                conn, _ = listener.accept()
                with conn:
                    try:
                        _handle(conn, feeds)
                    except (OSError, ValueError, IndexError) as exc:
                        print(
                            f"connection failed: {exc!r}", file=sys.stderr, flush=True
                        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)"
    )
    parser.add_argument(
        "--idle", type=float, default=120.0, help="exit after this many idle seconds"
    )
    parser.add_argument(
        "--lifetime", type=float, default=3600.0, help="exit after this many seconds"
    )
    parser.add_argument(
        "--stdin-lifeline", action="store_true", help="exit when standard input closes"
    )
    args = parser.parse_args(argv)
    serve(args.idle, args.lifetime, args.port, args.stdin_lifeline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
