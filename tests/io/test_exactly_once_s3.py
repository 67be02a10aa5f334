"""Exactly once across resumes on S3 (moto's server): the real `run_job`, a copied input and
another unit cutting, read back with pyarrow and checked by `verify`."""

from __future__ import annotations

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.reliability.test_exactly_once import UNITS, config, run_units

pytestmark = pytest.mark.cluster


def _put(fs, key: str) -> None:
    texts = [f"Lesson {i}. The river rises in the hills and runs to the sea." for i in
             range(2 * UNITS)]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(2 * UNITS)], "text": texts}), sink,
                   row_group_size=2)
    fs.pipe(key, sink.getvalue().to_pybytes())


def test_a_resume_through_a_copied_bucket_and_another_cutting_runs_nothing_twice(moto_s3
                                                                                 ) -> None:
    from mga_spark.tools.verify import verify

    fs = fsspec.filesystem("s3")
    _put(fs, "race/eo/in/a.parquet")
    out = "s3://race/eo/out"
    assert run_units(config("s3://race/eo/in", out), limit=1) == (0, 1)
    fs.copy("race/eo/in/a.parquet", "race/eo/copy/renamed.parquet")  # a copied bucket
    assert run_units(config("s3://race/eo/copy", out)) == (1, UNITS - 1)
    assert run_units(config("s3://race/eo/copy", out, "job.unit_docs=1")) == (UNITS, 0)
    fs.invalidate_cache()
    with fs.open("race/eo/out/_run.json") as f:  # output exists and holds the run record
        assert b"fingerprint" in f.read()
    ids = []
    for key in fs.find("race/eo/out/data"):
        with fs.open(key, "rb") as f:
            ids += pq.read_table(f).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 2 * UNITS * 5
    result = verify(out)
    assert result.ok and result.counts["duplicate_ids"] == 0, result.problems
