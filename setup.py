"""Builds the compiled codec ``wsfast._compiled`` from ``src_c/``, optionally.

When it cannot be built (no C compiler, Cython missing or failing), wsfast still
installs, with its pure-Python codec, and a warning says so. Environment switches:
``WSFAST_NO_EXTENSIONS=1`` skips the build; ``WSFAST_REQUIRE_EXTENSION=1`` makes a
failed build an error (for wheels and CI).
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CODEC = Extension(
    "wsfast._compiled",
    sources=[
        "src_c/_compiled.pyx",
        "src_c/frame_header.c",
        "src_c/mask_dispatch.c",
        "src_c/mask_generic.c",
        "src_c/mask_sse2.c",
        "src_c/mask_avx2.c",
    ],
    include_dirs=["src_c"],
)


def warn(reason: str) -> None:
    line = "*" * 76
    print(
        f"\n{line}\nWARNING: wsfast's compiled codec was not built ({reason}).\n"
        "wsfast is installed with its pure-Python codec, which is correct but slower.\n"
        f"{line}\n",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """Builds the extension with full optimisation; on failure, falls back to pure Python."""

    def run(self):
        try:
            super().run()
        except BaseException as exc:  # compiler and Cython failures come in many types
            if os.environ.get("WSFAST_REQUIRE_EXTENSION") or isinstance(exc, KeyboardInterrupt):
                raise
            self.extensions = []  # nothing to install or copy in place
            warn(f"{type(exc).__name__}: {exc}")

    def build_extensions(self):
        optimise = ["/O2"] if self.compiler.compiler_type == "msvc" else ["-O3"]
        for ext in self.extensions:
            ext.extra_compile_args = optimise + ext.extra_compile_args
        super().build_extensions()


if os.environ.get("WSFAST_NO_EXTENSIONS"):
    warn("WSFAST_NO_EXTENSIONS is set")
    extensions = []
else:
    extensions = [CODEC]

setup(ext_modules=extensions, cmdclass={"build_ext": OptionalBuildExt})
