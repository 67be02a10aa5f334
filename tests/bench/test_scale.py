"""`python -m bench --scale` on tiny sizes, so it cannot rot: no timing is asserted anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as pds
import pytest
from typer.testing import CliRunner

from bench import scale, scale_report
from bench.cli import app


def test_the_corpus_has_one_row_group_per_unit(tmp_path: Path) -> None:
    docs = scale.write_corpus(tmp_path, units=1_500, unit_docs=2)
    data = pds.dataset(tmp_path)
    assert docs == data.count_rows() == 3_000 and len(list(tmp_path.glob("*.parquet"))) == 2
    assert {g.num_rows for f in data.get_fragments() for g in f.row_groups} == {2}


def row(units: int, rss: float, verify_s: float) -> dict:
    steps = {k: {"wall_s": 1.0, "driver_cpu_s": 0.5} for k in
             ("plan", "run", "status", "verify", "report", "card")}
    steps["verify"]["wall_s"] = verify_s
    return {"units": units, "documents": 2 * units, "variants": 4 * units, "wall_s": 9.0,
            "driver_peak_rss_mib": rss, "executor_peak_rss_mib": 200.0, "jvm_peak_rss_mib": 300.0,
            "driver_cpu_s_per_unit": 0.01, "run_driver_cpu_s_per_unit": 0.002,
            "output_files": 3 * units, "verify_ok": True, "steps": steps}


def test_the_projection_is_a_line_through_the_measured_sizes(tmp_path: Path) -> None:
    rows = [row(10_000, 300.0, 40.0), row(1_000, 210.0, 4.0)]  # 10 MiB per 1,000 units
    p = scale_report.projection(rows)
    assert p["driver_rss_mib_per_1000_units"] == 10.0 and p["driver_rss_intercept_mib"] == 200.0
    assert p["driver_peak_rss_mib"] == 200.0 + 10.0 * 400
    assert p["verify_local_s_per_variant"] == 40.0 / 40_000 and p["verify_s_per_unit"] == 0.004
    assert p["verify_spark_minutes"][100] == round(0.004 * 400_000 / 100 / 60, 1)
    scale_report.write(rows, scale.ScaleSettings(), tmp_path)
    assert json.loads((tmp_path / "scale.json").read_text()) == rows
    md = (tmp_path / "scale.md").read_text()
    assert "| 1,000 | 2,000 | 4,000 |" in md and "| 10,000 |" in md and "4,200 MiB" in md


@pytest.mark.spark
def test_the_scale_command_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the bench's work directory is ./work/bench-scale
    result = CliRunner().invoke(app, ["--scale", "--sizes", "3,6", "--out-dir",
                                      str(tmp_path / "bench")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "bench" / "scale.json").read_text())
    assert [r["units"] for r in rows] == [3, 6]
    for r in rows:
        assert r["verify_ok"] and r["units_done"] == r["units"] and r["variants"] == 4 * r["units"]
        assert r["driver_peak_rss_mib"] > 50 and r["executor_peak_rss_mib"] > 20
        assert r["output_files"] >= 3 * r["units"]
    assert "Projection to 400,000 units" in (tmp_path / "bench" / "scale.md").read_text()
