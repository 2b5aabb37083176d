"""``python -m wsfast bench --threads``: how receiving scales with threads.

N feeds of 100-byte messages at once, each received by its own blocking client on its
own thread, for N = 1, 2, 4 (or the counts given): the aggregate rate for each N and its
ratio to one thread. It is meant for a free-threaded interpreter (3.14t and later), where
the clients run on as many cores; with the GIL it shows the GIL's ceiling, a ratio of
about 1 (or less, as the threads contend for it).

Each feed comes from its own benchmark server process (a server serves one connection
at a time), and each measurement runs in a fresh worker process, like the runner's cases.
The servers need cores too: on a machine with fewer cores than twice the threads, they
compete with the clients.
"""

from __future__ import annotations

import statistics
import threading
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

SIZE = 100  # payload bytes per message
COUNT = 1_000_000  # messages per feed, before --scale


def receive_feeds(urls: list[str], count: int) -> float:
    """Receive the feed of ``count`` messages at each of ``urls``, one client per thread,
    all at once; return the seconds from the start until the last thread finished."""
    from wsfast.client import connect

    clients = [connect(url, max_message_size=None) for url in urls]
    started = threading.Barrier(len(urls) + 1)
    received = [0] * len(urls)
    failures: list[BaseException] = []

    def receive(index: int) -> None:
        recv = clients[index].recv
        total = 0
        started.wait()
        try:
            for _ in range(count):
                total += len(recv())
        except BaseException as exc:  # noqa: BLE001 - reported by the thread that timed it
            failures.append(exc)
        received[index] = total

    threads = [threading.Thread(target=receive, args=(index,)) for index in range(len(urls))]
    for thread in threads:
        thread.start()
    try:
        started.wait()
        start = perf_counter()
        for thread in threads:
            thread.join()
        elapsed = perf_counter() - start
    finally:
        for client in clients:
            client.close()
    if failures:
        raise failures[0]
    if received != [count * SIZE] * len(urls):
        raise RuntimeError(f"received {received} bytes per feed, expected {count * SIZE} each")
    return elapsed


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """The worker's measurement of a ``threads`` spec: ``urls`` and ``count``."""
    return {"seconds": receive_feeds(spec["urls"], spec["count"])}


def run(
    count: int,
    threads: list[int],
    repeats: int,
    timeout: float,
    contestant: str = "wsfast-c",
    log: Callable[[str], object] = print,
) -> list[dict[str, Any]]:
    """Measure each thread count ``repeats`` times (interleaved); return one row per
    count: its runs' seconds, median aggregate rate and ratio to the first count."""
    from .runner import Server, run_worker

    servers = [Server(idle=timeout + 60) for _ in range(max(threads))]
    try:
        path = f"feed/{count}/{SIZE}"
        for server in servers:
            server.prepare(path, timeout)
        urls = [f"ws://127.0.0.1:{server.port}/{path}" for server in servers]
        rows: list[dict[str, Any]] = [{"threads": n, "seconds": [], "errors": []} for n in threads]
        for repeat in range(repeats):
            for row in rows:
                n = row["threads"]
                spec = {"kind": "threads", "contestant": contestant, "urls": urls[:n], "count": count}
                outcome = run_worker(spec, timeout)
                if "seconds" in outcome:
                    row["seconds"].append(outcome["seconds"])
                    described = f"{n * count / outcome['seconds']:,.0f} msg/s"
                else:
                    row["errors"].append(outcome.get("error") or outcome.get("skip"))
                    described = f"failed ({row['errors'][-1]})"
                log(f"  run {repeat + 1}/{repeats} {n} thread{'s' if n > 1 else ''}: {described}")
    finally:
        for server in servers:
            server.close()
    for row in rows:
        seconds = row["seconds"]
        row["rate"] = row["threads"] * count / statistics.median(seconds) if seconds else None
    first = rows[0]["rate"]
    for row in rows:
        row["ratio"] = row["rate"] / first if row["rate"] and first else None
    return rows


def table(rows: list[dict[str, Any]], count: int) -> str:
    """The rows as a text table: aggregate msg/s and MB/s, and the ratio to the first."""
    lines = [
        f"threads-feed-{SIZE}: {count:,} messages of {SIZE} bytes per thread",
        f"{'threads':>7}  {'msg/s':>12}  {'MB/s':>8}  {'ratio':>6}",
    ]
    for row in rows:
        rate, ratio = row["rate"], row["ratio"]
        if rate is None:
            lines.append(f"{row['threads']:>7}  failed: {'; '.join(row['errors'])}")
            continue
        lines.append(f"{row['threads']:>7}  {rate:>12,.0f}  {rate * SIZE / 1e6:>8.1f}  {ratio:>5.2f}x")
    return "\n".join(lines)
