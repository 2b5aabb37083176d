"""The echo floor, the client CPU per round trip, the echo over many connections and the
tick-latency cases: end to end on a tiny scale, and their table on made-up results."""

import json
import subprocess
import sys

import pytest


def run_bench(out, arguments: list, timeout: float) -> tuple[str, dict]:
    command = [sys.executable, "-m", "wsfast", "bench", *arguments, "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(out.read_text())


def test_the_echo_cases_have_a_floor_and_the_client_cpu(tmp_path):
    pytest.importorskip("numpy")
    cases = "echo-256,echo-256-tls,echo-256-100"
    contestants = "wsfast-c,wsfast-c-callback,raw-echo,picows"
    stdout, report = run_bench(
        tmp_path / "echo.json",
        ["--cases", cases, "--contestants", contestants, "--scale", "0.005", "--repeats", "1", "--timeout", "60"],
        timeout=240,
    )
    rows = [row for row in report["results"] if not row["skipped"]]
    names = {(row["case"], row["contestant"]) for row in rows}
    assert {("echo-256", "raw-echo"), ("echo-256", "wsfast-c"), ("echo-256-100", "wsfast-c-callback")} <= names
    if report["cases"]["echo-256-tls"]["floor"]:  # trustme installed
        assert ("echo-256-tls", "raw-echo") in names
    assert ("echo-256-100", "wsfast-c") not in names  # a blocking client sits the fanout out
    assert ("echo-256-100", "raw-echo") not in names
    for row in rows:
        assert not row["errors"], row
        assert row["cpu_us_per_trip"] > 0, row
        assert row["latency_us"]["p50"] <= row["latency_us"]["p99.9"]
        if row["case"] != "echo-256-100":
            assert row["floor"] == (row["contestant"] == "raw-echo")
            assert row["vs_floor"] > 0
    fanout = [row for row in rows if row["case"] == "echo-256-100"]
    assert all(row["connections"] == 100 and row["items_per_run"] == 200 for row in fanout)  # 250: 2 each
    assert report["cases"]["echo-256"]["floor"] == "raw-echo"
    assert "cpu " in stdout and "us/trip" in stdout


def test_the_tick_latency_case_times_every_tick(tmp_path):
    pytest.importorskip("numpy")
    stdout, report = run_bench(
        tmp_path / "ticks.json",
        [
            "--cases",
            "tick-latency-10k",
            "--contestants",
            "wsfast-c-many,wsfast-c-batch,wsfast-c-callback,raw-ticks,picows",
            "--scale",
            "0.01",
            "--repeats",
            "1",
            "--timeout",
            "60",
        ],
        timeout=180,
    )
    rows = [row for row in report["results"] if not row["skipped"]]
    assert {"wsfast-c-many", "wsfast-c-batch", "wsfast-c-callback", "raw-ticks"} <= {r["contestant"] for r in rows}
    assert report["cases"]["tick-latency-10k"]["floor"] == "raw-ticks"
    for row in rows:
        assert not row["errors"], row
        latency = row["latency_us"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"] <= latency["max"], row
        assert 0 <= row["late"] <= 400
        assert row["cpu_us_per_message"] > 0
        assert row["items_per_run"] == 400
    assert "tick latency" in stdout and "p99 us" in stdout


def _results(case_name: str, rows: dict) -> list:
    from wsfast.bench.runner import CASES, Result

    case = next(case for case in CASES if case.name == case_name)
    return [
        Result(case, name, **{"seconds": [1.0], "items": 100, "floor": name.startswith("raw"), **fields})
        for name, fields in rows.items()
    ]


def test_the_latency_table_ranks_by_p99_and_divides_it_by_the_best_peers():
    from wsfast.bench import report

    def runs(*p99s: float) -> dict:
        return {
            "latency_us": [{"p50": 10.0, "p99": p99, "p99.9": p99 * 2, "max": p99 * 3} for p99 in p99s],
            "late": [0, 4, 2][: len(p99s)],
            "cpu_us": [3.0] * len(p99s),
        }

    results = _results(
        "tick-latency-10k",
        {
            "picows": runs(60.0, 40.0, 50.0),  # median p99 50: the best peer
            "aiohttp": runs(200.0),
            "wsfast-c-callback": runs(25.0),
            "raw-ticks": runs(20.0),
        },
    )
    results.append(_results("tick-latency-10k", {"websockets-asyncio": {}})[0])
    results[-1].skip = "websockets: not installed"
    text = report.table(results)
    rows = [line for line in text.splitlines() if line.startswith("tick-latency-10k")]
    assert [row.split()[1] for row in rows] == [
        "raw-ticks",
        "wsfast-c-callback",
        "picows",
        "aiohttp",
        "websockets-asyncio",
    ]
    callback = rows[1].split()
    assert callback[2:8] == ["10", "25", "50", "75", "0", "0.50x"]  # p50 p99 p99.9 max late, p99 / picows's 50
    assert callback[8] == "1.25x"  # over the floor's 20
    assert "cpu 3.0 us/tick" in rows[1]
    assert rows[2].split()[6] == "2"  # picows: the median of 0, 4, 2 late ticks
    assert "skipped: websockets" in rows[4]
    assert "lower is better" in text

    document = report.as_json(results, {}, ["bench"], 0.0)
    by_name = {row["contestant"]: row for row in document["results"]}
    assert by_name["wsfast-c-callback"]["vs_best_peer"] == pytest.approx(0.5)
    assert by_name["aiohttp"]["vs_floor"] == pytest.approx(10.0)
    assert by_name["picows"]["latency_us"]["p99"] == 50.0
    assert by_name["picows"]["cpu_us_per_message"] == 3.0
    assert document["cases"]["tick-latency-10k"] == {
        "rate": 10_000,
        "best_peer": "picows",
        "best_peer_p99_us": 50.0,
        "floor": "raw-ticks",
        "floor_p99_us": 20.0,
    }


def test_the_echo_table_notes_the_client_cpu_per_round_trip():
    from wsfast.bench import report

    results = _results(
        "echo-256",
        {
            "wsfast-c": {"cpu_us": [12.0, 10.0, 11.0], "seconds": [1.0, 1.0, 1.0]},
            "raw-echo": {"cpu_us": [5.0]},
        },
    )
    text = report.table(results)
    assert "cpu 11.0 us/trip" in text and "cpu 5.0 us/trip" in text
    rows = {row["contestant"]: row for row in report.as_json(results, {}, ["bench"], 0.0)["results"]}
    assert rows["wsfast-c"]["cpu_us_per_trip"] == 11.0
    assert rows["wsfast-c"]["vs_floor"] == 1.0  # the same rate as the floor here
