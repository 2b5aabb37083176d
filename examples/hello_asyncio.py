"""Send a message to an echo server and print the answer, with the asyncio client.

    python -m wsfast echo &          # an echo server on ws://127.0.0.1:7681/
    python examples/hello_asyncio.py [URL]

URL defaults to that echo server.
"""

import asyncio
import sys

import wsfast.asyncio

url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:7681/"


async def main() -> None:
    async with wsfast.asyncio.connect(url) as ws:  # closes the connection at the end
        await ws.send("Hello, world")  # str: a text message; bytes: a binary one
        print(await ws.recv(timeout=10))  # the next message: str or bytes


asyncio.run(main())
