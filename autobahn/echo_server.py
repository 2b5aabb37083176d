"""The Autobahn echo server on wsfast's threaded server (``wsfast.serve``).

    python autobahn/echo_server.py PORT AGENT

It serves on 127.0.0.1:PORT until killed, sends every message back as it arrived (text
as text, binary as binary) and accepts permessage-deflate, so that kosoku's fuzzing
client (``kosoku -m fuzzingclient``) can run every case against it, the compression
groups 12 and 13 included. It prints nothing unless a connection handler fails. AGENT
names the run (kosoku names a server by its address). The codec twin is the one
``wsfast`` selects (``WSFAST_NO_EXTENSIONS=1`` forces the pure one).
"""

from __future__ import annotations

import argparse
import logging

import wsfast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("agent")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"{args.agent}: %(levelname)s %(message)s")
    # The fuzzing client fails a case on an unsolicited ping: no keepalive pings.
    server = wsfast.serve(host="127.0.0.1", port=args.port, ping_interval=None)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
