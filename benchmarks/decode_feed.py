"""decode= over a local feed of JSON ticks, against the decoder alone and the old way.

    python benchmarks/decode_feed.py [--count 500000] [--rounds 5]

A server process sends ``--count`` ticks of ``wsfast.bench.ticks`` (about 125 bytes of
JSON each) as fast as the socket takes them; the blocking client receives them one per
iteration, in each of the ways compared. "decoder alone" decodes the same payloads from
a list in memory, in the same per-message loop. Each rate is the best of ``--rounds``.
Needs msgspec, which wsfast itself does not.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

import wsfast
from wsfast import _pure
from wsfast.bench.decoded import tick_type
from wsfast.bench.ticks import ticks
from wsfast.handshake import ServerHandshake

Tick = tick_type()  # the msgspec Struct of the decoded benchmark


def feed(listener: socket.socket, stream: bytes, rounds: int) -> None:
    """Serve ``rounds`` connections, each sent the whole ``stream`` then a close frame."""
    for _ in range(rounds):
        sock, _ = listener.accept()
        with sock:
            handshake = ServerHandshake()
            while not handshake.receive_data(sock.recv(65536)):
                pass
            sock.sendall(handshake.response())
            sock.sendall(stream + _pure.encode_frame(8, (1000).to_bytes(2, "big")))
            sock.recv(65536)  # the client's answer to the close: the server then ends TCP


def best_rate(count: int, rounds: int, consume: Callable[[], int]) -> float:
    """Messages per second of the fastest of ``rounds`` runs of ``consume()``."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        received = consume()
        elapsed = time.perf_counter() - start
        assert received == count, received
        best = max(best, count / elapsed)
    return best


def over_feed(url: str, decode: Callable[[bytes], Any] | None, loop: Callable[[Iterable[Any]], int]) -> int:
    with wsfast.connect(url, compression=None, decode=decode) as ws:
        return loop(ws)


def count_all(messages: Iterable[Any]) -> int:
    received = 0
    for _ in messages:
        received += 1
    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    payloads = [tick.encode() for tick in ticks(args.count)]
    decode = msgspec.json.Decoder(Tick).decode

    def decode_each(messages: Iterable[Any]) -> int:  # the old way: a str, decoded here
        received = 0
        for message in messages:
            decode(message)
            received += 1
        return received

    cases: dict[str, tuple[Callable[[bytes], Any] | None, Callable[[Iterable[Any]], int]]] = {
        "wsfast, no decoding": (None, count_all),
        "wsfast decode=": (decode, count_all),
        "wsfast then decode": (None, decode_each),
    }
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    stream = b"".join(_pure.encode_frame(1, payload) for payload in payloads)
    server = multiprocessing.Process(target=feed, args=(listener, stream, args.rounds * len(cases)), daemon=True)
    server.start()
    alone = best_rate(args.count, args.rounds, lambda: decode_each(payloads))
    best = {"decoder alone (in memory)": alone}
    for name, (decoder, loop) in cases.items():
        best[name] = best_rate(args.count, args.rounds, functools.partial(over_feed, url, decoder, loop))
    server.join(10)
    print(f"{args.count} ticks of {sum(map(len, payloads)) / len(payloads):.0f} bytes, codec {wsfast.IMPLEMENTATION}")
    for name, value in best.items():
        print(f"{name:28} {value / 1e6:6.3f} M msg/s  {value / alone:5.2f}x the decoder alone")


if __name__ == "__main__":
    main()
