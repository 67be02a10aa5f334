"""The golden run: every row of fake-engine runs over the sample corpus, with several configs.

It pins behaviour across refactors: ids, kinds, pair sources, texts (so cleaning and boilerplate
changes show), reject stages, reasons and details. The expectations change only by an edit in a
commit: when a run differs, the test fails and writes what it got beside its temporary output
(the failure names the file); copying it over `tests/core/golden/rows.json` is that edit, and
the commit that makes it explains every changed row.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mga_spark.prompts import load_prompts
from mga_spark.tools.demo import write_sample_corpus
from tests.helpers import pairs_json, run_fake, verdict_json

GOLDEN = Path(__file__).parent / "golden" / "rows.json"
BASE = {
    "input": {"id_column": "id", "carry_columns": ["topic"]},
    "model": {"engine_args": {"model": "fake"}},
    "job": {"unit_docs": 10},
    "pipeline": {"max_inflight_docs": 4},
}
SUPPLIED = [{"genre": {"title": "Lecture notes", "description": "Structured notes."},
             "audience": {"title": "First-year students", "description": "New to the field."}},
            {"genre": {"title": "Op-ed", "description": "An opinion piece."},
             "audience": {"title": "Retirees", "description": "Curious, unhurried readers."}}]
CONFIGS: dict[str, dict] = {
    "base": {"output": {"include_original": True}, "chunking": {"max_tokens": 512}},
    "strict_supplied_nojudge": {"rewrite": {"mode": "strict"}, "ga": {"pairs": SUPPLIED},
                                "judge": {"enabled": False}, "chunking": {"max_tokens": 64}},
    "faults": {"chunking": {"max_tokens": 128}, "clean": {"max_sibling_similarity": 0.5}},
    "english_only": {"input": {"language": "en"}, "ga": {"num_pairs": 3}},
}
FILLERS = ("the", "and", "of", "to", "with", "for", "as", "so")


def _bucket(*parts: object) -> int:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[0] % 16


def _source(req) -> str:
    content = req.messages[-1]["content"]
    start = content.index("<document>") + len("<document>")
    return content[start:content.index("</document>")].strip("\n")


def _rewrite(source: str, pair: int) -> str:
    if " " not in source.strip():
        filler = chr(0x4E00 + 7 * (pair + 1))
        return filler.join(source[i:i + 4] for i in range(0, len(source), 4))
    return " ".join(f"{w} {FILLERS[pair % len(FILLERS)]}" for w in source.split())


def responder(faulty: bool, wanted: int):
    """Deterministic answers (`wanted` GA pairs); with `faulty`, a hash of the slot picks a
    failure for some."""

    def respond(req):
        _, source_id, chunk, stage, pair = req.id.split("\x1f")
        b = _bucket(source_id, chunk, stage, pair) if faulty else 15
        if stage == "ga":
            if b == 0:
                return ("{\"pairs\": [", "length")
            if b == 1:
                return "I cannot do that."
            if b == 2:
                return pairs_json(2)
            return pairs_json(wanted)
        if stage == "rewrite":
            text = _source(req)
            if b == 3:
                return (text[:40], "length")
            if b == 4:
                return "   "
            if b == 5:
                return text  # a copy
            if b == 6:
                return _rewrite(text, 0)  # a sibling of pair 0
            if b == 7:
                return ("", "error")
            return _rewrite(text, int(pair))
        if b == 8:
            return verdict_json(2)
        if b == 9:
            return "score: excellent"
        return verdict_json(4)

    return respond


def _rows(directory: Path, columns: list[str]) -> list[list]:
    rows = [r for f in sorted(directory.glob("*.parquet"))
            for r in pq.read_table(f, columns=columns).to_pylist()]
    return sorted(([r[c] for c in columns] for r in rows), key=json.dumps)


def run_all(tmp: Path) -> dict:
    from mga_spark.config import load_config

    corpus = tmp / "input"
    write_sample_corpus(corpus)
    out: dict = {}
    for name, sections in CONFIGS.items():
        data = json.loads(json.dumps(BASE))
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        data["input"]["paths"] = [str(corpus)]
        data["output"] = {**data.get("output", {}), "path": str(tmp / name)}
        cfg = load_config(None, None, data)
        wanted = cfg.ga.num_pairs - len(cfg.ga.pairs)
        run = run_fake(cfg, responder(name == "faults", wanted))  # the real run_job, in process
        assert run.result.ok, run.result.failed
        output = run.output
        fixed = json.loads(json.dumps(data))
        fixed["input"]["paths"], fixed["output"]["path"] = ["corpus/"], "output/"
        out[name] = {
            "fingerprint": load_config(None, None, fixed).fingerprint(
                prompt_version=load_prompts().version),
            "data": _rows(output / "data", ["id", "kind", "pair_source", "genre", "judge_score",
                                            "language", "topic", "text"]),
            "rejects": _rows(output / "rejects", ["source_id", "chunk_index", "pair_index",
                                                  "stage", "reason", "detail"]),
        }
    return out


def test_golden_rows(tmp_path: Path) -> None:
    got = run_all(tmp_path)
    want = json.loads(GOLDEN.read_text())
    if got != want:  # never rewritten here: what the run gave is kept for review, and it fails
        new = tmp_path / "rows.json"
        new.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
        print(f"golden differs; to accept after review: cp {new} {GOLDEN}")
    assert set(got) == set(want)
    for name in want:
        assert got[name]["fingerprint"] == want[name]["fingerprint"], name
        for table in ("data", "rejects"):
            missing = [r for r in want[name][table] if r not in got[name][table]]
            extra = [r for r in got[name][table] if r not in want[name][table]]
            assert not missing and not extra, (name, table, missing[:5], extra[:5])
    assert got == want  # the same rows, also in the same order and count


@pytest.mark.parametrize("name", list(CONFIGS))
def test_golden_covers_both_tables(name: str) -> None:
    """The golden file itself is not vacuous: each config has accepted rows and rejects."""
    want = json.loads(GOLDEN.read_text())[name]
    assert want["data"] and want["rejects"]
