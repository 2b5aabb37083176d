"""wsfast's sans-I/O layers over a socket of your own: no wsfast I/O at all.

    python examples/codec_in_your_stack.py [URL] [--layer protocol|codec] [--count N]

URL (a ``ws://`` echo server, such as ``python -m wsfast echo``) defaults to $ECHO_URL,
else ws://127.0.0.1:8765/. The program opens the TCP connection itself, runs the opening
handshake with :class:`wsfast.handshake.ClientHandshake`, then sends ``--count`` messages
and reads their echoes through one of two layers:

- ``protocol``: :class:`wsfast.protocol.Connection` turns bytes into messages and
  messages into bytes, and handles pings, fragments, UTF-8 and the close handshake;
- ``codec``: :func:`wsfast.encode_frame` and :class:`wsfast.FrameParser` alone, for a
  stack that has its own protocol logic and only wants frames.
"""

import argparse
import os
import socket

import wsfast
from wsfast.handshake import ClientHandshake
from wsfast.protocol import Close, Connection
from wsfast.uri import parse_uri


def open_websocket(url: str) -> tuple[socket.socket, bytes]:
    """TCP connection and opening handshake; returns the socket and the bytes that
    followed the server's answer (the first frames, if they came in the same read)."""
    uri = parse_uri(url)
    sock = socket.create_connection((uri.host, uri.port), timeout=10)
    handshake = ClientHandshake(uri.host, uri.port, uri.resource)  # no compression offered
    sock.sendall(handshake.request())
    while True:
        data = sock.recv(65536)
        if not data:
            handshake.receive_eof()  # raises InvalidHandshake: the server hung up
        if handshake.receive_data(data):  # raises InvalidStatus, InvalidHeader, ...
            return sock, handshake.leftover


def echo_with_protocol(url: str, count: int) -> int:
    sock, leftover = open_websocket(url)
    conn = Connection(client=True)
    for i in range(count):
        conn.send_text(f"message {i}")
    echoes = 0
    data = leftover
    while True:
        for event in conn.receive_data(data):  # str, bytes, Ping, Pong or Close
            if isinstance(event, str):
                echoes += 1
            elif isinstance(event, Close):
                print(f"server closed with {event.code}")
        if echoes == count:
            conn.send_close(1000)  # a no-op once sent
        if conn.error:  # the server broke the protocol: close with the matching code
            conn.fail()
        sock.sendall(conn.data_to_send())  # our messages, pongs, the close frame
        if conn.close_transport:
            break
        data = sock.recv(65536)
        if not data:
            conn.receive_eof()
            break
    sock.close()
    return echoes


def echo_with_codec(url: str, count: int) -> int:
    sock, leftover = open_websocket(url)
    parser = wsfast.FrameParser(client=True)  # frames from a server: unmasked
    for i in range(count):
        # A client masks every frame with a fresh random key.
        sock.sendall(wsfast.encode_frame(wsfast.Opcode.TEXT, f"message {i}".encode(), mask_key=os.urandom(4)))
    frames = parser.feed(leftover)
    echoes = 0
    while echoes < count:
        for frame in frames:
            if frame.opcode == wsfast.Opcode.TEXT and frame.fin:
                echoes += 1
            elif frame.opcode == wsfast.Opcode.PING:  # answering pings is up to us here
                sock.sendall(wsfast.encode_frame(wsfast.Opcode.PONG, frame.payload, mask_key=os.urandom(4)))
        if echoes < count:
            data = sock.recv(65536)
            if not data:
                break
            frames = parser.feed(data)  # any chunking: partial frames are kept
    close = wsfast.encode_frame(wsfast.Opcode.CLOSE, (1000).to_bytes(2, "big"), mask_key=os.urandom(4))
    sock.sendall(close)
    while True:  # wait for the server's close frame, then for it to end TCP
        data = sock.recv(65536)
        if not data:
            break
        for frame in parser.feed(data):
            if frame.opcode == wsfast.Opcode.CLOSE:
                print(f"server closed with {frame.close_code}")
    sock.close()
    return echoes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Echo messages through wsfast's sans-I/O layers.")
    parser.add_argument("url", nargs="?", default=os.environ.get("ECHO_URL", "ws://127.0.0.1:8765/"))
    parser.add_argument("--layer", choices=("protocol", "codec"), default="protocol")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args(argv)
    run = echo_with_protocol if args.layer == "protocol" else echo_with_codec
    echoes = run(args.url, args.count)
    print(f"{echoes} of {args.count} messages echoed ({wsfast.IMPLEMENTATION} codec, {args.layer} layer)")
    return 0 if echoes == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
