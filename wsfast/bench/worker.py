"""Runs one measurement in a fresh process and prints its result as one JSON line.

The runner starts ``python -m wsfast.bench.worker '<json spec>'`` for every contestant and
repeat, so each library runs alone in its process, with its own environment (wsfast's
pure twin gets ``WSFAST_NO_EXTENSIONS=1``). The line is ``{"seconds": ...}`` (plus
``latency_us`` percentiles and ``cpu_us``, the client's CPU per round trip or tick, for
echo, fanout and latency cases; ``late``, the ticks later than 1 ms, for latency cases;
and the codec call's details for micro-benchmarks), ``{"skip": reason}`` when the
contestant is not available here, or ``{"error": reason}``.

A network spec has ``kind`` (feed, echo, fanout or latency), ``url``, ``count``
(per connection in a fanout case, where ``connections`` says how many), ``size``, ``json``,
``deflate``, ``cafile`` (the CA that issued the server's certificate, for ``wss://``),
``path`` and, for feeds, ``total``: the bytes (or characters) all messages add up to;
in the decoded case, ``px_total`` too: the ticks' prices added up.
With ``uvicorn`` set, the contestant is a uvicorn WebSocket implementation: the worker
starts that server, sends wsfast's client to its ``path`` and adds ``server_rss_mb``, the
server's peak memory, to the line. A ``threads`` spec (:mod:`wsfast.bench.threads`) has
``urls`` and ``count``: one feed per URL, each received on its own thread.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import importlib.util
import json
import re
import ssl
import sys
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from wsfast.batch import Batch

    from .clients import Contestant, Echo, Feed, Timed
    from .latency import Ticks


def _check_wsfast_twin(contestant: str) -> None:
    """Skip a wsfast twin whose codec is not the one this process was asked to use."""
    if not contestant.startswith("wsfast-"):
        return
    import wsfast

    wanted = "python" if contestant.startswith("wsfast-python") else "c"
    # wsfast is always importable here: the runner puts it on the path.
    if wanted != wsfast.IMPLEMENTATION:
        raise LookupError(f"the {wanted!r} codec is not available (got {wsfast.IMPLEMENTATION!r})")


def _guarded(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work()``, turning a missing library into a skip and any failure into an error."""
    try:
        return work()
    except (ImportError, LookupError) as exc:
        return {"skip": _skip_reason(exc)}
    except Exception as exc:  # noqa: BLE001 - any failure is reported as data; the run goes on
        return {"error": f"{type(exc).__name__}: {exc}"}


# Libraries whose import name is not the name pip installs them by.
_DISTRIBUTIONS = {"websocket": "websocket-client"}


def _skip_reason(exc: Exception) -> str:
    """Why a contestant cannot run here; for a missing library, what to install."""
    name = getattr(exc, "name", None)
    if isinstance(exc, ModuleNotFoundError) and name:
        top = name.partition(".")[0]
        if importlib.util.find_spec(top) is None:  # the library itself, not an optional part of it
            distribution = _DISTRIBUTIONS.get(top, top)
            return f"{distribution}: not installed ({_install_hint(distribution)})"
    reason = str(exc) or type(exc).__name__
    if reason.endswith(" not installed"):  # the uvicorn servers name what they miss
        return f"{reason} (pip install 'wsfast[bench]')"
    return reason


def _install_hint(distribution: str) -> str:
    """The pip command for ``distribution``: wsfast's bench extra when that has it."""
    try:
        requirements = importlib.metadata.requires("wsfast") or []
    except importlib.metadata.PackageNotFoundError:  # wsfast run from a source tree
        requirements = []
    named = re.compile(rf"{re.escape(distribution)}(?=[\s;<>=!~\[]|$)", re.IGNORECASE)
    if any(named.match(r) and 'extra == "bench"' in r for r in requirements):
        return "pip install 'wsfast[bench]'"
    return f"pip install {distribution}"


def _job(spec: dict[str, Any]) -> Feed | Echo | Ticks:
    """The :class:`~wsfast.bench.clients.Feed`, ``Echo`` or :class:`~wsfast.bench.latency.Ticks`
    that ``spec`` describes."""
    from .clients import Echo, Feed
    from .latency import Ticks
    from .ticks import json_text

    # Every TLS contestant verifies the certificate and the host name against the run's CA.
    context = ssl.create_default_context(cafile=spec["cafile"]) if spec.get("cafile") else None
    if spec["kind"] == "feed":
        return Feed(
            spec["url"], spec["count"], spec["total"], spec["json"], spec["deflate"], context, spec.get("px_total")
        )
    if spec["kind"] == "latency":
        return Ticks(spec["url"], spec["count"], spec["size"], context)
    payload = json_text(spec["size"]) if spec["json"] else bytes(spec["size"])
    return Echo(spec["url"], spec["count"], payload, spec["deflate"], context, spec.get("connections", 1))


def latency_us(trips_ns: list[int], maximum: bool = False) -> dict[str, float] | None:
    """The 50th, 99th and 99.9th percentiles of the round trips (or delays), in
    microseconds, and with ``maximum`` the largest too (needs numpy)."""
    try:
        import numpy
    except ImportError:
        return None
    samples = numpy.asarray(trips_ns, dtype=numpy.int64)
    p50, p99, p999 = numpy.percentile(samples, [50, 99, 99.9]) / 1e3
    percentiles = {"p50": float(p50), "p99": float(p99), "p99.9": float(p999)}
    if maximum:
        percentiles["max"] = float(samples.max()) / 1e3
    return percentiles


def _timed(timed: Timed, kind: str) -> dict[str, Any]:
    """The result line of an echo, fanout or latency job."""
    from .latency import LATE_NS

    latency = latency_us(timed.samples, maximum=kind == "latency")
    outcome: dict[str, Any] = {"seconds": timed.seconds, "cpu_us": timed.cpu * 1e6 / max(1, len(timed.samples))}
    if latency:
        outcome["latency_us"] = latency
    if kind == "latency":
        outcome["late"] = sum(1 for delay in timed.samples if delay > LATE_NS)
    return outcome


# The contestants that receive with recv_batch(): every message parsed so far in one
# buffer, without an object per message. "-numpy" also views each batch through numpy:
# a binary feed as fixed-layout records, summing one of their fields, as a consumer of
# market data does; a text feed (JSON, of no fixed layout) by its message lengths.


def record_dtype(size: int) -> np.dtype[np.void]:
    """A fixed record layout of ``size`` bytes, like an SBE-encoded tick: sequence number,
    timestamp, price and quantity, then the rest of the record (needs numpy)."""
    import numpy

    fields = [("seq", "<u8"), ("ts", "<i8"), ("price", "<f8"), ("qty", "<f8")]
    if size < 32:
        raise LookupError(f"records of {size} bytes are too short for the tick layout")
    if size > 32:
        fields.append(("rest", f"V{size - 32}"))
    return numpy.dtype(fields)


def wsfast_batch_feed(job: Feed) -> float:
    from wsfast.client import connect

    from .clients import START, _check, _check_feed, _wsfast_options

    with connect(job.url, **_wsfast_options(job)) as ws:
        recv_batch = ws.recv_batch
        received = total = 0
        batch: Batch | None = None
        start = perf_counter()
        if job.json:
            ws.send(START)
        while received < job.count:
            batch = recv_batch()
            received += len(batch)
            total += batch.nbytes
        elapsed = perf_counter() - start
    _check(received, job.count, "messages")
    assert batch is not None  # a feed has messages
    _check_feed(job, total, batch[len(batch) - 1])
    return elapsed


def wsfast_batch_numpy_feed(job: Feed) -> float:
    from wsfast.client import connect

    from .clients import Mismatch, _check, _wsfast_options

    if job.json:
        return _batch_lengths_feed(job)
    dtype = record_dtype(job.total // job.count)
    with connect(job.url, **_wsfast_options(job)) as ws:
        recv_batch = ws.recv_batch
        received = 0
        quantity = 0.0
        start = perf_counter()
        while received < job.count:
            records = recv_batch().to_numpy(dtype)
            received += len(records)
            quantity += float(records["qty"].sum())
        elapsed = perf_counter() - start
    _check(received, job.count, "messages")
    if quantity != 0.0:  # the server sends records of zero bytes
        raise Mismatch(f"the quantities add up to {quantity}, not 0")
    return elapsed


def _batch_lengths_feed(job: Feed) -> float:
    """The JSON ticks feed through numpy: every batch's message lengths, added up."""
    import numpy

    from wsfast.client import connect

    from .clients import START, _check, _wsfast_options

    with connect(job.url, **_wsfast_options(job)) as ws:
        recv_batch = ws.recv_batch
        received = total = 0
        start = perf_counter()
        ws.send(START)
        while received < job.count:
            batch = recv_batch()
            received += len(batch)
            total += int(numpy.diff(batch.offsets_numpy()).sum())
        elapsed = perf_counter() - start
    _check(received, job.count, "messages")
    _check(total, job.total, "characters")  # the ticks are ASCII
    return elapsed


def contestants() -> dict[str, Contestant]:
    """Every contestant by name: those of :mod:`wsfast.bench.clients`, with each wsfast
    twin's batch contestants right after its ``-many`` one, then those of
    :mod:`wsfast.bench.decoded` (the decoded case's only); with the jobs of
    :mod:`wsfast.bench.fanout` and :mod:`wsfast.bench.latency` added, and the floors of
    the latter after the clients."""
    from .clients import CLIENTS, Contestant
    from .decoded import CONTESTANTS as DECODED
    from .fanout import JOBS as FANOUT
    from .latency import FLOORS as LATENCY_FLOORS
    from .latency import JOBS as LATENCY

    table: dict[str, Contestant] = {}
    for name, contestant in CLIENTS.items():
        table[name] = contestant
        if name.startswith("wsfast-") and name.endswith("-many"):
            twin = name[: -len("-many")]
            table[f"{twin}-batch"] = Contestant(wsfast_batch_feed)
            table[f"{twin}-batch-numpy"] = Contestant(wsfast_batch_numpy_feed)
    # The echo over many connections and the tick latency: their modules name who takes part.
    for name, contestant in table.items():
        table[name] = dataclasses.replace(contestant, fanout=FANOUT.get(name), latency=LATENCY.get(name))
    return {**table, **LATENCY_FLOORS, **DECODED}


def _network(spec: dict[str, Any]) -> dict[str, Any]:
    from .clients import Echo, Feed
    from .latency import Ticks

    if spec.get("uvicorn"):
        return _through_uvicorn(spec)
    contestant = contestants()[spec["contestant"]]
    job = _job(spec)
    kind = spec["kind"]
    # The runner sends a contestant only the kinds of case it takes part in.
    if kind == "feed":
        assert contestant.feed is not None and isinstance(job, Feed)
        return {"seconds": contestant.feed(job)}
    if kind == "latency":
        import numpy  # noqa: F401 - without it there are no percentiles: a skip, not a run

        assert contestant.latency is not None and isinstance(job, Ticks)
        return _timed(contestant.latency(job), kind)
    run = contestant.fanout if kind == "fanout" else contestant.echo
    assert run is not None and isinstance(job, Echo)
    return _timed(run(job), kind)


def _through_uvicorn(spec: dict[str, Any]) -> dict[str, Any]:
    from .asgi import serving
    from .clients import Echo, Feed, wsfast_echo, wsfast_many_feed

    with serving(spec["contestant"]) as server:
        job = _job({**spec, "url": server.url(spec["path"])})
        outcome: dict[str, Any]
        if spec["kind"] == "feed":
            assert isinstance(job, Feed)
            outcome = {"seconds": wsfast_many_feed(job)}
        else:
            assert isinstance(job, Echo)
            outcome = _timed(wsfast_echo(job), "echo")
            del outcome["cpu_us"]  # the client's, and these cases compare servers
    return {**outcome, "server_rss_mb": server.peak_rss_mb}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the measurement ``spec`` describes; return its result dict.

    A codec spec names several ``cases`` and gets ``{"cases": {case: result}}`` back.
    """
    contestant = spec["contestant"]

    def check() -> dict[str, Any]:
        _check_wsfast_twin(contestant)
        return {}

    checked = _guarded(check)
    if checked:
        return checked
    if spec["kind"] == "codec":
        from .micro import run

        min_time = spec.get("min_time", 0.2)
        results: dict[str, dict[str, Any]] = {}
        for case in spec["cases"]:
            results[case] = _guarded(functools.partial(run, contestant, case, min_time))
        return {"cases": results}
    if spec["kind"] == "threads":
        from .threads import measure as threads_measure

        return _guarded(lambda: threads_measure(spec))
    return _guarded(lambda: _network(spec))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(measure(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
