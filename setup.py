"""Builds the compiled codec ``wsfast._compiled`` from ``src_c/``, optionally.

When it cannot be built (no C compiler, Cython missing or failing), wsfast still
installs, with its pure-Python codec, and a warning says so. The codec links zlib
(``z`` on POSIX, ``zlib`` with MSVC). Environment switches: ``ZLIB_ROOT`` names a zlib
installation to use (its ``include`` and ``lib`` folders), as Windows needs;
``WSFAST_NO_EXTENSIONS=1`` skips the build; ``WSFAST_REQUIRE_EXTENSION=1`` makes a
failed build an error (for wheels and CI); ``WSFAST_SANITIZE=address,undefined`` (any
``-fsanitize=`` list, with ``CC=clang``) builds for the sanitizers instead of for speed:
``fuzz/sanitized.py`` does that and runs the codec tests and the fuzz target on it.
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
        "src_c/mask_neon.c",
    ],
    include_dirs=["src_c"],
    define_macros=[("ZLIB_CONST", None)],  # zlib's input pointers are const
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
            # An extension left in the build folder by an earlier build would be installed
            # as if just built: take it away, then install and copy nothing in place.
            for ext in self.extensions:
                stale = os.path.join(self.build_lib, self.get_ext_filename(ext.name))
                if os.path.exists(stale):
                    os.remove(stale)
            self.extensions = []
            warn(f"{type(exc).__name__}: {exc}")

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        zlib_root = os.environ.get("ZLIB_ROOT")
        sanitize = os.environ.get("WSFAST_SANITIZE")
        for ext in self.extensions:
            if sanitize:
                # Every fault stops the process, with a stack of readable frames. The
                # runtime is not linked in: Python, not built for it, preloads one.
                flags = [f"-fsanitize={sanitize}", "-fno-sanitize-recover=all"]
                ext.extra_compile_args = ["-O1", "-g", "-fno-omit-frame-pointer", *flags] + ext.extra_compile_args
                ext.extra_link_args = flags + ext.extra_link_args
            elif msvc:
                ext.extra_compile_args = ["/O2"] + ext.extra_compile_args
                self.compile_avx2_alone(ext)
            else:
                # No debug info: it is most of the file (1.4 MB instead of 0.25 MB) and of
                # no use in a wheel. These flags come after Python's own, so -g0 wins.
                ext.extra_compile_args = ["-O3", "-g0"] + ext.extra_compile_args
                if sys.platform != "darwin":  # Apple's linker leaves debug info out anyway
                    ext.extra_link_args = ["-s"] + ext.extra_link_args
            ext.libraries.append("zlib" if msvc else "z")
            if zlib_root:
                ext.include_dirs.append(os.path.join(zlib_root, "include"))
                ext.library_dirs.append(os.path.join(zlib_root, "lib"))
        super().build_extensions()

    def compile_avx2_alone(self, ext):
        """MSVC: builds the AVX2 kernel with /arch:AVX2, which applies to a whole file.

        The rest stays baseline x86; mask_dispatch.c calls the kernel through a pointer,
        and only after checking the CPU, so none of its code can run anywhere else.
        """
        source = "src_c/mask_avx2.c"
        if source in ext.sources:
            ext.sources = [s for s in ext.sources if s != source]
            ext.extra_objects = ext.extra_objects + self.compiler.compile(
                [source],
                output_dir=self.build_temp,
                macros=ext.define_macros,
                include_dirs=ext.include_dirs,
                extra_postargs=[*ext.extra_compile_args, "/arch:AVX2"],
            )


if os.environ.get("WSFAST_NO_EXTENSIONS"):
    warn("WSFAST_NO_EXTENSIONS is set")
    extensions = []
else:
    extensions = [CODEC]

setup(ext_modules=extensions, cmdclass={"build_ext": OptionalBuildExt})
