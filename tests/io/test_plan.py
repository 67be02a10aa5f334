"""Input listing, footer checks and unit cutting, on small Parquet files in tmp dirs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.config import InputConfig
from mga_spark.io.plan import InputError, list_input_files, make_plan


def write(path: Path, table: pa.Table, row_group_size: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def texts(n: int, start: int = 0, **columns: list) -> pa.Table:
    return pa.table({"text": [f"document {start + i}" for i in range(n)], **columns})


def uri(path: Path) -> str:
    return f"file://{path.resolve()}"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    write(root / "a.parquet", texts(10))
    write(root / "sub" / "b.parquet", texts(4, 10))
    write(root / "_temporary" / "c.parquet", texts(2))
    (root / "_SUCCESS").write_text("")
    (root / ".a.parquet.crc").write_bytes(b"\x00")
    return root


def test_lists_directories_recursively_skipping_hidden_files(corpus: Path) -> None:
    files = list_input_files([str(corpus)])
    assert files == [uri(corpus / "a.parquet"), uri(corpus / "sub" / "b.parquet")]


def test_lists_globs_and_explicit_files_sorted_and_deduplicated(corpus: Path) -> None:
    files = list_input_files([str(corpus / "sub" / "b.parquet"), f"{corpus}/*.parquet",
                              f"file://{corpus}/a.parquet"])
    assert files == [uri(corpus / "a.parquet"), uri(corpus / "sub" / "b.parquet")]
    assert list_input_files([f"{corpus}/**/*.parquet"]) == files  # not _temporary/


@pytest.mark.parametrize("pattern", ["missing", "*.json", "empty"])
def test_a_path_that_matches_nothing_is_an_input_error(tmp_path: Path, pattern: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(InputError, match=pattern.replace("*", r"\*")):
        list_input_files([str(tmp_path / pattern)])


def test_units_pack_row_groups_up_to_unit_docs(corpus: Path) -> None:
    plan = make_plan(InputConfig(paths=[str(corpus)]), unit_docs=6)
    a = uri(corpus / "a.parquet")
    got = [(u.file, u.row_start, u.row_end, u.row_groups) for u in plan.units]
    assert got[:2] == [(a, 0, 6, (0, 1)), (a, 6, 10, (2, 3))]  # row groups of 3, 3, 3, 1
    assert got[2][1:] == (0, 4, (0, 1))
    assert (plan.files, plan.documents, plan.bad_files) == (2, 14, [])
    assert plan.bytes == sum(p.stat().st_size for p in corpus.rglob("*.parquet")
                             if "_temporary" not in str(p))
    assert [u.documents for u in plan.units] == [6, 4, 4]


def test_unit_ids_are_deterministic_from_content_and_rows(corpus: Path) -> None:
    cfg = InputConfig(paths=[str(corpus)])
    first, again = make_plan(cfg, 6), make_plan(cfg, 6)
    assert [u.id for u in first.units] == [u.id for u in again.units]
    unit = first.units[1]
    path = unit.file[len("file://"):]
    with open(path, "rb") as f:  # the footer's bytes, read here by hand
        blob = f.read()
    length = int.from_bytes(blob[-8:-4], "little")
    footer = blob[-8 - length:-8]
    digest = hashlib.sha256(b"%d\n" % len(blob) + footer).hexdigest()
    assert unit.digest == digest
    assert unit.id == f"{digest[:32]}-000000000006-000000000010"
    assert len({u.id for u in first.units}) == len(first.units)


def test_files_with_the_same_bytes_are_planned_once(tmp_path: Path) -> None:
    write(tmp_path / "a.parquet", texts(5))
    (tmp_path / "b.parquet").write_bytes((tmp_path / "a.parquet").read_bytes())
    plan = make_plan(InputConfig(paths=[str(tmp_path)]), 10)
    assert (plan.files, plan.documents, len(plan.units)) == (1, 5, 1)
    assert plan.same_content == [(f"file://{tmp_path}/b.parquet", f"file://{tmp_path}/a.parquet")]


def test_covered_row_groups_are_left_out_of_the_units(tmp_path: Path) -> None:
    write(tmp_path / "a.parquet", texts(10), row_group_size=2)
    cfg = InputConfig(paths=[str(tmp_path)])
    digest = make_plan(cfg, 10).units[0].digest
    plan = make_plan(cfg, 4, covered={digest: [(2, 4), (6, 8)]})
    assert [(u.row_start, u.row_end) for u in plan.units] == [(0, 2), (4, 6), (8, 10)]
    assert plan.covered_documents == 4
    with pytest.raises(InputError, match="not row-group boundaries"):
        make_plan(cfg, 4, covered={digest: [(1, 4)]})


def test_a_row_group_bigger_than_a_unit_is_its_own_unit(tmp_path: Path) -> None:
    write(tmp_path / "big.parquet", texts(10), row_group_size=4)
    plan = make_plan(InputConfig(paths=[str(tmp_path)]), unit_docs=2)
    assert [(u.row_start, u.row_end, u.row_groups) for u in plan.units] == [
        (0, 4, (0,)), (4, 8, (1,)), (8, 10, (2,))]


def test_empty_files_produce_no_units(tmp_path: Path) -> None:
    write(tmp_path / "empty.parquet", pa.table({"text": pa.array([], pa.string())}))
    write(tmp_path / "all_null.parquet", pa.table({"text": [None, None]}))  # type null
    write(tmp_path / "one.parquet", texts(1))
    plan = make_plan(InputConfig(paths=[str(tmp_path)]), unit_docs=5)
    assert plan.files == 3 and plan.documents == 3
    assert [u.file for u in plan.units] == [uri(tmp_path / n) for n in ("all_null.parquet",
                                                                         "one.parquet")]


def test_accepted_text_types(tmp_path: Path) -> None:
    strings = ["a", "b", "a"]
    write(tmp_path / "1.parquet", pa.table({"text": pa.array(strings, pa.large_string())}))
    write(tmp_path / "2.parquet", pa.table({"text": pa.array(strings).dictionary_encode()}))
    write(tmp_path / "3.parquet", pa.table({"text": pa.array([b"a", b"\xff", None])}))
    write(tmp_path / "4.parquet", pa.table({"text": pa.array([b"a"], pa.large_binary())}))
    plan = make_plan(InputConfig(paths=[str(tmp_path)]), unit_docs=100)
    assert (plan.files, plan.documents, plan.bad_files) == (4, 10, [])


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    write(tmp_path / "0_good.parquet", texts(3, id=[1, 2, 3], lang=["en"] * 3))
    write(tmp_path / "1_int_text.parquet", pa.table({"text": [1], "id": [1], "lang": ["x"]}))
    write(tmp_path / "2_no_text.parquet", pa.table({"body": ["x"], "id": [1], "lang": ["x"]}))
    write(tmp_path / "3_no_id.parquet", texts(1, lang=["en"]))
    write(tmp_path / "4_no_lang.parquet", texts(1, id=[9]))
    write(tmp_path / "5_nested_id.parquet", texts(1, id=[[1]], lang=["en"]))
    good = (tmp_path / "0_good.parquet").read_bytes()
    (tmp_path / "6_corrupt.parquet").write_bytes(good[: len(good) // 2] + b"garbagePAR1")
    (tmp_path / "7_notes.txt").write_text("not parquet at all")
    (tmp_path / "8_zero.parquet").write_bytes(b"")
    return tmp_path


def test_bad_files_are_recorded_with_their_problem_when_skipping(bad_dir: Path) -> None:
    cfg = InputConfig(paths=[str(bad_dir)], id_column="id", carry_columns=["lang"],
                      on_bad_file="skip")
    plan = make_plan(cfg, unit_docs=10, workers=3)
    assert plan.files == 1 and plan.documents == 3 and len(plan.units) == 1
    problems = {Path(b.file).name: b.problem for b in plan.bad_files}
    assert list(problems) == sorted(problems)
    assert "text column 'text' has type int64" in problems["1_int_text.parquet"]
    assert "text column 'text' not found; columns are ['body', 'id', 'lang']" in \
        problems["2_no_text.parquet"]
    assert "id column 'id' not found" in problems["3_no_id.parquet"]
    assert "carry columns ['lang'] not found" in problems["4_no_lang.parquet"]
    assert "nested type" in problems["5_nested_id.parquet"]
    for name in ("6_corrupt.parquet", "7_notes.txt", "8_zero.parquet"):
        assert problems[name].startswith("not a Parquet file: "), problems[name]


def test_the_first_bad_file_fails_the_plan_by_default(bad_dir: Path) -> None:
    cfg = InputConfig(paths=[str(bad_dir)], id_column="id", carry_columns=["lang"])
    with pytest.raises(InputError) as err:
        make_plan(cfg, unit_docs=10, workers=8)
    assert str(err.value).startswith(uri(bad_dir / "1_int_text.parquet") + ": text column")


def test_many_files_keep_sorted_order_across_threads(tmp_path: Path) -> None:
    for i in range(40):
        write(tmp_path / f"part-{i:03d}.parquet", texts(2, i * 2))
    plan = make_plan(InputConfig(paths=[f"{tmp_path}/part-*.parquet"]), unit_docs=2, workers=7)
    assert [u.file for u in plan.units] == sorted(u.file for u in plan.units)
    assert plan.documents == 80 and len(plan.units) == 40


@pytest.mark.parametrize("files", [200, 2000])
def test_footers_are_read_in_bounded_windows(monkeypatch: pytest.MonkeyPatch, files: int) -> None:
    """Reads submitted and not yet consumed stay within the window at any number of files (a
    `pool.map` over every file submits them all at once and holds every result)."""
    import threading
    import time

    from mga_spark.io import plan as io_plan

    lock, state = threading.Lock(), {"started": 0, "consumed": 0, "peak": 0}

    def inspect(file: str, cfg: InputConfig) -> io_plan.FileInfo:
        with lock:
            state["started"] += 1
            state["peak"] = max(state["peak"], state["started"] - state["consumed"])
        return io_plan.FileInfo(file, (1,), 10)

    monkeypatch.setattr(io_plan, "inspect_file", inspect)
    names = [f"file:///in/{i:05d}.parquet" for i in range(files)]
    seen = []
    for info in io_plan.inspect_files(names, InputConfig(), workers=4, window=16):
        time.sleep(0.0005)  # a consumer slower than the readers: they would run ahead
        seen.append(info.file)
        with lock:
            state["consumed"] += 1
    assert seen == names  # in order, every file once
    assert state["peak"] <= 16 + 1


def _long_docs(path: Path) -> Path:
    """Six rows in row groups of one: four short documents, then two of ~40 kB."""
    texts = ["short one.", "short two.", "short three.", "short four.", "x" * 40_000,
             "y" * 40_000]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=1, compression="zstd")
    return path


def test_units_are_bounded_by_text_size_from_the_footer(tmp_path: Path) -> None:
    path = _long_docs(tmp_path / "long.parquet")
    rows_only = make_plan(InputConfig(paths=[str(path)], unit_text_bytes=None), unit_docs=4)
    assert [(u.row_start, u.row_end) for u in rows_only.units] == [(0, 4), (4, 6)]
    cfg = InputConfig(paths=[str(path)], unit_text_bytes=50_000)
    plan = make_plan(cfg, unit_docs=4)
    # the long documents compress to nothing, but the bound reads their uncompressed size
    assert [(u.row_start, u.row_end) for u in plan.units] == [(0, 4), (4, 5), (5, 6)]
    assert [u.id for u in make_plan(cfg, unit_docs=4).units] == [u.id for u in plan.units]
    sizes = pq.read_metadata(path).row_group(4).column(0).total_uncompressed_size
    assert 40_000 <= sizes < 41_000  # what the bound counts: footer bytes, no data read


def test_a_text_bound_smaller_than_one_row_group_leaves_it_whole(tmp_path: Path) -> None:
    path = _long_docs(tmp_path / "long.parquet")
    plan = make_plan(InputConfig(paths=[str(path)], unit_text_bytes=10), unit_docs=100)
    assert [(u.row_start, u.row_end) for u in plan.units] == [(r, r + 1) for r in range(6)]


def test_the_text_bound_cuts_units_and_verify_checks_them(tmp_path: Path) -> None:
    from tests.helpers import run_fake_job

    texts = [f"Document number {i} is about rivers and the towns along them." for i in range(6)]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(6)], "text": texts}),
                   tmp_path / "in.parquet", row_group_size=1)
    bound = 2 * pq.read_metadata(tmp_path / "in.parquet").row_group(0).column(1) \
        .total_uncompressed_size
    run = run_fake_job(tmp_path / "in.parquet", tmp_path / "out",
                       input={"unit_text_bytes": bound})
    assert len(run.manifests) == 3  # two row groups per unit, by text, not unit_docs=1000
    assert run.verify().ok  # verify re-plans the same units from _run.json's input section


def _planned_peak(directory: Path, keep_units: bool) -> tuple[int, int]:
    import tracemalloc

    cfg = InputConfig(paths=[str(directory)])
    make_plan(cfg, 1, keep_units=keep_units)  # warm: imports, caches
    tracemalloc.start()
    try:
        plan = make_plan(cfg, 1, keep_units=keep_units)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return plan.unit_count, held


def test_counting_units_holds_none_of_them(tmp_path: Path) -> None:
    """`status` only needs the number of units: make_plan(keep_units=False) counts them without
    keeping them (the kept plan holds ~320 bytes a unit)."""
    sizes = {}
    for n in (2_000, 20_000):
        write(tmp_path / str(n) / "part-0.parquet", texts(n), row_group_size=1)
        kept_count, kept = _planned_peak(tmp_path / str(n), True)
        count, held = _planned_peak(tmp_path / str(n), False)
        assert count == kept_count == n
        sizes[n] = (kept, held)
    (kept_small, held_small), (kept_big, held_big) = sizes[2_000], sizes[20_000]
    assert kept_big - kept_small > 18_000 * 100  # the measure sees units that are kept
    assert held_big - held_small < 64 * 1024, sizes  # and counting keeps none
