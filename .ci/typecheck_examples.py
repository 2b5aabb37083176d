"""Type-check the documentation's examples: ``mypy --strict`` on examples/*.py and on every
```python block of README.md and docs/**/*.md, each block on its own as a module.

A block that cannot stand alone is skipped only when a comment right before it says so
and why: ``<!-- typecheck: skip (reason) -->``. Run from anywhere; exits with mypy's status.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A fenced block, with what precedes it on its line (the fence's indentation in a list).
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL
)
_SKIP = re.compile(r"<!--\s*typecheck:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks(path: Path) -> list[tuple[int, str]]:
    """The python blocks of ``path`` to check: (line of the fence, code), skips left out."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if _SKIP.search(before):
            continue
        indent = match["indent"]
        body = "".join(row.removeprefix(indent) for row in match["body"].splitlines(True))
        blocks.append((line, body))
    return blocks


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wsfast-doc-examples-") as directory:
        files = [str(path) for path in sorted((ROOT / "examples").glob("*.py"))]
        for document in _documents():
            stem = re.sub(r"\W", "_", str(document.relative_to(ROOT).with_suffix("")))
            for line, code in _blocks(document):
                # One directory per block: each is a module of its own, named after its place.
                target = Path(directory, f"{stem}_{line}", f"{stem}_line_{line}.py")
                target.parent.mkdir()
                target.write_text(code, encoding="utf-8")
                files.append(str(target))
        # A cache of its own: a shared one would replay old messages under old file names.
        cache = str(Path(directory) / ".mypy_cache")
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            cache,
            *files,
        ]
        done = subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True)
        # Name a block by its document and line rather than by its temporary file.
        output = re.sub(
            re.escape(directory) + r"/[^/]+/(?P<stem>\w+?)_line_(?P<line>\d+)\.py:(?P<at>\d+)",
            lambda m: f"{m['stem']}.md (block at line {m['line']}), line {m['at']}",
            done.stdout + done.stderr,
        )
        sys.stdout.write(output)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
