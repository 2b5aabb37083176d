"""Run the Autobahn conformance cases against the wsfast clients and servers, both codec twins.

    python autobahn/run.py [--cases '1.*' ...] [--exclude '9.*' ...] [--deflate]
                           [--client blocking|asyncio ...] [--server threaded|asyncio ...]
                           [--offer NAME ...] [--outdir DIR] [--require-compiled] [--jobs N]

Every pairing of an agent with a codec twin is one run, e.g. ``wsfast-asyncio-c``, and
``--jobs`` of them (twice the CPUs) run side by side:

- a client (``CLIENTS``) gets its own kosoku fuzzing server (``kosoku -m fuzzingserver``)
  and an echo client process that connects to it case after case;
- a server (``SERVERS``) runs as an echo server process, which kosoku's fuzzing client
  (``kosoku -m fuzzingclient``) connects to, several cases at once.

Afterwards the JSON reports are summarised per agent, for groups 1-10 and for the deflate
groups apart. A case that is anything but OK or INFORMATIONAL (NON-STRICT too) runs once
more, alone on the machine, and both outcomes are printed: the fuzzing peer allows a close
handshake one second, which the load of the other runs can exceed. Exit status 1 when a
case fails again, when cases are missing, or when a client hung, crashed or raised
anything but ConnectionClosed, or a server logged an error; 0 otherwise. Without
``--client`` or ``--server`` every agent runs.

The permessage-deflate groups 12 and 13 are skipped unless ``--deflate`` is given
or ``--cases`` names them. Each of their cases echoes 1000 messages, ~10 GB per
agent in all, so ``--deflate`` runs the half with messages of at most 16 KiB: every
data set and every negotiated parameter set, whole and fragmented. Name them in
``--cases`` (``--cases '12.*' --cases '13.*'``) to run them all. A fuzzing server can only
negotiate what a client offers: ``--offer`` runs the clients once per offer named
(``echo_common.OFFERS``, or ``all``), each as an agent of its own, e.g.
``wsfast-c-window-9``; the fuzzing client makes every offer of its own to the servers.
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

from echo_common import OFFERS

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

# client -> (agent name prefix, echo client script). An echo client script takes the
# fuzzing server's URL and the agent name (see echo_common.main).
CLIENTS = {
    "blocking": ("wsfast", HERE / "echo_client.py"),
    "asyncio": ("wsfast-asyncio", HERE / "echo_client_asyncio.py"),
}
# server -> (agent name prefix, echo server script). An echo server script takes the
# port and the agent name, serves an echo handler on 127.0.0.1:PORT with
# permessage-deflate until killed, and prints nothing unless a handler fails.
SERVERS = {
    "threaded": ("wsfast-server", HERE / "echo_server.py"),
    "asyncio": ("wsfast-asyncio-server", HERE / "echo_server_asyncio.py"),
    "uvicorn": ("wsfast-uvicorn", HERE / "uvicorn_echo.py"),  # an ASGI app: wsfast.uvicorn
}

TWINS = {"python": {"WSFAST_NO_EXTENSIONS": "1"}, "c": {}}
PASSING = {"OK", "INFORMATIONAL"}
BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
PARTS = {"groups 1-10": range(1, 11), "groups 12-13": range(12, 14)}
DEFLATE_GROUPS = ["12.*", "13.*"]
# Cases 8-10 and 13-18 of every deflate subgroup echo messages of 32-128 KiB.
DEFLATE_BIG_CASES = [f"{group}.*.{case}" for group in (12, 13) for case in (8, 9, 10, 13, 14, 15, 16, 17, 18)]
REPORT_GRACE = 60.0  # seconds for kosoku to write its reports after /updateReports
SERVER_PARALLELISM = 4  # cases the fuzzing client runs at once against a server


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        action="append",
        metavar="GLOB",
        help="case id or glob to run, e.g. 1.* or 9.7.1 (repeatable; default: all)",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="case id or glob to skip (repeatable)"
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="also run the permessage-deflate groups 12 and 13, their cases with messages of at most 16 KiB",
    )
    parser.add_argument(
        "--client", action="append", choices=list(CLIENTS), dest="clients", help="client to test (repeatable)"
    )
    parser.add_argument(
        "--server", action="append", choices=list(SERVERS), dest="servers", help="server to test (repeatable)"
    )
    parser.add_argument(
        "--offer",
        action="append",
        choices=[*OFFERS, "all"],
        dest="offers",
        help="permessage-deflate offer of the clients (repeatable; default: default)",
    )
    parser.add_argument(
        "--outdir",
        type=Path,
        default=ROOT / "reports" / "autobahn",
        help="where kosoku writes its reports (default: reports/autobahn)",
    )
    parser.add_argument(
        "--require-compiled", action="store_true", help="fail instead of skipping when the compiled twin is not built"
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="abandon a client case that runs longer (default: 20)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="kill an agent's run after this long (default: 600)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(2, 2 * (os.cpu_count() or 1)),
        metavar="N",
        help="agent runs at once (default: twice the CPUs)",
    )
    args = parser.parse_args()
    if not args.clients and not args.servers:
        args.clients, args.servers = list(CLIENTS), list(SERVERS)
    offers = args.offers or ["default"]
    args.offers = list(OFFERS) if "all" in offers else list(dict.fromkeys(offers))
    return args


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
        env=child_env(TWINS[impl]),
        capture_output=True,
        text=True,
        timeout=60,
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


def wait_listening(port: int, process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before listening:")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g}s")


class AgentRun:
    """One agent with one codec twin: its two processes and their outcome.

    The ``listener`` listens (kosoku for a client, the echo server for a server), the
    ``driver`` runs the cases and ends when they are done.
    """

    listener_name = driver_name = ""
    listener_ends = True  # whether the listener ends by itself once the cases are done

    def __init__(self, agent: str, impl: str, outdir: Path):
        self.agent = agent
        self.impl = impl
        self.outdir = outdir / agent
        self.problems: list[str] = []
        self.started = time.monotonic()
        self.elapsed = 0.0
        shutil.rmtree(self.outdir, ignore_errors=True)
        self.outdir.mkdir(parents=True)
        # Open for the whole run, closed by stop().
        self.listener_log = open(self.outdir / f"{self.listener_name}.log", "w")  # noqa: SIM115
        self.driver_log = open(self.outdir / f"{self.driver_name}.log", "w")  # noqa: SIM115
        self.listener: subprocess.Popen | None = None
        self.driver: subprocess.Popen | None = None

    def running(self, now: float) -> bool:
        """Poll; True while the cases still run."""
        if self.driver.poll() is None and self.listener.poll() is None:
            return True
        if not self.elapsed:
            self.elapsed = now - self.started
        return False

    def stop(self) -> None:
        """Kill what is still running, then close the logs."""
        self.elapsed = self.elapsed or time.monotonic() - self.started
        for process, what, ends in (
            (self.driver, self.driver_name, True),
            (self.listener, self.listener_name, self.listener_ends),
        ):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
                if ends:
                    self.problems.append(f"{what} killed: it did not finish in time")
        self.listener_log.close()
        self.driver_log.close()

    def results(self) -> dict[str, dict]:
        index = self.outdir / "index.json"
        if not index.exists():
            self.problems.append(f"no reports in {self.outdir}")
            return {}
        return self.agent_results(json.loads(index.read_text()))

    def agent_results(self, index: dict) -> dict[str, dict]:
        """This agent's entries among the reports' ``index``."""
        raise NotImplementedError

    def start(self, args: argparse.Namespace, selection: list[str]) -> None:
        """Start the listener, then the driver, for the cases ``selection`` picks."""
        raise NotImplementedError

    def again(self, outdir: Path) -> AgentRun:
        """A new run of the same agent and twin, reporting under ``outdir``."""
        raise NotImplementedError


class ClientRun(AgentRun):
    """A wsfast client with one codec twin and one offer, against its own fuzzing server."""

    listener_name, driver_name = "kosoku", "client"

    def __init__(self, client: str, impl: str, offer: str, outdir: Path):
        prefix, self.echo_client = CLIENTS[client]
        super().__init__(f"{prefix}-{impl}" + ("" if offer == "default" else f"-{offer}"), impl, outdir)
        self.client = client
        self.offer = offer
        self.case_count: int | None = None

    def start(self, args: argparse.Namespace, selection: list[str]) -> None:
        self.started = time.monotonic()
        port = free_port()
        self.listener = subprocess.Popen(
            kosoku_command() + ["-m", "fuzzingserver", f"127.0.0.1:{port}", "-o", str(self.outdir), *selection],
            stdout=self.listener_log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(port, self.listener, "kosoku")
        except RuntimeError as exc:
            last_line = (self.outdir / "kosoku.log").read_text().strip().splitlines()[-1:]
            raise RuntimeError(" ".join([str(exc), *last_line])) from None
        self.driver = subprocess.Popen(
            [
                sys.executable,
                str(self.echo_client),
                f"ws://127.0.0.1:{port}",
                self.agent,
                "--offer",
                self.offer,
                "--case-timeout",
                str(args.case_timeout),
            ],
            env=child_env(TWINS[self.impl]),
            stdout=self.driver_log,
            stderr=subprocess.STDOUT,
        )
        self.client_done = time.monotonic()

    def running(self, now: float) -> bool:
        """Poll; once the client is done, kosoku gets ``REPORT_GRACE`` seconds to write."""
        if self.driver.poll() is None:
            self.client_done = now
            return True
        if self.listener.poll() is None and now - self.client_done < REPORT_GRACE:
            return True
        if not self.elapsed:
            self.elapsed = now - self.started
        return False

    def stop(self) -> None:
        super().stop()
        for line in (self.outdir / "client.log").read_text().splitlines():
            match = re.fullmatch(r"\S+: (\d+) cases", line)
            if match:
                self.case_count = int(match.group(1))
            else:
                print(f"  [{self.agent}] {line}")
        if self.driver is None or self.driver.returncode in (0, -9):
            return
        if self.driver.returncode == 1:
            self.problems.append("cases raised or timed out in the client (see above)")
        else:
            self.problems.append(f"echo client crashed (exit status {self.driver.returncode})")

    def agent_results(self, index: dict) -> dict[str, dict]:
        results = index.get(self.agent, {})
        if self.case_count is None:
            self.problems.append("echo client never learned the case count")
        elif len(results) < self.case_count:
            self.problems.append(f"only {len(results)} of {self.case_count} cases reported")
        return results

    def again(self, outdir: Path) -> AgentRun:
        return ClientRun(self.client, self.impl, self.offer, outdir)


class ServerRun(AgentRun):
    """A wsfast server with one codec twin, driven by a fuzzing client."""

    listener_name, driver_name = "server", "kosoku"
    listener_ends = False  # it serves until killed

    def __init__(self, server: str, impl: str, outdir: Path):
        prefix, self.echo_server = SERVERS[server]
        super().__init__(f"{prefix}-{impl}", impl, outdir)
        self.server = server

    def again(self, outdir: Path) -> AgentRun:
        return ServerRun(self.server, self.impl, outdir)

    def start(self, args: argparse.Namespace, selection: list[str]) -> None:
        self.started = time.monotonic()
        port = free_port()
        self.listener = subprocess.Popen(
            [sys.executable, str(self.echo_server), str(port), self.agent],
            env=child_env(TWINS[self.impl]),
            stdout=self.listener_log,
            stderr=subprocess.STDOUT,
        )
        wait_listening(port, self.listener, f"the echo server of {self.agent}")
        self.driver = subprocess.Popen(
            kosoku_command()
            + [
                "-m",
                "fuzzingclient",
                f"127.0.0.1:{port}",
                "-p",
                str(SERVER_PARALLELISM),
                "-o",
                str(self.outdir),
                *selection,
            ],
            stdout=self.driver_log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.listener is not None and self.listener.poll() is not None:
            self.problems.append(f"echo server exited with status {self.listener.returncode}")
        super().stop()
        lines = (self.outdir / "server.log").read_text().splitlines()
        for line in lines:
            print(f"  [{self.agent}] {line}")
        if lines:
            self.problems.append("the echo server logged errors (see above)")

    def agent_results(self, index: dict) -> dict[str, dict]:
        # The fuzzing client names the agent after the server's address: the only one.
        return next(iter(index.values()), {})


def group(case_id: str) -> int:
    return int(case_id.split(".")[0])


def passed(entry: dict) -> bool:
    return entry.get("behavior") in PASSING and entry.get("behaviorClose") in PASSING


def case_sort_key(case_id: str) -> list[int]:
    return [int(part) for part in case_id.split(".")]


def explain(outdir: Path, entry: dict) -> str:
    """One line from the case's own report: why kosoku judged it so."""
    report = json.loads((outdir / entry["reportfile"]).read_text())
    why = report["result"] if report["behavior"] not in PASSING else report["resultClose"]
    close = f"peer sent close {report['remoteCloseCode']}"
    if report["remoteCloseReason"]:
        close += f" {report['remoteCloseReason']!r}"
    return f"{why}; {close}; {report['description']}"


def summarise(run: AgentRun, results: dict[str, dict]) -> list[str]:
    """Print the agent's table rows and failures; return the failing case ids."""
    print(f"\n{run.agent}: {len(results)} cases in {run.elapsed:.1f}s")
    for part, groups in PARTS.items():
        counts = collections.Counter(
            entry["behavior"] for case_id, entry in results.items() if group(case_id) in groups
        )
        if counts:
            columns = BEHAVIORS + sorted(set(counts) - set(BEHAVIORS))
            print(f"  {part}: " + "  ".join(f"{name}={counts[name]}" for name in columns))
    failing = sorted((c for c, e in results.items() if not passed(e)), key=case_sort_key)
    for case_id in failing:
        entry = results[case_id]
        print(f"  {case_id:<8} {entry['behavior']}/{entry['behaviorClose']}: {explain(run.outdir, entry)}")
    for problem in run.problems:
        print(f"  problem: {problem}")
    return failing


def main() -> int:
    args = parse_args()
    include = args.cases or ["*"]
    exclude = list(args.exclude)
    if not args.cases:
        exclude += DEFLATE_BIG_CASES if args.deflate else DEFLATE_GROUPS
    selection = [arg for glob in include for arg in ("-i", glob)]
    selection += [arg for glob in exclude for arg in ("-x", glob)]

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
    runs: list[AgentRun] = [
        ClientRun(client, impl, offer, args.outdir)
        for client in args.clients or []
        for offer in args.offers
        for impl in impls
    ]
    runs += [ServerRun(server, impl, args.outdir) for server in args.servers or [] for impl in impls]
    try:
        # At most --jobs runs at once: on a loaded machine, a fuzzing peer starved of CPU
        # for a second counts a close as unclean.
        run_all(runs, args, selection, args.jobs)
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1

    bad = False
    for run in runs:
        failing = summarise(run, run.results())
        if failing and not run.problems:
            failing = rerun_alone(run, failing, args)
        bad = bad or bool(failing) or bool(run.problems)
    print(f"\nreports: {args.outdir}   total time: {time.monotonic() - started:.1f}s")
    print("FAILED" if bad else "PASSED")
    return 1 if bad else 0


def run_all(runs: list[AgentRun], args: argparse.Namespace, selection: list[str], jobs: int) -> None:
    """Run ``runs``, at most ``jobs`` at once, each for at most --run-timeout seconds."""
    waiting: list[AgentRun] = list(runs)
    active: list[AgentRun] = []
    try:
        while waiting or active:
            now = time.monotonic()
            active = [run for run in active if run.running(now) and now - run.started < args.run_timeout]
            while waiting and len(active) < jobs:
                run = waiting.pop(0)
                run.start(args, selection)
                active.append(run)
            time.sleep(0.1)
    finally:
        for run in runs:
            run.stop()


def rerun_alone(run: AgentRun, failing: list[str], args: argparse.Namespace) -> list[str]:
    """Run the cases that failed again, with nothing else running; return those that fail
    again. A case that passes alone failed on timing only: the fuzzing peer gives a close
    handshake one second, which a machine loaded by the other runs can exceed."""
    again = run.again(args.outdir / "rerun")
    try:
        run_all([again], args, [arg for case_id in failing for arg in ("-i", case_id)], jobs=1)
    except RuntimeError as exc:
        again.problems.append(str(exc))
    results = again.results()
    still = [case_id for case_id in failing if again.problems or not passed(results.get(case_id, {}))]
    for case_id in failing:
        print(f"  {case_id:<8} run again alone: {'failed again' if case_id in still else 'passed'}")
    for problem in again.problems:
        print(f"  problem when run again: {problem}")
    return still


if __name__ == "__main__":
    sys.exit(main())
