"""The receivers behind the clients' recv() and iteration, on both twins. The asyncio
Receiver: what recv() returns behaves as a coroutine would, taking a queued message needs
no wait, and no message is ever lost to a cancelled or abandoned recv(). The
BlockingReceiver: it reads only when no message is queued."""

import asyncio
import time

import pytest

from wsfast.exceptions import ConnectionClosedError, ConnectionClosedOK


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


@pytest.fixture
def Queue(codec):
    class Queue(codec.Receiver):
        """Messages put by the test; the wait returns once one is put, or raises ``end``."""

        __slots__ = ("arrived", "end", "resumed", "waits", "waits_ended")

        def __init__(self):
            super().__init__()
            self.arrived = asyncio.Event()
            self.end = None  # what the wait raises once woken with no message
            self.resumed = 0
            self.waits = []  # the timeout of every wait
            self.waits_ended = 0  # waits that returned, raised or were closed

        def put(self, *messages):
            self._messages.extend(messages)
            self.arrived.set()

        def finish(self, end):
            self.end = end
            self.arrived.set()

        async def _wait_for_messages(self, timeout):
            self.waits.append(timeout)
            try:
                while not self._messages and self.end is None:
                    self.arrived.clear()
                    await asyncio.wait_for(self.arrived.wait(), timeout)
                if not self._messages:
                    raise self.end
            finally:
                self.waits_ended += 1

        def _resume_reading(self):
            self.resumed += 1
            self._reading_paused = False

    return Queue


def test_a_queued_message_is_taken_without_waiting(Queue):
    async def main():
        queue = Queue()
        queue.put("a", b"b")
        assert await queue.recv() == "a"
        assert await queue.recv(timeout=1) == b"b"
        assert queue.waits == []
        assert len(queue._messages) == 0

    run(main())


def test_recv_waits_for_the_next_message_with_its_timeout(Queue):
    async def main():
        queue = Queue()
        task = asyncio.ensure_future(queue.recv(2.5))
        await asyncio.sleep(0)
        assert not task.done()
        queue.put("late")
        assert await task == "late"
        assert queue.waits == [2.5]
        with pytest.raises(asyncio.TimeoutError):
            await queue.recv(0.01)
        queue.put("kept")  # the timed-out wait took nothing
        assert await queue.recv() == "kept"

    run(main())


def test_what_recv_returns_is_a_coroutine_to_asyncio(Queue):
    async def main():
        queue = Queue()
        queue.put("x", "y", "z")
        receiving = queue.recv()
        assert asyncio.iscoroutine(receiving)
        assert await asyncio.create_task(receiving) == "x"
        assert await asyncio.wait_for(queue.recv(), 1) == "y"
        assert await asyncio.gather(queue.recv()) == ["z"]

    run(main())


def test_an_awaitable_of_recv_runs_once(Queue):
    async def main():
        queue = Queue()
        queue.put("once", "left")
        receiving = queue.recv()
        assert await receiving == "once"
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await receiving
        assert list(queue._messages) == ["left"]

    run(main())


def test_an_awaitable_someone_keeps_is_never_handed_out_again(Queue):
    """The compiled Receiver hands a finished awaitable out again to the next recv() or
    iteration step, but only while nobody else holds it."""

    async def main():
        queue = Queue()
        queue.put("a", "b", "c", "d", "e")
        kept = queue.recv()
        assert await kept == "a"
        second = queue.recv()
        assert second is not kept
        assert await second == "b"
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await kept
        del second
        assert [await queue.recv(), await queue.recv()] == ["c", "d"]
        async for message in queue:
            assert message == "e"
            break

    run(main())


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")  # the pure twin's
def test_no_message_is_lost_to_a_recv_never_awaited_or_cancelled(Queue):
    async def main():
        queue = Queue()
        queue.put("first")
        queue.recv()  # dropped before it ran
        queued = queue.recv()
        queued.close()
        before_running = asyncio.create_task(queue.recv())
        before_running.cancel()  # thrown in before the first step
        with pytest.raises(asyncio.CancelledError):
            await before_running
        assert list(queue._messages) == ["first"]
        assert await queue.recv() == "first"

        waiting = asyncio.create_task(queue.recv())
        await asyncio.sleep(0)
        waiting.cancel()  # thrown into the wait
        with pytest.raises(asyncio.CancelledError):
            await waiting
        queue.put("second")
        assert await queue.recv() == "second"

    run(main())


def test_closing_a_waiting_recv_closes_its_wait(Queue):
    async def main():
        queue = Queue()
        receiving = queue.recv()
        future = receiving.send(None)  # waits: yields what the wait awaits
        assert isinstance(future, asyncio.Future)
        assert queue.waits_ended == 0
        receiving.close()
        assert queue.waits_ended == 1
        with pytest.raises(RuntimeError, match="cannot reuse"):
            receiving.send(None)

    run(main())


def test_sending_a_value_into_a_fresh_recv_is_refused(Queue):
    async def main():
        queue = Queue()
        queue.put("m")
        receiving = queue.recv()
        with pytest.raises(TypeError, match="non-None value"):
            receiving.send(1)
        with pytest.raises(StopIteration) as stop:
            receiving.send(None)
        assert stop.value.value == "m"

    run(main())


def test_async_for_ends_when_the_connection_closes_normally(Queue):
    async def main():
        queue = Queue()
        queue.put("a", "b")
        received = []

        async def consume():
            async for message in queue:
                received.append(message)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        queue.put("c")
        await asyncio.sleep(0)
        queue.finish(ConnectionClosedOK(1000))
        await task
        assert received == ["a", "b", "c"]

    run(main())


def test_async_for_raises_when_the_connection_fails(Queue):
    async def main():
        queue = Queue()
        queue.finish(ConnectionClosedError(1006))
        with pytest.raises(ConnectionClosedError):
            async for _ in queue:
                pass
        with pytest.raises(ConnectionClosedOK):  # recv() does not stop an iteration
            queue.finish(ConnectionClosedOK(1000))
            await queue.recv()

    run(main())


def test_reading_resumes_once_few_enough_messages_wait(Queue):
    async def main():
        queue = Queue()
        queue.put(*"abcdef")
        await queue.recv()
        assert queue.resumed == 0  # reading was not paused
        queue._reading_paused = True
        queue._resume_below = 2
        await queue.recv()
        await queue.__anext__()
        assert queue.resumed == 0  # three still wait
        await queue.recv()
        assert queue.resumed == 1
        assert not queue._reading_paused

    run(main())


@pytest.fixture
def BlockingQueue(codec):
    class BlockingQueue(codec.BlockingReceiver):
        """Its reads take the next item of ``arrivals``: messages, what to raise, or a
        function to call instead (which queues nothing)."""

        def __init__(self, *arrivals):
            super().__init__()
            self.arrivals = list(arrivals)
            self.fills = []  # the timeout of every read

        def _fill(self, queue, timeout):
            self.fills.append(timeout)
            arrived = self.arrivals.pop(0)
            if isinstance(arrived, BaseException):
                raise arrived
            if callable(arrived):
                arrived()
                return
            queue.extend(arrived)

    return BlockingQueue


def test_blocking_recv_reads_only_when_no_message_is_queued(BlockingQueue):
    queue = BlockingQueue(["a", b"b"], TimeoutError("timed out"), ["c"])
    assert queue.recv(1.5) == "a"
    assert queue.recv() == b"b"
    with pytest.raises(TimeoutError):
        queue.recv(0.1)
    assert queue.recv() == "c"
    assert queue.fills == [1.5, 0.1, None]


def test_a_recv_whose_message_another_thread_took_waits_again(BlockingQueue):
    # A read that returns with nothing queued: a recv() in another thread took what it
    # brought. This one waits again, for what is left of its timeout.
    def taken_by_another_thread():
        time.sleep(0.2)

    queue = BlockingQueue(taken_by_another_thread, ["a"])
    assert queue.recv(1.0) == "a"
    first, second = queue.fills
    assert first == 1.0
    assert 0 < second <= 0.8
    iterated = BlockingQueue(taken_by_another_thread, ["b"], ConnectionClosedOK(1000))
    assert list(iterated) == ["b"]


def test_the_receivers_have_no_instance_dict(codec):
    """Both twins: a connection is only what its slots hold."""
    for base in (codec.BlockingReceiver, codec.Receiver):
        receiver = type("Sub", (base,), {"__slots__": ()})()
        with pytest.raises(AttributeError):
            receiver.anything = 1


def test_iterating_ends_when_the_connection_closes_normally(BlockingQueue):
    queue = BlockingQueue(["a", "b"], ["c"], ConnectionClosedOK(1000))
    assert list(queue) == ["a", "b", "c"]
    failing = BlockingQueue(["a"], ConnectionClosedError(1006))
    with pytest.raises(ConnectionClosedError):
        list(failing)


def test_subclasses_iterate_with_the_compiled_slots_unless_they_override_them(BlockingQueue, Queue):
    """The compiled twin hands the connections (classes made in Python) its iteration
    slots; a class that defines __next__ or __anext__, then or later, keeps its own."""
    from wsfast import _compiled

    _compiled._inherit_iteration(BlockingQueue)
    _compiled._inherit_iteration(Queue)
    assert list(BlockingQueue(["a", "b"], ConnectionClosedOK(1000))) == ["a", "b"]

    class Own(BlockingQueue):
        def __next__(self):
            return "own"

    _compiled._inherit_iteration(Own)
    assert next(Own()) == "own"

    class Later(BlockingQueue):
        pass

    _compiled._inherit_iteration(Later)
    assert next(Later(["a"])) == "a"
    Later.__next__ = lambda self: "later"
    assert next(Later(["a"])) == "later"

    class OwnAsync(Queue):
        async def __anext__(self):
            return "own"

    _compiled._inherit_iteration(OwnAsync)

    async def main():
        queue = Queue()
        queue.put("a")
        first = await anext(queue)
        return first, await anext(OwnAsync())

    assert run(main()) == ("a", "own")


def test_the_connections_iterate_with_an_override_of_their_own(codec):
    import wsfast.asyncio

    class Counting(wsfast.Client):
        def __next__(self):
            return "counted"

    class CountingAsync(wsfast.asyncio.Client):
        async def __anext__(self):
            return "counted"

    assert Counting.__next__(None) == "counted"
    assert next(Counting.__new__(Counting)) == "counted"
    assert run(anext(CountingAsync.__new__(CountingAsync))) == "counted"
