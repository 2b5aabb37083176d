"""wss://: certificates from a throwaway CA (trustme), checked the way a browser would."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import socket
import ssl
import threading

import pytest

from wsfast.client import CertificateInfo, connect
from wsfast.exceptions import InvalidHandshake
from wsfast.protocol import State
from wsfast.server import serve

trustme = pytest.importorskip("trustme")

TIMEOUT = 5


pytestmark = pytest.mark.usefixtures("no_hang")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def tls_server(server_context, codec):
    with serve(ssl=server_context, codec=codec) as server:
        yield server


def test_echo_over_tls(tls_server, client_context, codec):
    big = bytes(range(256)) * 8192  # 2 MiB: many TLS records per message
    with connect(f"wss://127.0.0.1:{tls_server.port}/", ssl=client_context, codec=codec) as ws:
        ws.send("secure ✓")
        assert ws.recv(timeout=TIMEOUT) == "secure ✓"
        ws.send(big)
        assert ws.recv(timeout=TIMEOUT) == big
        ws.ping(b"p")
        assert ws.recv_frame(timeout=TIMEOUT).payload == b"p"
    assert ws.state is State.CLOSED
    assert ws.close_code == 1000


def test_certificate_info(tls_server, client_context):
    with connect(f"wss://localhost:{tls_server.port}/", ssl=client_context) as ws:
        cert = ws.certificate
        der = ws._stream.getpeercert(binary_form=True)
    assert isinstance(cert, CertificateInfo)
    assert cert.subject.startswith("O=trustme")
    assert cert.issuer.startswith("O=trustme") and "Testing CA" in cert.issuer
    assert cert.subject != cert.issuer
    assert cert.serial_number and all(c in "0123456789ABCDEF" for c in cert.serial_number)
    assert cert.sha1_fingerprint == hashlib.sha1(der).hexdigest().upper()
    assert cert.not_after.tzinfo is datetime.timezone.utc
    assert cert.not_after > datetime.datetime.now(datetime.timezone.utc)


def test_certificate_info_without_verification(tls_server):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with connect(f"wss://127.0.0.1:{tls_server.port}/", ssl=context) as ws:
        cert = ws.certificate
    assert len(cert.sha1_fingerprint) == 40
    assert cert.subject is None and cert.not_after is None


def test_wrong_host_name_fails_verification(ca, client_context):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("example.org").configure_cert(context)
    with serve(ssl=context) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context, timeout=TIMEOUT)
        # The certificate is valid for the name given explicitly.
        with connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context, server_hostname="example.org") as ws:
            ws.send("named")
            assert ws.recv(timeout=TIMEOUT) == "named"


def test_untrusted_ca_fails_verification(tls_server):
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(f"wss://127.0.0.1:{tls_server.port}/", timeout=TIMEOUT)  # the system CAs only
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(f"wss://127.0.0.1:{tls_server.port}/", ssl=other, timeout=TIMEOUT)


def test_recv_timeout_and_concurrent_close_over_tls(tls_server, client_context):
    ws = connect(f"wss://127.0.0.1:{tls_server.port}/", ssl=client_context)
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.05)
    ws.send("still there")
    assert ws.recv(timeout=TIMEOUT) == "still there"
    closed = []
    reader = threading.Thread(target=lambda: closed.append(list(ws)))
    reader.start()
    ws.close()
    reader.join(TIMEOUT)
    assert closed == [[]]
    assert ws.state is State.CLOSED


class StallingRelay:
    """A TCP relay between the client and a server that, once ``stall()`` is called, passes
    on only the first bytes of what the server sends next (part of a TLS record) and holds
    the rest until ``release()``."""

    def __init__(self, port: int):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._server_port = port
        self._stall = threading.Event()
        self._release = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def stall(self):
        self._stall.set()

    def release(self):
        self._release.set()

    def _run(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self._server_port))
        threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
        while data := server.recv(65536):
            if self._stall.is_set() and not self._release.is_set():
                client.sendall(data[:3])
                self._release.wait()
                data = data[3:]
            client.sendall(data)
        # shutdown, not close: another thread is still reading this socket.
        client.shutdown(socket.SHUT_WR)

    @staticmethod
    def _pipe(source, target):
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)


def test_recv_timeout_holds_while_a_tls_record_arrives_in_pieces(tls_server, client_context):
    """Bytes that are only part of a TLS record must not make recv() wait past its timeout."""
    relay = StallingRelay(tls_server.port)
    with connect(f"wss://localhost:{relay.port}/", ssl=client_context, timeout=TIMEOUT) as ws:
        relay.stall()
        ws.send("in pieces")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        assert ws.state is State.OPEN

        # A send from another thread is not held up by the reader waiting meanwhile.
        def wait_in_vain() -> None:
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)

        waiting = threading.Thread(target=wait_in_vain)
        waiting.start()
        ws.send("second")
        waiting.join(TIMEOUT)
        relay.release()
        assert ws.recv(timeout=TIMEOUT) == "in pieces"  # the record was kept, not lost
        assert ws.recv(timeout=TIMEOUT) == "second"


def test_plain_client_against_tls_server_fails_cleanly(tls_server):
    # The server's TLS layer rejects the HTTP request: a reset, or EOF before any response.
    with pytest.raises((OSError, InvalidHandshake)) as info:
        connect(f"ws://127.0.0.1:{tls_server.port}/", timeout=TIMEOUT)
    assert not isinstance(info.value, TimeoutError)


@contextlib.contextmanager
def websockets_tls_server(context):
    ws_server = pytest.importorskip("websockets.sync.server")

    def echo(ws):
        for message in ws:
            ws.send(message)

    server = ws_server.serve(echo, "127.0.0.1", 0, ssl=context, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"wss://127.0.0.1:{server.socket.getsockname()[1]}/"
    finally:
        server.shutdown()
        thread.join(TIMEOUT)


def test_client_against_websockets_over_tls(server_context, client_context):
    with websockets_tls_server(server_context) as url, connect(url, ssl=client_context) as ws:
        ws.send("interop over TLS")
        assert ws.recv(timeout=TIMEOUT) == "interop over TLS"
        assert ws.certificate.subject.startswith("O=trustme")
