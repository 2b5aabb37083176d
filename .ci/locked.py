"""Entries of the hashed lock (.ci/constraints.txt) for pip, which cannot use it as it is.

pip turns a constraints file with hashes into hash-checking mode for every requirement,
where a requirement without its own hash (an extra, a local folder) is an error. So the
lock is used in two forms:

    python locked.py LOCK --pins          the lock without its hashes, as constraints
    python locked.py LOCK NAME...         the lock's entries, hashes included, for NAMEs
    python locked.py LOCK --report FILE   likewise for what a `pip install --report` chose

The entries of a name are copied whole (a universal lock may hold several, one per range
of Pythons, and pip takes the one whose marker fits). A name the lock lacks is an error.
"""

import json
import re
import sys


def entries(lock: str) -> dict[str, list[str]]:
    """The lock's entries by normalised name; an entry runs to the line not ending in \\."""
    found: dict[str, list[str]] = {}
    entry: list[str] = []
    with open(lock, encoding="utf-8") as file:
        for line in file:
            if not entry and (not line.strip() or line.lstrip().startswith("#")):
                continue
            entry.append(line.rstrip("\n"))
            if not line.rstrip().endswith("\\"):
                name = normalise(re.split(r"[=<>!~ ;\[]", entry[0].strip(), maxsplit=1)[0])
                found.setdefault(name, []).append("\n".join(entry))
                entry = []
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    lock, *args = sys.argv[1:]
    locked = entries(lock)
    if args == ["--pins"]:
        for lines in locked.values():
            for entry in lines:
                print(re.sub(r"\s*\\\n\s*--hash=\S+", "", entry).rstrip(" \\"))
        return
    if args[:1] == ["--report"]:
        with open(args[1], encoding="utf-8") as file:
            report = json.load(file)
        args = [item["metadata"]["name"] for item in report["install"] if not item.get("is_direct")] + args[2:]
    missing = [name for name in args if normalise(name) not in locked]
    if missing:
        sys.exit(f"{lock} has no entry for {', '.join(missing)}")
    for name in dict.fromkeys(normalise(name) for name in args):
        print("\n".join(locked[name]))


if __name__ == "__main__":
    main()
