"""The programs of ``examples/``, which the documentation includes, run as a user runs them.

Each runs in a subprocess against a local server (one of the example servers, or one
started here), with a timeout; the client examples run with both codec twins. A server
started in the background is stopped (SIGTERM, then SIGKILL) whatever happens to the test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import wsfast
from conftest import load_compiled

TIMEOUT = 30
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.usefixtures("no_hang")


@pytest.fixture(params=["python", "c"])
def twin(request) -> str:
    """The codec twin the example runs with: ``python`` or ``c`` (skipped when not built)."""
    if request.param == "c":
        load_compiled()
    return request.param


def environment(twin: str = "c", **variables: str) -> dict:
    """The environment of an example: no proxy (unless given) and the chosen codec twin."""
    env = {
        k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.pop("WSFAST_NO_EXTENSIONS", None)
    if twin == "python":
        env["WSFAST_NO_EXTENSIONS"] = "1"
    env.update(variables)
    return env


def run(name: str, *args: str, twin: str = "c", env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env or environment(twin),
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


@contextlib.contextmanager
def example_server(name: str, *args: str):
    """Run the server example ``name`` on a free port; yield the URL its first line names."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), "--port", "0", "--duration", "120", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        line = process.stdout.readline() if ready else ""
        match = re.search(r"(wss?://\S+)", line)
        assert match, f"{name} did not say where it listens: {line!r} {process.poll()}"
        yield match.group(1), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# Clients ------------------------------------------------------------------------------


def test_hello(twin):
    with example_server("echo_server.py") as (url, _):
        assert run("hello.py", url, twin=twin).stdout == "Hello, world\n"


def test_hello_asyncio(twin):
    with example_server("echo_server_asyncio.py") as (url, _):
        assert run("hello_asyncio.py", url, twin=twin).stdout == "Hello, world\n"


def test_first_feed(twin):
    with example_server("tick_server.py", "--rate", "0") as (url, _):
        out = run("first_feed.py", url, "--count", "5000", twin=twin).stdout
    assert "first tick: {'symbol': 'ABC', 'seq': 1," in out
    match = re.search(r"(\d+) ticks in (\d+) calls, the last one #(\d+)", out)
    assert match and int(match.group(1)) >= 5000 and match.group(1) == match.group(3)
    assert "closed: CLOSED, the server answered 1000" in out


@pytest.mark.parametrize("name", ["feed_consumer.py", "feed_consumer_asyncio.py"])
def test_feed_consumer_reconnects_and_resumes(name, twin):
    # The server restarts every connection after 30 ticks (1012): the consumer reconnects
    # and resumes where it stopped, without a gap.
    with example_server("tick_server.py", "--rate", "500", "--per-connection", "30") as (url, _):
        result = run(name, url, "--count", "45", twin=twin)
    seqs = [int(n) for n in re.findall(r"^ABC #(\d+):", result.stdout, re.MULTILINE)]
    assert seqs == list(range(1, 46))
    assert result.stdout.endswith("received 45 ticks\n")
    assert "1012 restarting" in result.stderr
    assert "reconnecting in" in result.stderr or "trying again in" in result.stderr
    assert "missing" not in result.stderr


class ConnectProxy:
    """An HTTP CONNECT proxy on a free local port, counting the tunnels it opened."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.tunnels: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        client.settimeout(TIMEOUT)
        with client, contextlib.suppress(OSError):
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(4096)
                if not data:
                    return
                head += data
            target = head.split()[1].decode()
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)), timeout=TIMEOUT)
            self.tunnels.append(target)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with upstream:
                threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
                self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("name", ["feed_consumer.py", "feed_consumer_asyncio.py"])
def test_feed_consumer_takes_the_proxy_from_the_environment(name):
    proxy = ConnectProxy()
    try:
        with example_server("tick_server.py", "--rate", "1000") as (url, _):
            result = run(name, url, "--count", "10", env=environment(http_proxy=proxy.url))
    finally:
        proxy.close()
    assert result.stdout.endswith("received 10 ticks\n")
    assert proxy.tunnels == [url.split("/")[2]]


@pytest.mark.parametrize("layer", ["protocol", "codec"])
def test_codec_in_your_stack(layer, twin):
    with example_server("echo_server.py") as (url, _):
        out = run("codec_in_your_stack.py", url, "--layer", layer, "--count", "50", twin=twin).stdout
    implementation = "python" if twin == "python" else "c"
    assert f"50 of 50 messages echoed ({implementation} codec, {layer} layer)" in out
    assert "server closed with 1000" in out


def test_bench_your_server_echo(twin):
    with example_server("echo_server_asyncio.py") as (url, _):
        out = run("bench_your_server.py", url, "echo", "--count", "200", twin=twin).stdout
    assert re.search(r"echo 256 B: [\d,]+ round trips/s over 200\nlatency: p50 [\d,]+ us, p90", out)


def test_bench_your_server_feed():
    with example_server("tick_server.py", "--rate", "0") as (url, _):
        out = run("bench_your_server.py", url, "feed", "--count", "2000", "--subscribe", '{"subscribe": "X"}').stdout
    assert re.search(r"feed: [\d,]+ messages/s, [\d.,]+ MB/s over [\d,]+", out)


# TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throwaway CA (its PEM file) and a server certificate for 127.0.0.1 and localhost."""
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(folder / "server.pem")
    return folder


def test_tls_client(certificates, twin):
    server = ("echo_server.py", "--certfile", str(certificates / "server.pem"))
    with example_server(*server) as (url, _):
        assert url.startswith("wss://")
        out = run("tls_client.py", url, "--cafile", str(certificates / "ca.pem"), twin=twin).stdout
    assert "issuer:      O=trustme" in out
    assert re.search(r"fingerprint: [0-9A-F]{40}\n", out)
    assert out.endswith("echo:        hello over TLS\n")


def test_tls_client_reports_an_unknown_ca(certificates):
    with example_server("echo_server.py", "--certfile", str(certificates / "server.pem")) as (url, _):
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "tls_client.py"), url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=environment(),
        )
    assert result.returncode == 1
    assert "the server's certificate was rejected: unable to get local issuer certificate" in result.stderr


# Servers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["echo_server.py", "echo_server_asyncio.py"])
def test_echo_servers_stop_on_sigterm_with_1001(name):
    with example_server(name) as (url, process):
        with wsfast.connect(url, proxy=None) as ws:
            ws.send("text")
            ws.send(b"\x00binary")
            assert ws.recv(timeout=10) == "text"
            assert ws.recv(timeout=10) == b"\x00binary"
            process.terminate()
            with pytest.raises(wsfast.ConnectionClosedOK):
                ws.recv(timeout=10)
            assert ws.close_code == 1001
        assert process.wait(timeout=15) == 0


def test_tick_server_resumes_from_a_sequence_number():
    with example_server("tick_server.py", "--rate", "0", "--per-connection", "3") as (url, _):
        with wsfast.connect(url, proxy=None) as ws:
            ws.send(json.dumps({"subscribe": "XYZ", "from": 41}))
            ticks = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
            with pytest.raises(wsfast.ConnectionClosedError):
                ws.recv(timeout=10)
            assert ws.close_code == 1012
    assert [(t["symbol"], t["seq"]) for t in ticks] == [("XYZ", 41), ("XYZ", 42), ("XYZ", 43)]


needs_fastapi = pytest.mark.skipif(
    importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None,
    reason="needs fastapi and uvicorn (pip install -e '.[test]')",
)


@needs_fastapi
def test_fastapi_app():
    with example_server("fastapi_app.py") as (url, process):
        with wsfast.connect(url, proxy=None) as ws:
            assert ws.deflate_params is not None  # uvicorn's --ws-per-message-deflate default
            ws.send("hello FastAPI")
            assert ws.recv(timeout=10) == "hello FastAPI"
        with wsfast.connect(url.replace("/echo", "/ticks?count=5"), proxy=None) as ws:
            assert [json.loads(message)["seq"] for message in ws] == [1, 2, 3, 4, 5]
            assert ws.close_code == 1000
        process.terminate()
        # uvicorn shuts down gracefully, then raises the signal again for its exit status.
        assert process.wait(timeout=15) in (0, -15)


def test_every_example_is_tested():
    tested = set(re.findall(r'"(\w+\.py)"', Path(__file__).read_text()))
    assert {path.name for path in EXAMPLES.glob("*.py")} <= tested
