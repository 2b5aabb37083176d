"""Fails if anything installed in this environment is not the version .ci/constraints.txt pins.

``.ci/run`` runs it once everything is installed: a dependency added to pyproject.toml (or
pulled in by a new release) without ``.ci/lock`` would otherwise arrive unpinned and go
unnoticed until a release of it breaks CI. Usage: ``python .ci/check_pinned.py LOCK``.
"""

import sys
from importlib.metadata import distributions

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def pins(lock: str) -> dict[str, str]:
    """The lock's pins that apply to this interpreter: {name: version}."""
    pinned = {}
    with open(lock, encoding="utf-8") as lines:
        for line in lines:
            if line[:1].isalnum():  # a requirement; hashes and comments are indented or #
                requirement = Requirement(line.rstrip(" \\\n"))
                if requirement.marker is None or requirement.marker.evaluate():
                    (spec,) = requirement.specifier
                    pinned[canonicalize_name(requirement.name)] = spec.version
    return pinned


def main() -> int:
    pinned = pins(sys.argv[1])
    wrong = []
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name != "wsfast" and pinned.get(name) != dist.version:
            wrong.append(f"{name} {dist.version} (pinned: {pinned.get(name, 'nothing')})")
    for line in sorted(wrong):
        print(f"not as pinned: {line}", file=sys.stderr)
    if wrong:
        print("run .ci/lock to pin what pyproject.toml now asks for", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
