"""The uvicorn cases: one ASGI app, served by uvicorn with each WebSocket implementation.

In these cases the contestants are servers, not clients: each run starts
``python -m wsfast.bench.asgi --ws ... --loop ...`` (uvicorn with that implementation,
HTTP by h11, on 127.0.0.1; it prints its port), meets it with the same client (wsfast's
blocking one: ``recv_many()`` for the feed, ``send()``/``recv()`` for the echo), then
stops it and reads its peak memory. The app is a plain ASGI callable, written the way an
application sends and receives; the request path picks the job, as with the benchmark
server:

- ``/feed/<count>/<size>``: send ``count`` binary messages of ``size`` bytes, then close.
- ``/echo``: send every message back until the client closes.

The server process exits when its standard input closes, so it never outlives the
worker that started it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import resource
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

# contestant -> (uvicorn's --ws value, event loop, the libraries it needs)
IMPLEMENTATIONS = {
    "wsfast-uvicorn": ("wsfast.uvicorn:WebSocketProtocol", "asyncio", ("uvicorn",)),
    "websockets-sansio": ("websockets-sansio", "asyncio", ("uvicorn", "websockets")),
    "wsproto": ("wsproto", "asyncio", ("uvicorn", "wsproto")),
    "wsfast-uvicorn-uvloop": ("wsfast.uvicorn:WebSocketProtocol", "uvloop", ("uvicorn", "uvloop")),
    "websockets-sansio-uvloop": ("websockets-sansio", "uvloop", ("uvicorn", "websockets", "uvloop")),
    "wsproto-uvloop": ("wsproto", "uvloop", ("uvicorn", "wsproto", "uvloop")),
}
_START_TIMEOUT = 30.0  # seconds for the server to print its port


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """The benchmark's ASGI application."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    job, *params = scope["path"].strip("/").split("/")
    if job == "feed":
        count, size = map(int, params)
        payload = bytes(size)
        for _ in range(count):
            await send({"type": "websocket.send", "bytes": payload})
        await send({"type": "websocket.close", "code": 1000})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if job == "echo":
            await send({"type": "websocket.send", "bytes": event.get("bytes"), "text": event.get("text")})


@dataclass
class Served:
    """A running server: the URL of a job, and its peak memory once it has stopped."""

    port: int
    peak_rss_mb: float | None = None

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{path.lstrip('/')}"


@contextlib.contextmanager
def serving(contestant: str) -> Iterator[Served]:
    """Run the server of ``contestant`` for the duration of the ``with`` block; yield a
    :class:`Served`. Raises ImportError when a library it needs is not installed."""
    ws, loop, needs = IMPLEMENTATIONS[contestant]
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{', '.join(missing)} not installed")
    process = subprocess.Popen(
        [sys.executable, "-m", "wsfast.bench.asgi", "--ws", ws, "--loop", loop],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None  # both are pipes
    try:
        ready, _, _ = select.select([process.stdout], [], [], _START_TIMEOUT)
        line = process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            raise RuntimeError(f"the uvicorn server for {contestant} did not start")
        served = Served(int(line))
        yield served
    finally:
        process.stdin.close()  # the server's lifeline
        try:
            process.wait(_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # The worker starts no other process: its children's peak is the server's.
    served.peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the benchmark's ASGI app with uvicorn until stdin closes.")
    parser.add_argument("--ws", required=True, help="uvicorn's --ws: an implementation name or import string")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    args = parser.parse_args(argv)

    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, ws=args.ws, loop=args.loop, http="h11", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)

    def stop_when_orphaned() -> None:
        sys.stdin.buffer.read()
        server.should_exit = True

    threading.Thread(target=stop_when_orphaned, daemon=True).start()
    print(sock.getsockname()[1], flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
