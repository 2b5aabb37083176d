"""Instructions per received message, counted by callgrind: a measure that repeats on a
noisy machine, where rates do not.

    python benchmarks/instructions_per_message.py [--styles recv,iter,many] [--decoders none,msgspec,orjson]

The benchmark server (``python -m wsfast.bench.server``) sends the JSON ticks of the
``tls-json`` case over ws:// (no TLS: OpenSSL's work is the same for every client). Each
client runs under ``valgrind --tool=callgrind`` twice, receiving 20,000 and then 60,000
ticks; the difference of the two instruction counts divided by 40,000 is the cost of one
message, without the start-up, the handshake and the imports. "alone" decodes the same
payloads from a list in memory, one call each: the decoder's own cost, which ``decode=``
adds to. Needs valgrind, and msgspec or orjson for their rows.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

COUNTS = (20_000, 60_000)
STYLES = ("recv", "iter", "many", "alone")


def decoder(name: str) -> Callable[[bytes], Any] | None:
    if name == "none":
        return None
    if name == "orjson":
        import orjson

        return orjson.loads
    if name == "json":
        import json

        return json.loads
    import msgspec

    class Tick(msgspec.Struct, gc=False):
        sym: str
        id: int
        px: float
        qty: float
        side: str
        ts: int
        buyer: int
        seller: int

    return msgspec.json.Decoder(Tick).decode


def receive(url: str, style: str, decoder_name: str, count: int) -> int:
    """Receive ``count`` ticks in ``style``; the loops are alike, so their costs cancel."""
    import wsfast

    received = 0
    with wsfast.connect(url, compression=None, decode=decoder(decoder_name)) as ws:
        ws.send("go")
        if style == "recv":
            recv = ws.recv
            for _ in range(count):
                recv()
            received = count
        elif style == "iter":
            for _ in ws:
                received += 1
                if received == count:
                    break
        else:
            recv_many = ws.recv_many
            while received < count:
                received += len(recv_many())
    return received


def alone(decoder_name: str, count: int) -> int:
    """Decode ``count`` payloads in memory; the payloads of the larger count are made
    either way, so that making them cancels out."""
    from wsfast.bench.ticks import ticks

    payloads = [tick.encode() for tick in ticks(max(COUNTS))][:count]
    decode = decoder(decoder_name)
    assert decode is not None
    decoded = 0
    for payload in payloads:
        decode(payload)
        decoded += 1
    return decoded


def instructions(arguments: list[str]) -> int:
    """What callgrind counted for ``python this-script arguments``."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-500:]}")
    return int(found.group(1))


def per_message(arguments: Callable[[int], list[str]]) -> float:
    low, high = (instructions(arguments(count)) for count in COUNTS)
    return (high - low) / (COUNTS[1] - COUNTS[0])


@contextlib.contextmanager
def serving() -> Iterator[int]:
    """Run the benchmark server while the generator is open; yield its port."""
    server = subprocess.Popen(
        [sys.executable, "-m", "wsfast.bench.server", "--idle", "600", "--stdin-lifeline"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline().split()[0])
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


def main() -> None:
    if sys.argv[1:2] == ["--receive"]:  # one measured client, run under callgrind
        url, style, decoder_name, count = sys.argv[2:]
        assert receive(url, style, decoder_name, int(count)) == int(count)
        return
    if sys.argv[1:2] == ["--alone"]:
        decoder_name, count = sys.argv[2:]
        assert alone(decoder_name, int(count)) == int(count)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--styles", default="recv,iter,many,alone")
    parser.add_argument("--decoders", default="none,msgspec,orjson")
    args = parser.parse_args()
    styles = args.styles.split(",")
    decoders = args.decoders.split(",")
    with serving() as port:
        url = f"ws://127.0.0.1:{port}/ticks/{{}}"
        print(f"{'instructions per message':<26}" + "".join(f"{name:>10}" for name in decoders))
        for style in styles:
            row = []
            for name in decoders:
                if style == "alone":
                    cost = None if name == "none" else per_message(lambda n, name=name: ["--alone", name, str(n)])
                else:
                    cost = per_message(
                        lambda n, name=name, style=style: ["--receive", url.format(n), style, name, str(n)]
                    )
                row.append("-" if cost is None else f"{cost:,.0f}")
            label = "decoder alone" if style == "alone" else f"wsfast {style}"
            print(f"{label:<26}" + "".join(f"{cell:>10}" for cell in row), flush=True)


if __name__ == "__main__":
    main()
