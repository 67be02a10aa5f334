"""Calls/s of `mga_spark.text.cleaning.clean` on 1,000-word English texts, CPU time, best of
`rounds`: every source new (its cache never hits), and five rewrites per source (as the pipeline
calls it), each without and with the language detector.

Each rewrite is its source with words shuffled in windows of 10 (same keywords, few shared
5-grams), wrapped in an opening line and a closing note.

    python -m bench.cleaning_speed [--rounds 5] [--docs 200]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pydoc_data.topics import topics

from mga_spark.config import CleanConfig
from mga_spark.text.cleaning import clean
from mga_spark.text.language import detect


def measure(rounds: int = 5, docs: int = 200) -> None:
    words = re.findall(r"[A-Za-z]+[.,]?", " ".join(topics.values()))
    rng = random.Random(1)
    sources = [words[i : i + 1000] for i in rng.sample(range(len(words) - 1000), docs)]
    rewrites = []
    for src in sources:
        for _ in range(5):
            w = [x for i in range(0, 1000, 10) for x in rng.sample(src[i : i + 10], 10)]
            rewrites.append(f"Here is the text:\n\n{' '.join(w)}\n\nNote: kept.")
    texts = [" ".join(s) for s in sources]
    cfg = CleanConfig()
    detect("warm up")
    cases = (
        ("every source new", lambda i: (i % docs, i % docs * 5)),  # the source cache never hits
        ("5 rewrites per source", lambda i: (i // 5 % docs, i % (5 * docs))),  # the pipeline
    )
    for label, pick in cases:
        for name, det in (("detect=None", None), ("language.detect", detect)):
            best = float("inf")
            for _ in range(rounds):
                start = time.process_time()
                for i in range(10 * docs):
                    s, r = pick(i)
                    clean(texts[s], rewrites[r], cfg, "en", det)
                best = min(best, (time.process_time() - start) / (10 * docs))
            print(f"{label}, {name}: {1 / best:,.0f} calls/s ({best * 1e6:.0f} us/call)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--docs", type=int, default=200, help="sources (five rewrites each)")
    args = parser.parse_args(argv)
    measure(args.rounds, args.docs)


if __name__ == "__main__":
    main()
