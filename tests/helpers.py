"""Small builders shared by the tests: configs, documents, scripted model answers."""

from __future__ import annotations

import json
from collections.abc import Callable

from mga_spark.config import Config, load_config
from mga_spark.engine.base import Request
from mga_spark.schema import Document

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
