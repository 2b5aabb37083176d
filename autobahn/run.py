"""Run the Autobahn conformance cases against the wsfast clients, both codec twins.

    python autobahn/run.py [--cases '1.*' ...] [--exclude '9.*' ...] [--deflate]
                           [--client blocking|asyncio ...] [--outdir DIR] [--require-compiled]

Every pairing of a client (the blocking ``wsfast.client``, driven by
``autobahn/echo_client.py``, and ``wsfast.asyncio``, driven by
``autobahn/echo_client_asyncio.py``) with a codec twin is one agent, e.g.
``wsfast-asyncio-c``. Each agent gets its own kosoku fuzzing server and its own
echo client process, and all of them run side by side. Afterwards the JSON
reports are summarised per agent, for groups 1-10 and for the deflate groups
apart. Exit status 1 when a case is anything but OK, NON-STRICT or
INFORMATIONAL, when cases are missing, or when a client hung, crashed or raised
anything but ConnectionClosed; 0 otherwise.

The permessage-deflate groups 12 and 13 are skipped unless ``--deflate`` is given
or ``--cases`` names them. Each of their cases echoes 1000 messages, ~10 GB per
agent in all, so ``--deflate`` runs the half with messages of at most 16 KiB: every
data set and every negotiated parameter set, whole and fragmented. Name them in
``--cases`` (``--cases '12.*' --cases '13.*'``) to run them all.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

# client -> (agent name prefix, echo client script)
CLIENTS = {
    "blocking": ("wsfast", HERE / "echo_client.py"),
    "asyncio": ("wsfast-asyncio", HERE / "echo_client_asyncio.py"),
}

TWINS = {"python": {"WSFAST_NO_EXTENSIONS": "1"}, "c": {}}
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
PARTS = {"groups 1-10": range(1, 11), "groups 12-13": range(12, 14)}
DEFLATE_GROUPS = ["12.*", "13.*"]
# Cases 8-10 and 13-18 of every deflate subgroup echo messages of 32-128 KiB.
DEFLATE_BIG_CASES = [f"{group}.*.{case}" for group in (12, 13) for case in (8, 9, 10, 13, 14, 15, 16, 17, 18)]
REPORT_GRACE = 60.0  # seconds for kosoku to write its reports after /updateReports


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", action="append", metavar="GLOB",
                        help="case id or glob to run, e.g. 1.* or 9.7.1 (repeatable; default: all)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="case id or glob to skip (repeatable)")
    parser.add_argument("--deflate", action="store_true",
                        help="also run the permessage-deflate groups 12 and 13, "
                             "their cases with messages of at most 16 KiB")
    parser.add_argument("--client", action="append", choices=list(CLIENTS), dest="clients",
                        help="client to test (repeatable; default: all)")
    parser.add_argument("--outdir", type=Path, default=ROOT / "reports" / "autobahn",
                        help="where kosoku writes its reports (default: reports/autobahn)")
    parser.add_argument("--require-compiled", action="store_true",
                        help="fail instead of skipping when the compiled twin is not built")
    parser.add_argument("--case-timeout", type=float, default=20.0, metavar="SECONDS",
                        help="abandon a case that runs longer (default: 20)")
    parser.add_argument("--run-timeout", type=float, default=600.0, metavar="SECONDS",
                        help="kill the whole run after this long (default: 600)")
    return parser.parse_args()


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child: this checkout first on the path, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "WSFAST_NO_EXTENSIONS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def twin_available(impl: str) -> bool:
    """Whether ``wsfast`` picks the ``impl`` codec in a child with that twin's environment."""
    probe = subprocess.run(
        [sys.executable, "-c", "import wsfast; print(wsfast.IMPLEMENTATION)"],
        env=child_env(TWINS[impl]), capture_output=True, text=True, timeout=60,
    )
    return probe.returncode == 0 and probe.stdout.strip() == impl


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kosoku_command() -> list[str]:
    exe = shutil.which("kosoku") or shutil.which("kosoku", path=str(Path(sys.executable).parent))
    if exe is None:
        sys.exit("kosoku is not installed: pip install kosoku")
    return [exe]


def wait_listening(port: int, server: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"kosoku exited with status {server.returncode} before listening:")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"kosoku did not listen on port {port} within {timeout:g}s")


class AgentRun:
    """One client with one codec twin: its fuzzing server, its echo client, and their outcome."""

    def __init__(self, client: str, impl: str, outdir: Path):
        prefix, self.echo_client = CLIENTS[client]
        self.agent = f"{prefix}-{impl}"
        self.impl = impl
        self.outdir = outdir / self.agent
        self.problems: list[str] = []
        self.case_count: int | None = None
        self.started = time.monotonic()
        self.elapsed = 0.0
        shutil.rmtree(self.outdir, ignore_errors=True)
        self.outdir.mkdir(parents=True)
        self.server_log = open(self.outdir / "kosoku.log", "w")
        self.client_log = open(self.outdir / "client.log", "w")
        self.server: subprocess.Popen | None = None
        self.client: subprocess.Popen | None = None

    def start(self, args: argparse.Namespace, include: list[str], exclude: list[str]) -> None:
        selection = [arg for glob in include for arg in ("-i", glob)]
        selection += [arg for glob in exclude for arg in ("-x", glob)]
        self.port = free_port()
        self.server = subprocess.Popen(
            kosoku_command() + ["-m", "fuzzingserver", f"127.0.0.1:{self.port}",
                                "-o", str(self.outdir), *selection],
            stdout=self.server_log, stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(self.port, self.server)
        except RuntimeError as exc:
            last_line = (self.outdir / "kosoku.log").read_text().strip().splitlines()[-1:]
            raise RuntimeError(" ".join([str(exc), *last_line])) from None
        self.client = subprocess.Popen(
            [sys.executable, str(self.echo_client), f"ws://127.0.0.1:{self.port}", self.agent,
             "--case-timeout", str(args.case_timeout)],
            env=child_env(TWINS[self.impl]), stdout=self.client_log, stderr=subprocess.STDOUT,
        )
        self.client_done = time.monotonic()

    def running(self, now: float) -> bool:
        """Poll; once the client is done, kosoku gets ``REPORT_GRACE`` seconds to write."""
        if self.client.poll() is None:
            self.client_done = now
            return True
        if self.server.poll() is None and now - self.client_done < REPORT_GRACE:
            return True
        if not self.elapsed:
            self.elapsed = now - self.started
        return False

    def stop(self) -> None:
        """Kill what is still running, then collect the client's log."""
        self.elapsed = self.elapsed or time.monotonic() - self.started
        for process, what in ((self.client, "echo client"), (self.server, "kosoku")):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
                self.problems.append(f"{what} killed: it did not finish in time")
        self.server_log.close()
        self.client_log.close()
        for line in (self.outdir / "client.log").read_text().splitlines():
            match = re.fullmatch(r"\S+: (\d+) cases", line)
            if match:
                self.case_count = int(match.group(1))
            else:
                print(f"  [{self.agent}] {line}")
        if self.client is None or self.client.returncode in (0, -9):
            return
        if self.client.returncode == 1:
            self.problems.append("cases raised or timed out in the client (see above)")
        else:
            self.problems.append(f"echo client crashed (exit status {self.client.returncode})")

    def results(self) -> dict[str, dict]:
        index = self.outdir / "index.json"
        if not index.exists():
            self.problems.append(f"no reports in {self.outdir}")
            return {}
        results = json.loads(index.read_text()).get(self.agent, {})
        if self.case_count is None:
            self.problems.append("echo client never learned the case count")
        elif len(results) < self.case_count:
            self.problems.append(f"only {len(results)} of {self.case_count} cases reported")
        return results


def group(case_id: str) -> int:
    return int(case_id.split(".")[0])


def passed(entry: dict) -> bool:
    return entry["behavior"] in PASSING and entry["behaviorClose"] in PASSING


def case_sort_key(case_id: str) -> list[int]:
    return [int(part) for part in case_id.split(".")]


def explain(outdir: Path, entry: dict) -> str:
    """One line from the case's own report: why kosoku judged it so."""
    report = json.loads((outdir / entry["reportfile"]).read_text())
    why = report["result"] if report["behavior"] not in PASSING else report["resultClose"]
    close = f"client sent close {report['remoteCloseCode']}"
    if report["remoteCloseReason"]:
        close += f" {report['remoteCloseReason']!r}"
    return f"{why}; {close}; {report['description']}"


def summarise(run: AgentRun, results: dict[str, dict]) -> list[str]:
    """Print the agent's table rows and failures; return the failing case ids."""
    print(f"\n{run.agent}: {len(results)} cases in {run.elapsed:.1f}s")
    for part, groups in PARTS.items():
        counts = collections.Counter(entry["behavior"] for case_id, entry in results.items()
                                     if group(case_id) in groups)
        if counts:
            columns = BEHAVIORS + sorted(set(counts) - set(BEHAVIORS))
            print(f"  {part}: " + "  ".join(f"{name}={counts[name]}" for name in columns))
    failing = sorted((c for c, e in results.items() if not passed(e)), key=case_sort_key)
    for case_id in failing:
        entry = results[case_id]
        print(f"  {case_id:<8} {entry['behavior']}/{entry['behaviorClose']}: "
              f"{explain(run.outdir, entry)}")
    for problem in run.problems:
        print(f"  problem: {problem}")
    return failing


def main() -> int:
    args = parse_args()
    include = args.cases or ["*"]
    exclude = list(args.exclude)
    if not args.cases:
        exclude += DEFLATE_BIG_CASES if args.deflate else DEFLATE_GROUPS

    impls = []
    for impl in TWINS:
        if twin_available(impl):
            impls.append(impl)
        elif impl == "c" and not args.require_compiled:
            print("compiled twin: skipped, it is not built")
        else:
            print(f"{impl} twin: FAILED, it is not available")
            return 1

    started = time.monotonic()
    deadline = started + args.run_timeout
    runs: list[AgentRun] = []
    try:
        for client in dict.fromkeys(args.clients or CLIENTS):
            for impl in impls:
                runs.append(AgentRun(client, impl, args.outdir))
                runs[-1].start(args, include, exclude)
        while any([run.running(time.monotonic()) for run in runs]):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        for run in runs:
            run.stop()

    bad = False
    for run in runs:
        results = run.results()
        failing = summarise(run, results)
        bad = bad or bool(failing) or bool(run.problems)
    print(f"\nreports: {args.outdir}   total time: {time.monotonic() - started:.1f}s")
    print("FAILED" if bad else "PASSED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
