"""The Autobahn echo client on wsfast's asyncio client (``wsfast.asyncio.connect``).

    python autobahn/echo_client_asyncio.py ws://127.0.0.1:9001 AGENT [--offer NAME] [--case-timeout SECONDS]

It runs the cases as ``autobahn/echo_client.py`` does, with the same offers and
command line: for case 1..N it connects to ``/runCase?case=i&agent=AGENT`` and
awaits every message, sending it back as it arrived, until the server closes.
Each case runs in a fresh event loop, so one that raises or hangs is logged,
cancelled and abandoned without disturbing the next. Finally ``/updateReports``
makes the server write its reports.
"""

from __future__ import annotations

import asyncio
import time

from echo_common import CaseTimeout, main
from wsfast.asyncio import connect
from wsfast.exceptions import ConnectionClosed


def within(seconds: float, operation, *args):
    """Run the coroutine ``operation(*args)`` in a new event loop; cancel it and raise
    CaseTimeout if it runs past ``seconds``."""
    started = time.monotonic()
    try:
        return asyncio.run(asyncio.wait_for(operation(*args), seconds))
    except asyncio.TimeoutError:
        if time.monotonic() - started < seconds:
            raise  # one of the client's own timeouts, not the case's
        raise CaseTimeout from None


async def case_count(base_url: str) -> int:
    async with connect(f"{base_url}/getCaseCount") as ws:
        return int(await ws.recv())


async def echo_case(base_url: str, case: int, agent: str, offer) -> None:
    try:
        # No keepalive: the fuzzing server fails a case on an unsolicited ping.
        url = f"{base_url}/runCase?case={case}&agent={agent}"
        async with connect(url, compression=offer, proxy=None, ping_interval=None) as ws:
            async for message in ws:
                await ws.send(message)
    except ConnectionClosed:
        pass  # Expected whenever the case makes the client fail the connection.


async def update_reports(base_url: str, agent: str) -> None:
    try:
        async with connect(f"{base_url}/updateReports?agent={agent}") as ws:
            async for _ in ws:
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
