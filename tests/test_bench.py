"""The peer benchmark runner, on a tiny scale: it measures, reports and writes its JSON;
and the pieces its real-wire cases rest on: the ticks, the server's deflate feed and offers."""

import itertools
import json
import subprocess
import sys

import pytest


def run_bench(out, arguments: list, timeout: float):
    """Run ``python -m wsfast bench`` with ``arguments`` and ``--json out``, require success,
    and return the finished process with the JSON report."""
    command = [sys.executable, "-m", "wsfast", "bench", *arguments, "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(out.read_text())


def test_bench_runner_reports_every_wsfast_contestant(tmp_path):
    out = tmp_path / "bench.json"
    result, report = run_bench(
        out,
        [
            "--cases",
            "feed-100,echo-256,parse-100",
            "--contestants",
            "wsfast,raw-tcp",
            "--scale",
            "0.001",
            "--repeats",
            "1",
        ],
        timeout=300,
    )
    rows = report["results"]
    assert {row["case"] for row in rows} == {"feed-100", "echo-256", "parse-100"}
    assert {"wsfast-python", "wsfast-python-many"} <= {row["contestant"] for row in rows}
    assert {row["contestant"] for row in rows if row["floor"]} == {"raw-tcp"}  # the feed's floor only
    assert report["cases"]["feed-100"]["floor"] == "raw-tcp"
    for row in rows:
        assert not row["errors"], row
        assert row["skipped"] is None, row
        assert row["median_rate"] > 0
    assert "feed-100" in result.stdout


def test_bench_runner_measures_the_real_wire_cases(tmp_path):
    out = tmp_path / "wire.json"
    cases = "tls-json,tls-json-deflate,echo-256-deflate,receive-json-deflate"
    result, report = run_bench(
        out,
        [
            "--cases",
            cases,
            "--contestants",
            "wsfast,raw-tls,raw-tcp,zlib",
            "--scale",
            "0.005",
            "--repeats",
            "1",
            "--timeout",
            "60",
        ],
        timeout=240,
    )
    rows = report["results"]
    assert {row["case"] for row in rows} == set(cases.split(","))
    names = {(row["case"], row["contestant"]) for row in rows}
    assert {
        ("tls-json", "raw-tls"),
        ("tls-json-deflate", "zlib"),
        ("receive-json-deflate", "zlib"),
        ("tls-json", "wsfast-c-callback-uvloop"),
        ("tls-json-deflate", "wsfast-python-many"),
    } <= names
    assert ("tls-json", "zlib") not in names  # a floor only where it is one
    assert ("tls-json", "raw-tcp") not in names  # the wire of this case is TLS
    for row in rows:
        assert not row["errors"], row
        assert row["skipped"] is None, row
        assert row["median_rate"] > 0
        if row["kind"] == "echo":
            assert 0 < row["latency_us"]["p50"] <= row["latency_us"]["p99"] <= row["latency_us"]["p99.9"]
    assert report["cases"]["tls-json"]["floor"] == "raw-tls"
    assert report["cases"]["tls-json-deflate"]["floor"] == "raw-tls+zlib"
    assert "vs floor" in result.stdout


def test_bench_runner_measures_thread_scaling(tmp_path):
    # threads-feed-100 on a tiny scale: a rate per thread count, and its ratio to one thread.
    out = tmp_path / "threads.json"
    result, report = run_bench(out, ["--threads", "1,2", "--scale", "0.0005", "--repeats", "1"], timeout=120)
    assert report["case"] == "threads-feed-100"
    assert report["count"] == 500
    rows = report["results"]
    assert [row["threads"] for row in rows] == [1, 2]
    for row in rows:
        assert not row["errors"], row
        assert row["rate"] > 0
    assert rows[0]["ratio"] == 1
    assert "threads-feed-100" in result.stdout


def test_contestants_without_permessage_deflate_are_skipped_in_deflate_cases():
    from wsfast.bench.runner import CASES, NO_DEFLATE, _new_result

    case = next(case for case in CASES if case.name == "tls-json-deflate")
    assert _new_result(case, "picows").skip == NO_DEFLATE
    assert _new_result(case, "websocket-client").skip == NO_DEFLATE
    assert _new_result(case, "aiohttp").skip == ""


def test_ticks_are_deterministic_compact_json():
    from wsfast.bench.ticks import ticks

    feed = ticks(2000)
    assert feed == ticks(2000)
    assert ticks(100) == feed[:100]  # a longer feed starts with a shorter one
    assert ticks(100, seed=1) != feed[:100]
    assert 110 <= sum(map(len, feed)) / len(feed) <= 140
    assert all(tick.isascii() and " " not in tick for tick in feed)  # compact
    decoded = [json.loads(tick) for tick in feed]
    assert len({item["sym"] for item in decoded}) > 5
    assert len({item["px"] for item in decoded}) > 100
    assert all(a["ts"] < b["ts"] for a, b in itertools.pairwise(decoded))


def test_json_text_is_json_of_the_exact_size():
    from wsfast.bench.ticks import json_text

    text = json_text(256)
    assert len(text) == 256
    assert isinstance(json.loads(text), list)


def _frames(stream: bytes):
    """(first byte, payload) of each unmasked server frame in ``stream``."""
    pos = 0
    while pos < len(stream):
        length, start = stream[pos + 1] & 0x7F, pos + 2
        if length == 126:
            length, start = int.from_bytes(stream[start : start + 2], "big"), start + 2
        yield stream[pos], stream[start : start + length]
        pos = start + length


def test_the_compressed_feed_inflates_to_the_ticks_with_one_context():
    import zlib

    from wsfast.bench.server import ticks_frames
    from wsfast.bench.ticks import TRAILER, ticks

    decompress = zlib.decompressobj(-15).decompress
    frames = list(_frames(ticks_frames(500, deflate=True)))
    assert {first for first, _ in frames} == {0xC1}  # FIN, RSV1, text
    assert [decompress(payload + TRAILER).decode() for _, payload in frames] == ticks(500)
    plain = list(_frames(ticks_frames(500, deflate=False)))
    assert [payload.decode() for first, payload in plain if first == 0x81] == ticks(500)
    # Context takeover: later ticks refer to earlier ones, and shrink far below their size.
    assert sum(len(payload) for _, payload in frames) < sum(map(len, ticks(500))) / 2


@pytest.mark.parametrize(
    "offer, answer",
    [
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; server_max_window_bits=15", "permessage-deflate"),
        ("permessage-deflate; server_no_context_takeover, permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; server_no_context_takeover", None),
        ("permessage-deflate; server_max_window_bits=10", None),
        ("x-webkit-deflate-frame", None),
        ("", None),
    ],
)
def test_the_server_answers_only_deflate_offers_it_can_honour(offer, answer):
    from wsfast.bench.server import deflate_answer

    assert deflate_answer(offer) == answer


def test_the_server_refuses_a_deflate_feed_without_an_offer(no_hang):
    import socket

    from wsfast.bench.runner import Server

    server = Server(idle=30)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"GET /ticks-deflate/10 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    finally:
        server.close()


def test_bench_runner_measures_the_uvicorn_cases(tmp_path):
    pytest.importorskip("uvicorn")
    out = tmp_path / "uvicorn.json"
    _, report = run_bench(
        out,
        ["--cases", "uvicorn-feed-100,uvicorn-echo-256", "--contestants", "wsfast-uvicorn,websockets-sansio"]
        + ["--scale", "0.005", "--repeats", "1", "--timeout", "60"],
        timeout=240,
    )
    rows = report["results"]
    assert {(row["case"], row["contestant"]) for row in rows} == {
        (case, contestant)
        for case in ("uvicorn-feed-100", "uvicorn-echo-256")
        for contestant in ("wsfast-uvicorn", "wsfast-uvicorn-uvloop", "websockets-sansio", "websockets-sansio-uvloop")
    }
    for row in rows:
        if row["skipped"]:  # uvloop is not in the test extra
            assert "uvloop" in row["contestant"], row
            continue
        assert not row["errors"], row
        assert row["uvicorn"] and row["median_rate"] > 0
        assert row["server_peak_rss_mb"] > 10


def test_bench_runner_measures_the_decoded_case(tmp_path):
    # Every tick decoded: contestants with decode=, batches, the pipeline, and the
    # decoders alone; each measured against the floor of its own decoder.
    pytest.importorskip("msgspec")
    pytest.importorskip("polars")
    out = tmp_path / "decoded.json"
    contestants = "wsfast-c-msgspec,wsfast-c-batch-lines,wsfast-python-pipeline-polars,msgspec,polars"
    result, report = run_bench(
        out,
        ["--cases", "tls-json-decoded", "--contestants", contestants]
        + ["--scale", "0.005", "--repeats", "1", "--timeout", "60"],
        timeout=240,
    )
    rows = {row["contestant"]: row for row in report["results"]}
    # "msgspec" chooses the msgspec-lines floor too, as a prefix does
    assert set(rows) == {*contestants.split(","), "msgspec-lines"}
    for row in rows.values():
        assert not row["errors"], row
        assert row["skipped"] is None, row
        assert row["median_rate"] > 0
        assert row["items_per_run"] == 1000
    expected = {
        "wsfast-c-msgspec": ("msgspec", "message", "msgspec"),
        "wsfast-c-batch-lines": ("msgspec-lines", "batch", "msgspec-lines"),
        "wsfast-python-pipeline-polars": ("polars", "batch", "polars"),
        "polars": ("polars", "batch", "polars"),
    }
    for name, (decoder, decoding, floor) in expected.items():
        row = rows[name]
        assert (row["decoder"], row["decoding"], row["floor_contestant"]) == (decoder, decoding, floor)
        assert row["vs_floor"] == pytest.approx(row["median_rate"] / rows[floor]["median_rate"])
        assert row["best_peer"] is None and row["vs_best_peer"] is None  # no peer was chosen
    assert report["cases"]["tls-json-decoded"]["floor"] is None  # one floor per decoder instead
    assert "(polars: floor polars " in result.stdout


def test_only_the_decoded_contestants_take_part_in_the_decoded_case():
    from wsfast.bench.clients import CLIENTS
    from wsfast.bench.decoded import CONTESTANTS, decoder_of, kind_of
    from wsfast.bench.runner import CASES, _contestants

    cases = {case.name: case for case in CASES}
    decoded = _contestants(cases["tls-json-decoded"], None)
    assert set(decoded) == {*CONTESTANTS, "raw-tls"}  # raw-tls: the wire's limit, as in tls-json
    assert not set(CONTESTANTS) & set(_contestants(cases["tls-json"], None))
    assert {
        name: (decoder_of(name), kind_of(name))
        for name in (
            "wsfast-c-msgspec",
            "wsfast-python-many-orjson",
            "wsfast-c-asyncio-orjson-uvloop",
            "wsfast-c-batch-lines",
            "wsfast-c-pipeline-polars",
            "picows-msgspec-uvloop",
            "aiohttp-orjson",
            "msgspec-lines",
            "raw-tls",
        )
    } == {
        "wsfast-c-msgspec": ("msgspec", "message"),
        "wsfast-python-many-orjson": ("orjson", "message"),
        "wsfast-c-asyncio-orjson-uvloop": ("orjson", "message"),
        "wsfast-c-batch-lines": ("msgspec-lines", "batch"),
        "wsfast-c-pipeline-polars": ("polars", "batch"),
        "picows-msgspec-uvloop": ("msgspec", "message"),
        "aiohttp-orjson": ("orjson", "message"),
        "msgspec-lines": ("msgspec-lines", "batch"),
        "raw-tls": (None, "message"),
    }
    assert all(decoder_of(name) for name in CONTESTANTS)
    assert "raw-tls" in CLIENTS


def _results(case_name: str, rates: dict[str, float]):
    """Synthetic results of ``case_name``: one run of one second per contestant."""
    from wsfast.bench.runner import CASES, CLIENTS, Result

    case = next(case for case in CASES if case.name == case_name)
    return [
        Result(case, name, seconds=[1.0], items=int(rate), nbytes=int(rate) * 125, floor=CLIENTS[name].floor)
        for name, rate in rates.items()
    ]


def test_the_decoded_case_is_measured_against_the_floor_and_peers_of_each_decoder():
    from wsfast.bench import report

    rates = {
        "msgspec": 4e6,
        "orjson": 2e6,
        "msgspec-lines": 1e6,
        "polars": 5e5,
        "raw-tls": 8e6,
        "picows-msgspec-uvloop": 1e6,
        "picows-orjson": 8e5,
        "aiohttp-orjson": 5e5,
        "wsfast-c-msgspec": 2e6,
        "wsfast-c-asyncio-orjson-uvloop": 1.2e6,
        "wsfast-c-batch-polars": 4e5,
        "wsfast-c-pipeline-lines": 3e6,
    }
    # tls-json alongside: its ratios are still to its one best peer and summed floors
    results = _results("tls-json-decoded", rates) + _results(
        "tls-json", {"raw-tls": 4e6, "picows": 2e6, "wsfast-c": 3e6}
    )
    document = report.as_json(results, {}, ["bench"], 0.0)
    ratios = {(row["case"], row["contestant"]): (row["vs_best_peer"], row["vs_floor"]) for row in document["results"]}
    expected = {
        # per message: the floor and the fastest peer of the same decoder
        "wsfast-c-msgspec": (2.0, 0.5),
        "wsfast-c-asyncio-orjson-uvloop": (1.5, 0.6),
        "picows-orjson": (1.0, 0.4),
        "aiohttp-orjson": (0.625, 0.25),
        "msgspec": (4.0, 1.0),
        # batches: the floor of their decoder, the fastest peer of any decoder
        "wsfast-c-batch-polars": (0.4, 0.8),
        "wsfast-c-pipeline-lines": (3.0, 3.0),
        "polars": (0.5, 1.0),
        # the wire's limit: no decoder to compare with
        "raw-tls": (None, None),
    }
    for name, (best, floor) in expected.items():
        got = ratios[("tls-json-decoded", name)]
        assert got == (pytest.approx(best) if best else None, pytest.approx(floor) if floor else None), name
    assert ratios[("tls-json", "wsfast-c")] == (pytest.approx(1.5), pytest.approx(0.75))
    rows = {row["contestant"]: row for row in document["results"] if row["case"] == "tls-json-decoded"}
    assert rows["wsfast-c-batch-polars"]["best_peer"] == "picows-msgspec-uvloop"
    assert rows["wsfast-c-asyncio-orjson-uvloop"]["best_peer"] == "picows-orjson"
    assert document["cases"]["tls-json-decoded"]["floor"] is None
    assert document["cases"]["tls-json-decoded"]["floor_rates"]["polars"] == 5e5
    assert document["cases"]["tls-json"]["floor"] == "raw-tls"
    assert "decoder" not in next(row for row in document["results"] if row["case"] == "tls-json")

    text = report.table(results)
    by_name = {line.split()[1]: line.split() for line in text.splitlines() if line.startswith("tls-json-decoded ")}
    assert by_name["wsfast-c-msgspec"][5:7] == ["2.00x", "0.50x"]
    assert by_name["wsfast-c-batch-polars"][5:7] == ["0.40x", "0.80x"]
    assert by_name["raw-tls"][5:7] == ["-", "-"]
    assert "(orjson: floor orjson 2,000,000 msg/s; best peer picows-orjson 800,000 msg/s)" in text
    assert "(batches: best peer of any decoder picows-msgspec-uvloop 1,000,000 msg/s)" in text
    assert "(floor raw-tls+" not in text


def _floor_spec(contestant: str, count: int, px_total: float) -> dict:
    from wsfast.bench.ticks import ticks

    return {
        "contestant": contestant,
        "kind": "feed",
        "url": "wss://localhost:1/ticks",  # the floors decode in memory: no connection
        "count": count,
        "total": sum(map(len, ticks(count))),
        "json": True,
        "deflate": False,
        "cafile": None,
        "px_total": px_total,
    }


@pytest.mark.parametrize("contestant", ["msgspec", "msgspec-lines", "polars", "orjson"])
def test_a_decoder_that_adds_up_other_prices_fails_with_mismatch(contestant):
    from wsfast.bench.decoded import decoder_of
    from wsfast.bench.ticks import px_total
    from wsfast.bench.worker import measure

    pytest.importorskip(decoder_of(contestant).partition("-")[0])
    right = px_total(300)
    assert "seconds" in measure(_floor_spec(contestant, 300, right))
    outcome = measure(_floor_spec(contestant, 300, right * 1.001))
    assert outcome["error"].startswith("Mismatch: the prices add up to "), outcome
    # one tick fewer than the feed has is another sum too
    assert measure(_floor_spec(contestant, 299, right))["error"].startswith("Mismatch: ")


def test_the_prices_add_up_in_feed_order():
    from wsfast.bench.ticks import px_total, ticks

    total = 0.0
    for tick in ticks(1000):
        total += json.loads(tick)["px"]
    assert px_total(1000) == total
    assert px_total(1000) == px_total(999) + json.loads(ticks(1000)[-1])["px"]
