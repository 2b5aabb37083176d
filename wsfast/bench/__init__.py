"""Benchmarks wsfast against the other Python WebSocket clients, side by side in one run.

``python -m wsfast bench --quick`` gives a first picture in under a minute; see
``python -m wsfast bench --help`` for cases, contestants, repeats, JSON and chart output.
The peer libraries are optional: ``pip install wsfast[bench]`` (websockets,
websocket-client, aiohttp, picows, uvloop, matplotlib; trustme for the TLS cases, numpy
for the echo latency percentiles); a missing one is skipped with a note.
"""

from .runner import main

__all__ = ["main"]
