"""The peer benchmark runner, on a tiny scale: it measures, reports and writes its JSON."""

import json
import subprocess
import sys


def test_bench_runner_reports_every_wsfast_contestant(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "wsfast", "bench", "--cases", "feed-100,echo-256,parse-100",
         "--contestants", "wsfast", "--scale", "0.001", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    rows = report["results"]
    assert {row["case"] for row in rows} == {"feed-100", "echo-256", "parse-100"}
    assert {"wsfast-python", "wsfast-python-many"} <= {row["contestant"] for row in rows}
    for row in rows:
        assert not row["errors"], row
        assert row["skipped"] is None, row
        assert row["median_rate"] > 0
    assert "feed-100" in result.stdout
