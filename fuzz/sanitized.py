"""Build the compiled codec for AddressSanitizer and UndefinedBehaviorSanitizer, then run
the parser's fuzz target and the codec tests on that build.

    python fuzz/sanitized.py [--fuzz-seconds 45] [--no-tests] [--workdir DIR]

It needs clang with its sanitizer runtimes (Debian: ``clang`` and ``libclang-rt-dev``),
Cython, and for the fuzz target atheris (``pip install atheris``). The extension is built
into the work folder beside a copy of the wsfast package, so the checkout's own build
stays as it is; it is instrumented for libFuzzer's coverage too. Python itself is not
built for the sanitizers: the fuzz target runs with atheris's runtime preloaded (it
brings libFuzzer), the tests with clang's. Any memory error or undefined behaviour
aborts the process. Exit status 1 when the build, the fuzz target or a test fails; the
work folder (a temporary one by default) is then kept, with the failing input.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SANITIZE = "address,undefined,fuzzer-no-link"
# The tests of the codec, of what drives it hardest and of the compiled asyncio connection:
# a few minutes under ASan.
CODEC_TESTS = [
    "test_frame.py",
    "test_parser.py",
    "test_encode.py",
    "test_mask.py",
    "test_codec_properties.py",
    "test_payload_window.py",
    "test_inflate.py",
    "test_messages_fast_path.py",
    "test_rfc6455_examples.py",
    "test_strided_buffers.py",
    "test_twins_buffers.py",
    "test_protocol.py",
    "test_deflate.py",
    "test_receiver.py",
    "test_threads.py",
    "test_backlog.py",
    "test_asyncio_client.py",
    "test_asyncio_send_path.py",
    "test_asyncio_tls.py",
    "test_blocking_fast_path.py",
    "test_client.py",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fuzz-seconds",
        type=int,
        default=60,
        metavar="SECONDS",
        help="how long the fuzz target runs; 0 skips it (default: 60)",
    )
    parser.add_argument("--no-tests", action="store_true", help="skip the codec tests")
    parser.add_argument("--workdir", type=Path, help="keep the build and the fuzz corpus here")
    return parser.parse_args()


def run(command: list, **options) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run(command, check=True, **options)


def output_of(command: list, **options) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, **options).stdout.strip()


def clang_runtime() -> str:
    """clang's ASan runtime (which holds UBSan's too), to preload into Python."""
    if shutil.which("clang") is None:
        sys.exit("clang is not installed (Debian: apt-get install clang libclang-rt-dev)")
    runtime = output_of(["clang", f"-print-file-name=libclang_rt.asan-{platform.machine()}.so"])
    if not os.path.isabs(runtime):
        sys.exit("clang's sanitizer runtimes are not installed (Debian: apt-get install libclang-rt-dev)")
    return runtime


def build(work: Path) -> Path:
    """Build the sanitized extension; return a folder holding wsfast with it."""
    env = {**os.environ, "CC": "clang", "WSFAST_SANITIZE": SANITIZE, "WSFAST_REQUIRE_EXTENSION": "1"}
    env.pop("WSFAST_NO_EXTENSIONS", None)
    run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", work / "lib", "--build-temp", work / "build"],
        cwd=ROOT,
        env=env,
    )
    site = work / "site"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(ROOT / "wsfast", site / "wsfast", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    for extension in (work / "lib" / "wsfast").glob("_compiled*"):
        shutil.copy2(extension, site / "wsfast")
    return site


def environment(site: Path, runtime: str) -> dict:
    """Python with ``runtime`` preloaded and the sanitized wsfast first on its path."""
    env = {
        **os.environ,
        "LD_PRELOAD": runtime,
        "PYTHONPATH": str(site),
        "WSFAST_REQUIRE_EXTENSION": "1",
        # CPython frees nothing at exit, which is no leak; every object in malloc'ed
        # memory lets ASan see each one.
        "ASAN_OPTIONS": "detect_leaks=0",
        "UBSAN_OPTIONS": "print_stacktrace=1",
        "PYTHONMALLOC": "malloc",
    }
    env.pop("WSFAST_NO_EXTENSIONS", None)
    where = output_of([sys.executable, "-c", "import wsfast._compiled as c; print(c.__file__)"], cwd=site, env=env)
    if not where.startswith(str(site)):
        sys.exit(f"the sanitized build is not the one imported: {where}")
    return env


def fuzz(site: Path, work: Path, seconds: int) -> None:
    try:
        atheris = output_of([sys.executable, "-c", "import atheris; print(atheris.path())"])
    except subprocess.CalledProcessError:
        sys.exit("atheris is not installed (pip install atheris), or run with --fuzz-seconds 0")
    env = environment(site, os.path.join(atheris, "asan_with_fuzzer.so"))
    target = ROOT / "fuzz" / "fuzz_parser.py"
    corpus = work / "corpus"
    run([sys.executable, target, "--write-seeds", corpus], cwd=site, env=env)
    run(
        [
            sys.executable,
            target,
            f"-max_total_time={seconds}",
            "-rss_limit_mb=4096",
            "-timeout=30",
            f"-artifact_prefix={work}/",
            "-print_final_stats=1",
            corpus,
        ],
        cwd=site,
        env=env,
    )


def main() -> int:
    args = parse_args()
    runtime = clang_runtime()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="wsfast-sanitized-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        site = build(work)
        if args.fuzz_seconds:
            fuzz(site, work, args.fuzz_seconds)
        if not args.no_tests:
            tests = [ROOT / "tests" / name for name in CODEC_TESTS]
            run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                cwd=site,
                env=environment(site, runtime),
            )
    except subprocess.CalledProcessError as exc:
        print(f"FAILED: {exc}; the build and the inputs are in {work}")
        return 1
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
