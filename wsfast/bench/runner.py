"""``python -m wsfast bench``: every contestant, every case, side by side in one run.

The runner starts the benchmark server in its own process, then runs each measurement
in a fresh worker process (bounded by ``--timeout``), interleaving contestants within
each repeat so that a noisy machine disturbs them alike. It prints a table of medians,
and writes JSON and a bar chart when asked.

For the TLS cases it makes a certificate authority for the run (with ``trustme``): the
server gets a certificate for ``localhost`` and ``127.0.0.1``, and every contestant
verifies it against the CA file that the worker spec names.

In the uvicorn cases the contestants are uvicorn's WebSocket implementations instead,
each serving the same ASGI app to the same client (see :mod:`wsfast.bench.asgi`).

The echo over many connections (``fanout``, :mod:`wsfast.bench.fanout`) measures round
trips a second like an echo; the tick-latency cases (``latency``,
:mod:`wsfast.bench.latency`) measure how late each tick of a fixed-rate feed reaches
the client's code, and are ranked by that rather than by a rate.
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
import tempfile
import time
from dataclasses import dataclass, field, replace
from http.client import HTTPConnection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import asgi, micro, report
from .ticks import px_total, ticks
from .worker import contestants

if TYPE_CHECKING:
    from collections.abc import Callable

CLIENTS = contestants()  # the clients' contestants and the recv_batch() ones


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``kind`` is feed, echo, fanout (an echo over many
    connections), latency (a fixed-rate feed whose ticks are timed) or codec."""

    name: str
    kind: str
    count: int = 0  # messages (feed, latency) or round trips (echo; fanout: of all connections)
    size: int = 0  # payload bytes (0 for the ticks feed, whose messages vary)
    unit: str = "msg/s"
    json: bool = False  # JSON text: the ticks feed, or a JSON echo payload
    tls: bool = False  # over wss://, the certificate verified against the run's CA
    deflate: bool = False  # permessage-deflate negotiated
    uvicorn: bool = False  # served by uvicorn: the contestants are its WebSocket implementations
    decoded: bool = False  # every tick decoded: the contestants of wsfast.bench.decoded
    connections: int = 1  # fanout: connections, each with one message in flight
    rate: int = 0  # latency: ticks a second

    @property
    def per_connection(self) -> int:
        """Round trips of each connection (fanout), messages or round trips otherwise."""
        return max(1, self.count // self.connections) if self.count else 0

    @property
    def items(self) -> int:
        """What one run covers: messages or round trips, of every connection."""
        return self.per_connection * self.connections

    @property
    def features(self) -> frozenset[str]:
        """What a contestant may need of a case (see ``Contestant.needs``)."""
        return frozenset(name for name in ("json", "tls", "deflate", "decoded") if getattr(self, name))


CASES = (
    Case("feed-100", "feed", 1_000_000, 100),
    Case("feed-64k", "feed", 10_000, 65536),
    Case("tls-json", "feed", 200_000, json=True, tls=True),
    Case("tls-json-deflate", "feed", 200_000, json=True, tls=True, deflate=True),
    Case("tls-json-decoded", "feed", 200_000, json=True, tls=True, decoded=True),
    Case("echo-256", "echo", 20_000, 256, "req/s"),
    Case("echo-256-tls", "echo", 20_000, 256, "req/s", tls=True),
    Case("echo-256-100", "fanout", 50_000, 256, "req/s", connections=100),
    Case("echo-64k", "echo", 5_000, 65536, "req/s"),
    Case("echo-256-deflate", "echo", 20_000, 256, "req/s", json=True, deflate=True),
    Case("tick-latency-10k", "latency", 40_000, 100, "us p99", rate=10_000),
    Case("tick-latency-100k", "latency", 400_000, 100, "us p99", rate=100_000),
    # 2 seconds: a client that does not keep up falls behind by a million ticks a second.
    Case("tick-latency-1m", "latency", 2_000_000, 100, "us p99", rate=1_000_000),
    Case("uvicorn-feed-100", "feed", 200_000, 100, uvicorn=True),
    Case("uvicorn-echo-256", "echo", 20_000, 256, "req/s", uvicorn=True),
    Case("mask-16", "codec", unit="calls/s"),
    Case("mask-1k", "codec", unit="calls/s"),
    Case("mask-1m", "codec", unit="calls/s"),
    Case("parse-100", "codec", unit="frames/s"),
    Case("receive-100", "codec", unit="msg/s"),
    Case("receive-json-deflate", "codec", unit="msg/s"),
)
CASE_NAMES = tuple(case.name for case in CASES)
QUICK_CASES = ("feed-100", "echo-256", "mask-1k", "parse-100", "receive-100")
NO_DEFLATE = "cannot negotiate permessage-deflate"


@dataclass
class Result:
    """The runs of one contestant in one case."""

    case: Case
    contestant: str
    seconds: list[float] = field(default_factory=list)  # per run: the whole feed / all trips / one call
    items: int = 0  # what one run's seconds covers: messages, round trips or codec items
    nbytes: int = 0  # payload bytes one run's seconds covers
    api: str = ""
    skip: str = ""
    errors: list[str] = field(default_factory=list)
    floor: bool = False  # a limit to measure the others against, not a peer
    latency_us: list[dict[str, float]] = field(default_factory=list)  # per run: p50, p99, p99.9 (latency: max)
    cpu_us: list[float] = field(default_factory=list)  # per run: the client's CPU per round trip or tick
    late: list[int] = field(default_factory=list)  # per latency run: ticks later than 1 ms
    server_rss_mb: list[float] = field(default_factory=list)  # per uvicorn run: the server's peak memory

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

    @property
    def median_latency_us(self) -> dict[str, float] | None:
        """Each round-trip percentile's median over the runs (None without percentiles)."""
        if not self.latency_us:
            return None
        return {key: statistics.median(run[key] for run in self.latency_us) for key in self.latency_us[0]}

    @property
    def median_cpu_us(self) -> float | None:
        """The client's CPU microseconds per round trip (or tick), median over the runs."""
        return statistics.median(self.cpu_us) if self.cpu_us else None

    @property
    def median_late(self) -> float | None:
        """The ticks later than 1 ms, median over the runs."""
        return statistics.median(self.late) if self.late else None

    @property
    def p99_us(self) -> float | None:
        """A latency case's measure: the median over the runs of each run's 99th percentile
        (lower is better); None without one."""
        latency = self.median_latency_us
        return latency["p99"] if latency else None


def _contestants(case: Case, chosen: list[str] | None) -> list[str]:
    if case.kind == "codec":
        names = [name for name, (_, supported) in micro.MAKERS.items() if case.name in supported]
    elif case.uvicorn:
        names = list(asgi.IMPLEMENTATIONS)
    else:
        names = [
            name
            for name, contestant in CLIENTS.items()
            if getattr(contestant, case.kind)
            and contestant.needs <= case.features
            and not contestant.avoids & case.features
        ]
    if chosen:
        names = [n for n in names if any(n == c or n.startswith(c + "-") for c in chosen)]
    return names


def _new_result(case: Case, name: str) -> Result:
    if case.kind == "codec":
        return Result(case, name, floor=name in micro.FLOORS)
    if case.uvicorn:
        return Result(case, name)
    contestant = CLIENTS[name]
    skip = NO_DEFLATE if case.deflate and not contestant.deflate else ""
    return Result(case, name, skip=skip, floor=contestant.floor)


def _worker_env(contestant: str) -> dict[str, str]:
    env = dict(os.environ)
    # The worker imports this very wsfast, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    if contestant.startswith("wsfast-python"):
        env["WSFAST_NO_EXTENSIONS"] = "1"
    else:
        env.pop("WSFAST_NO_EXTENSIONS", None)
    return env


def run_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run the measurement ``spec`` in a fresh worker process; its result dict."""
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
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": tail[0]}
    outcome: dict[str, Any] = json.loads(lines[-1])
    return outcome


class Server:
    """The benchmark server process; it exits when this runner closes its standard input.

    Given ``tls`` (the paths of a PEM certificate chain and its key), it serves TLS too,
    on :attr:`tls_port`.
    """

    def __init__(self, idle: float, tls: tuple[str, str] | None = None) -> None:
        tls_options = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wsfast.bench.server",
                "--idle",
                str(idle),
                "--stdin-lifeline",
                *tls_options,
            ],
            env=_worker_env("server"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        stdout = self.process.stdout
        assert stdout is not None  # a pipe
        ready, _, _ = select.select([stdout], [], [], 15)
        ports = (stdout.readline() if ready else b"").split()
        if len(ports) != (2 if tls else 1) or not all(port.isdigit() for port in ports):
            self.close()
            raise RuntimeError("the benchmark server did not start")
        self.port = int(ports[0])
        self.tls_port = int(ports[1]) if tls else None

    def prepare(self, path: str, timeout: float) -> None:
        """Have the server build the feed at ``path`` now, before any client waits for it."""
        connection = HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", f"/prepare/{path}")
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"the server could not prepare {path}: {response.status}")

    def close(self) -> None:
        assert self.process.stdin is not None  # a pipe
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _tls_files(directory: str) -> dict[str, str] | None:
    """A CA for this run and the server certificate it issued, as PEM files in ``directory``.

    Returns their paths (``cert``, ``key``, ``ca``), or None when trustme is not installed.
    """
    try:
        import trustme
    except ImportError:
        return None
    authority = trustme.CA()
    issued = authority.issue_cert("localhost", "127.0.0.1")
    files = {name: os.path.join(directory, f"{name}.pem") for name in ("cert", "key", "ca")}
    for index, pem in enumerate(issued.cert_chain_pems):
        pem.write_to_path(files["cert"], append=index > 0)
    issued.private_key_pem.write_to_path(files["key"])
    authority.cert_pem.write_to_path(files["ca"])
    return files


def _path(case: Case) -> str:
    """The server path of a network case (see wsfast.bench.server)."""
    if case.kind == "echo":
        return "echo-deflate" if case.deflate else "echo"
    if case.kind == "fanout":
        return f"echo-group/{case.connections}"
    if case.kind == "latency":
        return f"ticks-at/{case.rate}/{case.count}/{case.size}"
    if case.json:
        return f"ticks-deflate/{case.count}" if case.deflate else f"ticks/{case.count}"
    return f"feed/{case.count}/{case.size}"


def _spec(case: Case, server: Server | None, cafile: str | None) -> dict[str, Any]:
    """The worker spec of a network case, without the contestant.

    A uvicorn case names only the path: the worker starts the server it is sent to.
    """
    if case.uvicorn:
        url = None
    elif case.tls:
        assert server is not None  # every case but a uvicorn one has the server
        url = f"wss://localhost:{server.tls_port}/{_path(case)}"
    else:
        assert server is not None
        url = f"ws://127.0.0.1:{server.port}/{_path(case)}"
    spec: dict[str, Any] = {
        "kind": case.kind,
        "url": url,
        "count": case.per_connection,
        "connections": case.connections,
        "size": case.size,
        "json": case.json,
        "deflate": case.deflate,
        "cafile": cafile if case.tls else None,
        "uvicorn": case.uvicorn,
        "path": _path(case),
    }
    if case.kind == "feed":
        spec["total"] = sum(map(len, ticks(case.count))) if case.json else case.count * case.size
    if case.decoded:
        spec["px_total"] = px_total(case.count)
    return spec


def run(
    cases: list[Case],
    chosen: list[str] | None,
    repeats: int,
    timeout: float,
    min_time: float,
    log: Callable[[str], object] = print,
) -> list[Result]:
    """Measure every chosen contestant in every case; return the results in table order."""
    results = [_new_result(case, name) for case in cases for name in _contestants(case, chosen)]
    network = [case for case in cases if case.kind != "codec"]
    with tempfile.TemporaryDirectory(prefix="wsfast-bench-") as directory:
        tls = _tls_files(directory) if any(case.tls for case in network) else None
        if tls is None:
            for result in results:
                if result.case.tls:
                    result.skip = "trustme: not installed, TLS cases need it (pip install 'wsfast[bench]')"
        server = None
        if any(not case.uvicorn for case in network):
            server = Server(idle=timeout + 60, tls=(tls["cert"], tls["key"]) if tls else None)
        try:
            for case in network:
                in_case = [r for r in results if r.case is case]
                _run_network(case, in_case, server, tls["ca"] if tls else None, repeats, timeout, log)
        finally:
            if server is not None:
                server.close()
    _run_codec([r for r in results if r.case.kind == "codec"], repeats, timeout, min_time, log)
    return results


def _run_network(
    case: Case,
    in_case: list[Result],
    server: Server | None,
    cafile: str | None,
    repeats: int,
    timeout: float,
    log: Callable[[str], object],
) -> None:
    """One network case: every contestant, ``repeats`` times, in a rotating order."""
    log(f"{case.name}: {', '.join(r.contestant for r in in_case)}")
    if all(r.skip for r in in_case):
        return
    spec = _spec(case, server, cafile)
    if case.kind == "feed" and server is not None:  # a uvicorn case has no server of ours
        server.prepare(_path(case), timeout)
    for result in in_case:
        result.items = case.items
        if case.kind == "feed":
            result.nbytes = spec["total"]
        else:  # an echo's payloads go both ways; a tick's one way
            result.nbytes = case.items * case.size * (1 if case.kind == "latency" else 2)
    for repeat in range(repeats):
        # Each repeat starts one contestant further on, so that none always runs
        # first (or right after the same neighbour) while the machine drifts.
        shift = repeat % len(in_case)
        for result in in_case[shift:] + in_case[:shift]:
            if not result.skip:
                outcome = run_worker({**spec, "contestant": result.contestant}, timeout)
                _record(result, outcome)
                log(f"  run {repeat + 1}/{repeats} {result.contestant}: {_describe(result, outcome)}")


def _run_codec(
    results: list[Result], repeats: int, timeout: float, min_time: float, log: Callable[[str], object]
) -> None:
    """Codec cases: one worker per contestant and repeat runs all its cases."""
    names = list(dict.fromkeys(r.contestant for r in results))
    if names:
        log(f"codec: {', '.join(names)}")
    for repeat in range(repeats):
        for name in names:
            todo = {r.case.name: r for r in results if r.contestant == name and not r.skip}
            if not todo:
                continue
            spec: dict[str, Any] = {
                "contestant": name,
                "kind": "codec",
                "cases": list(todo),
                "min_time": min_time,
            }
            outcome = run_worker(spec, timeout)
            for case, result in todo.items():
                own = outcome["cases"][case] if "cases" in outcome else outcome
                _record(result, own)
                log(f"  run {repeat + 1}/{repeats} {name} {case}: {_describe(result, own)}")


def _record(result: Result, outcome: dict[str, Any]) -> None:
    if "skip" in outcome and result.seconds:  # it ran before: now it is a failure
        result.errors.append(f"became unavailable: {outcome['skip']}")
    elif "skip" in outcome:
        result.skip = outcome["skip"]  # not installed here: later repeats are left out
    elif "error" in outcome:
        result.errors.append(outcome["error"])
    else:
        result.seconds.append(outcome["seconds"])
        if "latency_us" in outcome:
            result.latency_us.append(outcome["latency_us"])
        if "cpu_us" in outcome:
            result.cpu_us.append(outcome["cpu_us"])
        if "late" in outcome:
            result.late.append(outcome["late"])
        if "server_rss_mb" in outcome:
            result.server_rss_mb.append(outcome["server_rss_mb"])
        if result.case.kind == "codec":
            result.items, result.nbytes, result.api = (
                outcome["items"],
                outcome["bytes"],
                outcome["api"],
            )


def _describe(result: Result, outcome: dict[str, Any]) -> str:
    if "skip" in outcome:
        return f"skipped ({outcome['skip']})"
    if "error" in outcome:
        return f"failed ({outcome['error']})"
    latency = outcome.get("latency_us")
    cpu = f", client CPU {outcome['cpu_us']:.1f} us per {_item(result.case)}" if "cpu_us" in outcome else ""
    memory = f", server peak {outcome['server_rss_mb']:.0f} MB" if "server_rss_mb" in outcome else ""
    rate = f"{result.items / outcome['seconds']:,.0f}"
    if result.case.kind == "latency":
        assert latency is not None  # a latency run has its percentiles (numpy)
        delays = "/".join(f"{latency[key]:,.0f}" for key in ("p50", "p99", "p99.9", "max"))
        return f"p50/p99/p99.9/max {delays} us, {outcome['late']} late, {rate} msg/s{cpu}"
    percentiles = f" (p50 {latency['p50']:.0f} us, p99 {latency['p99']:.0f} us)" if latency else ""
    return f"{rate} {result.case.unit}{percentiles}{cpu}{memory}"


def _item(case: Case) -> str:
    return "tick" if case.kind == "latency" else "round trip"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout keeps only the table


def _machine() -> dict[str, Any]:
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
    parser.add_argument("--png", metavar="PATH", help="draw a bar chart (needs matplotlib)")
    parser.add_argument("--list", action="store_true", help="list cases and contestants, then exit")
    parser.add_argument(
        "--threads",
        nargs="?",
        const="1,2,4",
        metavar="N,N,...",
        help="instead of the cases: the thread-scaling benchmark (threads-feed-100), one feed "
        "of 100-byte messages per thread (1,000,000 each, times --scale) for each thread count "
        "(default 1,2,4); meant for a free-threaded interpreter",
    )
    args = parser.parse_args(argv)

    if args.list:
        for case in CASES:
            print(f"{case.name:20} {', '.join(_contestants(case, None))}")
        return 0
    scale, repeats, min_time = args.scale, args.repeats, 0.2
    if args.quick:
        scale, repeats, min_time = min(scale, 0.1), min(repeats, 3), 0.05
    if args.threads:
        return _thread_scaling(args, scale, repeats, sys.argv if argv is None else ["bench", *argv], parser)
    default_cases = QUICK_CASES if args.quick else CASE_NAMES
    wanted = [name.strip() for name in (args.cases or ",".join(default_cases)).split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(CASE_NAMES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    cases = [replace(c, count=max(1, round(c.count * scale)) if c.count else 0) for c in CASES if c.name in wanted]
    chosen = [name.strip() for name in args.contestants.split(",") if name.strip()] or None

    # The load is sampled before this run's own processes add to it.
    started, machine = time.time(), _machine()
    results = run(cases, chosen, max(1, repeats), args.timeout, min_time, _progress)
    print(report.table(results))
    if args.json:
        document = report.as_json(results, machine, sys.argv if argv is None else ["bench", *argv], started)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.png:
        print(report.chart(results, args.png))
    return 0


def _thread_scaling(
    args: argparse.Namespace, scale: float, repeats: int, command: list[str], parser: argparse.ArgumentParser
) -> int:
    """``--threads``: run wsfast.bench.threads, with the compiled twin unless
    ``--contestants wsfast-python`` asks for the pure one."""
    from . import threads

    try:
        counts = [int(n) for n in args.threads.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        parser.error("--threads takes thread counts, such as 1,2,4")
    contestant = "wsfast-python" if args.contestants.strip() == "wsfast-python" else "wsfast-c"
    count = max(1, round(threads.COUNT * scale))
    started, machine = time.time(), _machine()
    rows = threads.run(count, counts, max(1, repeats), args.timeout, contestant, _progress)
    print(threads.table(rows, count))
    if args.json:
        document = {
            "machine": machine,
            "command": command,
            "started": started,
            "case": f"threads-feed-{threads.SIZE}",
            "contestant": contestant,
            "count": count,
            "results": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
