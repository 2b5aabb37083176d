"""An echo server with the asyncio API: one task per client.

    python examples/echo_server_asyncio.py [--port 8765] [--duration S]

It stops on Ctrl-C, on SIGTERM and after ``--duration`` seconds; every client gets a
1001 (going away) first.
"""

import argparse
import asyncio
import signal

import wsfast.asyncio


async def handler(ws: wsfast.asyncio.ServerConnection) -> None:
    async for message in ws:  # ends when the client closes
        await ws.send(message)


async def serve(host: str, port: int, duration: float | None = None) -> None:
    async with wsfast.asyncio.serve(handler, host, port, max_connections=10_000) as server:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.close)  # close() is a plain function
        if duration is not None:
            loop.call_later(duration, server.close)
        print(f"echo server listening on ws://{host}:{server.port}/", flush=True)
        await server.serve_forever()  # returns once every client got its 1001


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Echo every WebSocket message back.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.duration))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
