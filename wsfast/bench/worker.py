"""Runs one measurement in a fresh process and prints its result as one JSON line.

The runner starts ``python -m wsfast.bench.worker '<json spec>'`` for every contestant and
repeat, so each library runs alone in its process, with its own environment (wsfast's
pure twin gets ``WSFAST_NO_EXTENSIONS=1``). The line is ``{"seconds": ...}`` (plus the
codec call's details for micro-benchmarks), ``{"skip": reason}`` when the contestant is
not available here, or ``{"error": reason}``.
"""

from __future__ import annotations

import json
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

    def network() -> dict:
        from .clients import CLIENTS

        feed, echo = CLIENTS[contestant]
        client = feed if spec["kind"] == "feed" else echo
        return {"seconds": client(spec["url"], spec["count"], spec["size"])}

    return _guarded(network)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(measure(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
