"""Picks the frame codec: the compiled twin when it is built, else the pure-Python one.

``WSFAST_NO_EXTENSIONS=1`` (any non-empty value) forces the pure twin. :func:`codec_info`
says which twin and which masking kernel run. ``BlockingReceiver`` and ``Receiver`` are the
chosen twin's receivers, as generic bases of the connections; ``BlockingCore`` (a
``BlockingReceiver``) and ``StreamCore`` (a ``Receiver``) are the bases of the blocking
and the asyncio connection; ``TLSCore`` the base of the TLS the asyncio connection runs
itself.
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import TYPE_CHECKING, Generic, NamedTuple

from ._typing import M

__all__ = [
    "DEFAULT_MAX_SIZE",
    "IMPLEMENTATION",
    "BlockingCore",
    "BlockingReceiver",
    "CodecInfo",
    "Frame",
    "FrameParser",
    "Inflater",
    "Receiver",
    "StreamCore",
    "TLSCore",
    "codec",
    "codec_info",
    "encode_frame",
    "mask",
    "mask_inplace",
]

_REASON: str | None
if TYPE_CHECKING:
    # Both twins have the API that the compiled one's stub describes.
    from . import _compiled as codec
elif os.environ.get("WSFAST_NO_EXTENSIONS"):
    from . import _pure as codec

    _REASON = "WSFAST_NO_EXTENSIONS is set"
else:
    try:
        codec = importlib.import_module(__package__ + "._compiled")
        _REASON = None
    except ImportError as exc:
        from . import _pure as codec

        _REASON = f"{type(exc).__name__}: {exc}"
        # pip shows the build's own warning only with -v, so without this the pure twin
        # could run unnoticed. A warning rather than a log record: it is shown once,
        # whether or not logging is set up yet, and filtered like any other. Setting
        # WSFAST_NO_EXTENSIONS=1 chooses the pure twin and silences it, as does
        # "-W ignore::RuntimeWarning:wsfast"; under "-W error" importing wsfast fails
        # until one of them is done (or the codec built), which is what that asks for.
        warnings.warn(
            f"wsfast's compiled codec is not available ({_REASON}): the pure-Python codec "
            "runs instead, correct but slower. Install wsfast with a C compiler "
            "(or from a wheel), or set WSFAST_NO_EXTENSIONS=1 to choose the pure codec.",
            RuntimeWarning,
            stacklevel=2,
        )

IMPLEMENTATION = "c" if codec.__name__.endswith("_compiled") else "python"


class CodecInfo(NamedTuple):
    """Which frame codec runs: what :func:`codec_info` returns."""

    compiled: bool
    """True for the compiled twin, False for the pure-Python one."""
    kernel: str
    """The masking kernel: "avx2", "sse2", "neon" or "generic" (compiled), "python" (pure)."""
    version: str
    """wsfast's version."""
    reason: str | None
    """Why the pure twin runs (None when the compiled one does)."""


def codec_info() -> CodecInfo:
    """Say which twin of the frame codec runs, with its masking kernel and why.

    pip hides the build's warning when the compiled codec cannot be built (it shows it
    only with ``-v``); this tells it at run time::

        python -c "import wsfast; print(wsfast.codec_info())"
    """
    from . import __version__

    return CodecInfo(IMPLEMENTATION == "c", codec.mask_kernel(), __version__, _REASON)


DEFAULT_MAX_SIZE = codec.DEFAULT_MAX_SIZE
Frame = codec.Frame
FrameParser = codec.FrameParser
Inflater = codec.Inflater
encode_frame = codec.encode_frame
mask = codec.mask
mask_inplace = codec.mask_inplace
TLSCore = codec.TLSCore

if TYPE_CHECKING:
    BlockingReceiver = codec.BlockingReceiver
    BlockingCore = codec.BlockingCore
    Receiver = codec.Receiver
    StreamCore = codec.StreamCore
else:
    # Only the compiled twin has it: its receivers' iteration slots, which a class made
    # in Python would otherwise reach through a method lookup per message.
    _inherit_iteration = getattr(codec, "_inherit_iteration", lambda cls: None)

    class _CompiledIteration:
        """Gives every class made from it (the receivers below, the connections) the
        compiled receiver's iteration slot."""

        __slots__ = ()

        def __init_subclass__(cls, **kwargs: object) -> None:
            super().__init_subclass__(**kwargs)
            _inherit_iteration(cls)

    # The connections are generic over the messages they hand out (Client[M], ...), which
    # their base must then be too, at run time as well: Client[Tick] is a type users write.
    # The compiled receivers are Cython classes, which take no type argument, so Generic
    # comes in here (for both twins alike). It adds nothing to a call or an instantiation:
    # Generic has no __new__ or __init__, and slots keep the subclasses without a __dict__.

    class BlockingReceiver(codec.BlockingReceiver, _CompiledIteration, Generic[M]):
        __slots__ = ()

    class BlockingCore(codec.BlockingCore, _CompiledIteration, Generic[M]):
        __slots__ = ()

    class Receiver(codec.Receiver, _CompiledIteration, Generic[M]):
        __slots__ = ()

    class StreamCore(codec.StreamCore, _CompiledIteration, Generic[M]):
        __slots__ = ()
