"""The command line: ``python -m wsfast demo | echo | connect | bench``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
import threading
import time

from . import IMPLEMENTATION, __version__
from .client import connect
from .enums import Opcode
from .exceptions import ConnectionClosed, WebSocketError
from .server import serve

__all__ = ["main"]

_DEMO_TEXT = " ".join(f"Message part {i:02}: wsfast splits long messages into frames." for i in range(1, 36))
_DEMO_FRAME_SIZE = 256


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark runner parses its own options
        from .bench.runner import main as bench_main

        return bench_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(format="%(asctime)s %(threadName)s %(message)s")
        logging.getLogger("wsfast").setLevel(logging.DEBUG)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsfast",
        description=f"wsfast {__version__}: a fast, correct WebSocket (RFC 6455) library ({IMPLEMENTATION} codec).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections and handshakes to stderr")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="echo a fragmented message through a local server and show the frames")
    demo.add_argument("--tls", action="store_true", help="use wss:// with a throwaway certificate (needs trustme)")
    demo.set_defaults(run=_demo)

    echo = commands.add_parser("echo", help="run an echo server until Ctrl-C")
    echo.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    echo.add_argument("--port", type=int, default=7681, help="port to listen on, 0 for any (default: %(default)s)")
    echo.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve wss://")
    echo.add_argument("--tls-key", metavar="FILE", help="PEM private key (if not in --tls-cert)")
    echo.add_argument("--max-frame-size", type=int, metavar="BYTES", help="split echoed messages into frames this big")
    echo.add_argument("--no-compression", action="store_true", help="decline permessage-deflate")
    echo.add_argument("--asyncio", action="store_true", help="serve with wsfast.asyncio instead of a thread per client")
    echo.set_defaults(run=_echo)

    client = commands.add_parser("connect", help="send lines from stdin, print what comes back")
    client.add_argument("url", help="ws:// or wss:// URL")
    client.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="extra request header")
    client.add_argument("--subprotocol", action="append", default=[], metavar="NAME", help="subprotocol to offer")
    client.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    client.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    client.add_argument(
        "--linger",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="after the end of input, wait this long for replies before closing (default: %(default)s)",
    )
    client.set_defaults(run=_connect)

    commands.add_parser("bench", help="compare wsfast with other Python WebSocket clients (see bench --help)")
    return parser


# demo -------------------------------------------------------------------------------


def _demo(args) -> int:
    server_context = client_context = None
    if args.tls:
        try:
            server_context, client_context = _throwaway_tls()
        except ImportError:
            print("demo --tls needs trustme for a throwaway certificate: pip install trustme", file=sys.stderr)
            return 2
    scheme = "wss" if args.tls else "ws"
    # The server splits its echoes at the same size, so the reply comes back in frames too.
    # Compression is off: it would shrink this repetitive text into a single frame.
    with serve(ssl=server_context, max_frame_size=_DEMO_FRAME_SIZE, compression=None) as server:
        url = f"{scheme}://127.0.0.1:{server.port}/"
        print(f"echo server listening on {url} (wsfast {__version__}, {IMPLEMENTATION} codec)")
        # The server is this process's own: no proxy of the environment could reach it.
        with connect(url, ssl=client_context, proxy=None, max_frame_size=_DEMO_FRAME_SIZE, compression=None) as ws:
            if ws.certificate is not None:
                cert = ws.certificate
                print(f"server certificate: {cert.subject}, issued by {cert.issuer}, expires {cert.not_after:%Y-%m-%d}")
            frames = -(-len(_DEMO_TEXT.encode()) // _DEMO_FRAME_SIZE)
            print(
                f"sending a {len(_DEMO_TEXT)}-character text message in {frames} frames of at most {_DEMO_FRAME_SIZE} bytes"
            )
            ws.send(_DEMO_TEXT)
            print("frames echoed back:")
            received = []
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
    return 0 if same and ws.close_code == 1000 else 1


def _describe(frame) -> str:
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


def _echo(args) -> int:
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    elif args.tls_key:
        print("--tls-key needs --tls-cert", file=sys.stderr)
        return 2
    if args.asyncio:
        return asyncio.run(_echo_asyncio(args, context))
    server = serve(
        host=args.host,
        port=args.port,
        ssl=context,
        max_frame_size=args.max_frame_size,
        compression=None if args.no_compression else "deflate",
    )
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


async def _echo_asyncio(args, context) -> int:
    from .asyncio import serve as serve_asyncio

    server = await serve_asyncio(
        host=args.host,
        port=args.port,
        ssl=context,
        max_frame_size=args.max_frame_size,
        compression=None if args.no_compression else "deflate",
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.close)  # every client gets its 1001
    _print_listening(args.host, server.port, context)
    await server.serve_forever()
    return 0


def _print_listening(host: str, port: int, context) -> None:
    scheme = "wss" if context else "ws"
    host = f"[{host}]" if ":" in host else host
    print(f"echo server listening on {scheme}://{host}:{port}/ (Ctrl-C to stop)", flush=True)


# connect ----------------------------------------------------------------------------


def _connect(args) -> int:
    headers = []
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon:
            print(f"--header needs NAME:VALUE, not {header!r}", file=sys.stderr)
            return 2
        headers.append((name.strip(), value.strip()))
    context = None
    if args.url.lower().startswith("wss:") and args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        ws = connect(
            args.url,
            headers=headers,
            subprotocols=args.subprotocol or None,
            ssl=context,
            compression=None if args.no_compression else "deflate",
        )
    except (OSError, WebSocketError) as exc:
        print(f"cannot connect: {exc}", file=sys.stderr)
        return 1
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
        print(f"connection closed with an error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        ws.close()
    print(f"connection closed: {ws.close_code} {ws.close_reason or ''}".rstrip(), file=sys.stderr)
    return 0


def _send_lines(ws, linger: float) -> None:
    """Send each line of stdin as a text message; close the connection after the end of
    input, once replies in flight had ``linger`` seconds to arrive."""
    try:
        for line in sys.stdin:
            ws.send(line.rstrip("\r\n"))
    except ConnectionClosed:
        return
    time.sleep(linger)
    ws.close()
