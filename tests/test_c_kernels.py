"""The masking kernels in C, tested by ``tests/c/test_mask_kernels.c`` on every CPU we can reach.

Natively it checks the generic, SSE2 and AVX2 kernels (on x86-64) or NEON (on ARM) and the
dispatcher's choice; under ``qemu-x86_64 -cpu Nehalem`` the same binary must fall back to
SSE2; cross-compiled for aarch64 (``aarch64-linux-gnu-gcc``) and run under ``qemu-aarch64``
it checks the NEON kernel. Each part skips without its tools, unless
``WSFAST_REQUIRE_CROSS=1`` (``.ci/run`` sets it and installs them).
"""

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src_c"
TEST_PROGRAM = ROOT / "tests" / "c" / "test_mask_kernels.c"
KERNELS = [
    "mask_generic.c",
    "mask_sse2.c",
    "mask_avx2.c",
    "mask_neon.c",
    "mask_dispatch.c",
]
# Kernel warnings are bugs waiting to happen: any fails the build.
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]
MACHINE = platform.machine().lower()
X86_64 = MACHINE in ("x86_64", "amd64")
ARM = MACHINE in ("aarch64", "arm64") or MACHINE.startswith("arm")


def need(tool, what):
    """The path of ``tool``; skips (fails under WSFAST_REQUIRE_CROSS) when it is missing."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not found: needed to {what}"
        if os.environ.get("WSFAST_REQUIRE_CROSS"):
            pytest.fail(f"WSFAST_REQUIRE_CROSS is set but {message}", pytrace=False)
        pytest.skip(message)
    return path


def build(compiler, output, *flags):
    sources = [str(TEST_PROGRAM)] + [str(SRC / name) for name in KERNELS]
    result = subprocess.run(
        [compiler, *CFLAGS, *flags, f"-I{SRC}", "-o", str(output), *sources],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stderr, result.stderr
    return output


def run(*command):
    """Runs the test program; returns the kernel the dispatcher chose, once all checks passed."""
    result = subprocess.run(
        list(map(str, command)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("ok: "), result.stdout
    chosen = [line.split(": ", 1)[1] for line in lines if line.startswith("chosen: ")]
    assert len(chosen) == 1, result.stdout
    return chosen[0]


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    if sys.platform == "win32":
        pytest.skip("the C test builds with a gcc-style compiler; MSVC builds run tests/test_mask.py")
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        need("cc", "build the C kernels' test")
    return build(compiler, tmp_path_factory.mktemp("native") / "test_mask_kernels")


@pytest.fixture(scope="module")
def native_choice(native):
    """The kernel the native run chose, once every kernel it has passed."""
    return run(native)


def test_kernels_natively(native_choice):
    chosen = native_choice
    if X86_64 and chosen != "neon":  # (an arm64 cc under Rosetta builds for ARM)
        assert chosen in ("avx2", "sse2")
    elif ARM and chosen not in ("avx2", "sse2"):
        assert chosen == "neon"


def test_the_extension_chose_the_same_kernel(native_choice, twins):
    compiled = twins[1]
    chosen = native_choice
    if (chosen == "neon") != ARM:
        pytest.skip(f"the C compiler builds for another architecture than {MACHINE} Python")
    assert compiled.mask_kernel() == chosen


@pytest.mark.skipif(not (sys.platform == "linux" and X86_64), reason="x86-64 Linux only")
def test_without_avx2_the_dispatcher_falls_back_to_sse2(native):
    qemu = need("qemu-x86_64", "run the kernels on a CPU without AVX2")
    assert run(qemu, "-cpu", "Nehalem", native) == "sse2"


@pytest.mark.skipif(ARM, reason="runs natively on ARM")
def test_neon_on_aarch64_under_qemu(tmp_path):
    compiler = need("aarch64-linux-gnu-gcc", "cross-compile the kernels for aarch64")
    qemu = shutil.which("qemu-aarch64-static") or need("qemu-aarch64", "run aarch64 programs")
    # Static: qemu then needs no aarch64 system libraries.
    program = build(compiler, tmp_path / "test_mask_kernels", "-static")
    assert run(qemu, program) == "neon"
