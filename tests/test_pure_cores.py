"""The connections' pure twins (``wsfast._stream_core``, ``wsfast._blocking_core``): the
client, server, send-path and freeing tests again, in a process where
``WSFAST_NO_EXTENSIONS=1`` makes every connection's base the pure one (the other tests run
the compiled one)."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
SUITES = [
    "test_asyncio_client.py",
    "test_asyncio_server.py",
    "test_asyncio_send_path.py",
    "test_asyncio_tls.py",
    "test_blocking_fast_path.py",
    "test_client.py",
    "test_threads.py",
    "test_freed.py",
]


def test_connection_suites_pass_on_the_pure_twins():
    env = {**os.environ, "WSFAST_NO_EXTENSIONS": "1"}
    env.pop("WSFAST_REQUIRE_EXTENSION", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(str(TESTS / s) for s in SUITES)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=540, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "passed" in result.stdout.splitlines()[-1]
    # The base those tests ran on was the pure one.
    check = (
        "import wsfast.asyncio as a, wsfast._stream_core as s, wsfast._io as i, wsfast._blocking_core as b;"
        "assert issubclass(a.WebSocket, s.StreamCore) and issubclass(i.WebSocket, b.BlockingCore)"
    )
    subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=60)
