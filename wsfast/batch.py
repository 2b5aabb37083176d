"""Many received messages in three flat buffers, without a Python object per message.

A :class:`Batch` holds the payloads of ``n`` messages back to back in one buffer
(:attr:`Batch.data`), their ``n + 1`` int64 boundaries (:attr:`Batch.offsets`) and one
byte per message telling text from binary (:attr:`Batch.is_text`). Messages become
``bytes`` or ``str`` only when asked for one; :meth:`Batch.to_numpy` views the same
memory as a column without copying the payloads, and :meth:`Batch.to_arrow` views
:attr:`Batch.data` (which, for a batch the codec filled, is one copy of the payloads,
made once in C).

The codec's ``BatchBuilder`` fills batches as it parses, writing a newline after every
payload as it goes: what it received is then newline-delimited JSON as it lies
(:attr:`Batch.ndjson`), for the columnar decoders that read that format fastest. numpy,
pyarrow and polars are imported only by the methods that need them (``pip install
'wsfast[numpy]'``, ``'wsfast[arrow]'``, ``'wsfast[polars]'``).
"""

from __future__ import annotations

import importlib
import operator
from array import array
from itertools import accumulate, pairwise, repeat
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Iterable, Iterator, Sequence
    from types import ModuleType
    from typing import SupportsIndex

    import numpy as np
    from msgspec.json import Decoder
    from numpy.typing import DTypeLike, NDArray
    from typing_extensions import Buffer

    T = TypeVar("T")

__all__ = ["DEFAULT_MAX_BYTES", "Batch"]

DEFAULT_MAX_BYTES = 1024 * 1024
"""How many payload bytes a received batch holds at most, unless one message alone is larger."""

_INT32_MAX = 2**31 - 1
# Formats of 8-byte signed integers that read as int64 here (numpy's int64 says "l").
_INT64_FORMATS = frozenset(("q", "l", "@q", "@l", "=q", "=l"))
_BYTE_FORMATS = frozenset(("B", "b", "c", "@B", "@b", "=B"))


def _numpy() -> ModuleType:
    try:
        import numpy
    except ImportError:
        raise ImportError("this needs numpy: pip install 'wsfast[numpy]'") from None
    return numpy


def _polars() -> ModuleType:
    try:
        # By name, as pyarrow below: what polars offers is not needed typed here.
        return importlib.import_module("polars")
    except ImportError:
        raise ImportError("this needs polars: pip install 'wsfast[polars]'") from None


def _pyarrow() -> ModuleType:
    try:
        # By name: pyarrow has no type information, so what it offers is untyped here.
        return importlib.import_module("pyarrow")
    except ImportError:
        raise ImportError("this needs pyarrow: pip install 'wsfast[arrow]'") from None


def _int64_view(values: Buffer | Iterable[int]) -> memoryview:
    """``values`` (a buffer of int64, raw native int64 bytes, or integers) as a 'q' view."""
    try:
        # Buffer has no run-time check before Python 3.12: trying is how it is told apart.
        view = memoryview(values)  # type: ignore[arg-type]
    except TypeError:
        return memoryview(array("q", values))  # type: ignore[arg-type]
    if view.c_contiguous and ((view.format in _INT64_FORMATS and view.itemsize == 8) or view.format in _BYTE_FORMATS):
        if view.nbytes % 8:
            raise ValueError("offsets given as bytes must be a whole number of int64 values")
        return view.cast("B").cast("q")
    return memoryview(array("q", view.tolist()))


def _payload_size(message: str | bytes) -> int:
    """The bytes a received message (str or bytes) takes in a batch."""
    if type(message) is str:
        return len(message) if message.isascii() else len(message.encode("utf-8"))
    return len(message)


class Batch:
    """Received messages, back to back in one buffer, with no object per message.

    ``len(batch)`` messages; ``batch[i]`` is message ``i`` as ``bytes`` or ``str``
    (made on demand; negative indexes count from the end) and iterating yields them in
    order. ``Batch(data, offsets, is_text=None)`` checks what it is given (offsets
    rising from 0 to ``len(data)``, text that is UTF-8) and shares the buffers, which
    must then not change; :meth:`from_messages` builds one from ``bytes`` and ``str``.

    A batch the codec filled (every one ``recv_batch()`` returns) holds each payload
    followed by a newline, so that :attr:`ndjson` is its buffer as it is; a batch built
    from buffers or messages holds them back to back. Either shows the same messages,
    :attr:`data` and :attr:`offsets`; what differs is which of :attr:`ndjson` and
    :attr:`data` is made (once, on first use) rather than shared.
    """

    __slots__ = ("_bounds", "_buffer", "_is_text", "_lines", "_newline", "_packed", "_separator", "_size", "_texts")

    # Message i is _buffer[_bounds[i] : _bounds[i + 1] - _separator]: _separator is 1 when a
    # newline follows every payload (the codec's layout), 0 when they are back to back.
    _buffer: memoryview
    _bounds: memoryview
    _separator: int
    _is_text: memoryview
    _texts: int
    _size: int | None
    _newline: bool | None  # a text payload holds a newline (None: not looked at yet)
    _packed: tuple[memoryview, memoryview] | None  # data and offsets, once made (newline layout)
    _lines: memoryview | None  # ndjson, once made (back-to-back layout)

    def __init__(
        self,
        data: Buffer = b"",
        offsets: Buffer | Iterable[int] = (0,),
        is_text: Buffer | Iterable[int] | None = None,
    ) -> None:
        data = memoryview(data)
        if not data.c_contiguous:
            raise ValueError("data must be a contiguous buffer")
        data = data.cast("B").toreadonly()
        offsets = _int64_view(offsets).toreadonly()
        count = len(offsets) - 1
        if count < 0 or offsets[0] != 0 or offsets[count] != len(data):
            raise ValueError(f"offsets must run from 0 to len(data) ({len(data)})")
        if any(map(operator.gt, offsets, offsets[1:])):
            raise ValueError("offsets must never decrease")
        if is_text is None:
            flags = bytes(count)
        else:
            try:
                flags = memoryview(is_text).cast("B").tobytes()  # type: ignore[arg-type]  # as in _int64_view
            except TypeError:
                flags = bytes(is_text)  # an iterable of 0/1 or bools
            if len(flags) != count:
                raise ValueError(f"is_text must hold one flag per message ({count}), not {len(flags)}")
            if flags.strip(b"\x00\x01"):
                raise ValueError("is_text flags must be 0 or 1")
        texts = flags.count(1)
        self._buffer, self._bounds, self._separator = data, offsets, 0
        self._is_text, self._texts, self._size = memoryview(flags), texts, None
        self._newline = self._packed = self._lines = None
        for index in range(count) if texts else ():
            if flags[index]:
                str(data[offsets[index] : offsets[index + 1]], "utf-8")  # UnicodeDecodeError if not text

    @classmethod
    def _adopt(
        cls,
        buffer: Buffer,
        bounds: Buffer,
        is_text: Buffer,
        texts: int,
        size: int | None,
        separator: int = 0,
        newline: bool | None = None,
    ) -> Batch:
        """A batch over buffers a builder filled and checked: ``buffer`` and ``is_text``
        bytes-like, ``bounds`` int64 (or their raw bytes) where each message begins, and
        where the buffer ends; ``separator`` is 1 when a newline follows every payload.
        ``texts`` counts the text messages, ``size`` is the length every message has (-1
        when they differ, None when unknown) and ``newline`` tells whether a text payload
        holds a newline (None when unknown)."""
        batch = cls.__new__(cls)
        batch._buffer = memoryview(buffer).toreadonly()
        batch._bounds = memoryview(bounds).cast("B").cast("q").toreadonly()
        batch._separator = separator
        batch._is_text = memoryview(is_text).toreadonly()
        batch._texts = texts
        batch._size = size
        batch._newline = newline
        batch._packed = batch._lines = None
        return batch

    @classmethod
    def from_messages(cls, messages: Iterable[str | Buffer]) -> Batch:
        """A batch of ``messages``: ``str`` for text, any bytes-like object for binary."""
        return cls._join(*_payloads(messages))

    @classmethod
    def _join(cls, payloads: Sequence[bytes | memoryview], flags: bytes | bytearray, lines: bool = False) -> Batch:
        """A batch of ``payloads`` (bytes) with their text ``flags``, already valid: each
        followed by a newline when ``lines``, else back to back."""
        lengths = list(map(len, payloads))
        first = lengths[0] if lengths else 0
        size = first if lengths.count(first) == len(lengths) else -1
        flags = bytes(flags)
        if not lines:
            bounds = array("q", accumulate(lengths, initial=0))
            return cls._adopt(b"".join(payloads), bounds, flags, flags.count(1), size)
        buffer = b"\n".join([*payloads, b""])
        bounds = array("q", accumulate(map(operator.add, lengths, repeat(1)), initial=0))
        newline = buffer.count(b"\n") != len(lengths)
        return cls._adopt(buffer, bounds, flags, flags.count(1), size, 1, newline)

    # The buffers -------------------------------------------------------------------

    @property
    def data(self) -> memoryview:
        """Every payload, back to back: a read-only buffer of bytes (text as UTF-8).

        Shared for a batch built from buffers or messages; for one the codec filled,
        whose buffer has a newline after every payload, made on first use (a copy of
        the payloads, a memcpy each in the compiled codec, kept with the batch).
        :attr:`ndjson` is that buffer as it is."""
        if not self._separator:
            return self._buffer
        return self._packed_buffers()[0]

    @property
    def offsets(self) -> memoryview:
        """``len(batch) + 1`` int64 positions (a read-only memoryview of format ``q``):
        message ``i`` is ``data[offsets[i]:offsets[i + 1]]``. Shared or made as
        :attr:`data` is, with it."""
        if not self._separator:
            return self._bounds
        return self._packed_buffers()[1]

    def _packed_buffers(self) -> tuple[memoryview, memoryview]:
        """:attr:`data` and :attr:`offsets` of a batch with a newline after each payload:
        made once by the codec (a memcpy per message in the compiled one) and kept."""
        if self._packed is None:
            from ._codec import codec  # here: the codec imports this module

            data, offsets = codec._pack_lines(self._buffer, self._bounds)
            self._packed = (memoryview(data), memoryview(offsets).cast("q"))
        return self._packed

    @property
    def ndjson(self) -> memoryview:
        """The text messages as newline-delimited JSON: a read-only buffer of every
        payload followed by ``\\n``, line ``i`` being message ``i``.

        For a batch the codec filled this is its buffer itself, shared (the newlines
        were written as the messages arrived); for one built from buffers or messages it
        is made on first use (a copy, kept with the batch). ValueError when a message is
        binary, or when a text message holds a newline of its own (JSON may have one
        between its tokens): then lines would not be messages. Whether each line is
        JSON is for the decoder to say.
        """
        count = len(self._is_text)
        if self._texts != count:
            first = self._is_text.tobytes().index(0)
            raise ValueError(f"ndjson holds text messages only, and message {first} is binary")
        if self._separator:
            lines = self._buffer
            if self._newline is None:
                self._newline = lines.tobytes().count(b"\n") != count
        else:
            if self._lines is None:
                buffer, bounds = self._buffer, self._bounds
                joined = b"\n".join([buffer[start:end] for start, end in pairwise(bounds)] + [b""])
                self._newline = joined.count(b"\n") != count
                self._lines = memoryview(joined)
            lines = self._lines
        if self._newline:
            first = next(index for index, message in enumerate(self) if "\n" in message)
            raise ValueError(f"message {first} holds a newline: its lines would read as several messages")
        return lines

    @property
    def is_text(self) -> memoryview:
        """One byte per message, 1 for text and 0 for binary (a read-only memoryview)."""
        return self._is_text

    @property
    def nbytes(self) -> int:
        """The payload bytes of all messages together (the newlines after them not counted)."""
        return len(self._buffer) - self._separator * len(self._is_text)

    @property
    def all_binary(self) -> bool:
        """True when no message is text (also for an empty batch)."""
        return self._texts == 0

    @property
    def all_text(self) -> bool:
        """True when every message is text (also for an empty batch)."""
        return self._texts == len(self._is_text)

    # The messages ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._is_text)

    def __getitem__(self, index: SupportsIndex) -> str | bytes:
        if isinstance(index, slice):
            raise TypeError("a Batch is indexed by message number; list(batch)[a:b] for a slice")
        count = len(self._is_text)
        index = operator.index(index)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("batch index out of range")
        payload = self._buffer[self._bounds[index] : self._bounds[index + 1] - self._separator]
        return str(payload, "utf-8") if self._is_text[index] else payload.tobytes()

    def __iter__(self) -> Iterator[str | bytes]:
        buffer = self._buffer
        bounds = self._bounds
        separator = self._separator
        for start, end, text in zip(bounds, bounds[1:], self._is_text, strict=False):
            payload = buffer[start : end - separator]
            yield str(payload, "utf-8") if text else payload.tobytes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        if self._is_text != other._is_text:
            return False
        if self._separator == other._separator:
            return self._bounds == other._bounds and self._buffer == other._buffer
        return self.offsets == other.offsets and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kind = "text" if self._texts and self.all_text else "binary" if not self._texts else "mixed"
        return f"<Batch {len(self)} {kind} messages, {self.nbytes} bytes>"

    # Columns -----------------------------------------------------------------------

    def to_numpy(self, dtype: DTypeLike) -> NDArray[Any]:
        """The payloads as a numpy array of ``dtype`` (a structured dtype describing a
        fixed record layout, say), one element per message, sharing the batch's memory
        (read-only, no copy). In a batch the codec filled, a newline follows every
        record: the array steps over it (its stride is one byte more than a record).

        Every message must be ``dtype.itemsize`` bytes long: ValueError names the first
        one that is not.
        """
        numpy = _numpy()
        record = numpy.dtype(dtype)
        itemsize = record.itemsize
        if itemsize == 0:
            raise ValueError("dtype must have a size of at least one byte")
        count = len(self)
        if count and self._size != itemsize:
            lengths = numpy.diff(numpy.frombuffer(self._bounds, dtype="int64")) - self._separator
            wrong = numpy.flatnonzero(lengths != itemsize)
            if wrong.size:
                first = int(wrong[0])
                raise ValueError(
                    f"message {first} is {int(lengths[first])} bytes long, not {itemsize} as dtype {record}"
                )
            self._size = itemsize
        records: NDArray[Any] = numpy.ndarray(
            (count,), dtype=record, buffer=self._buffer, strides=(itemsize + self._separator,)
        )
        return records

    def offsets_numpy(self) -> NDArray[np.int64]:
        """:attr:`offsets` as a read-only int64 numpy array over them (no copy of them)."""
        offsets: NDArray[np.int64] = _numpy().frombuffer(self.offsets, dtype="int64")
        return offsets

    def to_arrow(self, *, large: bool | None = None) -> Any:
        """The messages as a pyarrow array over :attr:`data`: a ``StringArray`` when
        every message is text, else a ``BinaryArray`` (text as its UTF-8 bytes); an empty
        batch gives an empty ``BinaryArray``.

        Those types count in int32 offsets, so theirs are narrowed from :attr:`offsets`
        (4 bytes per message). ``large=True`` gives ``LargeStringArray`` or
        ``LargeBinaryArray`` instead, over :attr:`offsets` as they are. By default (None)
        the large types are used only when the payloads pass 2 GiB, which int32 offsets
        cannot count. Arrow's arrays hold their values back to back, so for a batch the
        codec filled (a newline after every payload) they are over :attr:`data`, made
        once; for JSON, :meth:`to_polars` and :meth:`decode_lines` read the batch's
        buffer as it is.
        """
        pyarrow = _pyarrow()
        text = self.all_text and self._texts > 0
        data = self.data
        if large is None:
            large = len(data) > _INT32_MAX
        count = len(self)
        offsets = pyarrow.py_buffer(self.offsets)
        if not large:
            if len(data) > _INT32_MAX:
                raise ValueError("more than 2 GiB of payloads: only large=True can hold them")
            wide = pyarrow.Array.from_buffers(pyarrow.int64(), count + 1, [None, offsets])
            offsets = wide.cast(pyarrow.int32()).buffers()[1]
        if text:
            kind = pyarrow.large_string() if large else pyarrow.string()
        else:
            kind = pyarrow.large_binary() if large else pyarrow.binary()
        return pyarrow.Array.from_buffers(kind, count, [None, offsets, pyarrow.py_buffer(data)])

    # Decoded -------------------------------------------------------------------------

    def decode_lines(self, decoder: Decoder[T]) -> list[T]:
        """Every message decoded by ``decoder`` (a ``msgspec.json.Decoder``) from
        :attr:`ndjson`, in one call: a list of one object per message.

        ValueError as :attr:`ndjson` raises it (a binary message, a newline in one),
        msgspec's ``DecodeError`` (a ValueError) for a line that is not JSON of the
        decoder's type, and ValueError when the decoder returns another number of
        objects than there are messages (a message of two JSON values, say, or of none).
        """
        decoded: list[T] = decoder.decode_lines(self.ndjson)  # Any where msgspec is not installed
        if len(decoded) != len(self):
            raise ValueError(f"{len(self)} messages decoded to {len(decoded)} objects: a message is not one JSON value")
        return decoded

    def to_polars(self, schema: Any = None) -> Any:
        """The messages, one JSON object each, as a ``polars.DataFrame`` of one row per
        message, read from :attr:`ndjson` by ``polars.read_ndjson`` (``schema`` as it
        takes it: without one, polars infers it from the first rows).

        polars reads ``bytes`` and files, not other buffers: the batch's buffer is handed
        over as ``bytes``, which costs a copy of it (a small part of the decoding). Errors
        as :attr:`ndjson` raises them, polars' own for JSON it cannot read, and ValueError
        when the frame has another number of rows than there are messages.
        """
        polars = _polars()
        lines = self.ndjson
        if not lines:
            return polars.DataFrame(schema=schema)
        whole = lines.obj if type(lines.obj) is bytes and len(lines.obj) == len(lines) else lines.tobytes()
        frame = polars.read_ndjson(whole, schema=schema)
        if frame.height != len(self):
            raise ValueError(f"{len(self)} messages read as {frame.height} rows: a message is not one JSON object")
        return frame

    # For the receivers ---------------------------------------------------------------

    @classmethod
    def _from_queue(cls, queue: deque[str | bytes], max_bytes: int) -> Batch | None:
        """A batch of the messages at the left of ``queue`` (a deque of str and bytes),
        popped: as many as fit in ``max_bytes``, and at least one; None if the queue is
        empty (other threads may pop from it meanwhile: each pop is taken as it comes).
        A newline follows every payload, as in the batches the codec fills."""
        try:
            taken = [queue.popleft()]
        except IndexError:
            return None
        size = _payload_size(taken[0])
        try:
            while size + _payload_size(queue[0]) <= max_bytes:
                size += _payload_size(queue[0])
                taken.append(queue.popleft())
        except IndexError:  # the queue ran out
            pass
        return cls._join(*_payloads(taken), lines=True)

    def _split(self, max_bytes: int) -> list[Batch]:
        """This batch as consecutive batches of at most ``max_bytes`` payload bytes each
        (a longer message alone in its own), in the same layout: for a caller asking for
        less than the batches already received hold. Copies the payloads once."""
        bounds = self._bounds
        separator = self._separator
        count = len(self)
        size = self._size if self._size is not None and self._size >= 0 else None
        newline = False if self._newline is False else None  # a piece of a batch without one has none
        pieces: list[Batch] = []
        first = 0
        while first < count:
            last = first + 1  # at least one message
            base = bounds[first]
            while last < count and bounds[last + 1] - base - separator * (last + 1 - first) <= max_bytes:
                last += 1
            rebased = array("q", map(operator.sub, bounds[first : last + 1], repeat(base)))
            flags = self._is_text[first:last].tobytes()
            buffer = self._buffer[base : bounds[last]].tobytes()
            pieces.append(Batch._adopt(buffer, rebased, flags, flags.count(1), size, separator, newline))
            first = last
        return pieces


def _payloads(messages: Iterable[str | Buffer]) -> tuple[list[bytes], bytearray]:
    """The payloads of ``messages`` (``str`` for text, any bytes-like object for binary)
    as bytes, and their text flags."""
    payloads: list[bytes] = []
    flags = bytearray()
    for message in messages:
        if isinstance(message, str):
            payloads.append(message.encode("utf-8"))
            flags.append(1)
        else:
            payloads.append(message if type(message) is bytes else memoryview(message).tobytes())
            flags.append(0)
    return payloads, flags
