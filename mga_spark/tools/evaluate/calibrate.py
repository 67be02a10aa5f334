"""The judge over the calibration items: the judge stage's own request and read (`stages.judge`),
sent to the engine with at most `pipeline.max_inflight_requests` requests in it at once.

An item passes when `judge.read` returns a verdict (score >= judge.threshold), as a rewrite
passes in a run. An answer the stage cannot read (not JSON, out of range, cut off) does not pass
either: in a run that rewrite is rejected too. Its score is kept when the answer has one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mga_spark.config import Config
from mga_spark.engine.base import Completion, Engine, Request
from mga_spark.prompts import Prompts
from mga_spark.schema import Failure, Reason, Stage
from mga_spark.stages import judge
from mga_spark.stages.base import Work
from mga_spark.stages.rewrite import Rewrite
from mga_spark.tools.evaluate.dataset import CalibrationItem


@dataclass(frozen=True)
class Judged:
    item: CalibrationItem
    passed: bool
    score: int | None  # None: the answer had no readable score
    reason: str | None  # why it did not pass: judge_failed, judge_not_json, ...
    answer: str
    output_tokens: int


def _work(item: CalibrationItem) -> Work:
    rewrite = Rewrite(item.rewrite, 0, "stop", None, None)
    return Work(item.source, item.language,
                results={Stage.GA: item.pair, Stage.REWRITE: rewrite})


def _seed(cfg: Config, n: int) -> int:
    blob = f"{cfg.pipeline.seed}\x1fcalibration\x1f{n}".encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=4).digest(), "big")


def _judged(item: CalibrationItem, c: Completion, cfg: Config) -> Judged:
    value = judge.read(c, _work(item), cfg)
    if not isinstance(value, Failure):
        return Judged(item, True, value.score, None, c.text, c.output_tokens)
    score = None
    if value.reason is Reason.JUDGE_FAILED:  # a readable score under the threshold
        verdict = judge.parse_score(c.text) if cfg.judge.mode == "score" else judge.parse(c.text)
        score = None if isinstance(verdict, Failure) else verdict.score
    return Judged(item, False, score, value.reason.value, c.text, c.output_tokens)


def judge_items(engine: Engine, cfg: Config, prompts: Prompts,
                items: list[CalibrationItem]) -> list[Judged]:
    """Every item judged, in item order."""
    window = cfg.pipeline.max_inflight_requests
    out: dict[int, Judged] = {}
    waiting = list(enumerate(items))[::-1]
    inflight = 0
    while waiting or inflight:
        while waiting and inflight < window:
            n, item = waiting.pop()
            call = judge.request(_work(item), cfg, prompts)
            # shaped like a pipeline id (…/stage/pair): the dry engine reads the stage from it
            rid = f"calibration\x1f{n}\x1f0\x1fjudge\x1f0"
            engine.submit(Request(rid, call.messages, call.max_tokens,
                                  call.temperature, call.top_p, call.json_schema, _seed(cfg, n)))
            inflight += 1
        if not engine.has_pending():
            raise RuntimeError(f"the engine lost {inflight} calibration request(s)")
        for c in engine.poll():
            n = int(c.id.split("\x1f")[1])
            out[n] = _judged(items[n], c, cfg)
            inflight -= 1
    return [out[n] for n in range(len(items))]
