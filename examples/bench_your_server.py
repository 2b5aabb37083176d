"""Measure your own WebSocket server with wsfast's blocking client.

    python examples/bench_your_server.py URL echo [--count 10000] [--size 256]
    python examples/bench_your_server.py URL feed [--count 100000] [--subscribe TEXT]

``echo`` sends ``--count`` binary messages of ``--size`` bytes one at a time, each after
the echo of the one before, and reports round trips per second and latency percentiles.
``feed`` sends ``--subscribe`` (if given), receives ``--count`` messages as they come and
reports messages and bytes per second. ``--no-compression`` declines permessage-deflate.
"""

import argparse
import os
import statistics
import time

import wsfast


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def bench_echo(ws: wsfast.Client, count: int, size: int) -> None:
    message = os.urandom(size)
    for _ in range(min(100, count)):  # warm up: connection, allocator, caches
        ws.send(message)
        ws.recv(timeout=10)
    latencies: list[float] = []
    start = time.perf_counter()
    for _ in range(count):
        sent = time.perf_counter()
        ws.send(message)
        ws.recv(timeout=10)
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - start
    latencies.sort()
    print(f"echo {size} B: {count / elapsed:,.0f} round trips/s over {count:,}")
    print(
        "latency: "
        + ", ".join(f"p{int(q * 100)} {percentile(latencies, q) * 1e6:,.0f} us" for q in (0.5, 0.9, 0.99))
        + f", max {latencies[-1] * 1e6:,.0f} us, mean {statistics.fmean(latencies) * 1e6:,.0f} us"
    )


def bench_feed(ws: wsfast.Client, count: int, subscribe: str | None = None) -> None:
    if subscribe is not None:
        ws.send(subscribe)
    received = size = 0
    start = None
    while received < count:
        batch = ws.recv_many(timeout=10)  # every message one read brought
        if start is None:
            start = time.perf_counter()  # from the first message: connecting is not timed
        received += len(batch)
        size += sum(map(len, batch))
    if start is None:  # --count 0: nothing received, nothing to measure
        return
    elapsed = time.perf_counter() - start
    print(f"feed: {received / elapsed:,.0f} messages/s, {size / elapsed / 1e6:,.1f} MB/s over {received:,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark a WebSocket server with wsfast's client.")
    parser.add_argument("url")
    parser.add_argument("mode", choices=("echo", "feed"))
    parser.add_argument("--count", type=int, help="round trips or messages (default: 10,000 / 100,000)")
    parser.add_argument("--size", type=int, default=256, help="echo message size in bytes")
    parser.add_argument("--subscribe", help="feed: a text message to send first")
    parser.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    args = parser.parse_args(argv)
    count = args.count or (10_000 if args.mode == "echo" else 100_000)
    compression = None if args.no_compression else "deflate"
    with wsfast.connect(args.url, compression=compression, max_message_size=None) as ws:
        print(
            f"connected to {args.url} ({wsfast.IMPLEMENTATION} codec, deflate {'on' if ws.deflate_params else 'off'})"
        )
        if args.mode == "echo":
            bench_echo(ws, count, args.size)
        else:
            bench_feed(ws, count, args.subscribe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
