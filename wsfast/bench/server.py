"""The benchmark server: a raw-socket WebSocket peer that every contestant meets.

Run it as its own process (``python -m wsfast.bench.server``) so that a client's
process spends its time on receiving only. It listens on 127.0.0.1 and prints its port
on one line; given ``--tls-cert`` and ``--tls-key`` it also serves TLS on a second port,
printed after the first. It serves one connection at a time and exits by itself: after
``--idle`` seconds without a connection, after ``--lifetime`` seconds in all, or (with
``--stdin-lifeline``) when its standard input closes because the process that started it
is gone. The request path picks the job:

- ``/feed/<count>/<size>``: send ``count`` binary messages of ``size`` bytes as fast as
  the kernel takes them (pre-encoded frames in big ``sendall`` chunks), then a close frame.
- ``/ticks/<count>``: once the client sent one data message (its start signal), send the
  first ``count`` JSON ticks of :mod:`wsfast.bench.ticks` as text messages, then a close
  frame. ``/ticks-deflate/<count>`` sends them compressed, as one permessage-deflate
  stream (context takeover): the client must offer permessage-deflate.
- ``/echo``: send every data message back, unchanged, until the client closes.
  ``/echo-deflate`` negotiates permessage-deflate and sends each message back compressed.
- ``/echo-group/<n>``: ``/echo`` for ``n`` connections at once (over TCP, not TLS): the
  server takes this one and the next ``n - 1`` (to the same path), then echoes on all
  of them in one select loop until every client has closed.
- ``/ticks-at/<rate>/<count>/<size>``: once the client sent one data message, send
  ``count`` binary ticks of ``size`` bytes (at least 16), ``rate`` a second on a fixed
  schedule that does not wait for the client (open loop), then a close frame. A tick
  starts with :func:`time.monotonic_ns` when it is sent and its sequence number (8 bytes
  each, little-endian), zeros after. The server sleeps until shortly before a tick is
  due, then spins; when it falls behind it sends every tick that is due at once, each
  stamped as it is sent.
- ``/raw/<feed path>``: a plain HTTP response whose body is every frame that the
  WebSocket feed at ``<feed path>`` (a ``feed`` or ``ticks`` path) carries: the floor of
  reading those bytes.
- ``/prepare/<feed path>``: build that feed now (200), so that no client's handshake
  waits for it.

It depends on nothing but the standard library (and a C mask from ``websockets`` when
installed), so it treats every client alike.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import select
import selectors
import socket
import ssl
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import io

from .ticks import TRAILER, deflate_payloads, ticks

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CHUNK = 1 << 20  # bytes per sendall: big enough that syscalls are not the limit
_CLOSE_1000 = b"\x88\x02\x03\xe8"
_IO_TIMEOUT = 30.0  # a client silent this long is gone (the TLS handshake included)
_DEFLATE = "permessage-deflate"
_SPIN_NS = 250_000  # a tick due sooner than this is waited for spinning, not sleeping
_TICK_HEAD = struct.Struct("<qq")  # a tick's stamp and sequence number
_BACKLOG = 256  # pending connections: the echo group's clients connect all at once

try:
    from websockets.speedups import apply_mask as _unmask
except ImportError:
    # The signature of websockets' apply_mask.
    def _unmask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
        n = len(data)
        stream = (mask * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def frame_header(opcode: int, length: int, rsv1: bool = False) -> bytes:
    """The header of an unmasked final frame (what a server sends); RSV1 marks compression."""
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def ticks_frames(count: int, deflate: bool) -> bytes:
    """The frames of the ``/ticks`` (or ``/ticks-deflate``) feed of ``count`` messages."""
    messages = ticks(count)
    payloads = deflate_payloads(messages) if deflate else [m.encode() for m in messages]
    return b"".join(frame_header(0x1, len(p), deflate) + p for p in payloads)


def deflate_answer(offers: str) -> str | None:
    """Answer a ``Sec-WebSocket-Extensions`` offer: permessage-deflate or None.

    The server compresses with context takeover and a 15-bit window (the ticks feed is
    compressed once for every client), so it turns down offers that ask otherwise.
    """
    for offer in offers.split(","):
        name, *params = (part.strip() for part in offer.split(";"))
        if name.lower() == _DEFLATE and all(map(_can_honour, params)):
            return _DEFLATE
    return None


def _can_honour(param: str) -> bool:
    name, _, value = param.partition("=")
    name, value = name.strip().lower(), value.strip().strip('"')
    if name in ("client_max_window_bits", "client_no_context_takeover"):
        return True  # how the client compresses: one decompressor reads any of it
    return name == "server_max_window_bits" and value == "15"


def _recv(conn: socket.socket, awaited: str) -> bytes:
    """Up to 64 KiB from ``conn``; a timeout names what the server was waiting for."""
    try:
        return conn.recv(65536)
    except TimeoutError:
        raise TimeoutError(f"no {awaited} from the client in {_IO_TIMEOUT:g} s") from None


def _read_request(conn: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Read an HTTP request head; return its path, its headers (lower-case names) and any bytes after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(conn, "request")
        if not chunk or len(data) > 65536:
            raise ConnectionError("no complete request")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        # Repeated headers are one comma-separated list (RFC 9110 §5.3).
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    return path, headers, rest


def _accept(key: str, extensions: str | None = None) -> bytes:
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
    extra = f"Sec-WebSocket-Extensions: {extensions}\r\n".encode() if extensions else b""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra + b"\r\n"
    )


def _head(status: str, length: int = 0) -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n".encode()


# ("feed", count, size) or ("ticks", count, deflate)
_FeedKey = tuple[str, int, int]
# What a feed sends, in turn.
_Pieces = Sequence[bytes | memoryview]


class _FeedCache:
    """The pieces of the feeds built last, so repeated runs pay the encoding once.

    A feed is a list of bytes-like pieces to send in turn, each at most about a MiB. Two
    feeds are kept: a case's WebSocket feed and its ``/raw`` twin share one, and the
    runner measures one case at a time.
    """

    _KEEP = 2

    def __init__(self) -> None:
        self._feeds: dict[_FeedKey, _Pieces] = {}

    def get(self, key: _FeedKey) -> _Pieces:
        """The pieces of ``("feed", count, size)`` or ``("ticks", count, deflate)``."""
        if key not in self._feeds:
            while len(self._feeds) >= self._KEEP:
                del self._feeds[next(iter(self._feeds))]  # the oldest goes before building
            kind, count, third = key  # third: the size of a binary feed, or deflate for ticks
            self._feeds[key] = (
                _binary_feed(count, third) if kind == "feed" else _pieces(ticks_frames(count, bool(third)))
            )
        return self._feeds[key]


def _binary_feed(count: int, size: int) -> list[bytes]:
    frame = frame_header(0x2, size) + bytes(size)
    per_chunk = max(1, _CHUNK // len(frame))
    full, rest = divmod(count, per_chunk)
    return [frame * per_chunk] * full + [frame * rest]  # one chunk, referred to many times


def _pieces(stream: bytes) -> list[memoryview]:
    view = memoryview(stream)
    return [view[start : start + _CHUNK] for start in range(0, len(stream), _CHUNK)]


def _client_frames(buf: bytes) -> tuple[list[tuple[int, bool, bytes]], int]:
    """Parse the complete masked client frames in ``buf``: ([(opcode, rsv1, payload)], bytes used)."""
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
        payload = _unmask(buf[start + 4 : stop], buf[start : start + 4])
        frames.append((buf[pos] & 0x0F, bool(buf[pos] & 0x40), payload))
        pos = stop
    return frames, pos


def _await_start(conn: socket.socket, buf: bytes) -> bytes:
    """Wait for the client's first data message; return the bytes after it."""
    while True:
        frames, used = _client_frames(buf)
        if any(opcode in (0x1, 0x2) for opcode, _, _ in frames):
            return buf[used:]
        data = _recv(conn, "start signal")
        if not data:
            raise ConnectionError("the client left before starting the feed")
        buf = buf[used:] + data


def _serve_feed(conn: socket.socket, pieces: _Pieces, buf: bytes = b"") -> None:
    _send_all(conn, [*pieces, _CLOSE_1000])
    # Close TCP once the client answered our close frame, as a server should.
    while True:
        frames, used = _client_frames(buf)
        if any(opcode == 0x8 for opcode, _, _ in frames):
            return
        data = _recv(conn, "close frame")
        if not data:
            return
        buf = buf[used:] + data


class _Deflater:
    """The compressed side of ``/echo-deflate``: one context per direction, kept for the connection."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(-15).decompress
        compressor = zlib.compressobj(wbits=-15)
        self._compress, self._flush = compressor.compress, compressor.flush

    def echo(self, opcode: int, compressed: bool, payload: bytes) -> list[bytes]:
        """The frame pieces answering one client message."""
        message = self._inflate(payload + TRAILER) if compressed else payload
        out = self._compress(message) + self._flush(zlib.Z_SYNC_FLUSH)[:-4]
        return [frame_header(opcode, len(out), rsv1=True), out]


def _answer(frames: list[tuple[int, bool, bytes]], deflater: _Deflater | None) -> tuple[bytes, bool]:
    """What an echo sends back for ``frames``, and whether the client closed."""
    out: list[bytes] = []
    for opcode, compressed, payload in frames:
        if opcode == 0x8:
            out.append(_CLOSE_1000)
            return b"".join(out), True
        if opcode == 0xA:
            continue
        if opcode == 0x9:
            out += (frame_header(0xA, len(payload)), payload)
        elif deflater is not None:
            out += deflater.echo(opcode, compressed, payload)
        else:
            out += (frame_header(opcode, len(payload)), payload)
    return b"".join(out), False


def _serve_echo(conn: socket.socket, buf: bytes, deflater: _Deflater | None) -> None:
    recv = conn.recv
    sendall = conn.sendall
    while True:
        frames, used = _client_frames(buf)
        out, closed = _answer(frames, deflater)
        if out:
            sendall(out)
        if closed:
            return  # the close handshake is complete: close TCP
        data = recv(1 << 20)
        if not data:
            return
        buf = buf[used:] + data


def _serve_echo_group(
    first: socket.socket, path: str, rest: bytes, size: int, next_connection: Callable[[], socket.socket]
) -> None:
    """``/echo`` on ``first`` and the next ``size - 1`` connections, all at once."""
    group = [first]
    buffers = {first: rest}  # the connections still open, and the bytes of their next frame
    try:
        while len(group) < size:
            conn = next_connection()
            group.append(conn)
            conn.settimeout(_IO_TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            own_path, headers, buffers[conn] = _read_request(conn)
            key = headers.get("sec-websocket-key")
            if own_path != path or key is None:
                conn.sendall(_head("400 Bad Request"))
                raise ConnectionError(f"{own_path} joined the echo group of {path}")
            conn.sendall(_accept(key))
        with selectors.DefaultSelector() as selector:
            for conn in group:
                selector.register(conn, selectors.EVENT_READ)
                _echo_group_member(conn, buffers.pop(conn), buffers, selector)  # bytes sent with the request
            while buffers:
                events = selector.select(_IO_TIMEOUT)
                if not events:
                    raise TimeoutError(f"no message from {len(buffers)} clients in {_IO_TIMEOUT:g} s")
                for selected, _ in events:
                    conn = cast("socket.socket", selected.fileobj)
                    data = conn.recv(1 << 20)
                    if not data:
                        selector.unregister(conn)
                        conn.close()
                        del buffers[conn]
                    else:
                        _echo_group_member(conn, buffers.pop(conn) + data, buffers, selector)
    finally:
        for conn in group:  # closing twice does nothing
            conn.close()


def _echo_group_member(
    conn: socket.socket, buf: bytes, buffers: dict[socket.socket, bytes], selector: selectors.BaseSelector
) -> None:
    """Answer the frames in ``buf``; keep the rest in ``buffers``, unless the client closed."""
    frames, used = _client_frames(buf)
    out, closed = _answer(frames, None)
    if out:
        conn.sendall(out)
    if closed:  # the close handshake is complete: close TCP, as a server should
        selector.unregister(conn)
        conn.close()
    else:
        buffers[conn] = buf[used:]


def _serve_ticks(conn: socket.socket, rate: int, count: int, size: int, buf: bytes) -> None:
    """``/ticks-at``: ``count`` stamped ticks on a fixed schedule, from the client's start signal."""
    rest = _await_start(conn, buf)
    frame = frame_header(0x2, size) + bytes(size)
    head, length = len(frame) - size, len(frame)
    pack_into, clock, sendall, sleep = _TICK_HEAD.pack_into, time.monotonic_ns, conn.sendall, time.sleep
    one = bytearray(frame)
    sent = 0
    start = clock()
    while sent < count:
        now = clock()
        # Tick i is due at start + i / rate seconds: those up to now are due.
        due = min(count, (now - start) * rate // 1_000_000_000 + 1)
        if due - sent == 1:
            pack_into(one, head, clock(), sent)
            sendall(one)
            sent = due
        elif due > sent:  # behind: the backlog at once, stamped as it is sent
            block = bytearray(frame * (due - sent))
            stamp = clock()
            for index in range(due - sent):
                pack_into(block, index * length + head, stamp, sent + index)
            sendall(block)
            sent = due
        else:
            wait = start + -(-sent * 1_000_000_000 // rate) - now
            if wait > _SPIN_NS:
                sleep((wait - _SPIN_NS) / 1e9)
    _serve_feed(conn, [], rest)


def _feed_key(parts: list[str]) -> _FeedKey | None:
    """``["ticks-deflate", "1000"]`` or ``["feed", "1000", "100"]`` -> the feed cache key;
    None for another path."""
    if len(parts) == 2 and parts[0] in ("ticks", "ticks-deflate") and parts[1].isdigit():
        return ("ticks", int(parts[1]), parts[0] == "ticks-deflate")
    if len(parts) == 3 and parts[0] == "feed" and parts[1].isdigit() and parts[2].isdigit():
        return ("feed", int(parts[1]), int(parts[2]))
    return None


def _handle(conn: socket.socket, feeds: _FeedCache, next_connection: Callable[[], socket.socket]) -> None:
    """Serve ``conn`` (and, for an echo group, the next connections ``next_connection`` takes)."""
    conn.settimeout(_IO_TIMEOUT)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    path, headers, rest = _read_request(conn)
    try:
        _route(conn, path, headers, rest, feeds, next_connection)
    except (OSError, ValueError, IndexError) as exc:
        raise ConnectionError(f"{path}: {exc!r}") from None  # the log names the job


def _numbers(parts: list[str], name: str, count: int) -> list[int] | None:
    """``["ticks-at", "10", "20"]`` -> ``[10, 20]`` when the path is ``name`` and ``count``
    positive numbers; None for another path."""
    if len(parts) != count + 1 or parts[0] != name or not all(p.isdigit() and int(p) for p in parts[1:]):
        return None
    return [int(p) for p in parts[1:]]


def _route(
    conn: socket.socket,
    path: str,
    headers: dict[str, str],
    rest: bytes,
    feeds: _FeedCache,
    next_connection: Callable[[], socket.socket],
) -> None:
    parts = path.strip("/").split("/")
    group, ticks_at = _numbers(parts, "echo-group", 1), _numbers(parts, "ticks-at", 3)
    if group or ticks_at:
        key = headers.get("sec-websocket-key")
        if key is None or (group and isinstance(conn, ssl.SSLSocket)) or (ticks_at and ticks_at[2] < 16):
            body = b"this path needs a WebSocket upgrade (over TCP for an echo group, of ticks of 16 bytes or more)"
            conn.sendall(_head("400 Bad Request", len(body)) + body)
            return
        conn.sendall(_accept(key))
        if group:
            _serve_echo_group(conn, path, rest, group[0], next_connection)
        else:
            assert ticks_at is not None
            rate, count, size = ticks_at
            _serve_ticks(conn, rate, count, size, rest)
        return
    raw_key = _feed_key(parts[1:]) if parts[0] in ("raw", "prepare") else None
    if raw_key is not None:
        pieces = feeds.get(raw_key)
        if parts[0] == "raw":
            _send_all(conn, [_head("200 OK", sum(map(len, pieces))), *pieces])
        else:
            conn.sendall(_head("200 OK"))
        return
    feed_key = _feed_key(parts)
    if not (feed_key or parts[0] in ("echo", "echo-deflate")):
        conn.sendall(_head("404 Not Found"))
        return
    key = headers.get("sec-websocket-key")
    deflate = parts[0].endswith("-deflate")
    extensions = deflate_answer(headers.get("sec-websocket-extensions", "")) if deflate else None
    if key is None or (deflate and extensions is None):
        body = b"this path needs a WebSocket upgrade" + (b" offering permessage-deflate" if deflate else b"")
        conn.sendall(_head("400 Bad Request", len(body)) + body)
        return
    if feed_key is not None and feed_key[0] == "feed":
        pieces = feeds.get(feed_key)  # built before the clock starts
        conn.sendall(_accept(key))
        _serve_feed(conn, pieces, rest)
    elif feed_key is not None:
        pieces = feeds.get(feed_key)
        conn.sendall(_accept(key, extensions))
        # Bytes sent before the client's start signal would wait in kernel buffers
        # before its clock starts, and make it look faster than it is.
        _serve_feed(conn, pieces, _await_start(conn, rest))
    else:
        conn.sendall(_accept(key, extensions))
        _serve_echo(conn, rest, _Deflater() if deflate else None)


def _send_all(conn: socket.socket, pieces: Iterable[bytes | memoryview]) -> None:
    for piece in pieces:
        conn.sendall(piece)


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _accept_connection(listener: socket.socket, tls: ssl.SSLContext | None) -> socket.socket:
    ready, _, _ = select.select([listener], [], [], _IO_TIMEOUT)  # ready already in the serve loop
    if not ready:
        raise TimeoutError(f"no connection in {_IO_TIMEOUT:g} s")
    conn, _ = listener.accept()
    if tls is None:
        return conn
    conn.settimeout(_IO_TIMEOUT)  # bounds the TLS handshake, which wrapping performs
    try:
        return tls.wrap_socket(conn, server_side=True)
    except BaseException:
        conn.close()
        raise


def serve(
    idle: float,
    lifetime: float,
    port: int = 0,
    stdin_lifeline: bool = False,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve benchmark connections on 127.0.0.1 until idle, out of time, or orphaned.

    With ``tls``, a second listener serves the same paths over TLS.
    """
    deadline = time.monotonic() + lifetime
    feeds = _FeedCache()
    listeners: dict[socket.socket, ssl.SSLContext | None] = {
        socket.create_server(("127.0.0.1", port), backlog=_BACKLOG): None
    }
    if tls is not None:
        listeners[socket.create_server(("127.0.0.1", 0), backlog=_BACKLOG)] = tls
    try:
        print(*(listener.getsockname()[1] for listener in listeners), flush=True)
        watched = [*listeners, sys.stdin] if stdin_lifeline else [*listeners]
        while True:
            wait = min(idle, deadline - time.monotonic())
            if wait <= 0:
                return
            ready, _, _ = select.select(watched, [], [], wait)
            if not ready:
                return  # idle too long
            if stdin_lifeline and sys.stdin in ready and not cast("io.BufferedReader", sys.stdin.buffer).read1(4096):
                return  # the runner went away
            for listener in (r for r in ready if r in listeners):
                try:
                    with _accept_connection(listener, listeners[listener]) as conn:
                        _handle(conn, feeds, functools.partial(_accept_connection, listener, listeners[listener]))
                except (OSError, ValueError, IndexError) as exc:
                    print(f"connection failed: {exc!r}", file=sys.stderr, flush=True)
    finally:
        for listener in listeners:
            listener.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--idle", type=float, default=120.0, help="exit after this many idle seconds")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    parser.add_argument("--stdin-lifeline", action="store_true", help="exit when standard input closes")
    parser.add_argument("--tls-cert", help="PEM certificate chain: also serve TLS, on a second port")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    tls = _tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    serve(args.idle, args.lifetime, args.port, args.stdin_lifeline, tls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
