"""The command line: ``python -m wsfast demo | echo | connect | bench``.

Mistakes and failures are reported in one line on stderr, ``wsfast: error: ...``, with
exit status 2 for a mistake in the command line (a bad option, URL or file given) and 1
for a failure at run time (a port in use, a server that refuses or fails verification).
Ctrl-C exits with 130 (except for ``echo``, which it stops normally: 0), and output cut
short by a closed pipe (``python -m wsfast demo | head -1``) with 141, quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import platform
import re
import signal
import ssl
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from . import __version__, codec_info
from .client import connect
from .enums import Opcode
from .exceptions import ConnectionClosed, InvalidURI, WebSocketError
from .server import serve

if TYPE_CHECKING:
    from ._codec import Frame
    from .client import Client

__all__ = ["main"]

_DEMO_TEXT = " ".join(f"Message part {i:02}: wsfast splits long messages into frames." for i in range(1, 36))
_DEMO_FRAME_SIZE = 256

USAGE = 2  # the command line is wrong: bad option, URL or file
FAILURE = 1  # the command line is fine, but what it asked for failed
INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
BROKEN_PIPE = 141  # 128 + SIGPIPE, as for a process that SIGPIPE ended


class _Error(Exception):
    """A mistake or failure reported as one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = FAILURE) -> None:
        super().__init__(message)
        self.status = status


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        status = _run(argv)
        sys.stdout.flush()  # inside the try: a closed pipe may only show here
    except _Error as exc:
        print(f"wsfast: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``). Point stdout at devnull, so that the final
        # flush at exit cannot fail again and print a second error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    return status


def _run(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:  # the benchmark runner parses its own options, --help included
        return _bench(argv[1:])
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.run is _bench_command:  # after -v: what follows bench is the runner's
        args.options = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.verbose:
        logging.basicConfig(format="%(asctime)s %(threadName)s %(message)s")
        logging.getLogger("wsfast").setLevel(logging.DEBUG)
    status: int = args.run(args)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsfast",
        description=f"wsfast {__version__}: a fast, correct WebSocket (RFC 6455) library ({_codec_description()}).",
        epilog="exit status: 0 done, 1 failed, 2 bad command line, 130 Ctrl-C, 141 output pipe closed",
    )
    parser.add_argument(
        "--version", action="version", version=_version_line(), help="show the version and the codec in use"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections and handshakes to stderr")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="echo a fragmented message through a local server and show the frames")
    demo.add_argument("--tls", action="store_true", help="use wss:// with a throwaway certificate (needs trustme)")
    demo.set_defaults(run=_demo)

    echo = commands.add_parser("echo", help="run an echo server until Ctrl-C")
    echo.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    echo.add_argument("--port", type=_port, default=7681, help="port to listen on, 0 for any (default: %(default)s)")
    echo.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve wss://")
    echo.add_argument("--tls-key", metavar="FILE", help="PEM private key (if not in --tls-cert)")
    echo.add_argument(
        "--max-frame-size", type=_positive, metavar="BYTES", help="split echoed messages into frames this big"
    )
    echo.add_argument("--no-compression", action="store_true", help="decline permessage-deflate")
    echo.add_argument("--asyncio", action="store_true", help="serve with wsfast.asyncio instead of a thread per client")
    echo.set_defaults(run=_echo)

    client = commands.add_parser("connect", help="send lines from stdin, print what comes back")
    client.add_argument("url", help="ws:// or wss:// URL")
    client.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="extra request header")
    client.add_argument("--subprotocol", action="append", default=[], metavar="NAME", help="subprotocol to offer")
    trust = client.add_mutually_exclusive_group()
    trust.add_argument("--ca", metavar="FILE", help="verify the server's certificate with this PEM CA bundle")
    trust.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    client.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    client.add_argument(
        "--linger",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="after the end of input, wait this long for replies before closing (default: %(default)s)",
    )
    client.set_defaults(run=_connect)

    bench = commands.add_parser(
        "bench", add_help=False, help="compare wsfast with other Python WebSocket clients (see bench --help)"
    )
    bench.set_defaults(run=_bench_command)
    return parser


def _bench_command(args: argparse.Namespace) -> int:
    return _bench(args.options)


def _bench(argv: list[str]) -> int:
    from .bench.runner import main as bench_main

    return bench_main(argv)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(port)
    return port


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError(number)
    return number


_port.__name__ = "port"  # argparse names the type in its message: "invalid port value"
_positive.__name__ = "positive integer"


# the codec in use -------------------------------------------------------------------


def _version_line() -> str:
    """``wsfast 0.1.0 (compiled codec, avx2 masking; Python 3.11.7)``."""
    return f"wsfast {__version__} ({_codec_description()}; Python {platform.python_version()})"


def _codec_description() -> str:
    """The codec in use, in words: ``compiled codec, avx2 masking`` or
    ``pure-Python codec: WSFAST_NO_EXTENSIONS is set``."""
    info = codec_info()
    if not info.compiled:
        return f"pure-Python codec: {info.reason}"
    return f"compiled codec, {info.kernel} masking"


# demo -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    server_context = client_context = None
    if args.tls:
        try:
            server_context, client_context = _throwaway_tls()
        except ImportError:
            raise _Error("demo --tls needs trustme for a throwaway certificate: pip install trustme") from None
    scheme = "wss" if args.tls else "ws"
    # The server splits its echoes at the same size, so the reply comes back in frames too.
    # Compression is off: it would shrink this repetitive text into a single frame.
    with serve(ssl=server_context, max_frame_size=_DEMO_FRAME_SIZE, compression=None) as server:
        url = f"{scheme}://127.0.0.1:{server.port}/"
        print(f"echo server listening on {url} (wsfast {__version__}, {_codec_description()})", flush=True)
        # The server is this process's own: no proxy of the environment could reach it.
        with connect(url, ssl=client_context, proxy=None, max_frame_size=_DEMO_FRAME_SIZE, compression=None) as ws:
            if ws.certificate is not None:
                cert = ws.certificate
                print(f"server certificate: {cert.subject}, issued by {cert.issuer}, expires {cert.not_after:%Y-%m-%d}")
            frames = -(-len(_DEMO_TEXT.encode()) // _DEMO_FRAME_SIZE)
            size = len(_DEMO_TEXT)
            print(f"sending a {size}-character text message in {frames} frames of at most {_DEMO_FRAME_SIZE} bytes")
            ws.send(_DEMO_TEXT)
            print("frames echoed back:")
            received: list[bytes] = []
            while True:
                frame = ws.recv_frame(timeout=10)
                print("  " + _describe(frame))
                received.append(frame.payload)
                if frame.fin:
                    break
            same = b"".join(received) == _DEMO_TEXT.encode()
            print(f"reassembled message {'matches' if same else 'DIFFERS FROM'} what was sent")
            print('closing with 1000 "good bye"')
            ws.close(1000, "good bye")
            frame = ws.recv_frame(timeout=10)
            print(f"  {_describe(frame)}")
        print(f"connection {ws.state.name}: server's close code {ws.close_code}")
    return 0 if same and ws.close_code == 1000 else FAILURE


def _describe(frame: Frame) -> str:
    name = Opcode(frame.opcode).name
    if frame.opcode == Opcode.CLOSE:
        return f"{name:<12} fin={frame.fin!s:<5} {len(frame):4} bytes  code={frame.close_code} reason={frame.text!r}"
    preview = frame.payload[:40].decode("utf-8", "replace")
    return f"{name:<12} fin={frame.fin!s:<5} {len(frame):4} bytes  {preview!r}..."


def _throwaway_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 from a one-off CA, and a client
    context that trusts that CA."""
    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


# echo -------------------------------------------------------------------------------


def _echo(args: argparse.Namespace) -> int:
    context = _server_tls(args.tls_cert, args.tls_key)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "ssl": context,
        "max_frame_size": args.max_frame_size,
        "compression": None if args.no_compression else "deflate",
    }
    if args.asyncio:
        return asyncio.run(_echo_asyncio(options))
    try:
        server = serve(**options)
    except OSError as exc:
        raise _cannot_listen(options, exc) from None
    # SIGTERM (what service managers send) stops the server as Ctrl-C does: every client
    # gets its 1001 before the process ends.
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    try:
        _print_listening(args.host, server.port, context)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


async def _echo_asyncio(options: dict[str, Any]) -> int:
    from .asyncio import serve as serve_asyncio

    try:
        server = await serve_asyncio(**options)
    except OSError as exc:
        raise _cannot_listen(options, exc) from None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.close)  # every client gets its 1001
    _print_listening(options["host"], server.port, options["ssl"])
    await server.serve_forever()
    return 0


def _cannot_listen(options: dict[str, Any], exc: OSError) -> _Error:
    where = f"{_bracketed(options['host'])}:{options['port']}"
    if exc.errno == errno.EADDRINUSE:
        return _Error(f"cannot listen on {where}: the port is in use (choose another --port, or 0 for any)")
    return _Error(f"cannot listen on {where}: {_reason(exc)}")


def _server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context for ``--tls-cert`` and ``--tls-key``, or None for ws://."""
    if cert is None:
        if key is not None:
            raise _Error("--tls-key needs --tls-cert", USAGE)
        return None
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None:
            _check_readable(option, path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        given = f"--tls-cert {cert}" + (f" --tls-key {key}" if key else "")
        raise _Error(f"{given}: not a PEM certificate chain and its private key ({_reason(exc)})", USAGE) from None
    return context


def _check_readable(option: str, path: str) -> None:
    """Fail with the file's name, which ssl's own errors leave out."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _Error(f"{option} {path}: {_reason(exc)}", USAGE) from None


def _print_listening(host: str, port: int, context: ssl.SSLContext | None) -> None:
    scheme = "wss" if context else "ws"
    print(
        f"echo server listening on {scheme}://{_bracketed(host)}:{port}/ ({_codec_description()}; Ctrl-C to stop)",
        flush=True,
    )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# connect ----------------------------------------------------------------------------


def _connect(args: argparse.Namespace) -> int:
    headers: list[tuple[str, str]] = []
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon:
            raise _Error(f"--header needs NAME:VALUE, not {header!r}", USAGE)
        headers.append((name.strip(), value.strip()))
    ws = _open(args, headers)
    details = []
    if ws.subprotocol:
        details.append(f"subprotocol {ws.subprotocol}")
    if ws.deflate_params:
        details.append("permessage-deflate")
    print(f"connected to {args.url}" + (f" ({', '.join(details)})" if details else ""), file=sys.stderr)
    # Lines are read in a helper thread, so that this one can notice the server closing.
    threading.Thread(target=_send_lines, args=(ws, args.linger), daemon=True).start()
    try:
        for message in ws:
            print(
                message if isinstance(message, str) else f"<binary {len(message)} bytes> {message[:64].hex()}",
                flush=True,
            )
    except ConnectionClosed as exc:
        raise _Error(f"the connection failed: {exc}") from None
    except KeyboardInterrupt:
        ws.close()  # the server still gets its close frame
        return INTERRUPTED
    print(f"connection closed: {ws.close_code} {ws.close_reason or ''}".rstrip(), file=sys.stderr)
    return 0


def _open(args: argparse.Namespace, headers: list[tuple[str, str]]) -> Client:
    """Connect as the options say, or fail with one line that says why."""
    context = _client_tls(args)
    try:
        return connect(
            args.url,
            headers=headers,
            subprotocols=args.subprotocol or None,
            ssl=context,
            compression=None if args.no_compression else "deflate",
        )
    except InvalidURI as exc:
        raise _Error(str(exc), USAGE) from None
    except ssl.SSLCertVerificationError as exc:
        raise _Error(
            f"cannot connect to {args.url}: the server's certificate failed verification ({exc.verify_message}); "
            "pass --ca FILE with the server's CA, or --insecure to skip verification"
        ) from None
    except (OSError, WebSocketError) as exc:
        raise _Error(f"cannot connect to {args.url}: {_reason(exc)}") from None


def _client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context for ``--ca`` or ``--insecure``; None for the system's CAs."""
    if not (args.ca or args.insecure):
        return None
    option = "--ca" if args.ca else "--insecure"
    if not args.url.lower().startswith("wss:"):
        raise _Error(f"{option} is for wss:// URLs only", USAGE)
    if args.insecure:
        print("wsfast: warning: --insecure: the server's certificate is not verified", file=sys.stderr)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    _check_readable("--ca", args.ca)
    try:
        return ssl.create_default_context(cafile=args.ca)
    except ssl.SSLError as exc:
        raise _Error(f"--ca {args.ca}: not a PEM CA bundle ({_reason(exc)})", USAGE) from None


def _send_lines(ws: Client, linger: float) -> None:
    """Send each line of stdin as a text message; close the connection after the end of
    input, once replies in flight had ``linger`` seconds to arrive."""
    try:
        for line in sys.stdin:
            ws.send(line.rstrip("\r\n"))
    except ConnectionClosed:
        return
    time.sleep(linger)
    ws.close()


def _reason(exc: Exception) -> str:
    """An exception in words, without the ``[Errno 111]`` prefix of an OSError."""
    if isinstance(exc, ssl.SSLError):  # its errno is OpenSSL's, not the system's
        return re.sub(r" \(_ssl\.c:\d+\)$", "", str(exc))  # drop the C source line
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
