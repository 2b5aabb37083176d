"""Receive a local feed of JSON ticks in batches and decode each with polars (or msgspec),
in one thread and with wsfast.pipeline.decoded_batches (decoding in a worker thread).

python benchmarks/pipeline_gain.py [count] [polars|msgspec] [repeats]
"""

import subprocess
import sys
import time

import msgspec

import wsfast
from wsfast.pipeline import decoded_batches

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
decoder_name = sys.argv[2] if len(sys.argv) > 2 else "polars"
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
msgspec_decoder = msgspec.json.Decoder()
decode = {
    "polars": lambda batch: batch.to_polars().height,
    "msgspec": lambda batch: len(batch.decode_lines(msgspec_decoder)),
}[decoder_name]


def run(url, pipelined):
    rows = 0
    with wsfast.connect(url, compression=None) as ws:
        ws.send("start")
        start = time.perf_counter()
        if pipelined:
            for decoded in decoded_batches(ws, decode):
                rows += decoded
        else:
            try:
                while True:
                    rows += decode(ws.recv_batch())
            except wsfast.ConnectionClosedOK:
                pass
        elapsed = time.perf_counter() - start
    assert rows == count, rows
    return count / elapsed


proc = subprocess.Popen(
    [sys.executable, "-m", "wsfast.bench.server", "--idle", "60", "--stdin-lifeline"],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
)
port = int(proc.stdout.readline().split()[0])
url = f"ws://127.0.0.1:{port}/ticks/{count}"
run(url, False)  # warm the server's cache of the feed
try:
    for pipelined in (False, True, False, True):
        rates = sorted(run(url, pipelined) for _ in range(repeats))
        label = "decoded_batches (worker thread)" if pipelined else "one thread"
        print(
            f"{decoder_name} {label}: median {rates[len(rates) // 2] / 1e6:.2f} M msg/s "
            f"(range {rates[0] / 1e6:.2f}-{rates[-1] / 1e6:.2f})",
            flush=True,
        )
finally:
    proc.stdin.close()
    proc.wait(timeout=60)
