"""How many bytes the messages waiting to be received hold, without a count per message.

Messages join the queue a read at a time and leave it one by one, oldest first. The
backlog charges each read's messages with the bytes that read brought (or their exact
length) and forgets a read's charge once all its messages have left: so receiving a
message costs nothing here, and the estimate never falls below what is queued (it is
above by at most the part of one read already taken).
"""

from __future__ import annotations

import collections


class Backlog:
    """The bytes charged to the messages of a queue; ``nbytes`` is their sum."""

    __slots__ = ("_charges", "_messages", "nbytes")

    def __init__(self) -> None:
        self._charges: collections.deque[tuple[int, int]] = collections.deque()  # (messages, bytes), oldest first
        self._messages = 0  # messages charged and not yet forgotten
        self.nbytes = 0

    def charge(self, messages: int, nbytes: int) -> None:
        """``messages`` joined the end of the queue, holding ``nbytes`` in all."""
        self._charges.append((messages, nbytes))
        self._messages += messages
        self.nbytes += nbytes

    def settle(self, queued: int) -> int:
        """Forget the reads whose messages have all left a queue now ``queued`` long;
        return ``nbytes``."""
        taken = self._messages - queued
        charges = self._charges
        while charges and charges[0][0] <= taken:
            messages, nbytes = charges.popleft()
            taken -= messages
            self._messages -= messages
            self.nbytes -= nbytes
        return self.nbytes

    def reset(self, messages: int = 0, nbytes: int = 0) -> None:
        """The queue holds ``messages`` holding ``nbytes``, from now on one charge."""
        self._charges.clear()
        self._messages = self.nbytes = 0
        if messages:
            self.charge(messages, nbytes)
