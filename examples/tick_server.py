"""A small feed server: every client that subscribes gets a stream of JSON price ticks.

    python examples/tick_server.py [--port 8765] [--rate 100] [--per-connection N] [--duration S]

A client sends ``{"subscribe": "ABC"}``, optionally with ``"from": SEQ`` to resume after a
reconnection, and receives ``{"symbol": "ABC", "seq": 1, "price": 100.0}``, ``seq`` 2, ...
``--per-connection N`` closes each connection with 1012 (service restart) after N ticks,
as a server being redeployed would: a good way to watch a client reconnect.
"""

import argparse
import json
import random
import signal
import threading
from collections.abc import Callable

import wsfast


def make_handler(rate: float, per_connection: int) -> Callable[[wsfast.ServerConnection], None]:
    interval = 1 / rate if rate > 0 else 0.0

    def handler(ws: wsfast.ServerConnection) -> None:
        request = json.loads(ws.recv(timeout=10))
        symbol = str(request["subscribe"])
        seq = int(request.get("from", 1))
        price = 100.0
        sent = 0
        while True:
            price = round(price * (1 + random.uniform(-0.001, 0.001)), 4)
            ws.send(json.dumps({"symbol": symbol, "seq": seq, "price": price}))
            seq += 1
            sent += 1
            if sent == per_connection:
                ws.close(1012, "restarting")
                return
            # Waiting in recv() rather than in sleep() lets the connection answer pings,
            # run its keepalive and notice the client closing. Clients send nothing after
            # subscribing, so this is a pause of `interval` seconds.
            if interval or sent % 1000 == 0:
                try:
                    ws.recv(timeout=interval)
                except TimeoutError:
                    pass

    return handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve JSON price ticks over WebSocket.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--rate", type=float, default=100.0, help="ticks per second per client, 0: as fast as possible")
    parser.add_argument("--per-connection", type=int, default=0, metavar="N", help="close with 1012 after N ticks")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)

    server = wsfast.serve(make_handler(args.rate, args.per_connection), args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    if args.duration is not None:
        timer = threading.Timer(args.duration, server.close)
        timer.daemon = True  # not to outlive the server
        timer.start()
    print(f"tick server listening on ws://{args.host}:{server.port}/", flush=True)
    try:
        server.serve_forever()  # until server.close(): every client then gets its 1001
    except KeyboardInterrupt:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
