"""How much memory an idle connection costs the asyncio server (Linux).

    python tests/idle_connections.py COUNT [--deflate]

Starts ``wsfast.asyncio.serve`` (the echo handler, keepalive on) in a child process,
opens COUNT WebSocket connections to it from raw non-blocking sockets (the upgrade
request written by hand, a few hundred in flight at a time), leaves them idle, and
prints one JSON line: the server's resident memory before and after, and the
difference per connection. With ``--deflate`` the clients offer permessage-deflate,
which the server accepts. Both processes raise their open-file limit to the hard limit;
exit status 3 (with the reason on stderr) when that is too low for COUNT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time

IN_FLIGHT = 400  # handshakes at a time: fewer than the listen backlog
REQUEST = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
)
DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def raise_file_limit(needed: int) -> None:
    """Raise RLIMIT_NOFILE to the hard limit; exit 3 if ``needed`` descriptors do not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        print(f"the open-file limit is {target}, {needed} are needed", file=sys.stderr)
        sys.exit(3)


def rss(pid: int) -> int:
    """The resident memory of process ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def serve(count: int) -> None:
    """The child: serve until SIGTERM, printing the port first."""
    raise_file_limit(count + 100)
    import wsfast.asyncio

    async def main():
        server = await wsfast.asyncio.serve(port=0, backlog=IN_FLIGHT * 2)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.close)
        print(server.port, flush=True)
        await server.serve_forever()

    asyncio.run(main())


def open_connections(port: int, count: int, request: bytes, timeout: float) -> list[socket.socket]:
    """``count`` sockets that completed the upgrade, each answered with 101."""
    done: list[socket.socket] = []
    selector = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    started = 0
    answers: dict[socket.socket, bytes] = {}
    while len(done) < count:
        while started < count and len(answers) < IN_FLIGHT:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            answers[sock] = b""
            selector.register(sock, selectors.EVENT_WRITE)
            started += 1
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(done)} of {count} connections opened in {timeout} s")
        for key, events in selector.select(1):
            sock = key.fileobj
            if events & selectors.EVENT_WRITE:
                sock.send(request)  # a fresh socket takes a few hundred bytes at once
                selector.modify(sock, selectors.EVENT_READ)
                continue
            data = sock.recv(4096)
            if not data:
                raise ConnectionError(f"the server closed a connection during the handshake: {answers[sock]!r}")
            answers[sock] += data
            if b"\r\n\r\n" in answers[sock]:
                if not answers[sock].startswith(b"HTTP/1.1 101 "):
                    raise ConnectionError(f"the server answered {answers.pop(sock)!r}")
                del answers[sock]
                selector.unregister(sock)
                done.append(sock)
    selector.close()
    return done


def measure(count: int, deflate: bool) -> dict:
    raise_file_limit(count + 100)
    server = subprocess.Popen([sys.executable, __file__, str(count), "--serve"], stdout=subprocess.PIPE, text=True)
    sockets: list[socket.socket] = []
    try:
        port = int(server.stdout.readline())
        request = REQUEST.format(extensions=DEFLATE if deflate else "").encode()
        sockets += open_connections(port, 50, request, 30)  # warm-up: code and allocator arenas
        time.sleep(0.2)
        before = rss(server.pid)
        start = time.monotonic()
        sockets += open_connections(port, count, request, 120)
        seconds = time.monotonic() - start
        time.sleep(0.5)  # the server's tasks settle
        after = rss(server.pid)
        for sock in sockets:
            sock.close()
        sockets = []
        server.send_signal(signal.SIGTERM)
        exited = server.wait(30)
    finally:
        for sock in sockets:
            sock.close()
        if server.poll() is None:
            server.kill()
            server.wait()
    return {
        "connections": count,
        "deflate": deflate,
        "seconds_to_open": round(seconds, 2),
        "rss_before": before,
        "rss_after": after,
        "bytes_per_connection": round((after - before) / count),
        "server_exit_status": exited,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.count)
    else:
        print(json.dumps(measure(args.count, args.deflate)))
