"""Type stubs of the compiled frame codec (same API as ``wsfast._pure``)."""

from typing import Final, overload

from typing_extensions import Buffer

__all__ = ["DEFAULT_MAX_SIZE", "Frame", "FrameParser", "encode_frame", "mask", "mask_inplace"]

DEFAULT_MAX_SIZE: Final[int]

class Frame:
    """One WebSocket frame. ``payload`` is always ``bytes`` (already unmasked)."""

    opcode: int
    payload: bytes
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
    def is_control(self) -> bool: ...
    @property
    def text(self) -> str: ...
    @property
    def close_code(self) -> int | None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class FrameParser:
    """Streaming frame parser: feed it bytes in any chunking, get complete frames back."""

    @property
    def client(self) -> bool: ...
    @property
    def max_size(self) -> int | None: ...
    @property
    def allowed_rsv(self) -> int: ...
    @property
    def buffered(self) -> int: ...
    @property
    def last_frame_count(self) -> int:
        """How many items of the last feed_messages() result are Frame objects."""
    def __init__(self, *, client: bool = True, max_size: int | None = ..., allowed_rsv: int = 0) -> None: ...
    def feed(self, data: Buffer) -> list[Frame]: ...
    def feed_messages(self, data: Buffer) -> list[Frame | bytes | str]: ...

def encode_frame(
    opcode: int, payload: Buffer = b"", *, fin: bool = True, rsv: int = 0, mask_key: Buffer | None = None
) -> bytes: ...
def mask(data: Buffer, key: Buffer) -> bytes: ...
def mask_inplace(buffer: Buffer, key: Buffer) -> None: ...
