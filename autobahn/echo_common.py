"""What the Autobahn echo clients share: their offers, command line and case loop.

An echo client supplies three operations (learn the case count, echo one case with a
permessage-deflate offer, ask for the reports) and ``within``, which runs one of them
under a time limit and raises :class:`CaseTimeout` past it; :func:`main` does the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from wsfast.deflate import DeflateOptions

# The fuzzing server asks a client to drop its compression context between messages
# (cases 13.2, 13.5, 13.6) only if its offer includes client_no_context_takeover, as
# Autobahn does; wsfast then honours that in every case. The compression cases echo
# gigabytes: the fastest zlib level keeps them quick and changes nothing they check.
COMPRESSION = DeflateOptions(client_no_context_takeover=True, level=1)

# The offers Autobahn's own client makes in cases 13.1-13.6, as wsfast options: they
# also ask the server to compress without context takeover and with a smaller window.
# (Its 13.7 makes three offers at once, which a wsfast client does not.)
OFFERS = {
    "default": COMPRESSION,
    "no-context": dataclasses.replace(COMPRESSION, server_no_context_takeover=True),
    "window-9": dataclasses.replace(COMPRESSION, server_max_window_bits=9),
    "window-15": dataclasses.replace(COMPRESSION, server_max_window_bits=15),
    "no-context-window-9": dataclasses.replace(COMPRESSION, server_no_context_takeover=True, server_max_window_bits=9),
    "no-context-window-15": dataclasses.replace(
        COMPRESSION, server_no_context_takeover=True, server_max_window_bits=15
    ),
}


class CaseTimeout(BaseException):
    """A case ran past its time limit (a BaseException, so no ``except Exception`` in
    the code under test can swallow it)."""


Within = Callable[..., Any]  # within(seconds, operation, *args) -> operation's result


def run_cases(
    base_url: str,
    agent: str,
    offer: DeflateOptions,
    case_timeout: float,
    within: Within,
    case_count: Callable,
    echo_case: Callable,
) -> int:
    """Run every case; return how many ended with an exception or a timeout."""
    count = within(case_timeout, case_count, base_url)
    print(f"{agent}: {count} cases", flush=True)
    problems = 0
    for case in range(1, count + 1):
        started = time.monotonic()
        try:
            within(case_timeout, echo_case, base_url, case, agent, offer)
        except CaseTimeout:
            problems += 1
            print(f"case {case}: timed out after {case_timeout:g}s", flush=True)
        except Exception as exc:  # noqa: BLE001 - any failure fails the case; the run goes on
            problems += 1
            print(f"case {case}: {type(exc).__name__}: {exc}", flush=True)
        else:
            elapsed = time.monotonic() - started
            if elapsed > case_timeout / 2:
                print(f"case {case}: slow, {elapsed:.1f}s", flush=True)
    return problems


def main(
    description: str, *, within: Within, case_count: Callable, echo_case: Callable, update_reports: Callable
) -> None:
    """Parse the command line, run every case, then have the server write its reports.

    Exits with status 1 when any case raised or timed out.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("base_url", help="fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("agent", help="name the reports file this client under")
    parser.add_argument(
        "--offer", choices=list(OFFERS), default="default", help="the permessage-deflate offer (default: %(default)s)"
    )
    parser.add_argument("--case-timeout", type=float, default=20.0, metavar="SECONDS")
    args = parser.parse_args()
    try:
        problems = run_cases(
            args.base_url, args.agent, OFFERS[args.offer], args.case_timeout, within, case_count, echo_case
        )
    finally:
        within(args.case_timeout, update_reports, args.base_url, args.agent)
    sys.exit(1 if problems else 0)
