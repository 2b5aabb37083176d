"""A feed consumer meant to run for days, with the blocking API.

    python examples/feed_consumer.py [URL] [--symbol ABC] [--count N]

URL defaults to $FEED_URL, else ws://127.0.0.1:8765/ (``examples/tick_server.py``).

- ``wsfast.reconnecting`` opens a new connection whenever one drops (the server restarts,
  the network fails), after a growing, randomised delay;
- keepalive pings find a server that vanished without closing TCP;
- the proxy comes from the environment (``https_proxy``/``http_proxy``/``all_proxy`` and
  ``no_proxy``), as it does by default;
- after a reconnection the subscription resumes after the last tick received;
- ``decode=json.loads`` hands out each tick as a dict, decoded from the payload's bytes.

It stops after ``--count`` ticks, on Ctrl-C, or when the server closes normally (1000).
"""

import argparse
import json
import logging
import os

import wsfast

log = logging.getLogger("feed")


def consume(url: str, symbol: str, count: int = 0) -> int:
    """Receive ticks until ``count`` arrived (0: for ever); return how many did."""
    received = 0
    last_seq = 0
    for ws in wsfast.reconnecting(
        url,
        proxy=True,  # the default: from the environment; a URL, or None for a direct connection
        ping_interval=20,  # the default: a ping every 20 s...
        ping_timeout=20,  # ...and a server silent for 20 s after one is dead (1011)
        backoff=wsfast.Backoff(initial=1, maximum=30),  # delays between attempts
        decode=json.loads,  # ticks come out as dicts (orjson.loads or msgspec decode faster)
    ):
        log.info("connected to %s", url)
        try:
            ws.send(json.dumps({"subscribe": symbol, "from": last_seq + 1}))
            while True:
                for tick in ws.recv_many():  # every message the last read brought, decoded
                    if tick["seq"] != last_seq + 1:
                        log.warning("ticks %d to %d are missing", last_seq + 1, tick["seq"] - 1)
                    last_seq = tick["seq"]
                    print(f"{tick['symbol']} #{tick['seq']}: {tick['price']}", flush=True)
                    received += 1
                    if received == count:
                        return received  # leaving the loop closes the connection
        except wsfast.ConnectionClosed as closed:
            # 1001, 1006, 1011, 1012 and 1013 bring a new connection; 1000 ends the
            # loop; any other code is raised by reconnecting().
            log.info("%s", closed)
    return received


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Consume a feed of ticks, reconnecting as needed.")
    parser.add_argument("url", nargs="?", default=os.environ.get("FEED_URL", "ws://127.0.0.1:8765/"))
    parser.add_argument("--symbol", default="ABC")
    parser.add_argument("--count", type=int, default=0, help="stop after this many ticks (0: never)")
    args = parser.parse_args(argv)
    # INFO shows each reconnection and its delay, as the wsfast logger reports them.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        received = consume(args.url, args.symbol, args.count)
    except KeyboardInterrupt:
        return 130
    print(f"received {received} ticks", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
