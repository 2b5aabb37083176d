"""A wss:// client that trusts a CA of your choosing and shows the server's certificate.

    python examples/tls_client.py [URL] [--cafile ca.pem] [--server-hostname NAME]

URL defaults to $ECHO_URL, else wss://127.0.0.1:8765/ (``examples/echo_server.py
--certfile ...``). Without ``--cafile`` the system's trusted CAs are used, as
``wsfast.connect`` does by default. It sends one message, prints the echo and closes.
"""

import argparse
import os
import ssl
import sys

import wsfast


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """Certificate and host name verification, against ``cafile`` or the system's CAs."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Connect over wss:// and show the server's certificate.")
    parser.add_argument("url", nargs="?", default=os.environ.get("ECHO_URL", "wss://127.0.0.1:8765/"))
    parser.add_argument("--cafile", help="PEM file of the CA certificates to trust")
    parser.add_argument("--server-hostname", help="the name to check the certificate against")
    args = parser.parse_args(argv)
    try:
        ws = wsfast.connect(args.url, ssl=client_context(args.cafile), server_hostname=args.server_hostname)
    except ssl.SSLCertVerificationError as exc:
        # verify_message says why: "unable to get local issuer certificate" (an unknown
        # CA), "certificate has expired", "Hostname mismatch, ..."
        print(f"the server's certificate was rejected: {exc.verify_message}", file=sys.stderr)
        return 1
    with ws:
        cert = ws.certificate
        if cert is None:  # a ws:// URL: no TLS, no certificate
            print(f"not a TLS connection: {args.url}", file=sys.stderr)
            return 1
        print(f"subject:     {cert.subject}")
        print(f"issuer:      {cert.issuer}")
        print(f"expires:     {cert.not_after:%Y-%m-%d %H:%M} UTC")
        print(f"fingerprint: {cert.sha1_fingerprint}")
        ws.send("hello over TLS")
        echo = ws.recv(timeout=10)  # text comes back as text: a str
        print(f"echo:        {echo if isinstance(echo, str) else echo.decode()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
