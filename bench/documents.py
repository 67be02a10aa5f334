"""The bench's documents: deterministic, of varied lengths, made of the sample corpus's texts."""

from __future__ import annotations

import random

from mga_spark.schema import Document
from mga_spark.tools.demo import sample_records

SIZES = (1, 3, 1, 6, 2, 1, 4, 1, 8, 2, 1, 3)  # sample texts per bench document: varied lengths


def varied_documents(n: int, seed: int, prefix: str = "bench",
                     languages: tuple[str, ...] = ("en", "zh")) -> list[Document]:
    """`n` documents of 1-8 consecutive sample texts of one language: every fourth Chinese
    when `languages` has "zh" (and "en"), else all of the one language given."""
    if not set(languages) <= {"en", "zh"} or not languages:
        raise ValueError(f"languages: 'en' and/or 'zh', not {languages!r}")
    records = [r for r in sample_records() if r["lang"] in languages]
    by_lang = {lang: [r for r in records if r["lang"] == lang] for lang in languages}
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        lang = "zh" if "zh" in languages and (i % 4 == 3 or "en" not in languages) else "en"
        pool = by_lang[lang]
        start, size = rng.randrange(len(pool)), SIZES[i % len(SIZES)]
        parts = [pool[(start + k) % len(pool)] for k in range(size)]
        text = "\n\n".join(p["text"] for p in parts)
        docs.append(Document(f"{prefix}-{i:04d}", text, {"topic": parts[0].get("topic")}))
    return docs


def warmup_documents(n: int) -> list[Document]:
    """Documents unlike the bench set (words or sentences reversed), for warming the engine up."""
    docs = varied_documents(n, seed=12345, prefix="warmup")
    return [Document(d.id, _scrambled(d.text), d.extra) for d in docs]


def _scrambled(text: str) -> str:
    """The words in reverse order; for text without spaces (Chinese), the sentences."""
    words = text.split(" ")
    if len(words) > 1:
        return " ".join(reversed(words))
    return "。".join(reversed(text.split("。")))
