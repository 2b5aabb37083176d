"""Presents benchmark results: a text table, a JSON document and a bar chart.

Two ratios put each rate in context, both within one run: "vs best peer" divides by the
fastest contestant that is neither wsfast nor a floor, and "vs floor" by the case's
floor, the limit that no client can pass (``raw-tcp``, ``raw-tls``: reading the same
bytes over the same TCP or TLS; ``zlib``: only decompressing the payloads). When a case
has several floors, a client has to do all their work in its one thread, so their times
add up.

In the decoded case (``tls-json-decoded``, :mod:`wsfast.bench.decoded`) each contestant
has a decoder and a kind, which its name says: "vs floor" divides by the floor of its
own decoder (that decoder alone, over the same ticks in memory), and "vs best peer" by
the fastest peer of the same decoder for a contestant that decodes each message, and by
the fastest peer of any decoder for one that decodes batches of messages. Its note adds
"vs wire+decoder": the ratio to that decoder's floor and ``raw-tls`` together (their
times added), the most a client that reads the feed and decodes it in one thread can do.

The echo cases' notes add the client's CPU time per round trip (median over the runs).

The tick-latency cases (kind ``latency``) have a table of their own: how late the ticks
reach each client's code, in microseconds, each percentile the median of the runs' own,
ranked by p99, lower is better. There "vs best peer" and "vs floor" divide the p99 by the
best peer's p99 and by the floor's (``raw-ticks``): lower is better, 1.00x is as good.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import Result

_PERCENTILES = ("p50", "p99", "p99.9")


def _short(value: float) -> str:
    """1234567 -> '1.23M': bar labels stay readable."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def _is_wsfast(name: str) -> bool:
    return name.startswith("wsfast")


def _measured(result: Result) -> float:
    """The median rate of a result that has one."""
    median = result.median
    assert median is not None
    return median


def _best_peer(results: list[Result]) -> float | None:
    rates = [r.median for r in results if not _is_wsfast(r.contestant) and not r.floor and r.median]
    return max(rates) if rates else None


def _floor(results: list[Result]) -> tuple[str, float] | None:
    """The case's floor: its name and rate (the floors' times added), or None."""
    floors = [r for r in results if r.floor and r.median]
    if not floors:
        return None
    return "+".join(r.contestant for r in floors), 1 / sum(1 / _measured(r) for r in floors)


def _fastest(results: list[Result]) -> Result | None:
    measured = [r for r in results if r.median]
    return max(measured, key=_measured) if measured else None


def _decoded_references(in_case: list[Result]) -> dict[str, tuple[Result | None, Result | None]]:
    """The decoded case: each contestant's best peer and floor, by its decoder and kind."""
    from .decoded import MESSAGE, decoder_of, kind_of

    peers = [r for r in in_case if not _is_wsfast(r.contestant) and not r.floor]
    floors = {decoder_of(r.contestant): r for r in in_case if r.floor}
    references: dict[str, tuple[Result | None, Result | None]] = {}
    for r in in_case:
        decoder = decoder_of(r.contestant)
        if decoder is None:  # raw-tls: the wire's limit, measured against nothing
            references[r.contestant] = (None, None)
            continue
        if kind_of(r.contestant) == MESSAGE:
            alike = [p for p in peers if decoder_of(p.contestant) == decoder]
        else:
            alike = peers
        references[r.contestant] = (_fastest(alike), floors.get(decoder))
    return references


def _wire_and_decoder(in_case: list[Result]) -> dict[str, float]:
    """The decoded case: per contestant with a decoder, the rate of reading the feed over
    TLS and decoding it, each at its floor's speed (their times added)."""
    wire = next((r for r in in_case if r.floor and r.median and not _decoder_of(r)), None)
    if wire is None:
        return {}
    rates = {}
    for name, (_, floor) in _decoded_references(in_case).items():
        if floor is not None and floor.median:
            rates[name] = 1 / (1 / _measured(wire) + 1 / floor.median)
    return rates


def _decoder_of(result: Result) -> str | None:
    from .decoded import decoder_of

    return decoder_of(result.contestant)


def _references(in_case: list[Result]) -> dict[str, tuple[float | None, float | None]]:
    """Each contestant's references: the rates its "vs best peer" and "vs floor" divide by."""
    if in_case[0].case.decoded:
        return {
            name: (peer.median if peer else None, floor.median if floor else None)
            for name, (peer, floor) in _decoded_references(in_case).items()
        }
    best = _best_peer(in_case)
    floor = _floor(in_case)
    return {r.contestant: (best, floor[1] if floor else None) for r in in_case}


def _decoded_notes(name: str, in_case: list[Result]) -> list[str]:
    """The decoded case's references, one line per decoder, below its rows."""
    from .decoded import BATCH, MESSAGE, decoder_of, kind_of

    unit = in_case[0].case.unit
    references = _decoded_references(in_case)
    lines = []
    for decoder in dict.fromkeys(decoder_of(r.contestant) for r in in_case):
        users = [r for r in in_case if decoder_of(r.contestant) == decoder]
        if decoder is None:
            continue
        peer, floor = references[users[0].contestant]
        parts = [f"floor {floor.contestant} {_measured(floor):,.0f} {unit}" if floor and floor.median else "no floor"]
        if kind_of(users[0].contestant) == MESSAGE:
            parts.append(f"best peer {peer.contestant} {_measured(peer):,.0f} {unit}" if peer else "no peer")
        lines.append(f"{name:<20} ({decoder}: {'; '.join(parts)})")
    batch_peer = next((references[r.contestant][0] for r in in_case if kind_of(r.contestant) == BATCH), None)
    if batch_peer is not None:
        best = f"{batch_peer.contestant} {_measured(batch_peer):,.0f} {unit}"
        lines.append(f"{name:<20} (batches: best peer of any decoder {best})")
    return lines


def _decoded_row(result: Result, references: tuple[Result | None, Result | None]) -> dict[str, Any]:
    """What a row of the decoded case adds in JSON: its decoder, kind and references."""
    from .decoded import decoder_of, kind_of

    peer, floor = references
    return {
        "decoder": decoder_of(result.contestant),
        "decoding": kind_of(result.contestant) if decoder_of(result.contestant) else None,
        "best_peer": peer.contestant if peer else None,
        "floor_contestant": floor.contestant if floor else None,
    }


def _by_case(results: list[Result]) -> dict[str, list[Result]]:
    cases: dict[str, list[Result]] = {}
    for result in results:
        cases.setdefault(result.case.name, []).append(result)
    return cases


def _ratio(rate: float | None, reference: float | None) -> str:
    return f"{rate / reference:.2f}x" if rate and reference else "-"


def _latency_note(result: Result) -> str:
    latency = result.median_latency_us
    if not latency:
        return ""
    return "p50/p99/p99.9 " + "/".join(f"{latency[key]:.0f}" for key in _PERCENTILES) + " us"


def _cpu_note(result: Result) -> str:
    cpu = result.median_cpu_us
    if cpu is None:
        return ""
    return f"cpu {cpu:.1f} us/{'tick' if result.case.kind == 'latency' else 'trip'}"


def _note(result: Result, wire_and_decoder: float | None = None) -> str:
    note = result.api if result.case.kind == "codec" else _latency_note(result)
    note = f"{note} {_cpu_note(result)}".strip()
    if wire_and_decoder and not result.floor:
        note = f"vs wire+decoder {_ratio(result.median, wire_and_decoder)}"
    if result.server_rss_mb:
        note = f"{note} server peak {max(result.server_rss_mb):.0f} MB".strip()
    if result.errors:
        note = f"{note} {len(result.errors)} failed run(s): {result.errors[-1]}".strip()
    return note


def table(results: list[Result]) -> str:
    """The medians as text tables: the rates, fastest first within each case, then the
    tick latencies, lowest p99 first (see the module doc)."""
    rates = [r for r in results if r.case.kind != "latency"]
    latencies = [r for r in results if r.case.kind == "latency"]
    parts = [_rate_table(rates)] if rates else []
    if latencies:
        parts.append(latency_table(latencies))
    return "\n".join(parts)


def _rate_table(results: list[Result]) -> str:
    lines = []
    width = max([30, *(len(r.contestant) for r in results)])
    header = (
        f"{'case':<20} {'contestant':<{width}} {'median':>14} {'unit':<9} {'MB/s':>9} "
        f"{'vs best peer':>12} {'vs floor':>8} {'runs':>4}  note"
    )
    lines += [header, "-" * len(header)]
    for name, in_case in _by_case(results).items():
        references = _references(in_case)
        combined = _wire_and_decoder(in_case) if in_case[0].case.decoded else {}
        ranked = sorted(in_case, key=lambda r: r.median or -1, reverse=True)
        for r in ranked:
            if r.median:
                best, floor_rate = references[r.contestant]
                row = (
                    f"{name:<20} {r.contestant:<{width}} {r.median:>14,.0f} {r.case.unit:<9} {r.median_mb:>9,.1f} "
                    f"{_ratio(r.median, best):>12} {_ratio(r.median, floor_rate):>8} "
                    f"{len(r.seconds):>4}  {_note(r, combined.get(r.contestant))}"
                )
            else:
                why = f"skipped: {r.skip}" if r.skip else f"failed: {r.errors[-1] if r.errors else 'no run'}"
                row = (
                    f"{name:<20} {r.contestant:<{width}} {'-':>14} {r.case.unit:<9} {'-':>9} "
                    f"{'-':>12} {'-':>8} {0:>4}  {why}"
                )
            lines.append(row.rstrip())
        if in_case[0].case.decoded:
            lines += _decoded_notes(name, in_case)
        else:
            floor = _floor(in_case)
            if floor and "+" in floor[0]:
                lines.append(f"{name:<20} (floor {floor[0]}: {floor[1]:,.0f} {in_case[0].case.unit})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# The tick-latency cases -----------------------------------------------------------------

_DELAYS = ("p50", "p99", "p99.9", "max")


def _p99(result: Result) -> float:
    """The p99 of a result that has one."""
    p99 = result.p99_us
    assert p99 is not None
    return p99


def _latency_references(in_case: list[Result]) -> tuple[Result | None, Result | None]:
    """A latency case's best peer and floor: the lowest p99 of each kind."""
    measured = [r for r in in_case if r.p99_us is not None]
    peers = [r for r in measured if not _is_wsfast(r.contestant) and not r.floor]
    floors = [r for r in measured if r.floor]
    return min(peers, key=_p99, default=None), min(floors, key=_p99, default=None)


def _latency_ratio(result: Result, reference: Result | None) -> float | None:
    """``result``'s p99 over ``reference``'s: below 1 is better than it."""
    if result.p99_us is None or reference is None or not reference.p99_us:
        return None
    return result.p99_us / reference.p99_us


def latency_table(results: list[Result]) -> str:
    """The latency cases' medians as a text table, lowest p99 first (see the module doc)."""
    width = max([30, *(len(r.contestant) for r in results)])
    header = (
        f"{'case':<20} {'contestant':<{width}} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'max us':>9} "
        f"{'late':>6} {'vs best peer':>12} {'vs floor':>8} {'runs':>4}  note"
    )
    lines = [
        "tick latency: from the server's send to the client's code, in us (medians of the runs); late: over 1 ms;",
        "ranked by p99, lower is better; vs best peer, vs floor: p99 over the best peer's, the floor's (lower: better)",
        header,
        "-" * len(header),
    ]
    for name, in_case in _by_case(results).items():
        peer, floor = _latency_references(in_case)
        ranked = sorted(in_case, key=lambda r: (r.p99_us is None, r.p99_us or 0.0))
        for r in ranked:
            latency = r.median_latency_us
            if latency:
                delays = " ".join(f"{latency[key]:>9,.0f}" for key in _DELAYS)
                versus = [_latency_ratio(r, peer), _latency_ratio(r, floor)]
                best, under = (f"{ratio:.2f}x" if ratio else "-" for ratio in versus)
                note = _cpu_note(r)
                if r.median:
                    note = f"{note} {r.median:,.0f} msg/s"
                if r.errors:
                    note = f"{note} {len(r.errors)} failed run(s): {r.errors[-1]}"
                row = (
                    f"{name:<20} {r.contestant:<{width}} {delays} {r.median_late or 0:>6,.0f} "
                    f"{best:>12} {under:>8} {len(r.latency_us):>4}  {note.strip()}"
                )
            else:
                why = f"skipped: {r.skip}" if r.skip else f"failed: {r.errors[-1] if r.errors else 'no run'}"
                dashes = " ".join(f"{'-':>9}" for _ in _DELAYS)
                row = f"{name:<20} {r.contestant:<{width}} {dashes} {'-':>6} {'-':>12} {'-':>8} {0:>4}  {why}"
            lines.append(row.rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def as_json(results: list[Result], machine: dict[str, Any], command: list[str], started: float) -> dict[str, Any]:
    """Everything measured, with the machine and command, as a JSON-ready dict."""
    rows = []
    cases: dict[str, dict[str, Any]] = {}
    for name, in_case in _by_case(results).items():
        decoded = in_case[0].case.decoded
        latency = in_case[0].case.kind == "latency"
        best = _best_peer(in_case)
        floor = None if decoded else _floor(in_case)  # the decoded case has a floor per decoder
        cases[name] = {
            "best_peer_rate": best,
            "floor": floor[0] if floor else None,
            "floor_rate": floor[1] if floor else None,
        }
        if latency:  # measured against the lowest p99s: no rates
            peer, floor_result = _latency_references(in_case)
            cases[name] = {
                "rate": in_case[0].case.rate,
                "best_peer": peer.contestant if peer else None,
                "best_peer_p99_us": peer.p99_us if peer else None,
                "floor": floor_result.contestant if floor_result else None,
                "floor_p99_us": floor_result.p99_us if floor_result else None,
            }
        references = _references(in_case)
        decoded_references = _decoded_references(in_case) if decoded else {}
        combined = _wire_and_decoder(in_case) if decoded else {}
        if decoded:
            cases[name]["floor_rates"] = {r.contestant: r.median for r in in_case if r.floor}
        for r in in_case:
            best_rate, floor_rate = references[r.contestant]
            row = {
                "case": r.case.name,
                "kind": r.case.kind,
                "contestant": r.contestant,
                "floor": r.floor,
                "count": r.case.count or None,
                "size": r.case.size or None,
                "json": r.case.json,
                "tls": r.case.tls,
                "deflate": r.case.deflate,
                "uvicorn": r.case.uvicorn,
                "api": r.api or None,
                "unit": r.case.unit,
                "items_per_run": r.items,
                "bytes_per_run": r.nbytes,
                "seconds": r.seconds,
                "median_seconds": statistics.median(r.seconds) if r.seconds else None,
                "median_rate": r.median,
                "median_mb_per_s": r.median_mb,
                "vs_best_peer": r.median / best_rate if r.median and best_rate else None,
                "vs_floor": r.median / floor_rate if r.median and floor_rate else None,
                "latency_us": r.median_latency_us,  # each percentile's median over the runs
                "latency_us_per_run": r.latency_us or None,
                "connections": r.case.connections,
                "server_peak_rss_mb": max(r.server_rss_mb) if r.server_rss_mb else None,
                "skipped": r.skip or None,
                "errors": r.errors,
            }
            if r.case.kind in ("echo", "fanout") and not r.case.uvicorn:
                row["cpu_us_per_trip"] = r.median_cpu_us
                row["cpu_us_per_trip_per_run"] = r.cpu_us or None
            if latency:
                peer, floor_result = _latency_references(in_case)
                row.update(
                    {
                        "rate": r.case.rate,
                        "vs_best_peer": _latency_ratio(r, peer),  # p99 over the best peer's: lower is better
                        "vs_floor": _latency_ratio(r, floor_result),
                        "late": r.median_late,
                        "late_per_run": r.late or None,
                        "cpu_us_per_message": r.median_cpu_us,
                    }
                )
            if decoded:
                row.update(_decoded_row(r, decoded_references[r.contestant]))
                wire_and_decoder = combined.get(r.contestant)
                row["vs_wire_and_decoder"] = r.median / wire_and_decoder if r.median and wire_and_decoder else None
            rows.append(row)
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "command": command,
        "machine": machine,
        "cases": cases,
        "results": rows,
    }


def _color(result: Result) -> str:
    if result.floor:
        return "#1f77b4"
    return "#d62728" if _is_wsfast(result.contestant) else "#7f7f7f"


def chart(results: list[Result], path: str) -> str:
    """Draw one horizontal bar panel per case into ``path``; return what happened.

    wsfast is red, the peers grey, the floors blue.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install matplotlib)"
    cases = {name: [r for r in rs if r.median] for name, rs in _by_case(results).items()}
    cases = {name: rs for name, rs in cases.items() if rs}
    if not cases:
        return "chart skipped: nothing was measured"
    columns = 2 if len(cases) > 1 else 1
    rows = (len(cases) + columns - 1) // columns
    # Room for nine bars a panel, more when a case has more contestants.
    row_height = max(4.05, 0.3 * max(len(rs) for rs in cases.values()))
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, row_height * rows + 0.6), squeeze=False)
    for ax, (name, in_case) in zip(axes.flat, cases.items(), strict=False):
        if in_case[0].case.kind == "latency":  # the p99: lowest at the top, like the fastest
            ranked = sorted((r for r in in_case if r.p99_us is not None), key=_p99, reverse=True)
            values = [_p99(r) for r in ranked]
            title = f"{name} (us p99, median, lower is better)"
        else:
            ranked = sorted(in_case, key=_measured)
            values = [_measured(r) for r in ranked]
            title = f"{name} ({ranked[0].case.unit}, median, higher is better)"
        bars = ax.barh([r.contestant for r in ranked], values, color=[_color(r) for r in ranked])
        ax.bar_label(bars, labels=[_short(v) for v in values], padding=3, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlim(0, max(values) * 1.25)
    for ax in list(axes.flat)[len(cases) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"
