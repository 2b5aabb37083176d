"""Picks the frame codec: the compiled twin when it is built, else the pure-Python one.

``WSFAST_NO_EXTENSIONS=1`` (any non-empty value) forces the pure twin.
"""

import os

if os.environ.get("WSFAST_NO_EXTENSIONS"):
    from . import _pure as codec
else:
    try:
        from . import _compiled as codec
    except ImportError:
        from . import _pure as codec

IMPLEMENTATION = "c" if codec.__name__.endswith("_compiled") else "python"

DEFAULT_MAX_SIZE = codec.DEFAULT_MAX_SIZE
Frame = codec.Frame
FrameParser = codec.FrameParser
Inflater = codec.Inflater
encode_frame = codec.encode_frame
mask = codec.mask
mask_inplace = codec.mask_inplace
