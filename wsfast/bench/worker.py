"""Runs one measurement in a fresh process and prints its result as one JSON line.

The runner starts ``python -m wsfast.bench.worker '<json spec>'`` for every contestant and
repeat, so each library runs alone in its process, with its own environment (wsfast's
pure twin gets ``WSFAST_NO_EXTENSIONS=1``). The line is ``{"seconds": ...}`` (plus
``latency_us`` percentiles for echo cases, and the codec call's details for
micro-benchmarks), ``{"skip": reason}`` when the contestant is not available here, or
``{"error": reason}``.

A network spec has ``kind`` (feed or echo), ``url``, ``count``, ``size``, ``json``,
``deflate``, ``cafile`` (the CA that issued the server's certificate, for ``wss://``),
``path`` and, for feeds, ``total``: the bytes (or characters) all messages add up to.
With ``uvicorn`` set, the contestant is a uvicorn WebSocket implementation: the worker
starts that server, sends wsfast's client to its ``path`` and adds ``server_rss_mb``, the
server's peak memory, to the line.
"""

from __future__ import annotations

import json
import ssl
import sys


def _check_wsfast_twin(contestant: str) -> None:
    """Skip a wsfast twin whose codec is not the one this process was asked to use."""
    if not contestant.startswith("wsfast-"):
        return
    import wsfast

    wanted = "python" if contestant.startswith("wsfast-python") else "c"
    # wsfast is always importable here: the runner puts it on the path.
    if wsfast.IMPLEMENTATION != wanted:
        raise LookupError(
            f"the {wanted!r} codec is not available (got {wsfast.IMPLEMENTATION!r})"
        )


def _guarded(work) -> dict:
    """Run ``work()``, turning a missing library into a skip and any failure into an error."""
    try:
        return work()
    except (ImportError, LookupError) as exc:
        return {"skip": str(exc) or type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - any failure is reported as data; the run goes on
        return {"error": f"{type(exc).__name__}: {exc}"}


def _job(spec: dict):
    """The :class:`~wsfast.bench.clients.Feed` or ``Echo`` that ``spec`` describes."""
    from .clients import Echo, Feed
    from .ticks import json_text

    # Every TLS contestant verifies the certificate and the host name against the run's CA.
    context = ssl.create_default_context(cafile=spec["cafile"]) if spec.get("cafile") else None
    if spec["kind"] == "feed":
        return Feed(spec["url"], spec["count"], spec["total"], spec["json"], spec["deflate"], context)
    payload = json_text(spec["size"]) if spec["json"] else bytes(spec["size"])
    return Echo(spec["url"], spec["count"], payload, spec["deflate"], context)


def latency_us(trips_ns: list[int]) -> dict | None:
    """The 50th, 99th and 99.9th percentiles of the round trips, in microseconds (needs numpy)."""
    try:
        import numpy
    except ImportError:
        return None
    p50, p99, p999 = numpy.percentile(numpy.asarray(trips_ns, dtype=numpy.int64), [50, 99, 99.9]) / 1e3
    return {"p50": float(p50), "p99": float(p99), "p99.9": float(p999)}


def _network(spec: dict) -> dict:
    from .clients import CLIENTS

    if spec.get("uvicorn"):
        return _through_uvicorn(spec)
    contestant = CLIENTS[spec["contestant"]]
    job = _job(spec)
    if spec["kind"] == "feed":
        return {"seconds": contestant.feed(job)}
    seconds, trips = contestant.echo(job)
    latency = latency_us(trips)
    return {"seconds": seconds, **({"latency_us": latency} if latency else {})}


def _through_uvicorn(spec: dict) -> dict:
    from .asgi import serving
    from .clients import wsfast_echo, wsfast_many_feed

    with serving(spec["contestant"]) as server:
        job = _job({**spec, "url": server.url(spec["path"])})
        if spec["kind"] == "feed":
            outcome = {"seconds": wsfast_many_feed(job)}
        else:
            seconds, trips = wsfast_echo(job)
            latency = latency_us(trips)
            outcome = {"seconds": seconds, **({"latency_us": latency} if latency else {})}
    return {**outcome, "server_rss_mb": server.peak_rss_mb}


def measure(spec: dict) -> dict:
    """Run the measurement ``spec`` describes; return its result dict.

    A codec spec names several ``cases`` and gets ``{"cases": {case: result}}`` back.
    """
    contestant = spec["contestant"]
    checked = _guarded(lambda: _check_wsfast_twin(contestant) or {})
    if checked:
        return checked
    if spec["kind"] == "codec":
        from .micro import run

        min_time = spec.get("min_time", 0.2)
        results = {}
        for case in spec["cases"]:
            results[case] = _guarded(lambda case=case: run(contestant, case, min_time))
        return {"cases": results}
    return _guarded(lambda: _network(spec))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(measure(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
