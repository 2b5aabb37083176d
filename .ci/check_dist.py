"""Builds wsfast's sdist, then a wheel from it as pip does, and checks both.

- The sdist holds every file of the project that it should (those git tracks, less CI's
  own and the benchmark charts' data), the licence, and nothing built.
- The wheel, built from that sdist in a fresh virtual environment with the build
  requirements of pyproject.toml, carries the licence (PEP 639 metadata) and a compiled
  codec without debug info (under 400 KB).
- Installed into that environment, it imports the compiled twin; from the unpacked
  sdist, the tests of ``codec_info()``, of the C kernels and of masking and encoding
  pass against it, and the benchmarks are collected.

Usage: ``python .ci/check_dist.py [--keep DIR] [--lock FILE]`` (``.ci/run`` runs it, with
``--lock .ci/constraints.txt``; about 2 minutes). With ``--lock``, the fresh environment's
tools are the lock's pinned, hash-checked ones, and so are the wheel's build requirements.
"""

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_EXTENSION_SIZE = 700_000  # a build with debug info is several MB
# Tracked files that the sdist leaves out on purpose.
NOT_SHIPPED_DIRS = (".ci/", ".github/")
NOT_SHIPPED_FILES = (".gitignore",)
NOT_SHIPPED_SUFFIXES = {"benchmarks/results/": (".json", ".png")}
# Built or cached files that must never be shipped.
NEVER_SHIPPED = (
    "src_c/_compiled.c",
    ".so",
    ".pyd",
    ".pyc",
    "__pycache__/",
    ".hypothesis/",
    "build/",
)
SMOKE = """
import sys, wsfast
info = wsfast.codec_info()
print(info, "from", wsfast.__file__)
assert info.compiled and info.kernel in ("avx2", "sse2", "neon", "generic"), info
assert wsfast.__file__.startswith(sys.prefix), "the test imported the checkout, not the wheel"
key = b"\\x01\\x02\\x03\\x04"
frame = wsfast.encode_frame(wsfast.Opcode.BINARY, bytes(range(256)) * 40, mask_key=key)
[parsed] = wsfast.FrameParser(client=False).feed(frame)
assert parsed.payload == bytes(range(256)) * 40
assert wsfast.mask(wsfast.mask(b"hello, world", key), key) == b"hello, world"
"""


def step(title):
    print(f"--- {title} ({time.monotonic() - START:.0f} s)", flush=True)


def run(*command, cwd=None, env=None, quiet=False, timeout=600):
    """Runs a command; a quiet one shows its output only when it fails."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        timeout=timeout,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
        check=False,
    )
    if result.returncode:
        sys.exit(f"{result.stdout or ''}\nfailed ({result.returncode}): {' '.join(map(str, command))}")


def shipped_files():
    """The project's files that the sdist must hold: those git tracks (what tests write is not)."""
    listed = subprocess.run(
        ["git", "ls-files"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    expected = set()
    for name in filter(None, listed):
        if not (ROOT / name).is_file() or name.startswith(NOT_SHIPPED_DIRS) or name in NOT_SHIPPED_FILES:
            continue
        if any(
            name.startswith(folder) and name.endswith(suffixes) for folder, suffixes in NOT_SHIPPED_SUFFIXES.items()
        ):
            continue
        if any(part in name or name.endswith(part) for part in NEVER_SHIPPED):
            continue
        expected.add(name)
    return expected


def check_sdist(sdist, work):
    with tarfile.open(sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0] + "/"
        names = {member.name[len(prefix) :] for member in archive.getmembers() if member.isfile()}
        archive.extractall(work, filter="data") if hasattr(tarfile, "data_filter") else archive.extractall(work)
        pkg_info = archive.extractfile(prefix + "PKG-INFO").read().decode()
    if (ROOT / ".git").exists():
        missing = shipped_files() - names
        assert not missing, f"the sdist lacks {sorted(missing)}: add them to MANIFEST.in"
    for name in (
        "LICENSE",
        "benchmarks/pytest.ini",
        "tests/c/test_mask_kernels.c",
        "src_c/mask_neon.c",
        "setup.py",
    ):
        assert name in names, f"the sdist lacks {name}"
    built = sorted(name for name in names if any(part in name or name.endswith(part) for part in NEVER_SHIPPED))
    assert not built, f"the sdist holds built or cached files: {built}"
    assert "License-Expression: BSD-3-Clause" in pkg_info.splitlines(), "no License-Expression in PKG-INFO"
    print(f"sdist: {len(names)} files, {sdist.stat().st_size // 1024} KB")
    return work / prefix


def check_wheel(wheel):
    with zipfile.ZipFile(wheel) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        [metadata] = [name for name in infos if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    assert "License-Expression: BSD-3-Clause" in lines, "no License-Expression in the wheel's METADATA"
    assert "License-File: LICENSE" in lines, "no License-File in the wheel's METADATA"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in infos), "the wheel lacks LICENSE"
    assert not [line for line in lines if line.startswith("Classifier: License ::")], (
        "licence classifiers are superseded"
    )
    extensions = [
        info for name, info in infos.items() if name.startswith("wsfast/_compiled") and name.endswith((".so", ".pyd"))
    ]
    assert len(extensions) == 1, f"the wheel holds {len(extensions)} compiled codecs"
    size = extensions[0].file_size
    assert size < MAX_EXTENSION_SIZE, f"{extensions[0].filename} is {size} bytes: built with debug info?"
    for name in ("wsfast/py.typed", "wsfast/_compiled.pyi"):
        assert name in infos, f"the wheel lacks {name}"
    assert not [name for name in infos if name.startswith(("tests/", "src_c/", "benchmarks/"))], (
        "the wheel holds sources"
    )
    print(f"wheel: {wheel.name}, {len(infos)} files; {extensions[0].filename}: {size // 1024} KB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the sdist and the wheel into DIR")
    parser.add_argument("--lock", type=Path, metavar="FILE", help="install pinned tools from this lock file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsfast-dist-") as scratch:
        work = Path(scratch)
        dist = work / "dist"
        env = {
            **os.environ,
            "WSFAST_REQUIRE_EXTENSION": "1",
        }  # a failed build must not pass as pure
        env.pop("WSFAST_NO_EXTENSIONS", None)
        if args.lock:
            env["PIP_BUILD_CONSTRAINT"] = str(args.lock.resolve())

        step("building the sdist")
        run(
            sys.executable,
            "-m",
            "build",
            "--sdist",
            "--outdir",
            dist,
            ROOT,
            env=env,
            quiet=True,
        )
        [sdist] = dist.glob("wsfast-*.tar.gz")
        unpacked = check_sdist(sdist, work / "unpacked")

        step("building a wheel from the sdist in a fresh virtual environment")
        venv.create(work / "venv", with_pip=True)
        bindir = "Scripts" if os.name == "nt" else "bin"
        python = work / "venv" / bindir / "python"
        run(
            python,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            dist,
            sdist,
            env=env,
            quiet=True,
        )
        [wheel] = dist.glob("wsfast-*.whl")
        check_wheel(wheel)

        step("installing the wheel and trying it")
        if args.lock:  # every pinned tool, hash-checked, then the wheel alone
            run(python, "-m", "pip", "install", "--require-hashes", "--no-deps", "-r", args.lock, env=env, quiet=True)
            run(python, "-m", "pip", "install", "--no-deps", wheel, env=env, quiet=True)
        else:
            run(python, "-m", "pip", "install", wheel, "pytest", "pytest-benchmark", "hypothesis", env=env, quiet=True)
        outside = work / "elsewhere"
        outside.mkdir()
        run(python, "-c", SMOKE, cwd=outside, env=env)
        # The pytest script, unlike `python -m`, does not put the unpacked sources on
        # sys.path: the tests import the installed wheel.
        pytest = work / "venv" / bindir / "pytest"
        tests = [
            "test_dist.py",
            "test_c_kernels.py",
            "test_mask.py",
            "test_frame.py",
            "test_encode.py",
        ]
        run(
            pytest,
            "-q",
            "-p",
            "no:cacheprovider",
            *[f"tests/{name}" for name in tests],
            cwd=unpacked,
            env=env,
        )
        # Without benchmarks/pytest.ini (bench_*.py files) this would collect nothing: exit 5.
        run(
            pytest,
            "-q",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "benchmarks",
            cwd=unpacked,
            env=env,
            quiet=True,
        )

        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for built in (sdist, wheel):
                (args.keep / built.name).write_bytes(built.read_bytes())
        step("sdist and wheel are complete")


START = time.monotonic()

if __name__ == "__main__":
    main()
