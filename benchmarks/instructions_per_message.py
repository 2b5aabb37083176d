"""Instructions per received message and per round trip, counted by callgrind: a measure
that repeats on a noisy machine, where rates do not.

    python benchmarks/instructions_per_message.py [--styles recv,iter,many,...] [--decoders none,msgspec,orjson]
    python benchmarks/instructions_per_message.py --echo [--styles floor,blocking,asyncio,callback,picows]

Add ``--uvloop`` to run the asyncio styles (and picows) on uvloop.

The benchmark server (``python -m wsfast.bench.server``) sends the JSON ticks of the
``tls-json`` case over ws:// (no TLS: OpenSSL's work is the same for every client). Each
client runs under ``valgrind --tool=callgrind`` twice, receiving 20,000 and then 60,000
ticks; the difference of the two instruction counts divided by 40,000 is the cost of one
message, without the start-up, the handshake and the imports. The styles: wsfast's
blocking ``recv()``, iteration, ``recv_many()`` and ``recv_batch()`` (``batch``), its asyncio ``await recv()`` and
``on_message`` callbacks (``arecv``, ``callback``), and picows with a listener. "alone"
decodes the same payloads from a list in memory, one call each: the decoder's own cost,
which ``decode=`` adds to. ``--echo`` counts a round trip of 256 bytes to the server's
``/echo`` instead (2,000 and 6,000 of them), the client's instructions only; its
"floor" is the event loop's own share: a bare protocol that writes a pre-masked frame
and counts the echo's bytes. Needs valgrind; msgspec, orjson and picows for their rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

COUNTS = (20_000, 60_000)
TRIPS = (2_000, 6_000)
PAYLOAD = b"x" * 256


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

    from wsfast.bench.decoded import tick_type  # the Struct the decoded benchmark uses

    return msgspec.json.Decoder(tick_type()).decode


def run(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run ``coroutine`` on asyncio's own loop, or on uvloop's when WSFAST_LOOP=uvloop."""
    if os.environ.get("WSFAST_LOOP") == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def receive(url: str, style: str, decoder_name: str, count: int) -> int:
    """Receive ``count`` ticks in ``style``; the loops are alike, so their costs cancel."""
    import wsfast

    if style in ("arecv", "callback"):
        return run(receive_asyncio(url, style, decoder_name, count))
    if style == "picows":
        return run(receive_picows(url, decoder_name, count))
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
        elif style == "batch":
            recv_batch = ws.recv_batch
            while received < count:
                received += len(recv_batch())
        else:
            recv_many = ws.recv_many
            while received < count:
                received += len(recv_many())
    return received


async def receive_asyncio(url: str, style: str, decoder_name: str, count: int) -> int:
    import wsfast.asyncio

    received = 0
    done = asyncio.get_running_loop().create_future()

    def on_message(ws: object, message: object) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set_result(None)

    callback = on_message if style == "callback" else None
    async with wsfast.asyncio.connect(url, compression=None, decode=decoder(decoder_name), on_message=callback) as ws:
        await ws.send("go")
        if callback is not None:
            await done
        else:
            recv = ws.recv
            for _ in range(count):
                await recv()
            received = count
    return received


async def receive_picows(url: str, decoder_name: str, count: int) -> int:
    """picows' way: a listener called for every frame, decoding its payload as a view
    (``str`` without a decoder, as a JSON consumer gets it)."""
    import picows

    decode = decoder(decoder_name)
    done = asyncio.get_running_loop().create_future()

    class Listener(picows.WSListener):  # type: ignore[misc]
        received = 0

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type != picows.WSMsgType.TEXT:
                return
            if decode is None:
                frame.get_payload_as_utf8_text()
            else:
                decode(frame.get_payload_as_memoryview())
            self.received += 1
            if self.received == count:
                done.set_result(None)

    transport, listener = await picows.ws_connect(Listener, url)
    transport.send(picows.WSMsgType.TEXT, b"go")
    await done
    transport.disconnect()
    return int(listener.received)


def echo(url: str, style: str, trips: int) -> int:
    """``trips`` round trips of :data:`PAYLOAD` in ``style``."""
    if style == "blocking":
        import wsfast

        with wsfast.connect(url, compression=None) as ws:
            send, recv = ws.send, ws.recv
            for _ in range(trips):
                send(PAYLOAD)
                recv()
        return trips
    return run(echo_asyncio(url, style, trips))


async def echo_asyncio(url: str, style: str, trips: int) -> int:
    done = asyncio.get_running_loop().create_future()
    if style == "floor":
        return await echo_floor(url, trips, done)
    if style == "picows":
        import picows

        class Listener(picows.WSListener):  # type: ignore[misc]
            left = trips

            def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
                frame.get_payload_as_bytes()
                self.left -= 1
                if self.left:
                    transport.send(picows.WSMsgType.BINARY, PAYLOAD)
                else:
                    done.set_result(None)

        transport, _ = await picows.ws_connect(Listener, url)
        transport.send(picows.WSMsgType.BINARY, PAYLOAD)
        await done
        transport.disconnect()
        return trips
    import wsfast.asyncio

    left = trips

    def on_message(ws: wsfast.asyncio.Client, message: object) -> None:
        nonlocal left
        left -= 1
        if left:
            ws.send_nowait(PAYLOAD)
        else:
            done.set_result(None)

    callback = on_message if style == "callback" else None
    async with wsfast.asyncio.connect(url, compression=None, on_message=callback) as ws:
        if callback is not None:
            ws.send_nowait(PAYLOAD)
            await done
        else:
            send, recv = ws.send, ws.recv
            for _ in range(trips):
                await send(PAYLOAD)
                await recv()
    return trips


async def echo_floor(url: str, trips: int, done: asyncio.Future[None]) -> int:
    """The loop's own share: a bare protocol, after a wsfast handshake, that writes a
    pre-masked frame and counts the echo's bytes, with no WebSocket work."""
    import wsfast.asyncio
    from wsfast import encode_frame

    frame = encode_frame(2, PAYLOAD, mask_key=b"\x01\x02\x03\x04")
    echo_size = len(encode_frame(2, PAYLOAD))
    left = trips

    class Floor(asyncio.BufferedProtocol):
        def __init__(self, transport: asyncio.Transport) -> None:
            self.transport = transport
            self.buffer = memoryview(bytearray(65536))
            self.pending = echo_size

        def get_buffer(self, sizehint: int) -> memoryview:
            return self.buffer

        def buffer_updated(self, nbytes: int) -> None:
            nonlocal left
            self.pending -= nbytes
            if self.pending == 0:
                self.pending = echo_size
                left -= 1
                if left:
                    self.transport.write(frame)
                else:
                    done.set_result(None)

    ws = await wsfast.asyncio.connect(url, compression=None)
    transport = ws._transport
    transport.set_protocol(Floor(transport))
    transport.write(frame)
    await done
    transport.abort()
    return trips


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


def per_item(arguments: Callable[[int], list[str]], counts: tuple[int, int] = COUNTS) -> float:
    low, high = (instructions(arguments(count)) for count in counts)
    return (high - low) / (counts[1] - counts[0])


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
    if sys.argv[1:2] == ["--trips"]:
        url, style, count = sys.argv[2:]
        assert echo(url, style, int(count)) == int(count)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--styles", default=None)
    parser.add_argument("--decoders", default="none,msgspec,orjson")
    parser.add_argument("--echo", action="store_true", help="instructions per round trip of 256 bytes")
    parser.add_argument("--uvloop", action="store_true", help="the asyncio styles on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        os.environ["WSFAST_LOOP"] = "uvloop"  # for the measured clients
    if args.echo:
        with serving() as port:
            url = f"ws://127.0.0.1:{port}/echo"
            print("instructions per round trip (256 B)")
            for style in (args.styles or "floor,blocking,asyncio,callback,picows").split(","):
                cost = per_item(lambda n, style=style: ["--trips", url, style, str(n)], TRIPS)
                print(f"{style:<26}{cost:>10,.0f}", flush=True)
        return
    styles = (args.styles or "recv,iter,many,arecv,callback,picows,alone").split(",")
    decoders = args.decoders.split(",")
    with serving() as port:
        url = f"ws://127.0.0.1:{port}/ticks/{{}}"
        print(f"{'instructions per message':<26}" + "".join(f"{name:>10}" for name in decoders))
        for style in styles:
            row = []
            for name in decoders:
                if style == "alone":
                    cost = None if name == "none" else per_item(lambda n, name=name: ["--alone", name, str(n)])
                else:
                    cost = per_item(lambda n, name=name, style=style: ["--receive", url.format(n), style, name, str(n)])
                row.append("-" if cost is None else f"{cost:,.0f}")
            label = {"alone": "decoder alone", "picows": "picows"}.get(style, f"wsfast {style}")
            print(f"{label:<26}" + "".join(f"{cell:>10}" for cell in row), flush=True)


if __name__ == "__main__":
    main()
