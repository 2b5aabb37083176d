"""The standard Autobahn echo client, driving every case a fuzzing server offers.

    python autobahn/echo_client.py ws://127.0.0.1:9001 AGENT [--offer NAME] [--case-timeout SECONDS]

For case 1..N it connects to ``/runCase?case=i&agent=AGENT`` and sends every
message back as it arrived (text as text, binary as binary) until the server
closes. It offers permessage-deflate, so the compression cases (groups 12 and 13)
run too; ``--offer`` picks one of the offers in ``echo_common.OFFERS``. A case that
raises or hangs is logged and abandoned; the run goes on.
Finally ``/updateReports`` makes the server write its reports. The codec twin
is the one ``wsfast`` selects (``WSFAST_NO_EXTENSIONS=1`` forces the pure one).
``autobahn/echo_client_asyncio.py`` does the same with the asyncio client.
"""

from __future__ import annotations

import signal

from echo_common import CaseTimeout, main
from wsfast.client import connect as connect_anywhere
from wsfast.exceptions import ConnectionClosed


def connect(url, **options):
    """The fuzzing server is local (no proxy), and fails a case on an unsolicited ping."""
    return connect_anywhere(url, proxy=None, ping_interval=None, **options)


def _on_alarm(signum, frame):
    raise CaseTimeout


def within(seconds: float, operation, *args):
    """Call ``operation(*args)``; raise CaseTimeout if it runs past ``seconds``."""
    # SIGALRM interrupts any blocking socket call in the main thread, so one
    # stuck case cannot stall the run whatever state the client is in.
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return operation(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def case_count(base_url: str) -> int:
    with connect(f"{base_url}/getCaseCount") as ws:
        return int(ws.recv())


def echo_case(base_url: str, case: int, agent: str, offer) -> None:
    try:
        with connect(f"{base_url}/runCase?case={case}&agent={agent}", compression=offer) as ws:
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


if __name__ == "__main__":
    main(
        __doc__.splitlines()[0],
        within=within,
        case_count=case_count,
        echo_case=echo_case,
        update_reports=update_reports,
    )
