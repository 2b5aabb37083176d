"""Type stubs of the compiled frame codec (same API as ``wsfast._pure``)."""

import collections
from collections.abc import Callable, Coroutine, Sized
from typing import Any, Final, Generic, final, overload

from typing_extensions import Buffer, Self, disjoint_base

from ._typing import M
from .batch import Batch
from .exceptions import DecodeError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "BatchBuilder",
    "BlockingReceiver",
    "Frame",
    "FrameParser",
    "Inflater",
    "Receiver",
    "encode_frame",
    "mask",
    "mask_inplace",
]

DEFAULT_MAX_SIZE: Final[int]

@disjoint_base
class Frame:
    """One WebSocket frame. ``payload`` is always ``bytes`` (already unmasked)."""

    opcode: int
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    def __init__(
        self,
        opcode: int,
        payload: Buffer = b"",
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None: ...
    @property
    def payload(self) -> bytes: ...
    @payload.setter
    def payload(self, value: Buffer) -> None: ...
    @property
    def is_control(self) -> bool: ...
    @property
    def text(self) -> str: ...
    @property
    def close_code(self) -> int | None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int, /) -> int: ...
    @overload
    def __getitem__(self, index: slice, /) -> bytes: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    # Cython's pickling support.
    def __reduce_cython__(self) -> tuple[Any, ...]: ...
    def __setstate_cython__(self, state: Any, /) -> None: ...

@final
class Inflater:
    """Decompresses the messages of one direction of a permessage-deflate connection."""

    @property
    def window_bits(self) -> int: ...
    @property
    def no_context_takeover(self) -> bool: ...
    # Its arguments go to __cinit__: __new__ at run time.
    def __new__(cls, window_bits: int = 15, *, no_context_takeover: bool = False) -> Self: ...
    def inflate(self, payload: Buffer, fin: bool = True, max_size: int | None = None) -> bytes: ...

@final
class BatchBuilder:
    """Collects messages into :class:`~wsfast.batch.Batch` objects of at most ``max_bytes`` bytes."""

    max_bytes: int
    def __init__(self, max_bytes: int = ...) -> None: ...
    @property
    def nbytes(self) -> int: ...
    def __len__(self) -> int: ...
    def append(self, message: str | Buffer) -> None: ...
    def take(self, max_bytes: int | None = None) -> Batch | None: ...

@disjoint_base
class FrameParser:
    """Streaming frame parser: feed it bytes in any chunking, get complete frames back."""

    @property
    def client(self) -> bool: ...
    @property
    def max_size(self) -> int | None: ...
    @property
    def allowed_rsv(self) -> int: ...
    @property
    def inflater(self) -> Inflater | None: ...
    @property
    def text_as_bytes(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    @property
    def last_frame_count(self) -> int:
        """How many items of the last feed_messages() result are Frame objects."""
    def __init__(
        self,
        *,
        client: bool = True,
        max_size: int | None = ...,
        allowed_rsv: int = 0,
        inflater: Inflater | None = None,
        text_as_bytes: bool = False,
    ) -> None: ...
    def feed(self, data: Buffer) -> list[Frame]: ...
    def payload_window(self) -> memoryview | None: ...
    def partial_frame(self, start: int = 0) -> Frame | None: ...
    def feed_messages(self, data: Buffer) -> list[Frame | bytes | str]: ...
    def feed_batch(self, data: Buffer, batch: BatchBuilder) -> list[Frame | bytes | str]: ...
    @property
    def last_batch_count(self) -> int:
        """How many messages the last feed_batch() call added to its batch."""

# Generic over the messages handed out (str | bytes, or what ``_decode`` returns) in this
# stub only: the Cython classes take no type argument at run time (see wsfast._codec).
@disjoint_base
class _MessageQueue(Generic[M]):
    """The queue of received messages of both receivers, and the decoding of what they hand out."""

    @property
    def _messages(self) -> collections.deque[str | bytes]: ...
    _decode: Callable[[bytes], M] | None
    @property
    def _decode_failure(self) -> DecodeError | None: ...
    def _take_all(self) -> list[M]: ...

class BlockingReceiver(_MessageQueue[M]):
    """Base of the connections of the blocking client and server: received messages."""

    def recv(self, timeout: float | None = None) -> M: ...
    def recv_many(self, timeout: float | None = None) -> list[M]: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> M: ...
    def _fill(self, queue: Sized, timeout: float | None) -> None: ...

@disjoint_base
class Receiver(_MessageQueue[M]):
    """Base of :class:`wsfast.asyncio.WebSocket`: the queue of received messages."""

    _reading_paused: bool
    _resume_below: int
    def recv(self, timeout: float | None = None) -> Coroutine[Any, Any, M]: ...
    def __anext__(self) -> Coroutine[Any, Any, M]: ...
    def __aiter__(self) -> Self: ...
    async def _wait_for_messages(self, timeout: float | None) -> None: ...
    def _resume_reading(self) -> None: ...

def encode_frame(
    opcode: int, payload: Buffer = b"", *, fin: bool = True, rsv: int = 0, mask_key: Buffer | None = None
) -> bytes: ...
def mask(data: Buffer, key: Buffer) -> bytes: ...
def mask_inplace(buffer: Buffer, key: Buffer) -> None: ...
def mask_kernel() -> str:
    """The masking kernel chosen for this CPU at import: "avx2", "sse2", "neon" or "generic"."""

def _pack_lines(buffer: Buffer, bounds: Buffer) -> tuple[bytes, bytes]:
    """A newline-separated batch's payloads back to back, and their int64 offsets."""
