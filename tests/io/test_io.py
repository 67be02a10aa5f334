"""Reading units (ids, text types, carried columns) and a unit's output written through the
commit protocol (stage, exclusive manifest, publish) with retries."""

from __future__ import annotations

import errno
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.core import url_to_fs

from mga_spark.config import InputConfig
from mga_spark.io import commit as io_commit
from mga_spark.io import footer as io_footer
from mga_spark.io import read, records
from mga_spark.io import write as io_write
from mga_spark.io.plan import InputError, make_plan
from mga_spark.schema import DATA_SCHEMA, REJECT_SCHEMA, RejectRow, VariantRow


def write(path: Path, table: pa.Table, row_group_size: int = 3) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def units(cfg: InputConfig, unit_docs: int = 6) -> list:
    return make_plan(cfg, unit_docs).units


def variant(src: str, pair: int | None = 0, **extra: object) -> VariantRow:
    kind = "original" if pair is None else "reformulation"
    return VariantRow(
        id=f"{src}/0/{pair}", source_id=src, chunk_index=0, pair_index=pair, kind=kind,
        text=f"rewrite of {src}", genre="g", genre_description="gd", audience="a",
        audience_description="ad", judge_score=4, judge_analysis="fine", input_tokens=10,
        output_tokens=12, model="m", prompt_version="v1", mode="base", language="en",
        finish_reason="stop", keyword_coverage=0.5, novelty=0.3, extra=dict(extra),
    )


def reject(src: str, pair: int | None = 1) -> RejectRow:
    return RejectRow(src, 0, pair, "judge", "judge_failed", "score 1 < threshold 3", "raw")


# -- reading -------------------------------------------------------------------------------


def test_derived_ids_are_the_content_digest_and_absolute_row(tmp_path: Path) -> None:
    path = write(tmp_path / "a.parquet", pa.table({"text": [f"t{i}" for i in range(10)]}))
    cfg = InputConfig(paths=[str(path)])
    first, second = units(cfg)
    digest = io_footer.digest(*url_to_fs(str(path)))
    assert second.digest == digest and len(digest) == 64
    docs = list(read.read_unit(second, cfg, batch_rows=2))
    assert [d.id for d in docs] == [f"{digest[:32]}#{row}" for row in range(6, 10)]
    assert [d.text for d in docs] == ["t6", "t7", "t8", "t9"]
    assert len(list(read.read_unit(first, cfg))) == first.documents == 6
    assert str(tmp_path) not in "".join(d.id for d in docs) + second.id


def test_the_same_bytes_through_a_symlink_or_a_copy_give_the_same_ids(tmp_path: Path) -> None:
    table = pa.table({"text": [f"t{i}" for i in range(10)]})
    original = write((tmp_path / "in").mkdir() or tmp_path / "in" / "a.parquet", table)
    (tmp_path / "mnt").symlink_to(tmp_path / "in")
    copy = tmp_path / "bucket" / "deeper" / "b.parquet"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(original.read_bytes())
    plans = [units(InputConfig(paths=[str(p)])) for p in
             (tmp_path / "in", tmp_path / "mnt", copy.parent)]
    assert [[u.id for u in p] for p in plans] == [[u.id for u in plans[0]]] * 3
    ids = [[d.id for u in p for d in read.read_unit(u, InputConfig(paths=["x"]))] for p in plans]
    assert ids[0] == ids[1] == ids[2] and len(set(ids[0])) == 10
    other = write(tmp_path / "other.parquet", table.slice(1))  # other bytes: other ids
    assert {u.id for u in units(InputConfig(paths=[str(other)]))}.isdisjoint(
        {u.id for u in plans[0]})


def test_a_file_rewritten_after_planning_fails_its_read(tmp_path: Path) -> None:
    path = write(tmp_path / "a.parquet", pa.table({"text": [f"t{i}" for i in range(6)]}))
    cfg = InputConfig(paths=[str(path)])
    (unit,) = units(cfg)
    write(path, pa.table({"text": [f"other {i}" for i in range(6)]}))
    with pytest.raises(InputError, match="changed since it was planned"):
        list(read.read_unit(unit, cfg))


def test_configured_ids_are_strings_and_null_ids_get_a_marked_derived_id(tmp_path: Path) -> None:
    path = write(tmp_path / "a.parquet", pa.table({"text": ["x", "y", "z"], "n": [7, None, 9]}))
    cfg = InputConfig(paths=[str(path)], id_column="n")
    (unit,) = units(cfg)
    docs = list(read.read_unit(unit, cfg))
    assert [d.id for d in docs] == ["7", f"<null-id>{unit.digest[:32]}#1", "9"]
    assert docs[1].text == "y"


def test_text_types_and_carried_columns(tmp_path: Path) -> None:
    write(tmp_path / "1.parquet", pa.table({
        "text": pa.array(["a", "b"], pa.large_string()), "lang": ["en", "zh"], "more": [1, 2]}))
    write(tmp_path / "2.parquet", pa.table({
        "text": pa.array(["c", "c", None]).dictionary_encode(), "lang": ["en", "en", None]}))
    write(tmp_path / "3.parquet", pa.table({
        "text": pa.array([b"d\xc3\xa9", b"\xffbad", None], pa.large_binary()),
        "lang": pa.array(["fr", "xx", "yy"]).dictionary_encode()}))
    cfg = InputConfig(paths=[str(tmp_path)], carry_columns=["lang"])
    docs = [d for u in units(cfg) for d in read.read_unit(u, cfg)]
    assert [d.text for d in docs] == ["a", "b", "c", "c", None, "dé", None, None]
    assert [d.extra.get("lang") for d in docs] == ["en", "zh", "en", "en", None, "fr", "xx", "yy"]
    bad = docs[6]
    assert bad.extra[read.INPUT_PROBLEM] == "invalid_utf8"
    assert "0xff at offset 0" in bad.extra[read.INPUT_DETAIL]
    assert read.INPUT_PROBLEM not in docs[7].extra  # a null is a null, not a decoding problem


@pytest.mark.parametrize("id_column", [None, "n"])
def test_read_unit_ids_matches_read_unit(tmp_path: Path, id_column: str | None) -> None:
    table = pa.table({"text": [f"t{i}" for i in range(8)], "n": [1, 2, None, 4, 5, 6, 7, 7]})
    write(tmp_path / "a.parquet", table)
    cfg = InputConfig(paths=[str(tmp_path)], id_column=id_column)
    for unit in units(cfg, 3):
        assert list(read.read_unit_ids(unit, cfg)) == [d.id for d in read.read_unit(unit, cfg)]


# -- writing -------------------------------------------------------------------------------


@pytest.fixture
def unit(tmp_path: Path):
    path = write(tmp_path / "in.parquet", pa.table({"text": ["x"] * 4}))
    return units(InputConfig(paths=[str(path)]), 10)[0]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io_write, "BACKOFF_START", 0.0)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_commit_stages_then_creates_the_manifest_then_publishes(tmp_path: Path, unit,
                                                                monkeypatch) -> None:
    out = tmp_path / "out"
    schema = DATA_SCHEMA.append(pa.field("lang", pa.string()))
    writer = io_commit.UnitWriter(str(out), unit, schema, "zstd", attempt="a1")
    writer.add([variant("d0", 0, lang=2), reject("d0"), variant("d0", None, lang=3)])
    assert not out.exists()  # nothing visible before commit
    written: list[str] = []
    monkeypatch.setattr(io_write, "_fault_hook", written.append)
    manifest = writer.commit({"chunks": {"d0": 1}})
    uid = unit.id
    assert [p.split("/out/")[1] for p in written] == [
        f"_staging/{uid}/a1/data.parquet", f"_staging/{uid}/a1/rejects.parquet",
        f"_manifest/{uid}.json", f"data/part-{uid}.parquet", f"rejects/part-{uid}.parquet"]
    assert files_under(out) == [f"_manifest/{uid}.json", f"data/part-{uid}.parquet",
                                f"rejects/part-{uid}.parquet"]  # staging removed
    assert writer.won and manifest["attempt"] == "a1"
    assert manifest["staged"] == {"data": f"_staging/{uid}/a1/data.parquet",
                                  "rejects": f"_staging/{uid}/a1/rejects.parquet"}
    data = pq.read_table(out / manifest["files"]["data"])
    assert data.schema == schema
    assert data.column("lang").to_pylist() == ["2", "3"]  # cast to the declared type
    assert data.column("kind").to_pylist() == ["reformulation", "original"]
    assert pq.read_table(out / manifest["files"]["rejects"]).schema == REJECT_SCHEMA
    assert manifest["rows"] == {"data": 2, "rejects": 1, "reformulations": 1, "originals": 1}
    assert manifest["bytes"] == {k: (out / manifest["files"][k]).stat().st_size
                                 for k in ("data", "rejects")}
    assert manifest["unit"]["row_end"] == 4 and manifest["chunks"] == {"d0": 1}
    assert manifest["unit"]["input"] == dict(unit.pin) and "mtime" in manifest["unit"]["input"]
    assert records.read_manifests(str(out)) == [manifest]
    assert records.committed_units(str(out)) == {uid}


def test_empty_outputs_still_have_both_files_with_schemas(tmp_path: Path, unit) -> None:
    manifest = io_commit.UnitWriter(str(tmp_path), unit, DATA_SCHEMA, "none").commit({})
    assert pq.read_table(tmp_path / manifest["files"]["data"]).schema == DATA_SCHEMA
    assert pq.read_table(tmp_path / manifest["files"]["rejects"]).num_rows == 0


def test_rows_are_flushed_in_batches(tmp_path: Path, unit, monkeypatch) -> None:
    monkeypatch.setattr(io_write, "FLUSH_ROWS", 3)
    writer = io_commit.UnitWriter(str(tmp_path), unit, DATA_SCHEMA, "snappy")
    writer.add(variant(f"d{i}") for i in range(7))
    manifest = writer.commit({})
    meta = pq.ParquetFile(tmp_path / manifest["files"]["data"]).metadata
    assert (meta.num_rows, meta.num_row_groups) == (7, 3)


def test_a_required_column_without_value_fails_loudly(tmp_path: Path, unit) -> None:
    writer = io_commit.UnitWriter(str(tmp_path), unit, DATA_SCHEMA, "zstd")
    bad = variant("d0")
    bad.model = None  # type: ignore[assignment]
    writer.add([bad])
    with pytest.raises(ValueError, match="'model' is required"):
        writer.commit({})


def test_a_transient_write_failure_is_retried(tmp_path: Path, unit, monkeypatch) -> None:
    calls: list[str] = []

    def flaky(path: str) -> None:
        calls.append(path)
        if len(calls) <= 2:
            raise OSError("connection reset")

    monkeypatch.setattr(io_write, "_fault_hook", flaky)
    io_commit.UnitWriter(str(tmp_path), unit, DATA_SCHEMA, "zstd", retries=3).commit({})
    assert calls[0] == calls[1] == calls[2] and len(calls) == 7  # 2 staged, manifest, 2 published
    assert records.committed_units(str(tmp_path)) == {unit.id}


def test_a_permanent_write_failure_names_the_path_and_leaves_no_manifest(
    tmp_path: Path, unit, monkeypatch
) -> None:
    calls: list[str] = []

    def broken(path: str) -> None:
        if path.endswith("/rejects.parquet"):
            calls.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_write, "_fault_hook", broken)
    writer = io_commit.UnitWriter(str(tmp_path), unit, DATA_SCHEMA, "zstd", retries=2,
                                  attempt="a1")
    staged = f"_staging/{unit.id}/a1"
    with pytest.raises(OSError, match=rf"{staged}/rejects.parquet failed, not retried \(permanent: "
                       r"OSError: \[Errno 28\] No space left on device\)"):
        writer.commit({})
    assert len(calls) == 1  # a full disk does not empty itself in a second
    assert records.committed_units(str(tmp_path)) == set()
    # no temp file, nothing where readers look; the staged file waits for the unit's commit
    assert files_under(tmp_path) == [f"{staged}/data.parquet", "in.parquet"]


def test_object_store_outputs_go_through_pipe(unit) -> None:
    out = "memory://bucket/run-1"
    records.write_json(out, "_run.json", {"fingerprint": "abc"})
    assert records.read_json(out, "_run.json") == {"fingerprint": "abc"}
    assert records.read_json(out, "stats.json") is None
    assert records.committed_units(out) == set() and records.read_manifests(out) == []
    writer = io_commit.UnitWriter(out, unit, DATA_SCHEMA, "zstd")
    writer.add([variant("d0"), reject("d0")])
    writer.commit({"n": 1})
    fs, root = io_write.output_fs(out)
    assert sorted(fs.find(root)) == sorted(
        f"{root}/{name}" for name in ("_run.json", f"_manifest/{unit.id}.json",
                                      f"data/part-{unit.id}.parquet",
                                      f"rejects/part-{unit.id}.parquet"))
    assert records.committed_units(out) == {unit.id}
    assert [m["n"] for m in records.read_manifests(out)] == [1]
    fs.rm(root, recursive=True)


def test_write_json_replaces_atomically_and_leaves_no_temp(tmp_path: Path) -> None:
    records.write_json(str(tmp_path), "stats.json", {"a": 1})
    records.write_json(str(tmp_path), "stats.json", {"a": 2})
    assert records.read_json(str(tmp_path), "stats.json") == {"a": 2}
    assert files_under(tmp_path) == ["stats.json"]


def test_local_files_appear_only_by_rename_or_link_of_a_hidden_temp(tmp_path: Path, unit,
                                                                     monkeypatch) -> None:
    real_replace, real_link = io_write.os.replace, io_write.os.link
    seen: list[tuple[str, str, bool]] = []

    def replace(src: str, dst: str) -> None:
        seen.append(("replace", Path(src).name, Path(dst).exists()))
        if len(seen) == 1:
            raise OSError("rename failed")  # the temp is removed and the write retried
        real_replace(src, dst)

    def link(src: str, dst: str) -> None:
        seen.append(("link", Path(src).name, Path(dst).exists()))
        real_link(src, dst)

    monkeypatch.setattr(io_write.os, "replace", replace)
    monkeypatch.setattr(io_write.os, "link", link)
    io_commit.UnitWriter(str(tmp_path), unit, DATA_SCHEMA, "zstd").commit({})
    renames = [name for op, name, _ in seen if op == "replace"]
    assert len(renames) == 5  # staged data (twice), staged rejects, 2 published
    assert all(name.startswith(".") and name.endswith(".tmp") for name in renames)
    assert not any(existed for op, _, existed in seen if op == "replace")
    manifest_link = [(name, existed) for op, name, existed in seen
                     if op == "link" and name.startswith(f".{unit.id}.json.")]
    assert len(manifest_link) == 1 and not manifest_link[0][1]  # created by link, once
    assert not [p for p in files_under(tmp_path) if p.endswith(".tmp")]


@pytest.mark.cluster
def test_s3_listing_planning_reading_and_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same calls against S3 (an in-process moto server): listing, footers, pipe writes."""
    import fsspec
    import moto.server as moto_server  # dev extra; tests/conftest.py names it if missing
    import s3fs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            monkeypatch.setenv(key, value)
        fsspec.AbstractFileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("bkt")
        for name in ("in/a.parquet", "in/sub/b.parquet", "in/_temporary/c.parquet"):
            sink = pa.BufferOutputStream()  # other bytes per file (the same would plan once)
            pq.write_table(pa.table({"text": [name] * 5}), sink, row_group_size=2)
            fs.pipe(f"bkt/{name}", sink.getvalue().to_pybytes())
        fs.pipe("bkt/in/_SUCCESS", b"")
        cfg = InputConfig(paths=["s3://bkt/in"])
        plan = make_plan(cfg, 4)
        assert [u.file for u in plan.units] == ["s3://bkt/in/a.parquet"] * 2 + \
            ["s3://bkt/in/sub/b.parquet"] * 2
        digest = io_footer.digest(fs, "bkt/in/a.parquet")  # ids name the content, not the key
        assert [d.id for d in read.read_unit(plan.units[1], cfg)] == [f"{digest[:32]}#4"]
        out = "s3://bkt/out/"
        assert records.committed_units(out) == set() and records.read_json(out, "_run.json") is None
        io_commit.UnitWriter(out, plan.units[0], DATA_SCHEMA, "zstd").commit({"n": 1})
        assert records.committed_units(out) == {plan.units[0].id}
        assert len(fs.find("bkt/out")) == 3  # manifest, data, rejects: staging removed
    finally:
        server.stop()
        fsspec.AbstractFileSystem.clear_instance_cache()
