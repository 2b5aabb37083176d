"""wsfast against its peers, as pytest-benchmark tests.

    pip install -e '.[bench]'
    pytest benchmarks/bench_peers.py                            # compiled codec
    WSFAST_NO_EXTENSIONS=1 pytest benchmarks/bench_peers.py     # pure-Python codec

The codec cases run in this process; the feed cases receive from the benchmark server
running in its own process. ``python -m wsfast bench`` runs the same contestants, each in
its own process, and prints one table for all.
"""

from __future__ import annotations

import pytest

from wsfast.bench import clients, micro
from wsfast.bench.runner import Server

FEED_COUNT = 100_000
FEED_SIZE = 100


@pytest.mark.parametrize("case", micro.CASES)
@pytest.mark.parametrize("contestant", list(micro.MAKERS))
def test_codec(benchmark, contestant: str, case: str) -> None:
    maker, supported = micro.MAKERS[contestant]
    if case not in supported:
        pytest.skip(f"{contestant} has no public call for {case}")
    try:
        api, call, items, _ = maker(case)
    except ImportError as exc:
        pytest.skip(str(exc))
    benchmark.extra_info["api"] = api
    benchmark.extra_info["items_per_call"] = items
    benchmark(call)


@pytest.fixture(scope="module")
def server():
    server = Server(idle=300)
    yield server
    server.close()


@pytest.mark.parametrize(
    "contestant",
    [
        name
        for name, contestant in clients.CLIENTS.items()
        if not name.startswith("wsfast-python") and not contestant.needs
    ],
)
def test_feed(benchmark, server, contestant: str) -> None:
    feed = clients.CLIENTS[contestant].feed
    url = f"ws://127.0.0.1:{server.port}/feed/{FEED_COUNT}/{FEED_SIZE}"
    job = clients.Feed(url, FEED_COUNT, FEED_COUNT * FEED_SIZE)
    try:
        seconds = benchmark.pedantic(feed, (job,), rounds=3)
    except ImportError as exc:
        pytest.skip(str(exc))
    benchmark.extra_info["messages_per_s"] = FEED_COUNT / seconds
