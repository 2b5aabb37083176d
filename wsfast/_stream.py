"""Non-blocking byte streams under the blocking connections: TCP, or TLS over TCP.

A stream never blocks, but in a read asked to wait. Reading returns None when nothing is
ready; writing queues what the socket cannot take yet and :meth:`Stream.flush` sends as
much as it takes now. The connection waits with :func:`wait` (``poll``), always with a
deadline, and never while holding a lock, so a thread sending to a peer that stopped
reading delays no other thread; over plain TCP its reading thread may instead wait in the
read itself, a slice at a time (:meth:`Stream.wait_in_reads`).

For TLS, one read decrypts every record that is ready, where one call of an
``ssl.SSLSocket`` returns at most one record (16 KiB); a record that arrived only in part
waits inside the TLS layer, and a timeout holds meanwhile.
"""

from __future__ import annotations

import collections
import math
import select
import socket
import ssl as ssl_module
import struct
import sys
import threading
from time import monotonic
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Stream", "TLSStream", "open_stream", "seconds_until", "wait"]

# Decrypted bytes one TLS read returns at most: past this, the messages of one batch
# take more memory than the allocator keeps at hand, and 100-byte ones came a third
# more slowly (measured with 256 KiB to 1 MiB).
_TLS_BATCH = 256 * 1024
# SO_LINGER on, with no time to linger: close() resets the connection at once.
_LINGER_RESET = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
# What one send() call hands the kernel at most: larger slices only cost copying.
_SEND_SLICE = 4 * 1024 * 1024
# A plain TCP stream's reading thread may wait inside recv() itself (SO_RCVTIMEO on a
# blocking socket, every other call made with MSG_DONTWAIT): one system call per read
# instead of poll() and then recv(). It waits at most this long at a time, then the
# caller looks at its deadline again; it polls for waits shorter than this.
READ_SLICE = 1.0
_CAN_WAIT_IN_READ = sys.platform != "win32" and hasattr(socket, "MSG_DONTWAIT") and hasattr(socket, "SO_RCVTIMEO")
_TIMEVAL_SLICE = struct.pack("ll", int(READ_SLICE), int(READ_SLICE % 1 * 1e6))


if hasattr(select, "poll"):

    def wait(sock: socket.socket, timeout: float | None, *, read: bool = True, write: bool = False) -> bool:
        """Wait until ``sock`` is readable (with ``read``) or writable (with ``write``), at
        most ``timeout`` seconds (None: no limit); False on timeout. A closed socket
        counts as ready: the next call on it reports what happened."""
        fd = sock.fileno()
        if fd < 0:
            return True
        poller = select.poll()
        poller.register(fd, (select.POLLIN if read else 0) | (select.POLLOUT if write else 0))
        return bool(poller.poll(_poll_milliseconds(timeout)))

    def _poll_milliseconds(timeout: float | None) -> int | None:
        # poll() counts whole milliseconds; rounding up never wakes before the deadline.
        return None if timeout is None else math.ceil(timeout * 1000)

else:  # Windows

    def wait(sock: socket.socket, timeout: float | None, *, read: bool = True, write: bool = False) -> bool:
        """Wait until ``sock`` is readable (with ``read``) or writable (with ``write``)."""
        try:
            readable, writable, _ = select.select([sock] if read else [], [sock] if write else [], [], timeout)
        except (OSError, ValueError):
            return True  # closed meanwhile: the next call on it reports that
        return bool(readable or writable)


def seconds_until(deadline: float) -> float | None:
    """What :func:`wait` takes for a ``monotonic()`` deadline (None when infinite)."""
    return None if deadline == math.inf else max(deadline - monotonic(), 0.0)


class Stream:
    """A connected TCP socket in non-blocking mode, with a queue of bytes to send.

    Reading belongs to one thread at a time; :meth:`write` and :meth:`flush` may be called
    from any thread (they take the stream's own lock, never while waiting).
    """

    tls = False
    write_needs_read = False  # a TLS write waits for the peer's handshake data first
    waits_in_read = False  # read_into(wait=True) waits up to READ_SLICE (see wait_in_reads())

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._dont_wait = 0  # the flags of every call that must not wait: MSG_DONTWAIT once reads may
        self.sock = sock
        self._lock = threading.Lock()  # guards the queue (and the TLS object)
        self._queue: collections.deque[memoryview] = collections.deque()
        self._queued = 0  # bytes ever queued
        self._sent = 0  # bytes ever sent
        self._poller = select.poll() if hasattr(select, "poll") else None  # for wait_readable()
        self._poll_mask = 0  # what the poller waits for on the socket (0: not registered)

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> Any:  # an address as the socket module gives it
        return self.sock.getsockname()

    def getpeername(self) -> Any:
        return self.sock.getpeername()

    def wait_in_reads(self) -> None:
        """Let :meth:`read_into` and :meth:`read_into_pair` wait inside the system call
        when asked to (plain TCP where the platform allows; otherwise nothing changes):
        the socket becomes blocking, with a receive timeout of READ_SLICE, and every
        other call on it is made with MSG_DONTWAIT."""
        if not _CAN_WAIT_IN_READ or self.tls:
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL_SLICE)
        except OSError:
            return  # an unusual socket: it keeps polling
        self._dont_wait = socket.MSG_DONTWAIT
        self.sock.setblocking(True)
        self.waits_in_read = True

    # Reading -----------------------------------------------------------------------

    def wait_readable(self, timeout: float | None, *, write: bool = False) -> bool:
        """:func:`wait` for the reading thread (only one at a time), which keeps its poll
        object from one call to the next instead of making one per wait."""
        poller = self._poller
        fd = self.sock.fileno()
        if poller is None or fd < 0:
            return wait(self.sock, timeout, write=write)
        mask = select.POLLIN | (select.POLLOUT if write else 0)
        if self._poll_mask != mask:
            if self._poll_mask:
                poller.modify(fd, mask)
            else:
                poller.register(fd, mask)
            self._poll_mask = mask
        return bool(poller.poll(_poll_milliseconds(timeout)))

    @property
    def buffered(self) -> bool:
        """True when bytes may be readable without waiting for the socket."""
        return False

    def read_into(self, view: Buffer, *, wait: bool = False) -> int | None:
        """Read into ``view``; the byte count, 0 at the end of the stream, None when
        nothing is ready. Raises OSError when the connection broke. With ``wait``, on a
        stream that :attr:`waits_in_read`, it waits up to READ_SLICE for bytes first."""
        try:
            return self.sock.recv_into(view, 0, 0 if wait else self._dont_wait)
        except BlockingIOError:  # nothing yet (or the slice passed)
            return None

    def read_into_pair(self, first: memoryview, second: memoryview, *, wait: bool = False) -> int | None:
        """Like :meth:`read_into`, filling ``first`` before ``second`` in one call."""
        if not hasattr(self.sock, "recvmsg_into"):  # Windows
            return self.read_into(first, wait=wait)
        try:
            return self.sock.recvmsg_into([first, second], 0, 0 if wait else self._dont_wait)[0]
        except BlockingIOError:
            return None

    # Writing -----------------------------------------------------------------------

    def write(self, data: Buffer) -> int:
        """Queue ``data`` to be sent; return the stream position it ends at (see :attr:`sent`).

        When nothing else waits, what the socket takes now is sent right away: the usual
        case costs no queueing. A broken connection is reported by the next :meth:`flush`.
        """
        with self._lock:
            if self._queue or not data:
                return self._enqueue(data)
            view = memoryview(data).cast("B")
            try:
                count = self.sock.send(view[:_SEND_SLICE], self._dont_wait)
            except OSError:  # full (flush() retries), or broken (flush() raises)
                count = 0
            self._queued += count
            self._sent += count
            return self._enqueue(view[count:]) if count < len(view) else self._queued

    def _enqueue(self, data: Buffer) -> int:
        if data:
            self._queue.append(memoryview(data).cast("B"))
            self._queued += len(self._queue[-1])
        return self._queued

    @property
    def sent(self) -> int:
        """How many queued bytes the kernel has taken so far."""
        return self._sent

    @property
    def unsent(self) -> int:
        """How many queued bytes still wait to be sent."""
        return self._queued - self._sent

    def flush(self) -> bool:
        """Send what the socket takes now, without waiting; True once nothing is left.

        Raises OSError when the connection broke.
        """
        with self._lock:
            queue = self._queue
            while queue:
                head = queue[0]
                try:
                    count = self.sock.send(head[:_SEND_SLICE], self._dont_wait)
                except BlockingIOError:
                    return False
                self._sent += count
                if count == len(head):
                    queue.popleft()
                else:
                    queue[0] = head[count:]
            return True

    # Ending ------------------------------------------------------------------------

    def shutdown_write(self) -> None:
        """Tell the peer nothing more will be sent (TCP FIN)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def abort(self) -> None:
        """End both directions now; a thread waiting on the socket wakes up. The close
        that follows resets the connection: what the peer did not take is dropped, not
        kept by the kernel for a peer that may never read it."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()

    # Blocking helpers for the opening handshake, before other threads see the stream.

    def send_all(self, data: Buffer, deadline: float) -> None:
        """Send ``data`` whole by the ``monotonic()`` ``deadline`` (TimeoutError)."""
        self.write(data)
        while not self.flush():
            if not wait(self.sock, seconds_until(deadline), read=False, write=True):
                raise TimeoutError("timed out sending")

    def receive_some(self, deadline: float, size: int = 65536) -> bytes:
        """Return the next bytes that arrive by ``deadline`` (TimeoutError); b"" at the end."""
        buffer = bytearray(size)
        while True:
            count = self.read_into(buffer)
            if count is not None:
                return bytes(buffer[:count])
            if not wait(self.sock, seconds_until(deadline)):
                raise TimeoutError("timed out receiving")


class TLSStream(Stream):
    """TLS over a non-blocking TCP socket (an ``ssl.SSLSocket``); create it with
    :func:`open_stream`, which runs the TLS handshake.

    The TLS object is not safe to use from two threads at once: the stream's lock guards
    it, and is only ever held for calls that cannot block.
    """

    tls = True
    sock: ssl_module.SSLSocket

    def __init__(
        self, sock: socket.socket, context: ssl_module.SSLContext, *, server_side: bool, server_hostname: str | None
    ) -> None:
        sock = context.wrap_socket(
            sock, server_side=server_side, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        super().__init__(sock)
        self.ssl_object = sock
        self._eof = False  # the TLS stream ended

    def write(self, data: Buffer) -> int:
        # Only queued: a TLS write that would block must be retried with the very same
        # bytes, which flush() does from the queue.
        with self._lock:
            return self._enqueue(data)

    def handshake(self, deadline: float) -> None:
        """Run the TLS handshake by ``deadline`` (TimeoutError); raises ssl.SSLError (e.g.
        ssl.SSLCertVerificationError) or OSError when it fails."""
        while True:
            try:
                self.sock.do_handshake()
                return
            except ssl_module.SSLWantReadError:
                ready = wait(self.sock, seconds_until(deadline))
            except ssl_module.SSLWantWriteError:
                ready = wait(self.sock, seconds_until(deadline), read=False, write=True)
            if not ready:
                raise TimeoutError("timed out in the TLS handshake")

    @overload
    def getpeercert(self, binary_form: Literal[False] = ...) -> dict[str, Any] | None: ...
    @overload
    def getpeercert(self, binary_form: Literal[True]) -> bytes | None: ...
    @overload
    def getpeercert(self, binary_form: bool) -> dict[str, Any] | bytes | None: ...

    def getpeercert(self, binary_form: bool = False) -> dict[str, Any] | bytes | None:
        return self.sock.getpeercert(binary_form)

    @property
    def buffered(self) -> bool:
        return self._eof or self.sock.pending() > 0

    def read_into(self, view: Buffer, *, wait: bool = False) -> int | None:  # TLS never waits in reads
        """Decrypt every TLS record that is ready into ``view`` (one call of the socket's
        reads at most one record); the byte count, 0 at the end, None when none is ready."""
        view = memoryview(view)  # slices of it are where records go, not copies
        filled = 0
        size = min(len(view), _TLS_BATCH)
        sock = self.sock
        with self._lock:
            try:
                while filled < size:
                    count = sock.recv_into(view[filled:])
                    if not count:
                        self._eof = True
                        break
                    filled += count
            except (ssl_module.SSLWantReadError, ssl_module.SSLWantWriteError):
                pass
            except (ssl_module.SSLZeroReturnError, ssl_module.SSLEOFError):
                self._eof = True  # closed, cleanly or not: the end of the stream either way
        if filled:
            return filled
        return 0 if self._eof else None

    def read_into_pair(self, first: memoryview, second: memoryview, *, wait: bool = False) -> int | None:
        count = self.read_into(first)
        if count == len(first):  # the payload's window is full: go on into the read buffer
            more = self.read_into(second)
            if more:
                count += more
        return count

    def flush(self) -> bool:
        # A TLS write that would block has sent part of its records already: it must be
        # retried with the very same bytes, which the queue's head still holds.
        with self._lock:
            queue = self._queue
            while queue:
                head = queue[0][:_SEND_SLICE]
                try:
                    count = self.sock.send(head)
                except ssl_module.SSLWantWriteError:
                    return False
                except ssl_module.SSLWantReadError:  # a renegotiation: the peer speaks first
                    self.write_needs_read = True
                    return False
                self.write_needs_read = False
                self._sent += count
                if count == len(queue[0]):
                    queue.popleft()
                else:
                    queue[0] = queue[0][count:]
            return True

    def shutdown_write(self) -> None:
        """Send TLS close_notify, then TCP FIN."""
        with self._lock:
            try:
                self.sock.unwrap()
            except (OSError, ValueError):
                pass  # SSLWantReadError: the peer's close_notify is not awaited
        # socket.socket's own shutdown: SSLSocket.shutdown would drop the TLS state, and
        # with it the decryption of what the peer still sends.
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            pass


def open_stream(
    sock: socket.socket,
    ssl: ssl_module.SSLContext | None,
    deadline: float,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
) -> Stream:
    """A stream over the connected ``sock``: plain, or with ``ssl`` TLS after its handshake
    (by the ``monotonic()`` ``deadline``). The socket is closed when the handshake fails."""
    if ssl is None:
        return Stream(sock)
    stream = TLSStream(sock, ssl, server_side=server_side, server_hostname=server_hostname)
    try:
        stream.handshake(deadline)
    except BaseException:
        sock.close()
        raise
    return stream
