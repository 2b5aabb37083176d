"""Many received messages in three flat buffers, without a Python object per message.

A :class:`Batch` holds the payloads of ``n`` messages back to back in one buffer
(:attr:`Batch.data`), their ``n + 1`` int64 boundaries (:attr:`Batch.offsets`) and one
byte per message telling text from binary (:attr:`Batch.is_text`). Messages become
``bytes`` or ``str`` only when asked for one; :meth:`Batch.to_numpy` and
:meth:`Batch.to_arrow` view the same memory as columns without copying the payloads.

The codec's ``BatchBuilder`` fills batches as it parses; numpy and pyarrow are imported
only by the methods that need them (``pip install 'wsfast[numpy]'`` / ``'wsfast[arrow]'``).
"""

from __future__ import annotations

import importlib
import operator
from array import array
from itertools import accumulate, repeat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Iterable, Iterator, Sequence
    from types import ModuleType
    from typing import SupportsIndex

    import numpy as np
    from numpy.typing import DTypeLike, NDArray
    from typing_extensions import Buffer

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
    """

    __slots__ = ("_data", "_is_text", "_offsets", "_size", "_texts")

    _data: memoryview
    _offsets: memoryview
    _is_text: memoryview
    _texts: int
    _size: int | None

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
        self._data, self._offsets, self._is_text = data, offsets, memoryview(flags)
        self._texts, self._size = texts, None
        for index in range(count) if texts else ():
            if flags[index]:
                str(data[offsets[index] : offsets[index + 1]], "utf-8")  # UnicodeDecodeError if not text

    @classmethod
    def _adopt(cls, data: Buffer, offsets: Buffer, is_text: Buffer, texts: int, size: int | None) -> Batch:
        """A batch over buffers a builder filled and checked: ``data`` and ``is_text``
        bytes-like, ``offsets`` int64 (or their raw bytes); ``texts`` counts the text
        messages and ``size`` is the length every message has (-1 when they differ, None
        when unknown)."""
        batch = cls.__new__(cls)
        batch._data = memoryview(data).toreadonly()
        batch._offsets = memoryview(offsets).cast("B").cast("q").toreadonly()
        batch._is_text = memoryview(is_text).toreadonly()
        batch._texts = texts
        batch._size = size
        return batch

    @classmethod
    def from_messages(cls, messages: Iterable[str | Buffer]) -> Batch:
        """A batch of ``messages``: ``str`` for text, any bytes-like object for binary."""
        payloads: list[bytes] = []
        flags = bytearray()
        for message in messages:
            if isinstance(message, str):
                payloads.append(message.encode("utf-8"))
                flags.append(1)
            else:
                payloads.append(message if type(message) is bytes else memoryview(message).tobytes())
                flags.append(0)
        return cls._join(payloads, flags)

    @classmethod
    def _join(cls, payloads: Sequence[bytes | memoryview], flags: bytes | bytearray) -> Batch:
        """A batch of ``payloads`` (bytes) with their text ``flags``, already valid."""
        lengths = list(map(len, payloads))
        offsets = array("q", accumulate(lengths, initial=0))
        first = lengths[0] if lengths else 0
        size = first if lengths.count(first) == len(lengths) else -1
        return cls._adopt(b"".join(payloads), offsets, bytes(flags), bytes(flags).count(1), size)

    # The buffers -------------------------------------------------------------------

    @property
    def data(self) -> memoryview:
        """Every payload, back to back: a read-only buffer of bytes (text as UTF-8)."""
        return self._data

    @property
    def offsets(self) -> memoryview:
        """``len(batch) + 1`` int64 positions (a read-only memoryview of format ``q``):
        message ``i`` is ``data[offsets[i]:offsets[i + 1]]``."""
        return self._offsets

    @property
    def is_text(self) -> memoryview:
        """One byte per message, 1 for text and 0 for binary (a read-only memoryview)."""
        return self._is_text

    @property
    def nbytes(self) -> int:
        """The payload bytes of all messages together."""
        return len(self._data)

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
        payload = self._data[self._offsets[index] : self._offsets[index + 1]]
        return str(payload, "utf-8") if self._is_text[index] else payload.tobytes()

    def __iter__(self) -> Iterator[str | bytes]:
        data = self._data
        offsets = self._offsets
        for start, end, text in zip(offsets, offsets[1:], self._is_text, strict=False):
            yield str(data[start:end], "utf-8") if text else data[start:end].tobytes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return self._offsets == other._offsets and self._is_text == other._is_text and self._data == other._data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kind = "text" if self._texts and self.all_text else "binary" if not self._texts else "mixed"
        return f"<Batch {len(self)} {kind} messages, {self.nbytes} bytes>"

    # Columns -----------------------------------------------------------------------

    def to_numpy(self, dtype: DTypeLike) -> NDArray[Any]:
        """The payloads as a numpy array of ``dtype`` (a structured dtype describing a
        fixed record layout, say), one element per message, sharing :attr:`data`'s
        memory (read-only, no copy).

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
            lengths = numpy.diff(self.offsets_numpy())
            wrong = numpy.flatnonzero(lengths != itemsize)
            if wrong.size:
                first = int(wrong[0])
                raise ValueError(
                    f"message {first} is {int(lengths[first])} bytes long, not {itemsize} as dtype {record}"
                )
            self._size = itemsize
        records: NDArray[Any] = numpy.frombuffer(self._data, dtype=record, count=count)
        return records

    def offsets_numpy(self) -> NDArray[np.int64]:
        """:attr:`offsets` as a read-only int64 numpy array (no copy)."""
        offsets: NDArray[np.int64] = _numpy().frombuffer(self._offsets, dtype="int64")
        return offsets

    def to_arrow(self, *, large: bool | None = None) -> Any:
        """The messages as a pyarrow array over :attr:`data` (the payloads are not copied):
        a ``StringArray`` when every message is text, else a ``BinaryArray`` (text as
        its UTF-8 bytes); an empty batch gives an empty ``BinaryArray``.

        Those types count in int32 offsets, so theirs are narrowed from :attr:`offsets`
        (4 bytes per message). ``large=True`` gives ``LargeStringArray`` or
        ``LargeBinaryArray`` instead, over :attr:`offsets` as they are: nothing at all is
        copied. By default (None) the large types are used only when the payloads pass
        2 GiB, which int32 offsets cannot count.
        """
        pyarrow = _pyarrow()
        text = self.all_text and self._texts > 0
        if large is None:
            large = len(self._data) > _INT32_MAX
        count = len(self)
        offsets = pyarrow.py_buffer(self._offsets)
        if not large:
            if len(self._data) > _INT32_MAX:
                raise ValueError("more than 2 GiB of payloads: only large=True can hold them")
            wide = pyarrow.Array.from_buffers(pyarrow.int64(), count + 1, [None, offsets])
            offsets = wide.cast(pyarrow.int32()).buffers()[1]
        if text:
            kind = pyarrow.large_string() if large else pyarrow.string()
        else:
            kind = pyarrow.large_binary() if large else pyarrow.binary()
        return pyarrow.Array.from_buffers(kind, count, [None, offsets, pyarrow.py_buffer(self._data)])

    # For the receivers ---------------------------------------------------------------

    @classmethod
    def _from_queue(cls, queue: deque[str | bytes], max_bytes: int) -> Batch | None:
        """A batch of the messages at the left of ``queue`` (a deque of str and bytes),
        popped: as many as fit in ``max_bytes``, and at least one; None if the queue is
        empty (other threads may pop from it meanwhile: each pop is taken as it comes)."""
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
        return cls.from_messages(taken)

    def _split(self, max_bytes: int) -> list[Batch]:
        """This batch as consecutive batches of at most ``max_bytes`` payload bytes each
        (a longer message alone in its own): for a caller asking for less than the
        batches already received hold. Copies the payloads once."""
        offsets = self._offsets
        count = len(self)
        pieces: list[Batch] = []
        first = 0
        while first < count:
            last = first + 1  # at least one message
            base = offsets[first]
            while last < count and offsets[last + 1] - base <= max_bytes:
                last += 1
            rebased = array("q", map(operator.sub, offsets[first : last + 1], repeat(base)))
            flags = self._is_text[first:last].tobytes()
            size = self._size if self._size is not None and self._size >= 0 else None
            pieces.append(
                Batch._adopt(self._data[base : offsets[last]].tobytes(), rebased, flags, flags.count(1), size)
            )
            first = last
        return pieces
