"""verify on hand-built outputs: exact accounting passes; each kind of break is named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.io import commit as io_commit
from mga_spark.io import records
from mga_spark.io.plan import make_plan
from mga_spark.schema import DATA_SCHEMA, RejectRow, VariantRow
from mga_spark.tools.verify import verify
from tests.helpers import make_config

PAIRS = 5
Rows = list[VariantRow | RejectRow]


def variant(src: str, chunk: int, pair: int | None, vid: str | None = None) -> VariantRow:
    kind = "original" if pair is None else "reformulation"
    return VariantRow(
        id=vid or (f"{src}/original" if pair is None else f"{src}/{chunk}/{pair}"),
        source_id=src, chunk_index=chunk, pair_index=pair, kind=kind, text="t", genre=None,
        genre_description=None, audience=None, audience_description=None, judge_score=None,
        judge_analysis=None, input_tokens=1, output_tokens=1, model="m", prompt_version="v",
        mode="base", language="en", finish_reason=None, keyword_coverage=None, novelty=None,
    )


def input_reject(src: str, reason: str = "null_text") -> RejectRow:
    return RejectRow(src, None, None, "input", reason, "")


def processed(src: str, chunks: int = 1, ga_rejected: tuple = (), pair_rejected: tuple = (),
              original: bool = True) -> Rows:
    rows: Rows = [variant(src, 0, None)] if original else []
    for c in range(chunks):
        if c in ga_rejected:
            rows.append(RejectRow(src, c, None, "ga", "ga_not_json", "no JSON"))
            continue
        for p in range(PAIRS):
            if (c, p) in pair_rejected:
                rows.append(RejectRow(src, c, p, "judge", "judge_failed", "score 1"))
            else:
                rows.append(variant(src, c, p))
    return rows


@pytest.fixture
def run(tmp_path: Path):
    """An input of ids a, b, c, c in two units of two rows, and an output for it."""
    inp = tmp_path / "in" / "docs.parquet"
    inp.parent.mkdir()
    pq.write_table(pa.table({"text": ["x"] * 4, "doc_id": ["a", "b", "c", "c"]}), inp,
                   row_group_size=2)
    out = tmp_path / "out"
    cfg = make_config(input={"paths": [str(inp.parent)], "id_column": "doc_id"},
                      output={"path": str(out), "include_original": True},
                      ga={"num_pairs": PAIRS}, job={"unit_docs": 2})
    records.write_json(str(out), "_run.json", {"config": cfg.redacted(), "fingerprint": "f"})
    units = make_plan(cfg.input, cfg.job.unit_docs).units
    return out, units


def exact_rows() -> list[tuple[Rows, dict]]:
    unit0 = processed("a", 2, ga_rejected=(0,), pair_rejected=((1, 2),)) + [input_reject("b")]
    unit1 = processed("c") + [input_reject("c", "duplicate_id")]
    return [(unit0, {"a": 2}), (unit1, {"c": 1})]


def commit(out: Path, units: list, contents: list[tuple[Rows, dict]]) -> None:
    for unit, (rows, chunks) in zip(units, contents, strict=True):
        writer = io_commit.UnitWriter(str(out), unit, DATA_SCHEMA, "zstd")
        writer.add(rows)
        writer.commit({"chunks": chunks})


def test_exact_output_passes_with_counts(run) -> None:
    out, units = run
    commit(out, units, exact_rows())
    result = verify(str(out))
    assert result.problems == [] and result.ok
    assert result.counts == {
        "documents": 4, "units": 2, "units_done": 2, "bad_files": 0, "variants": 9,
        "originals": 2, "rejects": 4, "expected_slots": 15, "accounted_slots": 15,
        "duplicate_ids": 0, "by_stage": {"ga": 1, "input": 2, "judge": 1}, "problems": 0,
        "stray_files": 0, "staged_leftovers": 0, "temp_leftovers": 0, "units_outside_input": 0,
        "rows_missing": 0,
    }


def test_a_missing_pair_is_named(run) -> None:
    out, units = run
    contents = exact_rows()
    contents[1][0].remove(next(r for r in contents[1][0] if r.id == "c/0/3"))
    commit(out, units, contents)
    result = verify(str(out))
    assert not result.ok
    assert result.problems == ["document 'c' chunk 0 pair 3 has no row (missing pair)"]
    assert result.counts["accounted_slots"] == 14


def test_a_duplicate_variant_id_across_units_is_named(run) -> None:
    out, units = run
    contents = exact_rows()
    contents[1][0][0] = variant("c", 0, None, vid="a/original")
    commit(out, units, contents)
    result = verify(str(out))
    assert result.problems == ["variant id 'a/original' appears more than once"]
    assert result.counts["duplicate_ids"] == 1


def test_a_missing_manifest_is_named(run) -> None:
    out, units = run
    commit(out, units, exact_rows())
    (out / "_manifest" / f"{units[1].id}.json").unlink()
    result = verify(str(out))
    unit = units[1]
    assert result.problems == [f"{unit.file}: rows 2-4 are in no committed unit (a resume runs "
                               "them)"] + [
        f"{d}/part-{units[1].id}.parquet is in the output but no manifest lists it (a unit's "
        "files from before a manifest was removed, or a file put there by hand)"
        for d in ("data", "rejects")]
    assert result.counts["units_done"] == 1 and result.counts["stray_files"] == 2
    assert result.counts["rows_missing"] == 2


# -- the files against the manifests (the commit protocol) --------------------------------


def test_a_row_count_that_differs_from_the_footer_is_named(run) -> None:
    out, units = run
    commit(out, units, exact_rows())
    path = out / "_manifest" / f"{units[0].id}.json"
    manifest = json.loads(path.read_text())
    manifest["rows"]["rejects"] += 1  # e.g. another attempt's manifest over this one's files
    path.write_text(json.dumps(manifest))
    assert verify(str(out)).problems == [
        f"unit {units[0].id} ({units[0].file}, rows 0-2): rejects/part-{units[0].id}.parquet "
        f"holds 3 rows by its footer, its manifest says 4"]


def test_a_file_no_manifest_lists_is_named(run) -> None:
    out, units = run
    commit(out, units, exact_rows())
    stray = out / "data" / "part-0000-from-an-old-attempt.parquet"
    stray.write_bytes((out / "data" / f"part-{units[0].id}.parquet").read_bytes())
    (out / "rejects" / "extra.parquet").write_bytes(b"")
    result = verify(str(out))
    assert result.problems == [
        "data/part-0000-from-an-old-attempt.parquet is in the output but no manifest lists it "
        "(a unit's files from before a manifest was removed, or a file put there by hand)",
        "rejects/extra.parquet is in the output but no manifest lists it (a unit's files from "
        "before a manifest was removed, or a file put there by hand)"]
    assert result.counts["stray_files"] == 2
    (out / "data" / ".part-x.parquet.1234.tmp").write_bytes(b"")  # hidden: not a reader's file
    assert verify(str(out)).counts["stray_files"] == 2


@pytest.mark.parametrize("kind", ["data", "rejects"])
def test_a_manifest_whose_file_is_missing_is_named(run, kind: str) -> None:
    out, units = run
    commit(out, units, exact_rows())
    (out / kind / f"part-{units[1].id}.parquet").unlink()
    assert verify(str(out)).problems == [
        f"unit {units[1].id} ({units[1].file}, rows 2-4) has a manifest but "
        f"{kind}/part-{units[1].id}.parquet is missing (a resume publishes it from its staged "
        "copy)"]


def test_an_input_file_changed_under_a_committed_unit_is_named(run) -> None:
    out, units = run
    commit(out, units, exact_rows())
    path = Path(units[0].file.removeprefix("file://"))
    pq.write_table(pa.table({"text": ["y"] * 4, "doc_id": ["a", "b", "c", "c"]}), path,
                   row_group_size=2)  # same ids and rows: only the content tells
    problems = verify(str(out)).problems
    assert [p.split(" (content digest")[0] for p in problems[:2]] == [
        f"{units[0].file} holds other bytes than when unit {u.id} was made from it"
        for u in units]
    assert problems[2:] == [f"{units[0].file}: rows 0-4 are in no committed unit (a resume "
                            "runs them)"]


def test_a_document_both_rejected_at_input_and_processed_is_named(run) -> None:
    out, units = run
    contents = exact_rows()
    contents[0][0].extend(processed("b"))
    commit(out, units, contents)
    result = verify(str(out))
    assert result.problems == ["document 'b' was rejected at input but also has rows in data/ "
                               "or rejects/"]


def test_rows_for_a_document_outside_the_input_are_named(run) -> None:
    out, units = run
    contents = exact_rows()
    contents[1][0].append(input_reject("zzz"))
    commit(out, units, contents)
    assert verify(str(out)).problems == [
        f"unit {units[1].id} ({units[1].file}, rows 2-4): rows for document 'zzz', which is "
        "not in its input"]


def test_originals_must_match_include_original(run) -> None:
    out, units = run
    contents = exact_rows()
    contents[1] = (processed("c", original=False) + [input_reject("c")], {"c": 1})
    commit(out, units, contents)
    assert verify(str(out)).problems == ["document 'c' has 0 original rows, expected 1"]


def test_a_chunk_rejected_at_ga_must_have_no_pair_rows(run) -> None:
    out, units = run
    contents = exact_rows()
    contents[0][0].append(variant("a", 0, 4))
    commit(out, units, contents)
    assert verify(str(out)).problems == [
        "document 'a' chunk 0 was rejected at GA but has 1 pair rows"]


def test_problems_are_capped_with_a_total(run) -> None:
    out, units = run
    commit(out, units, [([], {"a": 3, "b": 3}), ([], {})])  # no rows for any document
    result = verify(str(out))
    assert not result.ok and len(result.problems) == 21
    assert result.counts["problems"] == 2 * (3 * PAIRS + 1) + 1  # a, b: pairs, originals; c
    assert result.problems[-1] == f"... and {result.counts['problems'] - 20} more problems"


def test_an_output_without_a_run_record_fails(tmp_path: Path) -> None:
    result = verify(str(tmp_path))
    assert not result.ok and "no _run.json" in result.problems[0]


def test_the_real_pipeline_output_verifies(tmp_path: Path) -> None:
    """Through `unit.process_unit` on the fake engine: rejects at every level still add up."""
    from mga_spark.engine.fake import FakeEngine
    from mga_spark.job.unit import process_unit
    from tests.helpers import EN_TEXT, scripted, verdict_json

    texts = [EN_TEXT, None, EN_TEXT + "\n\n" + EN_TEXT, b"\xff", EN_TEXT, EN_TEXT, "  "]
    ids = ["ok", "null", "long", "utf8", "dup", "dup", "blank"]
    (tmp_path / "in").mkdir()
    table = pa.table({"text": [t.encode() if isinstance(t, str) else t for t in texts],
                      "doc_id": ids})
    pq.write_table(table, tmp_path / "in" / "x.parquet", row_group_size=3)
    out = tmp_path / "out"
    cfg = make_config(input={"paths": [str(tmp_path / "in")], "id_column": "doc_id"},
                      output={"path": str(out), "include_original": True},
                      chunking={"max_tokens": 64}, job={"unit_docs": 3})

    def script(stage: str, source: str, chunk: int, pair: int | None, req: object) -> str | None:
        if stage == "ga" and source == "long" and chunk == 1:
            return "not JSON"
        return verdict_json(1) if stage == "judge" and pair == 2 else None

    records.write_json(str(out), "_run.json", {"config": cfg.redacted(), "fingerprint": "f"})
    for unit in make_plan(cfg.input, cfg.job.unit_docs).units:
        process_unit(cfg, unit, FakeEngine(scripted(script)), str(out))
    result = verify(str(out))
    assert result.problems == [] and result.ok
    counts = result.counts
    assert counts["documents"] == 7 and counts["units"] == counts["units_done"] == 3
    assert counts["by_stage"]["input"] == 4  # null, invalid UTF-8, the 2nd "dup", blank
    assert counts["by_stage"]["ga"] == 1  # the long document's second chunk
    assert counts["accounted_slots"] == counts["expected_slots"] == 4 * PAIRS  # 4 chunks


CRASH_IN_PUBLISH = """
import os, signal, sys
from pathlib import Path

real = os.replace


def dying(src, dst):  # the process dies between linking data/'s temp name and renaming it
    if "/data/" in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)


os.replace = dying
from mga_spark.io.plan import make_plan
from tests.helpers import make_config
from tests.tools.test_verify import commit, exact_rows

cfg = make_config(input={"paths": [sys.argv[1]], "id_column": "doc_id"})
commit(Path(sys.argv[2]), make_plan(cfg.input, 2).units[1:], exact_rows()[1:])
"""


def test_a_temp_file_a_crash_left_is_counted_not_a_problem(run, tmp_path: Path) -> None:
    """Review 1.7: a committer killed (SIGKILL) between hard-linking the data file to its hidden
    temp name and renaming it. verify names the unpublished file; after the resume's roll-forward
    the output is exact, and the temp file (hidden from readers, holding disk) is counted."""
    out, units = run
    commit(out, units[:1], exact_rows()[:1])
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", CRASH_IN_PUBLISH, str(units[0].file).rsplit(
        "/", 1)[0], str(out)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    temps = [p.name for p in (out / "data").iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(f".part-{units[1].id}.parquet."), temps
    crashed = verify(str(out))
    assert not crashed.ok and crashed.counts["temp_leftovers"] == 1
    assert any("is missing (a resume publishes it" in p for p in crashed.problems)
    assert io_commit.roll_forward(str(out)) == 1
    after = verify(str(out))
    assert after.ok, after.problems
    assert (after.counts["temp_leftovers"], after.counts["staged_leftovers"]) == (1, 0)
