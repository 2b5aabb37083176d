"""An echo server with the blocking API: one thread per client.

    python examples/echo_server.py [--port 8765] [--certfile cert.pem --keyfile key.pem] [--duration S]

With a certificate it serves ``wss://``. It stops on Ctrl-C, on SIGTERM and after
``--duration`` seconds, sending every client a 1001 (going away) first.
"""

import argparse
import signal
import ssl
import threading

import wsfast


def handler(ws: wsfast.ServerConnection) -> None:
    print(f"client {ws.remote_address[0]} connected to {ws.path}", flush=True)
    for message in ws:  # ends when the client closes
        ws.send(message)  # text comes back as text, binary as binary


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS context for a server: its certificate chain and private key (PEM files)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Echo every WebSocket message back.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--certfile", help="PEM certificate chain: serve wss://")
    parser.add_argument("--keyfile", help="PEM private key, if not in --certfile")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)

    context = server_context(args.certfile, args.keyfile) if args.certfile else None
    server = wsfast.serve(handler, args.host, args.port, ssl=context, max_connections=1000)
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    if args.duration is not None:
        timer = threading.Timer(args.duration, server.close)
        timer.daemon = True  # not to outlive the server
        timer.start()
    scheme = "wss" if context else "ws"
    print(f"echo server listening on {scheme}://{args.host}:{server.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
