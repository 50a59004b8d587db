"""The benchmark pages under docs/benchmarks/ are what `benchmarks/docs_pages.py`
renders from the JSON beside them, and a page states its command, date,
machine and package versions. The renderer itself is checked on a run's JSON
written by `write`, read back from disk."""

import json
import pathlib
import re
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "benchmarks"
sys.path.insert(0, str(ROOT / "benchmarks"))

import docs_pages  # noqa: E402

RECORDS = sorted(PAGES.glob("*.json"))


def test_every_benchmark_has_a_committed_page():
    assert {p.stem for p in RECORDS} <= set(docs_pages.BENCHMARKS)
    assert {"backend_speed", "loader_speed", "predict_end_to_end"} <= {p.stem for p in RECORDS}


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.stem)
def test_page_regenerates_from_its_json(record):
    rec = json.loads(record.read_text())
    page = record.with_suffix(".md").read_text()
    assert page == docs_pages.render_page(rec), f"{record.with_suffix('.md')} is stale: run benchmarks/docs_pages.py"
    machine = rec["machine"]
    assert f"- command: `{rec['command']}`" in page
    assert re.match(r"(KERAS_BACKEND=\w+ )?python benchmarks/\w+\.py ", rec["command"])
    assert f"- date: {rec['date']}" in page
    assert machine["cpu"] in page and f"{machine['cores']} cores" in page
    assert f"AVX512-BF16 {'yes' if machine['avx512_bf16'] else 'no'}" in page
    assert f"AMX {'yes' if machine['amx'] else 'no'}" in page
    assert all(f"{name} {version}" in page for name, version in rec["packages"].items())


def test_check_mode_finds_a_stale_page(tmp_path):
    record = PAGES / "loader_speed.json"
    shutil.copy(record, tmp_path / record.name)
    shutil.copy(record.with_suffix(".md"), tmp_path / "loader_speed.md")
    assert docs_pages.main([str(tmp_path), "--check"]) == 0
    page = tmp_path / "loader_speed.md"
    page.write_text(page.read_text().replace("| grain | pyav | 1 |", "| grain | pyav | 1 | 999 |"))
    assert docs_pages.main([str(tmp_path), "--check"]) == 1
    assert docs_pages.main([str(tmp_path)]) == 0
    assert page.read_text() == (PAGES / "loader_speed.md").read_text()


def test_write_renders_the_result_it_was_given(tmp_path):
    result = json.loads((PAGES / "loader_speed.json").read_text())["result"]
    result["results"][0]["clips_per_s"] = 12.34
    page = docs_pages.write(tmp_path, "loader_speed", result, ["--quick", "--docs", "x y"], note="a test")
    rec = json.loads((tmp_path / "loader_speed.json").read_text())
    assert rec["result"] == result and rec["machine_note"] == "a test"
    assert rec["command"].endswith("python benchmarks/loader_speed.py --quick --docs 'x y'")
    text = page.read_text()
    assert "| grain | pyav | 1 | 12.34 |" in text and text.count("a test") == 1
