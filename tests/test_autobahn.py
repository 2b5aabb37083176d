"""The Autobahn TestSuite cases, run by ``autobahn/run.py`` for every wsfast agent, each with
both codec twins: the blocking and the asyncio client against kosoku's fuzzing server, and
every server in ``autobahn/run.py``'s table against its fuzzing client.

Skipped when ``kosoku`` is not installed (it comes with the ``test`` extra). The script
reads kosoku's JSON reports and fails on any case in groups 1-10 and in the
permessage-deflate groups 12 and 13 (messages up to 16 KiB; the larger ones only with
``--cases '12.*' --cases '13.*'``) that is not OK or INFORMATIONAL (NON-STRICT fails), also
when it runs again alone.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("kosoku") is None, reason="kosoku is not installed (pip install -e '.[test]')")
def test_autobahn_cases(tmp_path):
    command = [sys.executable, str(ROOT / "autobahn" / "run.py"), "--deflate", "--outdir", str(tmp_path)]
    if os.environ.get("WSFAST_REQUIRE_EXTENSION"):
        command.append("--require-compiled")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
