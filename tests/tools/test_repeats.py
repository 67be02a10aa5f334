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
