"""Realistic trade ticks: the JSON text of the ``tls-json`` cases, the same bytes everywhere.

:func:`ticks` is deterministic: the server, the floors and the codec micro-benchmarks
each call it and work on exactly the same messages, and ``ticks(n)`` is the first ``n``
of ``ticks(m)`` for any ``m > n``. A tick is compact JSON of about 125 bytes, like
this (one line)::

    {"sym":"LINK-USD","id":320000001,"px":14.822,"qty":0.1359,"side":"buy",
     "ts":1700000000000620,"buyer":3617186,"seller":4755383}

Prices random-walk in whole price steps per symbol, sizes are log-normal, trade ids
count up per symbol and timestamps (microseconds) keep increasing. Standard library
only: the benchmark server imports it.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import zlib
from bisect import bisect

SEED = 6455

# A compressed message is flushed DEFLATE data without its last four bytes (RFC 7692).
TRAILER = b"\x00\x00\xff\xff"

# symbol, starting price in price steps, decimals of a price step, weight in the feed
_SYMBOLS = (
    ("BTC-USD", 6_423_117, 2, 30),
    ("ETH-USD", 300_127, 2, 20),
    ("SOL-USD", 145_630, 3, 10),
    ("XRP-USD", 52_140, 5, 8),
    ("DOGE-USD", 123_450, 6, 6),
    ("ADA-USD", 45_210, 5, 5),
    ("AVAX-USD", 35_420, 3, 4),
    ("LINK-USD", 14_820, 3, 4),
    ("BTC-EUR", 5_912_350, 2, 4),
    ("ETH-BTC", 467_230, 7, 3),
    ("LTC-USD", 8_245, 2, 3),
    ("DOT-USD", 71_320, 4, 3),
)
_START_US = 1_700_000_000_000_000  # the first timestamp, in microseconds since 1970
_FIRST_TRADE_ID = 40_000_000
_STEP_SIGMA = 2.0  # price steps a trade moves the price, one standard deviation


def _decimal(steps: int, decimals: int) -> str:
    """``12345, 2`` -> ``"123.45"``: exact, unlike formatting a float."""
    whole, fraction = divmod(steps, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}"


def ticks(count: int, seed: int = SEED) -> list[str]:
    """The first ``count`` ticks of the feed that ``seed`` picks, as JSON text."""
    rng = random.Random(seed)
    names = [symbol[0] for symbol in _SYMBOLS]
    prices = [symbol[1] for symbol in _SYMBOLS]
    decimals = [symbol[2] for symbol in _SYMBOLS]
    trade_ids = [_FIRST_TRADE_ID * (index + 1) for index in range(len(_SYMBOLS))]
    cumulative = list(itertools.accumulate(symbol[3] for symbol in _SYMBOLS))
    weights = cumulative[-1]
    gauss, lognormvariate, randrange, random_, log = rng.gauss, rng.lognormvariate, rng.randrange, rng.random, math.log
    now = _START_US
    out = []
    for _ in range(count):
        # One tick draws its numbers in turn, so that a longer feed starts with a shorter one.
        index = bisect(cumulative, random_() * weights)
        prices[index] = max(1, prices[index] + round(gauss(0.0, _STEP_SIGMA)))
        trade_ids[index] += 1
        now += 1 + int(-300.0 * log(1.0 - random_()))  # about 3,000 trades a second
        quantity = max(1, round(lognormvariate(6.0, 1.5)))  # in 1/10,000 units
        out.append(
            f'{{"sym":"{names[index]}","id":{trade_ids[index]},'
            f'"px":{_decimal(prices[index], decimals[index])},"qty":{_decimal(quantity, 4)},'
            f'"side":"{"buy" if random_() < 0.5 else "sell"}","ts":{now},'
            f'"buyer":{randrange(1_000_000, 10_000_000)},"seller":{randrange(1_000_000, 10_000_000)}}}'
        )
    return out


def px_total(count: int, seed: int = SEED) -> float:
    """The prices (``px``) of the first ``count`` ticks added up, in feed order: what a
    client that decodes every tick must arrive at (the ``tls-json-decoded`` case)."""
    total = 0.0
    for tick in ticks(count, seed):
        total += json.loads(tick)["px"]
    return total


def deflate_payloads(messages: list[str]) -> list[bytes]:
    """Compress ``messages`` as a permessage-deflate server does by default.

    One compressor for the whole feed (context takeover, 15-bit window), a sync flush
    per message, the trailer stripped: each item is one message's frame payload.
    """
    compressor = zlib.compressobj(wbits=-15)
    compress, flush = compressor.compress, compressor.flush
    return [compress(message.encode()) + flush(zlib.Z_SYNC_FLUSH)[:-4] for message in messages]


def json_text(size: int, seed: int = SEED) -> str:
    """A JSON array of ticks, padded with spaces to exactly ``size`` characters."""
    chosen: list[str] = []
    for tick in ticks(max(1, size // 100), seed):
        if len(tick) + sum(map(len, chosen)) + len(chosen) + 2 > size:
            break
        chosen.append(tick)
    text = "[" + ",".join(chosen) + "]"
    if len(text) > size:
        raise ValueError(f"no tick fits in {size} characters")
    return text.ljust(size)
