"""The spill-bucket duplicate finder: exact counts and the first positions, across flushes."""

from __future__ import annotations

import os

import pytest

from mga_spark.tools import repeats


@pytest.mark.parametrize("flush", [1 << 10, 8 << 20])  # many spills, or all in one
def test_repeats_are_counted_and_located_like_a_scan(flush: int, tmp_path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repeats, "FLUSH_BYTES", flush)
    units = [[f"d{u}/{i}" for i in range(300)] for u in range(6)]
    units[3][7] = "d0/5"  # a repeat of unit 0's row 5
    units[5] += ["d0/5", "d2/9", "d5/0"]  # two more of it, one each of two others
    finder = repeats.Repeats(keep=3, directory=str(tmp_path))
    seen: set[str] = set()
    expected = []  # what a scan in unit and row order names
    for u, ids in enumerate(units):
        finder.add(u, repeats.digests(ids))
        for row, i in enumerate(ids):
            if i in seen:
                expected.append((u, row))
            seen.add(i)
    found = finder.result()
    assert found.repeats == len(expected) == 4
    assert found.first == expected[:3] == [(3, 7), (5, 300), (5, 301)]
    assert os.listdir(tmp_path) == []  # the buckets are removed


def test_no_repeats() -> None:
    finder = repeats.Repeats(keep=5)
    for u in range(3):
        finder.add(u, repeats.digests([f"{u}/{i}" for i in range(100)]))
    finder.add(3, b"")
    assert finder.result() == repeats.Found()


# -- the same over the data files, with DuckDB (repeats.repeated_in_files) ---------------------


def _write_units(units: list[list[str]], directory, fs=None) -> list[str]:
    """One Parquet file per unit, named so that name order is not unit order."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = []
    for u, ids in enumerate(units):
        path = f"{directory}/{chr(ord('z') - u)}-{u}.parquet"
        buf = io.BytesIO()
        pq.write_table(pa.table({"id": ids, "text": ["x"] * len(ids)}), buf, row_group_size=64)
        if fs is None:
            with open(path, "wb") as f:
                f.write(buf.getvalue())
        else:
            fs.pipe_file(path, buf.getvalue())
        paths.append(path)
    return paths


def _units() -> list[list[str]]:
    units = [[f"d{u}/{i}" for i in range(300)] for u in range(6)]
    units[3][7] = "d0/5"
    units[5] += ["d0/5", "d2/9", "d5/0"]
    return units


@pytest.mark.parametrize("keep", [3, 10])
def test_duckdb_over_the_files_finds_what_the_spill_finds(tmp_path, keep: int) -> None:
    units = _units()
    finder = repeats.Repeats(keep=keep)
    for u, ids in enumerate(units):
        finder.add(u, repeats.digests(ids))
    spilled = finder.result()
    found = repeats.repeated_in_files(_write_units(units, tmp_path), keep=keep,
                                      directory=str(tmp_path), memory_limit="32MB")
    assert found == spilled and found.repeats == 4
    assert found.first == [(3, 7), (5, 300), (5, 301), (5, 302)][:keep]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".parquet"] * 6  # spill removed


def test_duckdb_reads_an_fsspec_filesystem_and_finds_no_repeats_in_clean_files() -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    units = _units()
    paths = _write_units(units, "/repeats-test", fs)
    assert repeats.repeated_in_files(paths, keep=2, fs=fs) == repeats.Found(4, [(3, 7), (5, 300)])
    clean = _write_units([[f"{u}/{i}" for i in range(100)] for u in range(3)], "/clean", fs)
    assert repeats.repeated_in_files(clean, keep=2, fs=fs) == repeats.Found()
    assert repeats.repeated_in_files([], keep=2) == repeats.Found()
