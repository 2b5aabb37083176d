"""``python -m wsfast``: the demo, the echo server and the interactive client, as
subprocesses exactly as a user runs them, and the one-line errors of each.

Every wait is bounded: subprocesses run with a timeout, a server started in the
background is stopped (SIGTERM, then SIGKILL) whatever happens to the test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import wsfast
from wsfast.client import connect
from wsfast.server import serve

TIMEOUT = 30
ROOT = Path(__file__).resolve().parent.parent
POSIX = os.name == "posix"

pytestmark = pytest.mark.usefixtures("no_hang")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wsfast", *args]


def run(*args: str, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args),
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        env=env,
        **options,
    )


def environment(**changes: str | None) -> dict:
    """This process's environment with ``changes``; None removes a variable."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def assert_error(result, status: int, *words: str) -> str:
    """The command failed with ``status`` and said why in one line naming ``words``."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsfast: error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@contextlib.contextmanager
def catching_sigint():
    """Children started meanwhile get SIGINT's default action, even in a run that ignores
    it (nohup, some CI): exec resets a caught signal to the default, not an ignored one."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def running(*args: str, ctrl_c: bool = False, **options):
    """``python -m wsfast ARGS`` in the background, stopped on the way out, whatever its state."""
    with catching_sigint() if ctrl_c else contextlib.nullcontext():
        process = subprocess.Popen(
            command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, **options
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """End ``process``: SIGTERM, then SIGKILL if that is not enough; each wait bounded."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(TIMEOUT)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def read_line(stream, timeout: float = TIMEOUT) -> str:
    """The next line a child writes, or a test failure after ``timeout`` seconds."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"the process wrote no line within {timeout} s")


def exit_status(process: subprocess.Popen, after: str) -> int:
    """Wait a bounded time for ``process`` to end ``after`` something; fail if it does not."""
    try:
        return process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the process was still running {TIMEOUT} s after {after}")


def codec_words(compiled: bool) -> str:
    return "compiled codec" if compiled else "pure-Python codec: "


# --help and --version -----------------------------------------------------------------


def test_help_lists_the_commands_and_exit_statuses():
    result = run("--help")
    assert result.returncode == 0
    for command_name in ("demo", "echo", "connect", "bench"):
        assert command_name in result.stdout
    assert "130 Ctrl-C" in result.stdout


@pytest.mark.parametrize("twin", ["compiled", "pure"])
def test_version_names_the_codec_in_use(twin):
    if twin == "compiled" and wsfast.IMPLEMENTATION != "c":
        pytest.skip("the compiled twin is not built")
    result = run("--version", env=environment(WSFAST_NO_EXTENSIONS="1" if twin == "pure" else None))
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert re.fullmatch(rf"wsfast {re.escape(wsfast.__version__)} \((.+); Python \d+\.\d+\.\d+\S*\)", line), line
    if twin == "pure":
        assert "pure-Python codec: WSFAST_NO_EXTENSIONS is set" in line
    else:
        assert "compiled codec" in line


def test_usage_mistakes_exit_with_status_2():
    assert run().returncode == 2
    assert run("echo", "--port", "70000").returncode == 2
    assert run("echo", "--max-frame-size", "0").returncode == 2
    assert run("connect", "wss://127.0.0.1:1/", "--ca", "ca.pem", "--insecure").returncode == 2


def test_bench_takes_its_options_after_verbose_too():
    result = run("-v", "bench", "--list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("feed-100 ")


# demo -------------------------------------------------------------------------------


def test_demo_shows_fragments_and_the_close():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert codec_words(wsfast.IMPLEMENTATION == "c") in lines[0]
    frames = [line.split()[0] for line in lines if line.startswith("  ")]
    assert frames[0] == "TEXT"
    assert frames[-2] == "CONTINUATION"
    assert frames[-1] == "CLOSE"
    assert len(frames) > 3
    assert "code=1000" in lines[-2]
    assert "matches" in result.stdout
    assert 'closing with 1000 "good bye"' in result.stdout


def test_demo_names_the_pure_codec_when_forced():
    result = run("demo", env=environment(WSFAST_NO_EXTENSIONS="1"))
    assert result.returncode == 0, result.stderr
    assert "pure-Python codec: WSFAST_NO_EXTENSIONS is set" in result.stdout.splitlines()[0]


def test_demo_over_tls():
    pytest.importorskip("trustme")
    result = run("demo", "--tls")
    assert result.returncode == 0, result.stderr
    assert "wss://127.0.0.1:" in result.stdout
    assert "server certificate:" in result.stdout


@pytest.mark.skipif(not POSIX, reason="exit status of a closed pipe: 128 + SIGPIPE")
def test_demo_into_a_closed_pipe_exits_quietly():
    reader, writer = os.pipe()
    os.close(reader)  # closed before the demo writes anything: its first write fails
    try:
        result = subprocess.run(
            command("demo"), check=False, stdout=writer, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT, cwd=ROOT
        )
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (128 + signal.SIGPIPE, "")


@pytest.mark.skipif(not POSIX, reason="exit status of a closed pipe: 128 + SIGPIPE")
def test_demo_into_a_pipe_closed_after_one_line():
    """``python -m wsfast demo | head -1``."""
    with running("demo") as process:
        assert "echo server listening" in read_line(process.stdout)
        process.stdout.close()
        status = exit_status(process, "its reader went away")
        errors = process.stderr.read()
    assert errors == ""
    # 141 once it wrote after the close; 0 only if it had written everything before.
    assert status in (128 + signal.SIGPIPE, 0)


# echo -------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [[], ["--asyncio"]], ids=["threads", "asyncio"])
def test_echo_server_serves_until_terminated(layer):
    with running("echo", "--port", "0", *layer) as process:
        first = read_line(process.stdout)
        assert codec_words(wsfast.IMPLEMENTATION == "c") in first
        url = re.search(r"ws://\S+", first).group(0)
        with connect(url, timeout=TIMEOUT) as ws:
            ws.send("through a subprocess")
            assert ws.recv(timeout=TIMEOUT) == "through a subprocess"
        process.terminate()
        assert exit_status(process, "SIGTERM") == 0


def test_echo_server_with_a_certificate(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    files = ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")]
    with running("echo", "--port", "0", *files) as process:
        url = re.search(r"wss://\S+", read_line(process.stdout)).group(0)
        with connect(url, ssl=context, timeout=TIMEOUT) as ws:
            ws.send("secure subprocess")
            assert ws.recv(timeout=TIMEOUT) == "secure subprocess"


@pytest.mark.skipif(not POSIX, reason="needs SIGINT")
@pytest.mark.parametrize("layer", [[], ["--asyncio"]], ids=["threads", "asyncio"])
def test_echo_server_exits_cleanly_on_ctrl_c(layer):
    with running("echo", "--port", "0", *layer, ctrl_c=True) as process:
        read_line(process.stdout)
        process.send_signal(signal.SIGINT)
        assert exit_status(process, "SIGINT") == 0
        assert "Traceback" not in process.stderr.read()


@pytest.mark.parametrize("layer", [[], ["--asyncio"]], ids=["threads", "asyncio"])
def test_echo_reports_a_port_in_use(layer):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = run("echo", "--port", port, *layer)
    assert_error(result, 1, f"127.0.0.1:{port}", "in use")


def test_echo_reports_missing_and_unusable_certificate_files(tmp_path):
    missing = str(tmp_path / "missing.pem")
    assert_error(run("echo", "--port", "0", "--tls-cert", missing), 2, "--tls-cert", missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert_error(run("echo", "--port", "0", "--tls-cert", str(junk)), 2, str(junk), "PEM")
    assert_error(run("echo", "--port", "0", "--tls-cert", str(junk), "--tls-key", missing), 2, "--tls-key", missing)
    assert_error(run("echo", "--port", "0", "--tls-key", str(junk)), 2, "--tls-cert")


# connect ----------------------------------------------------------------------------


def test_connect_sends_stdin_lines_and_prints_replies():
    with serve() as server:
        result = run("connect", f"ws://127.0.0.1:{server.port}/", "--header", "X-Test: 1", input="hello\nwörld\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello", "wörld"]
    assert "connection closed: 1000" in result.stderr


def test_connect_reports_unreachable_servers():
    with serve() as server:
        port = server.port
    assert_error(run("connect", f"ws://127.0.0.1:{port}/"), 1, "cannot connect", "refused")


def test_connect_reports_bad_urls():
    assert_error(run("connect", "http://127.0.0.1:1/"), 2, "not a WebSocket URL")
    assert_error(run("connect", "ws://127.0.0.1:1/#fragment"), 2, "fragment")


@contextlib.contextmanager
def rejecting_server(status_line: bytes = b"HTTP/1.1 404 Not Found"):
    """A local HTTP server answering one upgrade request with ``status_line``; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def answer() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as client:
            client.settimeout(TIMEOUT)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            client.sendall(status_line + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(TIMEOUT)


def test_connect_reports_a_rejected_handshake():
    with rejecting_server() as port:
        result = run("connect", f"ws://127.0.0.1:{port}/")
    assert_error(result, 1, "HTTP 404")


def test_connect_rejects_malformed_headers():
    assert_error(run("connect", "ws://127.0.0.1:1/", "--header", "no colon"), 2, "NAME:VALUE")


@pytest.mark.skipif(not POSIX, reason="needs SIGINT")
def test_connect_exits_with_130_on_ctrl_c():
    with serve() as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with running("connect", url, ctrl_c=True, stdin=subprocess.PIPE) as process:
            assert "connected to" in read_line(process.stderr)
            process.send_signal(signal.SIGINT)
            assert exit_status(process, "SIGINT") == 130
            assert "Traceback" not in process.stderr.read()


# connect over TLS: --ca and --insecure ------------------------------------------------


@pytest.fixture(scope="module")
def tls_echo(tmp_path_factory):
    """A wss:// echo server with a certificate from a throwaway CA; yields (url, CA file)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with serve(ssl=context) as server:
        yield f"wss://127.0.0.1:{server.port}/", str(ca_file)


def test_connect_verifies_with_the_ca_given(tls_echo):
    url, ca_file = tls_echo
    result = run("connect", url, "--ca", ca_file, input="over TLS\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["over TLS"]
    assert "warning" not in result.stderr


def test_connect_explains_a_failed_verification(tls_echo):
    url, _ = tls_echo
    line = assert_error(run("connect", url, input=""), 1, "verification")
    assert line.endswith("pass --ca FILE with the server's CA, or --insecure to skip verification")


def test_connect_insecure_says_so_once(tls_echo):
    url, _ = tls_echo
    result = run("connect", url, "--insecure", input="unverified\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["unverified"]
    assert result.stderr.count("not verified") == 1


def test_connect_reports_unusable_ca_files(tls_echo, tmp_path):
    url, ca_file = tls_echo
    missing = str(tmp_path / "missing.pem")
    assert_error(run("connect", url, "--ca", missing), 2, "--ca", missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert_error(run("connect", url, "--ca", str(junk)), 2, str(junk), "PEM")
    assert_error(run("connect", url.replace("wss:", "ws:"), "--ca", ca_file), 2, "wss://")


# bench ------------------------------------------------------------------------------


def test_bench_names_the_package_to_install(monkeypatch):
    from wsfast.bench.worker import _guarded

    def importing(name):
        return lambda: __import__(name)

    monkeypatch.setitem(sys.modules, "picows", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "websocket", None)
    picows = _guarded(importing("picows"))["skip"]
    websocket_client = _guarded(importing("websocket"))["skip"]
    assert picows.startswith("picows: not installed (pip install ")
    assert websocket_client.startswith("websocket-client: not installed (pip install ")
    assert "'wsfast[bench]'" in picows or "pip install picows" in picows
