"""The asyncio connection's count of queued bytes: never below what waits, and above it
by at most one read, however messages join and leave (both twins: wsfast._backlog and
the compiled codec's Backlog)."""

import collections

from hypothesis import given
from hypothesis import strategies as st

# A read queues some messages of these sizes; a take removes up to so many, oldest first.
reads = st.lists(st.integers(0, 5000), min_size=1, max_size=20).map(lambda sizes: ("read", sizes))
takes = st.integers(1, 40).map(lambda count: ("take", count))


@given(st.lists(st.one_of(reads, takes), max_size=60), st.booleans())
def test_the_backlog_bounds_what_waits(codec, steps, settle_on_take):
    backlog = codec.Backlog()
    queue: collections.deque[int] = collections.deque()
    largest_read = 0
    for kind, value in steps:
        if kind == "read":
            queue.extend(value)
            backlog.charge(len(value), sum(value))
            largest_read = max(largest_read, sum(value))
        else:
            for _ in range(min(value, len(queue))):
                queue.popleft()
            if not settle_on_take:
                continue
        estimate = backlog.settle(len(queue))
        assert sum(queue) <= estimate <= sum(queue) + largest_read
        assert len(backlog._charges) <= len(queue) + 1  # taken reads are forgotten


def test_reset_makes_one_charge(codec):
    backlog = codec.Backlog()
    backlog.charge(3, 300)
    backlog.reset(5, 120)
    assert backlog.settle(5) == 120
    assert backlog.settle(0) == 0
    backlog.reset()
    assert backlog.nbytes == 0
