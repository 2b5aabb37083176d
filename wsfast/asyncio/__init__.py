"""The asyncio WebSocket client and server.

::

    async with wsfast.asyncio.connect("wss://example.com/feed") as ws:
        await ws.send("subscribe")
        async for message in ws:
            ...

    async with wsfast.asyncio.serve(handler, "127.0.0.1", 8765) as server:
        await server.serve_forever()

``connection`` holds the open connection both roles share, ``client`` and ``server``
what is particular to each.
"""

from .client import Client, connect
from .connection import WebSocket
from .server import Server, ServerConnection, serve

__all__ = ["Client", "Server", "ServerConnection", "WebSocket", "connect", "serve"]
