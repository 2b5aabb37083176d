"""Send a message to an echo server and print the answer, with the blocking client.

    python -m wsfast echo &          # an echo server on ws://127.0.0.1:7681/
    python examples/hello.py [URL]

URL defaults to that echo server.
"""

import sys

import wsfast

url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:7681/"

with wsfast.connect(url) as ws:  # closes the connection at the end of the block
    ws.send("Hello, world")  # str: a text message; bytes: a binary one
    print(ws.recv(timeout=10))  # the next message: str or bytes
