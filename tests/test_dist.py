"""What an installed wsfast says about its codec: ``wsfast.codec_info()`` and the import warning.

pip hides the build's warning when the compiled codec cannot be built, so the twin in use
must be visible at run time. ``WSFAST_EXPECT_KERNEL`` (set by the wheel builds on runners
known to have AVX2) names the kernel the dispatcher must choose.
"""

import os
import platform
import subprocess
import sys
from ast import literal_eval
from pathlib import Path

import wsfast
from wsfast import _pure

MACHINE = platform.machine().lower()
# What the import of wsfast finds, for the child interpreters below.
SITE = str(Path(wsfast.__file__).resolve().parent.parent)
# A child in which the compiled twin cannot be imported, as when it was never built.
WITHOUT_EXTENSION = """
import sys

class NotBuilt:
    def find_spec(self, name, path=None, target=None):
        if name == "wsfast._compiled":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotBuilt())
"""
PRINT_INFO = "import wsfast; print(repr(tuple(wsfast.codec_info())))"


def child(code, *options, no_extensions=False):
    env = {**os.environ, "PYTHONPATH": SITE}
    env.pop("WSFAST_NO_EXTENSIONS", None)
    if no_extensions:
        env["WSFAST_NO_EXTENSIONS"] = "1"
    # Run from there too: `-c` puts the working directory first on sys.path.
    return subprocess.run(
        [sys.executable, *options, "-c", code],
        cwd=SITE,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_codec_info_describes_the_codec_in_use():
    info = wsfast.codec_info()
    assert isinstance(info, wsfast.CodecInfo)
    assert info.compiled == (wsfast.IMPLEMENTATION == "c")
    assert info.version == wsfast.__version__
    assert info.kernel in ("avx2", "sse2", "neon", "generic", "python")
    assert (info.kernel == "python") == (not info.compiled) == (info.reason is not None)


def test_the_pure_twin_names_its_kernel():
    assert _pure.mask_kernel() == "python"


def test_the_compiled_twin_chose_the_kernel_of_this_cpu(twins):
    kernel = twins[1].mask_kernel()
    if MACHINE in ("x86_64", "amd64", "i386", "i686", "x86"):
        assert kernel in ("avx2", "sse2")
    elif MACHINE in ("aarch64", "arm64"):
        assert kernel == "neon"
    else:
        assert kernel in ("neon", "generic")
    expected = os.environ.get("WSFAST_EXPECT_KERNEL")
    if expected:
        assert kernel == expected


def test_with_the_extension_importing_warns_nothing(twins):
    result = child(PRINT_INFO, "-W", "error")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    compiled, kernel, _, reason = literal_eval(result.stdout)
    assert (compiled, kernel, reason) == (True, twins[1].mask_kernel(), None)


def test_without_the_extension_importing_warns_once():
    result = child(WITHOUT_EXTENSION + "import wsfast, wsfast.protocol, wsfast.client\n" + PRINT_INFO)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("RuntimeWarning: wsfast's compiled codec is not available") == 1
    assert "No module named 'wsfast._compiled'" in result.stderr
    assert "WSFAST_NO_EXTENSIONS=1" in result.stderr
    compiled, kernel, _, reason = literal_eval(result.stdout)
    assert (compiled, kernel) == (False, "python")
    assert reason == "ModuleNotFoundError: No module named 'wsfast._compiled'"


def test_warnings_as_errors_fail_the_import_until_the_pure_twin_is_chosen():
    result = child(WITHOUT_EXTENSION + PRINT_INFO, "-W", "error")
    assert result.returncode != 0
    assert "RuntimeWarning: wsfast's compiled codec is not available" in result.stderr
    result = child(WITHOUT_EXTENSION + PRINT_INFO, "-W", "error", no_extensions=True)
    assert result.returncode == 0, result.stderr
    result = child(
        WITHOUT_EXTENSION + PRINT_INFO,
        "-W",
        "error",
        "-W",
        "ignore::RuntimeWarning:wsfast",
    )
    assert result.returncode == 0, result.stderr


def test_the_pure_twin_chosen_on_purpose_warns_nothing():
    result = child(PRINT_INFO, "-W", "error", no_extensions=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert literal_eval(result.stdout) == (
        False,
        "python",
        wsfast.__version__,
        "WSFAST_NO_EXTENSIONS is set",
    )
