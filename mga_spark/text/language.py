"""Fast, deterministic language identification for documents and rewrites.

`detect(text)` looks only at a prefix of the text and tries, in order:

1. script counts: no letters -> "unknown"; mostly Han/kana/Hangul -> "zh", "ja" or "ko";
2. an English fast path: a high share of common English function words -> "en";
3. `langdetect` (a private, seeded factory, so results are reproducible) on a shorter prefix.

Measured on this project's machine (2-core Xeon VM shared with other jobs, Python 3.11,
langdetect 1.0.9), best-of-5 mean per call on 5,000-character texts: English 0.03 ms and Chinese
0.06-0.1 ms (fast paths); French, German, Russian 0.55-1.1 ms (the langdetect path, whose cost is
its pure-Python n-gram scoring). The first langdetect call per process loads its profiles
(~0.2 s). Command: `python3 -m mga_spark.language` (runs `_bench`).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
SCAN_CHARS = 600  # prefix used for script counts and the English fast path
LANGDETECT_CHARS = 250  # prefix handed to langdetect (its cost grows with the length)
LANGDETECT_TRIALS = 3  # langdetect's default is 7; 3 keeps its answers on a prefix this size
CJK_SHARE = 0.3  # Han + kana + Hangul share of all letters that makes a text CJK
EN_MIN_WORDS = 12
EN_FUNCTION_SHARE = 0.2

_HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA_RANGES = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL_RANGES = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_CJK = re.compile(f"[{_HAN_RANGES}{_KANA_RANGES}{_HANGUL_RANGES}]")
_KANA = re.compile(f"[{_KANA_RANGES}]")
_HANGUL = re.compile(f"[{_HANGUL_RANGES}]")
_ASCII_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Frequent English words that are rare as words in other Latin-script languages.
_EN_WORDS = """the of and to is that for with was are this which from by be have has were their they
it its not or can will these been would there what when also but than them into more such other
about how only could should most many each an at"""
_EN_FUNCTION_WORDS = frozenset(_EN_WORDS.split())
_LANGDETECT_ALIASES = {"zh-cn": "zh", "zh-tw": "zh"}

_factory: Any = None
_factory_lock = threading.Lock()


def detect(text: str) -> str:
    """ISO-639-1 code of the text's language, or "unknown". Never raises."""
    try:
        return _detect(text)
    except Exception as e:  # a language guess must never fail a document
        log.debug("language detection failed: %s", e)
        return UNKNOWN


def _detect(text: str) -> str:
    if not isinstance(text, str):
        return UNKNOWN
    head = text[:SCAN_CHARS]
    letters = sum(map(str.isalpha, head))
    if letters == 0:
        return UNKNOWN
    if not head.isascii():
        cjk = _cjk(head, letters)
        if cjk:
            return cjk
    if _looks_english(head):
        return "en"
    return _langdetect(head[:LANGDETECT_CHARS])


def _cjk(head: str, letters: int) -> str | None:
    total = len(_CJK.findall(head))
    if total < CJK_SHARE * letters:
        return None
    kana = len(_KANA.findall(head))
    hangul = len(_HANGUL.findall(head))
    if hangul >= kana and hangul >= 0.3 * total:
        return "ko"
    if kana >= 0.1 * total:
        return "ja"
    return "zh"


def _looks_english(head: str) -> bool:
    words = _ASCII_WORD.findall(head.lower())
    if len(words) < EN_MIN_WORDS:
        return False
    hits = sum(w in _EN_FUNCTION_WORDS for w in words)
    return hits >= EN_FUNCTION_SHARE * len(words)


def _langdetect(text: str) -> str:
    from langdetect.lang_detect_exception import LangDetectException

    detector = _get_factory().create()
    detector.n_trial = LANGDETECT_TRIALS
    detector.append(text)
    try:
        code = detector.detect()
    except LangDetectException:  # no usable features (e.g. only punctuation and digits)
        return UNKNOWN
    return _LANGDETECT_ALIASES.get(code, code)


def _get_factory() -> Any:
    """A private, seeded DetectorFactory (the library's global one is left untouched)."""
    global _factory
    if _factory is None:
        with _factory_lock:
            if _factory is None:
                from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(0)
                _factory = factory
    return _factory


def _bench(repeat: int = 200, rounds: int = 5) -> None:
    """Print the time per call on 5,000-character texts (best round of `rounds`)."""
    import time

    samples = {
        "en": "The heart pumps blood through arteries, and veins carry it back to it. ",
        "zh": "心脏把血液压入动脉，静脉再把血液送回心脏，这个过程周而复始。",
        "fr": "Le cœur pompe le sang dans les artères, et les veines le ramènent vers lui. ",
        "de": "Das Herz pumpt das Blut durch die Arterien, und die Venen führen es zurück. ",
        "ru": "Сердце перекачивает кровь по артериям, а вены возвращают её обратно. ",
    }
    _get_factory()
    for lang, sentence in samples.items():
        text = (sentence * (5000 // len(sentence) + 1))[:5000]
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(repeat):
                got = detect(text)
            best = min(best, (time.perf_counter() - start) / repeat)
        print(f"{lang}: detect -> {got}  {best * 1e3:.3f} ms/call on {len(text)} chars")


if __name__ == "__main__":
    _bench()
