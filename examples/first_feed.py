"""The tutorial's feed consumer: subscribe, read ticks, close.

    python examples/tick_server.py &     # a feed on ws://127.0.0.1:8765/
    python examples/first_feed.py [URL] [--count N]

URL defaults to that feed; N, the ticks read before closing, to 1000.
"""

import argparse
import json

import wsfast

parser = argparse.ArgumentParser()
parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8765/")
parser.add_argument("--count", type=int, default=1000, help="ticks to read before closing")
args = parser.parse_args()

# decode=json.loads: every message comes out decoded, here as a dict (orjson.loads or a
# msgspec Decoder's decode would be faster); without decode, a str for text, bytes for binary.
with wsfast.connect(args.url, decode=json.loads) as ws:
    print(f"connected to {args.url}")
    ws.send(json.dumps({"subscribe": "ABC"}))

    # One message at a time: recv().
    first = ws.recv(timeout=10)
    print(f"first tick: {first}")

    # Every message one read brought at once: far fewer calls on a busy feed.
    received, batches = 1, 0
    while received < args.count:
        batch = ws.recv_many(timeout=10)
        batches += 1
        received += len(batch)
        last = batch[-1]
    print(f"{received} ticks in {batches + 1} calls, the last one #{last['seq']} at {last['price']}")

    ws.close(1000, "done")  # the with block would close too; here we choose code and reason
    print(f"closed: {ws.state.name}, the server answered {ws.close_code}")
