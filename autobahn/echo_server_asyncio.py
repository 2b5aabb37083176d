"""The Autobahn echo server on wsfast's asyncio server (``wsfast.asyncio.serve``).

    python autobahn/echo_server_asyncio.py PORT AGENT

It serves on 127.0.0.1:PORT until killed, sends every message back as it arrived (text
as text, binary as binary) and accepts permessage-deflate, so that kosoku's fuzzing
client (``kosoku -m fuzzingclient``) can run every case against it, the compression
groups 12 and 13 included. It prints nothing unless a connection handler fails. AGENT
names the run (kosoku names a server by its address). The codec twin is the one
``wsfast`` selects (``WSFAST_NO_EXTENSIONS=1`` forces the pure one).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import wsfast.asyncio


async def serve(port: int) -> None:
    # The fuzzing client fails a case on an unsolicited ping: no keepalive pings.
    async with wsfast.asyncio.serve(host="127.0.0.1", port=port, ping_interval=None) as server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("agent")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"{args.agent}: %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
