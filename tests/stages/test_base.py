"""What the stages share: only a "stop" is a complete answer; the work a stage is given."""

from __future__ import annotations

import pytest

from mga_spark.engine.base import Completion
from mga_spark.schema import Audience, Failure, GAPair, Genre, Reason, Stage
from mga_spark.stages.base import Work, finished

R = Reason
CUT = Failure(R.GA_TRUNCATED, "hit max_tokens")


@pytest.mark.parametrize(
    ("reason", "error", "want"),
    [
        ("stop", None, None),
        ("length", None, CUT),
        ("error", "prompt has 9000 tokens", Failure(R.ENGINE_ERROR, "prompt has 9000 tokens")),
        ("error", None, Failure(R.ENGINE_ERROR, "engine error")),
        ("abort", None, Failure(R.ENGINE_ABORTED,
                                "the engine aborted the request before it finished")),
        ("content_filter", None, Failure(R.INCOMPLETE_ANSWER, "finish_reason 'content_filter': "
                                         "only 'stop' is a complete answer")),
        (None, None, Failure(R.INCOMPLETE_ANSWER,
                             "finish_reason None: only 'stop' is a complete answer")),
        ("", None, Failure(R.INCOMPLETE_ANSWER,
                           "finish_reason '': only 'stop' is a complete answer")),
        ("STOP", None, Failure(R.INCOMPLETE_ANSWER,
                               "finish_reason 'STOP': only 'stop' is a complete answer")),
    ],
)
def test_only_stop_is_a_complete_answer(reason: str, error: str | None, want: Failure | None
                                        ) -> None:
    completion = Completion("r", '{"a complete": "looking answer"}', reason, 5, 5, error)
    assert finished(completion, CUT) == want


def test_a_long_unknown_reason_is_cut_in_the_detail() -> None:
    failure = finished(Completion("r", "", "x" * 500, 0, 0), CUT)
    assert failure is not None and len(failure.detail) <= 200


def test_work_results_are_typed_and_immutable() -> None:
    pair = GAPair(genre=Genre(title="Essay", description="g"),
                  audience=Audience(title="Kids", description="a"))
    work = Work("text", "en", results={Stage.GA: pair})
    later = work.with_result(Stage.REWRITE, "rewritten")
    assert later.result(Stage.GA, GAPair) == pair and later.result(Stage.REWRITE, str)
    assert Stage.REWRITE not in work.results  # the earlier work is unchanged
    with pytest.raises(TypeError, match="no judge result of type int"):
        later.result(Stage.JUDGE, int)
    with pytest.raises(TypeError, match="no rewrite result of type int"):
        later.result(Stage.REWRITE, int)
