"""Thread stress: what a free-threaded interpreter makes of wsfast, provoked on the GIL
build by switching threads every microsecond.

Blocking connections shared by threads (sending, receiving, closing), a connection per
thread on both ends, the compiled codec's objects entered by two threads at once (a
RuntimeError, never corrupted memory), the mask keys of many connections at once, and
connections used by threads that are still freed by reference counting alone.
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
import time
import weakref
import zlib

import pytest

from wsfast.batch import Batch
from wsfast.client import connect
from wsfast.exceptions import ConnectionClosed, ConnectionClosedOK
from wsfast.protocol import Connection
from wsfast.server import serve

TIMEOUT = 10  # seconds any single wait in these tests may take
THREADS = 8

pytestmark = pytest.mark.usefixtures("no_hang")


@pytest.fixture(autouse=True)
def frequent_switches():
    """Switch threads as often as the interpreter can, to meet the interleavings a
    free-threaded build runs into."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def echo_url(codec):
    with serve(codec=codec) as server:
        yield f"ws://127.0.0.1:{server.port}/"


def message(sender: int, index: int) -> bytes:
    """The ``index``-th message of thread ``sender``: its own bytes throughout, now and
    then large enough to leave in several pieces, so that an interleaving shows."""
    size = 70_000 if index % 25 == 0 else (index * 7919) % 3000
    head = f"{sender}:{index}:".encode()
    return head + bytes([65 + sender]) * size


def run_threads(targets) -> None:
    """Start a thread per target, wait (bounded) for all, re-raise the first failure."""
    failures: list[BaseException] = []

    def guarded(target):
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    if failures:
        raise failures[0]


# Blocking connections -----------------------------------------------------------------


def test_many_threads_sending_on_one_connection(echo_url, codec):
    count = 60
    with connect(echo_url, codec=codec) as ws:

        def sender(number):
            return lambda: [ws.send(message(number, index)) for index in range(count)]

        received = []
        reader = lambda: received.extend(ws.recv(timeout=TIMEOUT) for _ in range(THREADS * count))  # noqa: E731
        run_threads([reader, *(sender(number) for number in range(THREADS))])
    # Each message whole and intact; each thread's messages in the order it sent them.
    assert sorted(received) == sorted(message(n, i) for n in range(THREADS) for i in range(count))
    for number in range(THREADS):
        own = [m for m in received if m.startswith(f"{number}:".encode())]
        assert own == [message(number, index) for index in range(count)]


def test_many_threads_receiving_from_one_connection(echo_url, codec):
    # recv() in several threads at once: every message reaches exactly one of them.
    count = 400
    with connect(echo_url, codec=codec) as ws:
        for index in range(count):
            ws.send(message(0, index))
        received = []

        def reader():
            while True:
                try:
                    received.append(ws.recv(timeout=0.5))
                except TimeoutError:
                    return

        run_threads([reader] * 4)
    assert sorted(received) == sorted(message(0, index) for index in range(count))


RECEIVING_STYLES = {
    "recv": lambda ws: [ws.recv(timeout=0.5)],
    "recv_many": lambda ws: ws.recv_many(timeout=0.5),
    "recv_batch": lambda ws: list(ws.recv_batch(timeout=0.5)),
}


@pytest.mark.parametrize(
    "styles", [("recv_many",) * 3, ("recv_many", "recv", "recv_batch", "recv")], ids=["recv_many", "mixed"]
)
def test_consumers_of_one_queue_in_several_threads(echo_url, codec, styles):
    # Consumers share the queue with the reading thread: no message is lost or handed out
    # twice, and none gets an empty list (the others took every message while it waited).
    count = 400
    with connect(echo_url, codec=codec) as ws:
        for index in range(count):
            ws.send(message(0, index))
        received = []

        def consumer(take):
            def consume():
                while True:
                    try:
                        batch = take(ws)
                    except TimeoutError:
                        return
                    assert batch
                    received.extend(batch)

            return consume

        run_threads([consumer(RECEIVING_STYLES[style]) for style in styles])
    assert sorted(received) == sorted(message(0, index) for index in range(count))


def test_a_connection_per_thread(echo_url, codec):
    # Client threads and the server's handler threads all at once, each on its own connection.
    count = 40

    def client(number):
        def exchange():
            with connect(echo_url, codec=codec) as ws:
                for index in range(count):
                    sent = message(number, index)
                    ws.send(sent)
                    assert ws.recv(timeout=TIMEOUT) == sent

        return exchange

    run_threads([client(number) for number in range(THREADS)])


@pytest.mark.parametrize("readers", [1, 3])
def test_close_from_another_thread_wakes_blocked_readers(echo_url, codec, readers):
    ws = connect(echo_url, codec=codec)
    outcomes = []

    def reader():
        try:
            outcomes.append(ws.recv(timeout=TIMEOUT))
        except ConnectionClosed as exc:
            outcomes.append((type(exc), time.monotonic()))

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # one reads, the others wait their turn
    closed = time.monotonic()
    ws.close()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(outcomes) == readers
    for kind, woken in outcomes:
        assert kind is ConnectionClosedOK
        assert woken - closed < 2  # promptly, not at a timeout


def use_from_threads(ws) -> None:
    """A reader and three senders at once, then a close from yet another thread."""
    reader = lambda: [ws.recv(timeout=TIMEOUT) for _ in range(3 * 20)]  # noqa: E731
    senders = [lambda n=n: [ws.send(message(n, i)) for i in range(20)] for n in range(3)]
    run_threads([reader, *senders])
    run_threads([ws.close])


def test_connections_used_by_threads_are_freed_by_reference_counting(echo_url, codec):
    gc.collect()
    gc.disable()
    try:
        ws = connect(echo_url, codec=codec)
        freed = [weakref.ref(ws._conn), weakref.ref(ws._stream)]
        use_from_threads(ws)
        del ws
        assert [ref() for ref in freed] == [None, None]
    finally:
        gc.enable()


# The codec's objects -------------------------------------------------------------------


def outcomes_of(work, threads: int = 2) -> list:
    """Run ``work()`` in ``threads`` threads at once; what each returned or raised."""
    results: list = []

    def run():
        try:
            results.append(work())
        except RuntimeError as exc:
            results.append(exc)

    run_threads([run] * threads)
    return results


def two_threads_error(outcome) -> bool:
    return isinstance(outcome, RuntimeError) and "two threads at once" in str(outcome)


def test_a_parser_fed_from_two_threads_at_once(codec):
    # Each feed holds whole frames: it comes back with them, or with the clear error.
    parser = codec.FrameParser(client=True, max_size=None)
    data = b"".join(codec.encode_frame(2, message(0, index)) for index in range(1, 25))
    expected = [message(0, index) for index in range(1, 25)]

    def work():
        outcomes = []
        for _ in range(200):
            try:
                outcomes.append(parser.feed_messages(data))
            except RuntimeError as exc:
                outcomes.append(exc)
        return outcomes

    for outcome in itertools.chain.from_iterable(outcomes_of(work)):
        assert outcome == expected or two_threads_error(outcome)


def test_an_inflater_used_from_two_threads_at_once(codec):
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    plain = [b"tick %d " % index * 50 for index in range(100)]
    # A full flush makes each message stand alone, as no_context_takeover promises.
    payloads = [compressor.compress(p) + compressor.flush(zlib.Z_FULL_FLUSH)[:-4] for p in plain]
    inflater = codec.Inflater(15, no_context_takeover=True)

    def work():
        outcomes = []
        for _ in range(5):
            for index, payload in enumerate(payloads):
                try:
                    outcomes.append((index, inflater.inflate(payload)))
                except RuntimeError as exc:
                    outcomes.append((index, exc))
        return outcomes

    for index, outcome in itertools.chain.from_iterable(outcomes_of(work)):
        assert outcome == plain[index] or two_threads_error(outcome)


def test_compiled_objects_entered_by_a_second_thread_raise(twins, monkeypatch):
    # While feed_batch() is inside a Python call (sealing a batch), another thread enters
    # the parser and the batch builder: both refuse, and the feed ends as usual.
    compiled = twins[1]
    parser = compiled.FrameParser(client=True)
    builder = compiled.BatchBuilder(max_bytes=100)
    data = b"".join(compiled.encode_frame(2, bytes([index]) * 60) for index in range(10))
    meddled = []
    adopt = Batch._adopt

    def meddle():
        for attempt in (
            lambda: parser.feed(data),
            parser.payload_window,
            parser.partial_frame,
            builder.take,
            lambda: builder.append(b"x"),
        ):
            try:
                attempt()
            except RuntimeError as exc:
                meddled.append(exc)

    def adopt_meanwhile(*args):
        if not meddled:
            thread = threading.Thread(target=meddle)
            thread.start()
            thread.join(TIMEOUT)
        return adopt(*args)

    monkeypatch.setattr(Batch, "_adopt", adopt_meanwhile)
    assert parser.feed_batch(data, builder) == []
    assert len(meddled) == 5 and all(two_threads_error(exc) for exc in meddled)
    assert [message for batch in iter(builder.take, None) for message in batch] == [
        bytes([index]) * 60 for index in range(10)
    ]
    assert parser.feed(compiled.encode_frame(2, b"after")) == [compiled.Frame(2, b"after")]


def test_a_frame_read_while_another_thread_replaces_its_payload(codec):
    frame = codec.Frame(2, b"a" * 100)
    payloads = (b"a" * 100, b"b" * 200)

    def writer():
        for index in range(20_000):
            frame.payload = payloads[index % 2]

    def reader():
        for _ in range(20_000):
            assert frame.payload in payloads
            assert len(frame) in (100, 200)

    run_threads([writer, reader, reader])


# Module state ---------------------------------------------------------------------------


def test_mask_keys_of_connections_in_many_threads(codec):
    # Each connection draws its own keys: sequences differ, and keys barely repeat.
    count = 600
    keys: list[list[bytes]] = []

    def client():
        connection = Connection(client=True, codec=codec)
        own = []
        for _ in range(count):
            connection.send(b"x")
            own.append(connection.data_to_send()[2:6])  # a short frame's masking key
        keys.append(own)

    run_threads([client] * THREADS)
    assert len({tuple(own) for own in keys}) == THREADS
    every = [key for own in keys for key in own]
    assert len(every) == THREADS * count
    assert len(set(every)) >= len(every) - 2  # 32-bit keys: a repeat is a rare accident
