"""The asyncio WebSocket client.

::

    async with wsfast.asyncio.connect("wss://example.com/feed") as ws:
        await ws.send("subscribe")
        async for message in ws:
            ...
"""

from .client import Client, connect

__all__ = ["Client", "connect"]
