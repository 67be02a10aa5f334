"""Language detectors compared on the sample corpus and on short texts: accuracy, speed, memory.

    pip install langdetect py3langid lingua-language-detector   # next to this package
    python bench/language_detectors.py [--repeat 5]

Test sets, each text labelled with its language:
- corpus: the 42 documents of mga_spark/data/sample_corpus.jsonl (29 en, 12 zh, 1 fr; the
  id tells the language), whole;
- sentences: the same documents cut into sentences (at . ! ? and 。！？), of 12 characters or
  more, plus the sentences of the de, ru, ja, ko, fr samples of tests/text/test_language.py;
- short: the first 30 characters of every sentence.
Every detector sees at most the first 600 characters (langdetect 250, as mga-spark used it).
Time per call is the best of `--repeat` passes over a set (CPU time, one thread); `load` is the
first call's time (model loading) and `MiB` the growth of resident memory over it (after
importing pyarrow and numpy, which an executor has loaded anyway);
each detector runs in a process of its own. "(!)" marks answers that changed between two passes.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.text.test_language import SAMPLES  # noqa: E402

Detector = Callable[[str], str]
SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")


def labelled_sets() -> dict[str, list[tuple[str, str]]]:
    path = ROOT / "mga_spark" / "data" / "sample_corpus.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    corpus = [(r["id"].split("-")[0], r["text"]) for r in rows]
    texts = corpus + [(lang, text) for lang, text in SAMPLES.items() if lang not in ("en", "zh")]
    sentences = [(lang, s.strip()) for lang, text in texts for s in SENTENCE.split(text)
                 if len(s.strip()) >= 12]
    short = [(lang, s[:30]) for lang, s in sentences]
    return {"corpus": corpus, "sentences": sentences, "short": short}


def langdetect_detector() -> Detector:
    """langdetect as mga-spark used it: a private seeded factory, 3 trials, 250 characters."""
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)

    def detect(text: str) -> str:
        d = factory.create()
        d.n_trial = 3
        d.append(text[:250])
        code = d.detect()
        return {"zh-cn": "zh", "zh-tw": "zh"}.get(code, code)

    return detect


def py3langid_detector() -> Detector:
    """py3langid as language.detect calls it (600 characters, aliases), without fast paths."""
    from mga_spark.text import language

    return lambda text: language._classify(text[: language.SCAN_CHARS])


def lingua_detector(low_accuracy: bool = False) -> Detector:
    from lingua import LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
    detector = (builder.with_low_accuracy_mode() if low_accuracy else builder).build()

    def detect(text: str) -> str:
        found = detector.detect_language_of(text[:600])
        return found.iso_code_639_1.name.lower() if found is not None else "unknown"

    return detect


def with_fast_paths(backend: Callable[[], Detector], cjk: bool, english: bool
                    ) -> Callable[[], Detector]:
    """language.detect's fast paths (CJK script counts, English function words), then backend."""
    from mga_spark.text import language

    def make() -> Detector:
        slow = backend()

        def detect(text: str) -> str:
            head = text[: language.SCAN_CHARS]
            letters = sum(map(str.isalpha, head))
            found = language._cjk(head, letters) if cjk and not head.isascii() else None
            if found is None and english and language._looks_english(head):
                found = "en"
            return found or slow(head)

        return detect

    return make


CANDIDATES: dict[str, Callable[[], Detector]] = {
    "langdetect": langdetect_detector,
    "langdetect + CJK + English paths (before)": with_fast_paths(langdetect_detector, True, True),
    "lingua, high accuracy": lingua_detector,
    "lingua, low accuracy": lambda: lingua_detector(low_accuracy=True),
    "py3langid": py3langid_detector,
    "py3langid + CJK path": with_fast_paths(py3langid_detector, True, False),
    "py3langid + CJK + English paths (now)": with_fast_paths(py3langid_detector, True, True),
}


def rss_mib() -> float:
    """Resident memory now (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def measure(name: str, make: Callable[[], Detector], sets: dict, repeat: int) -> dict:
    import numpy  # noqa: F401
    import pyarrow  # noqa: F401

    before, start = rss_mib(), time.process_time()
    detect = make()
    detect(SAMPLES["fr"])  # no fast path takes French: the model loads
    row: dict = {"name": name, "load_s": time.process_time() - start,
                 "mib": rss_mib() - before}
    for set_name, items in sets.items():
        answers = [detect(text) for _, text in items]
        again = [detect(text) for _, text in items]
        wrong = [(lang, got, text[:40]) for (lang, text), got in zip(items, answers, strict=True)
                 if got != lang]
        best = float("inf")
        for _ in range(repeat):
            start = time.process_time()
            for _, text in items:
                detect(text)
            best = min(best, (time.process_time() - start) / len(items))
        row[set_name] = {"right": len(items) - len(wrong), "of": len(items),
                         "ms": best * 1e3, "deterministic": answers == again,
                         "wrong": wrong[:6]}
    return row


def table(rows: list[dict], sets: dict) -> str:
    head = "| detector | load s | MiB | " + " | ".join(
        f"{s}: right / {len(v)}, ms/call" for s, v in sets.items()) + " |"
    lines = [head, "|" + " --- |" * (3 + len(sets))]
    for r in rows:
        cells = [f"{r[s]['right']}, {r[s]['ms']:.3f}" + ("" if r[s]["deterministic"] else " (!)")
                 for s in sets]
        lines.append(f"| {r['name']} | {r['load_s']:.2f} | {r['mib']:.0f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--one", help="measure this detector alone and print its row as JSON")
    args = parser.parse_args()
    sets = labelled_sets()
    if args.one:
        print(json.dumps(measure(args.one, CANDIDATES[args.one], sets, args.repeat)))
        return
    rows = []
    for name in CANDIDATES:  # one process each: memory and load times do not mix
        run = subprocess.run([sys.executable, __file__, "--one", name, "--repeat",
                              str(args.repeat)], capture_output=True, text=True, check=True)
        rows.append(json.loads(run.stdout.splitlines()[-1]))
    print(table(rows, sets))
    for r in rows:
        for s in sets:
            for lang, got, text in r[s]["wrong"]:
                print(f"{r['name']} / {s}: {lang} -> {got}: {text!r}")


if __name__ == "__main__":
    main()
