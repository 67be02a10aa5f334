"""Small builders shared by the tests: configs, documents, inputs, scripted model answers, and
the real job (`run.run_job`) run in this process on a fake engine."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark import layout
from mga_spark.config import Config, load_config
from mga_spark.engine.base import Engine, Request
from mga_spark.engine.fake import FakeEngine
from mga_spark.io import records
from mga_spark.job.run import InProcessRunner, JobResult, run_job
from mga_spark.schema import Document
from mga_spark.tools.verify import VerifyResult, verify

EN_TEXT = (
    "Photosynthesis is the process by which green plants convert light energy into chemical "
    "energy. Chlorophyll in the leaves absorbs sunlight, and the plant uses that energy to turn "
    "carbon dioxide and water into glucose and oxygen. The oxygen is released into the air, "
    "while glucose feeds the growth of roots, stems and leaves."
)
ZH_TEXT = (
    "光合作用是绿色植物利用光能把二氧化碳和水转化为葡萄糖并释放氧气的过程。叶片中的叶绿素吸收阳光，"
    "植物再用这些能量制造养分，供根、茎和叶生长。这个过程为地球上的大多数生命提供了氧气和食物。"
)
FR_TEXT = (
    "La photosynthèse est le processus par lequel les plantes vertes transforment l'énergie de la "
    "lumière en énergie chimique. Les feuilles absorbent la lumière du soleil et produisent du "
    "glucose et de l'oxygène à partir du dioxyde de carbone et de l'eau."
)


def make_config(**sections: dict) -> Config:
    base: dict = {"model": {"engine_args": {"model": "fake"}}, "pipeline": {"max_inflight_docs": 4}}
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_config(None, None, base)


def doc(doc_id: str, text: str | None = EN_TEXT, **extra: object) -> Document:
    return Document(doc_id, text, dict(extra))


def pairs_json(n: int = 5, prefix: str = "") -> str:
    return json.dumps({"pairs": [
        {"genre": {"title": f"{prefix}Genre {i}", "description": f"A plain genre number {i}."},
         "audience": {"title": f"{prefix}Audience {i}", "description": f"Readers of kind {i}."}}
        for i in range(n)
    ]})


def verdict_json(score: int = 4) -> str:
    return json.dumps({"analysis": "Keeps the main information points.", "score": score})


# English fillers that keep langdetect's verdict "en" on the sample texts
FILLERS = ("indeed", "truly", "really", "clearly", "surely", "plainly", "simply", "mostly",
           "largely", "fully", "rightly", "certainly", "still", "also", "often", "again",
           "always", "usually", "nearly")


def paraphrase(source: str, variant: int = 0) -> str:
    """Every source word kept (high keyword coverage), no long verbatim run (not a copy).

    Each `variant` uses its own filler, so the variants of one document share no shingles."""
    if " " not in source.strip():  # Chinese: a filler every 4 characters breaks long n-grams
        filler = "嗯" if variant == 0 else chr(0x4E00 + 7 * variant)
        return filler.join(source[i:i + 4] for i in range(0, len(source), 4))
    filler = FILLERS[variant % len(FILLERS)]
    return " ".join(f"{w} {filler}" for w in source.split())


def stage_of(req: Request) -> tuple[str, str, int, int | None]:
    """(stage, source id, chunk index, pair index) from the pipeline's request id."""
    _, source, chunk, stage, pair = req.id.split("\x1f")
    return stage, source, int(chunk), None if pair == "None" else int(pair)


def source_of(req: Request) -> str:
    content = req.messages[-1]["content"]
    start = content.index("<document>") + len("<document>")
    return content[start:content.index("</document>")].strip("\n")


Script = Callable[[str, str, int, int | None, Request], "str | tuple[str, str] | Exception | None"]


def scripted(script: Script | None = None) -> Callable[[Request], object]:
    """A responder: the script may override any answer; otherwise every stage succeeds."""

    def respond(req: Request) -> object:
        stage, source, chunk, pair = stage_of(req)
        answer = script(stage, source, chunk, pair, req) if script else None
        if answer is not None:
            return answer
        if stage == "ga":
            return pairs_json()
        if stage == "rewrite":
            return paraphrase(source_of(req), pair or 0)
        return verdict_json()

    return respond


REWRITE_FILLERS = ("the", "and", "of", "to", "with", "for", "as", "so")  # English function words


def rewrite_of(source: str, pair: int) -> str:
    """A rewrite that passes cleaning: every source word kept, an English function word after
    each (no long verbatim run; detected as English), a different one per pair (no two rewrites
    of a document alike)."""
    if " " not in source.strip():
        return paraphrase(source, pair)
    return " ".join(f"{w} {REWRITE_FILLERS[pair % len(REWRITE_FILLERS)]}" for w in source.split())


def with_rewrites(script: Script | None) -> Script:
    """`script`, falling back to `rewrite_of` for rewrites it does not answer."""

    def answer(stage, source, chunk, pair, req):
        found = script(stage, source, chunk, pair, req) if script else None
        if found is None and stage == "rewrite":
            return rewrite_of(source_of(req), pair)
        return found

    return answer


# -- inputs and whole runs -----------------------------------------------------------------


def write(path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_input(directory: Path, rows: list[dict], row_group_size: int = 2) -> Path:
    write(directory / "part-0.parquet", pa.Table.from_pylist(rows), row_group_size)
    return directory


def _rows(directory: Path) -> list[dict]:
    files = sorted(directory.glob("*.parquet")) if directory.exists() else []
    return [row for f in files for row in pq.read_table(f).to_pylist()]


@dataclass
class FakeRun:
    """A finished in-process run and readers of what it wrote."""

    cfg: Config
    output: Path
    engine: Engine
    result: JobResult

    @property
    def manifests(self) -> list[dict]:
        return records.read_manifests(str(self.output))

    def data(self) -> list[dict]:
        return _rows(self.output / layout.DATA_DIR)

    def rejects(self) -> list[dict]:
        return _rows(self.output / layout.REJECTS_DIR)

    def input_rejects(self) -> set[tuple[str, str]]:
        return {(r["source_id"], r["reason"]) for r in self.rejects() if r["stage"] == "input"}

    def variants_per_source(self) -> dict[str, int]:
        return dict(Counter(r["source_id"] for r in self.data() if r["kind"] == "reformulation"))

    def verify(self) -> VerifyResult:
        return verify(str(self.output))


def run_fake(cfg: Config, responder: Callable[[Request], object] | None = None,
             engine: Engine | None = None) -> FakeRun:
    """The real job (`run_job`) in this process, every unit on one engine (as a Python worker's
    cached engine): `engine`, or a fake engine answering with `responder` (default: every stage
    succeeds, `scripted()`)."""
    engine = engine or FakeEngine(responder or scripted())
    result = run_job(cfg, InProcessRunner(lambda _cfg, _gpu: engine), show_progress=False)
    return FakeRun(cfg, Path(cfg.output.path), engine, result)


def run_fake_job(inputs: Path, output: Path, script: Script | None = None,
                 engine: Engine | None = None, **sections: dict) -> FakeRun:
    """`run_fake` over `inputs` (ids in column `id`) into `output`, on the scripted fake engine
    (rewrites by `rewrite_of` unless `script` answers) or `engine`; `sections` override config
    sections."""
    base_input = {"paths": [str(inputs)], "id_column": "id"}
    cfg = make_config(**{**sections, "input": {**base_input, **sections.get("input", {})},
                         "output": {"path": str(output), **sections.get("output", {})}})
    return run_fake(cfg, scripted(with_rewrites(script)), engine)
