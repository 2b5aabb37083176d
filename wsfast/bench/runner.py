"""``python -m wsfast bench``: every contestant, every case, side by side in one run.

The runner starts the benchmark server in its own process, then runs each measurement
in a fresh worker process (bounded by ``--timeout``), interleaving contestants within
each repeat so that a noisy machine disturbs them alike. It prints a table of medians,
and writes JSON and a bar chart when asked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import micro, report
from .clients import CLIENTS


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``kind`` is feed, echo or codec."""

    name: str
    kind: str
    count: int = 0  # messages (feed) or round trips (echo)
    size: int = 0  # payload bytes
    unit: str = "msg/s"


CASES = (
    Case("feed-100", "feed", 1_000_000, 100),
    Case("feed-64k", "feed", 10_000, 65536),
    Case("echo-256", "echo", 20_000, 256, "req/s"),
    Case("echo-64k", "echo", 5_000, 65536, "req/s"),
    Case("mask-16", "codec", unit="calls/s"),
    Case("mask-1k", "codec", unit="calls/s"),
    Case("mask-1m", "codec", unit="calls/s"),
    Case("parse-100", "codec", unit="frames/s"),
    Case("receive-100", "codec", unit="msg/s"),
)
CASE_NAMES = tuple(case.name for case in CASES)
QUICK_CASES = ("feed-100", "echo-256", "mask-1k", "parse-100", "receive-100")


@dataclass
class Result:
    """The runs of one contestant in one case."""

    case: Case
    contestant: str
    seconds: list[float] = field(
        default_factory=list
    )  # per run: the whole feed / all trips / one call
    items: int = (
        0  # what one run's seconds covers: messages, round trips or codec items
    )
    nbytes: int = 0  # payload bytes one run's seconds covers
    api: str = ""
    skip: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        """Median items per second over the runs (None without a successful run)."""
        if not self.seconds:
            return None
        return self.items / statistics.median(self.seconds)

    @property
    def median_mb(self) -> float | None:
        """Median payload megabytes (10**6) per second."""
        if not self.seconds:
            return None
        return self.nbytes / statistics.median(self.seconds) / 1e6


def _contestants(case: Case, chosen: list[str] | None) -> list[str]:
    if case.kind == "codec":
        names = [
            name
            for name, (_, supported) in micro.MAKERS.items()
            if case.name in supported
        ]
    else:
        names = [
            name
            for name, (feed, echo) in CLIENTS.items()
            if (feed if case.kind == "feed" else echo)
        ]
    if chosen:
        names = [
            n for n in names if any(n == c or n.startswith(c + "-") for c in chosen)
        ]
    return names


def _worker_env(contestant: str) -> dict:
    env = dict(os.environ)
    # The worker imports this very wsfast, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [package_root, env.get("PYTHONPATH")])
    )
    if contestant.startswith("wsfast-python"):
        env["WSFAST_NO_EXTENSIONS"] = "1"
    else:
        env.pop("WSFAST_NO_EXTENSIONS", None)
    return env


def _run_worker(spec: dict, timeout: float) -> dict:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wsfast.bench.worker", json.dumps(spec)],
            env=_worker_env(spec["contestant"]),
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [
            f"exit status {done.returncode}"
        ]
        return {"error": tail[0]}
    return json.loads(lines[-1])


class Server:
    """The benchmark server process; it exits when this runner closes its standard input."""

    def __init__(self, idle: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wsfast.bench.server",
                "--idle",
                str(idle),
                "--stdin-lifeline",
            ],
            env=_worker_env("server"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], 15)
        line = self.process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError("the benchmark server did not start")
        self.port = int(line)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run(
    cases: list[Case],
    chosen: list[str] | None,
    repeats: int,
    timeout: float,
    min_time: float,
    log=print,
) -> list[Result]:
    """Measure every chosen contestant in every case; return the results in table order."""
    results = [
        Result(case, name) for case in cases for name in _contestants(case, chosen)
    ]
    network = [case for case in cases if case.kind != "codec"]
    server = Server(idle=timeout + 60) if network else None
    try:
        for case in network:
            in_case = [r for r in results if r.case is case]
            log(f"{case.name}: {', '.join(r.contestant for r in in_case)}")
            path = "echo" if case.kind == "echo" else f"feed/{case.count}/{case.size}"
            spec = {
                "kind": case.kind,
                "url": f"ws://127.0.0.1:{server.port}/{path}",
                "count": case.count,
                "size": case.size,
            }
            for repeat in range(repeats):
                # Each repeat starts one contestant further on, so that none always runs
                # first (or right after the same neighbour) while the machine drifts.
                shift = repeat % len(in_case)
                for result in in_case[shift:] + in_case[:shift]:
                    if not result.skip:
                        outcome = _run_worker(
                            {**spec, "contestant": result.contestant}, timeout
                        )
                        _record(result, outcome)
                        log(
                            f"  run {repeat + 1}/{repeats} {result.contestant}: {_describe(result, outcome)}"
                        )
    finally:
        if server is not None:
            server.close()
    _run_codec(
        [r for r in results if r.case.kind == "codec"], repeats, timeout, min_time, log
    )
    return results


def _run_codec(
    results: list[Result], repeats: int, timeout: float, min_time: float, log
) -> None:
    """Codec cases: one worker per contestant and repeat runs all its cases."""
    names = list(dict.fromkeys(r.contestant for r in results))
    if names:
        log(f"codec: {', '.join(names)}")
    for repeat in range(repeats):
        for name in names:
            todo = {
                r.case.name: r for r in results if r.contestant == name and not r.skip
            }
            if not todo:
                continue
            spec = {
                "contestant": name,
                "kind": "codec",
                "cases": list(todo),
                "min_time": min_time,
            }
            outcome = _run_worker(spec, timeout)
            for case, result in todo.items():
                own = outcome["cases"][case] if "cases" in outcome else outcome
                _record(result, own)
                log(
                    f"  run {repeat + 1}/{repeats} {name} {case}: {_describe(result, own)}"
                )


def _record(result: Result, outcome: dict) -> None:
    if "skip" in outcome and result.seconds:  # it ran before: now it is a failure
        result.errors.append(f"became unavailable: {outcome['skip']}")
    elif "skip" in outcome:
        result.skip = outcome["skip"]  # not installed here: later repeats are left out
    elif "error" in outcome:
        result.errors.append(outcome["error"])
    elif result.case.kind == "codec":
        result.seconds.append(outcome["seconds"])
        result.items, result.nbytes, result.api = (
            outcome["items"],
            outcome["bytes"],
            outcome["api"],
        )
    else:
        result.seconds.append(outcome["seconds"])
        result.items = result.case.count
        result.nbytes = (
            result.case.count
            * result.case.size
            * (2 if result.case.kind == "echo" else 1)
        )


def _describe(result: Result, outcome: dict) -> str:
    if "skip" in outcome:
        return f"skipped ({outcome['skip']})"
    if "error" in outcome:
        return f"failed ({outcome['error']})"
    return f"{result.items / outcome['seconds']:,.0f} {result.case.unit}"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout keeps only the table


def _machine() -> dict:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        # Other work on the machine skews results: the load says how busy it was.
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "processor": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``python -m wsfast bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m wsfast bench",
        description="Benchmark wsfast against the other Python WebSocket clients, side by side.",
    )
    parser.add_argument(
        "--cases",
        help=f"comma-separated, from: {', '.join(CASE_NAMES)}; default: all ({', '.join(QUICK_CASES)} with --quick)",
    )
    parser.add_argument(
        "--contestants",
        default="",
        help="comma-separated names or prefixes (e.g. wsfast,picows); default: all",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="runs per contestant and case (median reported)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply message and round-trip counts",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a run of under a minute: --scale 0.1 --repeats 3, the headline cases",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds allowed to one measurement",
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument(
        "--png", metavar="PATH", help="draw a bar chart (needs matplotlib)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list cases and contestants, then exit"
    )
    args = parser.parse_args(argv)

    if args.list:
        for case in CASES:
            print(f"{case.name:12} {', '.join(_contestants(case, None))}")
        return 0
    scale, repeats, min_time = args.scale, args.repeats, 0.2
    if args.quick:
        scale, repeats, min_time = min(scale, 0.1), min(repeats, 3), 0.05
    default_cases = QUICK_CASES if args.quick else CASE_NAMES
    wanted = [
        name.strip()
        for name in (args.cases or ",".join(default_cases)).split(",")
        if name.strip()
    ]
    unknown = sorted(set(wanted) - set(CASE_NAMES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    cases = [
        Case(
            c.name,
            c.kind,
            max(1, round(c.count * scale)) if c.count else 0,
            c.size,
            c.unit,
        )
        for c in CASES
        if c.name in wanted
    ]
    chosen = [
        name.strip() for name in args.contestants.split(",") if name.strip()
    ] or None

    # The load is sampled before this run's own processes add to it.
    started, machine = time.time(), _machine()
    results = run(cases, chosen, max(1, repeats), args.timeout, min_time, _progress)
    print(report.table(results))
    if args.json:
        document = report.as_json(
            results, machine, sys.argv if argv is None else ["bench", *argv], started
        )
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.png:
        print(report.chart(results, args.png))
    return 0
