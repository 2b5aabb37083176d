"""``python -m wsfast``: the demo, the echo server and the interactive client, as
subprocesses exactly as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from wsfast.client import connect
from wsfast.server import serve

TIMEOUT = 30
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wsfast", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        **options,
    )


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("demo", "echo", "connect", "bench"):
        assert command in result.stdout


def test_demo_shows_fragments_and_the_close():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    frames = [line.split()[0] for line in lines if line.startswith("  ")]
    assert frames[0] == "TEXT"
    assert frames[-2] == "CONTINUATION"
    assert frames[-1] == "CLOSE"
    assert len(frames) > 3
    assert "code=1000" in lines[-2]
    assert "matches" in result.stdout
    assert 'closing with 1000 "good bye"' in result.stdout


def test_demo_over_tls():
    pytest.importorskip("trustme")
    result = run("demo", "--tls")
    assert result.returncode == 0, result.stderr
    assert "wss://127.0.0.1:" in result.stdout
    assert "server certificate:" in result.stdout


def echo_server(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "wsfast", "echo", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_echo_server_serves_until_terminated():
    with echo_server() as process:
        try:
            url = re.search(r"ws://\S+", process.stdout.readline()).group(0)
            with connect(url, timeout=TIMEOUT) as ws:
                ws.send("through a subprocess")
                assert ws.recv(timeout=TIMEOUT) == "through a subprocess"
        finally:
            process.terminate()
            process.wait(TIMEOUT)


def test_echo_server_with_a_certificate(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with echo_server("--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")) as process:
        try:
            url = re.search(r"wss://\S+", process.stdout.readline()).group(0)
            with connect(url, ssl=context, timeout=TIMEOUT) as ws:
                ws.send("secure subprocess")
                assert ws.recv(timeout=TIMEOUT) == "secure subprocess"
        finally:
            process.terminate()
            process.wait(TIMEOUT)


@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_echo_server_exits_cleanly_on_ctrl_c():
    with echo_server() as process:
        process.stdout.readline()
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 0


def test_connect_sends_stdin_lines_and_prints_replies():
    with serve() as server:
        result = run("connect", f"ws://127.0.0.1:{server.port}/", "--header", "X-Test: 1", input="hello\nwörld\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello", "wörld"]
    assert "connection closed: 1000" in result.stderr


def test_connect_reports_unreachable_servers():
    with serve() as server:
        port = server.port
    result = run("connect", f"ws://127.0.0.1:{port}/")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr


def test_connect_rejects_malformed_headers():
    result = run("connect", "ws://127.0.0.1:1/", "--header", "no colon")
    assert result.returncode == 2
