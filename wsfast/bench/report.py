"""Presents benchmark results: a text table, a JSON document and a bar chart."""

from __future__ import annotations

import statistics
import time


def _short(value: float) -> str:
    """1234567 -> '1.23M': bar labels stay readable."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def _is_wsfast(name: str) -> bool:
    return name.startswith("wsfast")


def _best_peer(results: list) -> float | None:
    rates = [r.median for r in results if not _is_wsfast(r.contestant) and r.median]
    return max(rates) if rates else None


def _by_case(results: list) -> dict:
    cases: dict = {}
    for result in results:
        cases.setdefault(result.case.name, []).append(result)
    return cases


def table(results: list) -> str:
    """The medians as a text table, fastest first within each case.

    "vs best peer" divides by the fastest contestant that is not wsfast, in the same run.
    """
    lines = []
    header = f"{'case':<12} {'contestant':<20} {'median':>14} {'unit':<9} {'MB/s':>9} {'vs best peer':>12} {'runs':>4}  note"
    lines += [header, "-" * len(header)]
    for name, in_case in _by_case(results).items():
        best = _best_peer(in_case)
        ranked = sorted(in_case, key=lambda r: r.median or -1, reverse=True)
        for r in ranked:
            if r.median:
                ratio = f"{r.median / best:.2f}x" if best else "-"
                note = r.api if r.case.kind == "codec" else ""
                if r.errors:
                    note = (
                        f"{note} {len(r.errors)} failed run(s): {r.errors[-1]}".strip()
                    )
                row = f"{name:<12} {r.contestant:<20} {r.median:>14,.0f} {r.case.unit:<9} {r.median_mb:>9,.1f} {ratio:>12} {len(r.seconds):>4}  {note}"
            else:
                why = (
                    f"skipped: {r.skip}"
                    if r.skip
                    else f"failed: {r.errors[-1] if r.errors else 'no run'}"
                )
                row = f"{name:<12} {r.contestant:<20} {'-':>14} {r.case.unit:<9} {'-':>9} {'-':>12} {0:>4}  {why}"
            lines.append(row.rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def as_json(results: list, machine: dict, command: list[str], started: float) -> dict:
    """Everything measured, with the machine and command, as a JSON-ready dict."""
    rows = []
    for r in results:
        rows.append(
            {
                "case": r.case.name,
                "kind": r.case.kind,
                "contestant": r.contestant,
                "count": r.case.count or None,
                "size": r.case.size or None,
                "api": r.api or None,
                "unit": r.case.unit,
                "items_per_run": r.items,
                "bytes_per_run": r.nbytes,
                "seconds": r.seconds,
                "median_seconds": statistics.median(r.seconds) if r.seconds else None,
                "median_rate": r.median,
                "median_mb_per_s": r.median_mb,
                "skipped": r.skip or None,
                "errors": r.errors,
            }
        )
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "command": command,
        "machine": machine,
        "results": rows,
    }


def chart(results: list, path: str) -> str:
    """Draw one horizontal bar panel per case into ``path``; return what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install matplotlib)"
    cases = {
        name: [r for r in rs if r.median] for name, rs in _by_case(results).items()
    }
    cases = {name: rs for name, rs in cases.items() if rs}
    if not cases:
        return "chart skipped: nothing was measured"
    columns = 2 if len(cases) > 1 else 1
    rows = (len(cases) + columns - 1) // columns
    fig, axes = plt.subplots(
        rows, columns, figsize=(7 * columns, 0.45 * 9 * rows + 0.6), squeeze=False
    )
    for ax, (name, in_case) in zip(axes.flat, cases.items()):
        ranked = sorted(in_case, key=lambda r: r.median)
        labels = [r.contestant for r in ranked]
        values = [r.median for r in ranked]
        colors = ["#d62728" if _is_wsfast(label) else "#7f7f7f" for label in labels]
        bars = ax.barh(labels, values, color=colors)
        ax.bar_label(bars, labels=[_short(v) for v in values], padding=3, fontsize=8)
        ax.set_title(
            f"{name} ({ranked[0].case.unit}, median, higher is better)", fontsize=10
        )
        ax.tick_params(axis="y", labelsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlim(0, max(values) * 1.25)
    for ax in list(axes.flat)[len(cases) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"
