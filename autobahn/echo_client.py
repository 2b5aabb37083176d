"""The standard Autobahn echo client, driving every case a fuzzing server offers.

    python autobahn/echo_client.py ws://127.0.0.1:9001 AGENT [--case-timeout SECONDS]

For case 1..N it connects to ``/runCase?case=i&agent=AGENT`` and sends every
message back as it arrived (text as text, binary as binary) until the server
closes. It offers permessage-deflate, so the compression cases (groups 12 and 13)
run too. A case that raises or hangs is logged and abandoned; the run goes on.
Finally ``/updateReports`` makes the server write its reports. The codec twin
is the one ``wsfast`` selects (``WSFAST_NO_EXTENSIONS=1`` forces the pure one).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time

from wsfast.client import connect
from wsfast.deflate import DeflateOptions
from wsfast.exceptions import ConnectionClosed

# The fuzzing server asks a client to drop its compression context between messages
# (cases 13.2, 13.5, 13.6) only if its offer includes client_no_context_takeover, as
# Autobahn does; wsfast then honours that in every case. The compression cases echo
# gigabytes: the fastest zlib level keeps them quick and changes nothing they check.
COMPRESSION = DeflateOptions(client_no_context_takeover=True, level=1)


class CaseTimeout(BaseException):
    """A case ran past its time limit (a BaseException, so no ``except Exception`` in
    the code under test can swallow it)."""


def _on_alarm(signum, frame):
    raise CaseTimeout


@contextlib.contextmanager
def time_limit(seconds: float):
    # SIGALRM interrupts any blocking socket call in the main thread, so one
    # stuck case cannot stall the run whatever state the client is in.
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def case_count(base_url: str) -> int:
    with connect(f"{base_url}/getCaseCount") as ws:
        return int(ws.recv())


def echo_case(base_url: str, case: int, agent: str) -> None:
    try:
        with connect(f"{base_url}/runCase?case={case}&agent={agent}", compression=COMPRESSION) as ws:
            for message in ws:
                ws.send(message)
    except ConnectionClosed:
        pass  # Expected whenever the case makes the client fail the connection.


def update_reports(base_url: str, agent: str) -> None:
    try:
        with connect(f"{base_url}/updateReports?agent={agent}") as ws:
            for _ in ws:
                pass
    except ConnectionClosed:
        pass  # The server drops this connection once the reports are written.


def run_cases(base_url: str, agent: str, case_timeout: float) -> int:
    """Run every case; return how many ended with an exception or a timeout."""
    with time_limit(case_timeout):
        count = case_count(base_url)
    print(f"{agent}: {count} cases", flush=True)
    problems = 0
    for case in range(1, count + 1):
        started = time.monotonic()
        try:
            with time_limit(case_timeout):
                echo_case(base_url, case, agent)
        except CaseTimeout:
            problems += 1
            print(f"case {case}: timed out after {case_timeout:g}s", flush=True)
        except Exception as exc:
            problems += 1
            print(f"case {case}: {type(exc).__name__}: {exc}", flush=True)
        else:
            elapsed = time.monotonic() - started
            if elapsed > case_timeout / 2:
                print(f"case {case}: slow, {elapsed:.1f}s", flush=True)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("agent", help="name the reports file this client under")
    parser.add_argument("--case-timeout", type=float, default=20.0, metavar="SECONDS")
    args = parser.parse_args()
    try:
        problems = run_cases(args.base_url, args.agent, args.case_timeout)
    finally:
        with time_limit(args.case_timeout):
            update_reports(args.base_url, args.agent)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
