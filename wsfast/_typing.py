"""The type variables of the connections, which are generic over the messages they hand out.

``Client[M]``, ``ServerConnection[M]`` and the asyncio ones deliver ``M`` from ``recv()``,
``recv_many()``, iteration and ``on_message``: ``str | bytes`` without ``decode`` (M's
default, so that a bare ``Client`` still means that), else what ``decode`` returns.
``connect()`` and ``serve()`` pick it from their ``decode`` argument (``T``).

The default exists for type checkers only: at run time ``M`` is a plain TypeVar, as
Python 3.10-3.12 have no defaults.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING

__all__ = ["M", "T"]

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    M = TypeVar("M", default=str | bytes)
else:
    M = typing.TypeVar("M")

T = typing.TypeVar("T")
