"""The judge stage: its request, reading its verdict (malformed, out-of-range and truncated
answers, the threshold), and the structured-output schema generated from `Verdict`."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mga_spark.engine.base import Completion
from mga_spark.prompts import load_prompts
from mga_spark.schema import Audience, Failure, GAPair, Genre, Reason, Stage
from mga_spark.stages import judge
from mga_spark.stages.base import Work
from mga_spark.stages.judge import Verdict
from mga_spark.stages.rewrite import Rewrite
from tests.helpers import EN_TEXT, make_config, verdict_json
from tests.stages.schema_check import accepts, xgrammar_accepts

R = Reason


# --- the answer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ('{"analysis": "Keeps the facts.", "score": 4}', 4),
        ('{"analysis": "Keeps the facts.", "score": 4.0}', 4),
        ('{"analysis": "Keeps the facts.", "score": "4"}', 4),
        ('{"analysis": "Keeps the facts.", "score": " 5 "}', 5),
        ('{"analysis": "Keeps the facts.", "score": "3.0"}', 3),
        ('{"Analysis": "Keeps the facts.", "SCORE": 1}', 1),
        ('```json\n{"analysis": "Keeps the facts.", "score": 2}\n```', 2),
        ('<think>hmm {"score": 1}</think>{"analysis": "Keeps the facts.", "score": 5}', 5),
        ('Verdict: {"analysis": "Keeps the facts.", "score": 3} Thank you.', 3),
        ('[{"analysis": "Keeps the facts.", "score": 4}]', 4),
        ("{'analysis': 'Keeps the facts.', 'score': 4,}", 4),
        ('{"score": 4, "analysis": "Keeps the facts."}', 4),
    ],
)
def test_accepts(text: str, score: int) -> None:
    assert judge.parse(text) == Verdict(analysis="Keeps the facts.", score=score)


def test_keeps_control_characters_and_empty_analysis() -> None:
    assert judge.parse('{"analysis": "a\nb\tc", "score": 3}') == Verdict(
        analysis="a\nb\tc", score=3
    )
    assert judge.parse('{"analysis": "", "score": 3}') == Verdict(analysis="", score=3)


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ('{"analysis": "x", "score": 4.5}', R.JUDGE_INVALID, "score 4.5 is not a whole number"),
        ('{"analysis": "x", "score": "4.5"}', R.JUDGE_INVALID, "score 4.5 is not a whole number"),
        ('{"analysis": "x", "score": "four"}', R.JUDGE_INVALID, "score is not a number: 'four'"),
        ('{"analysis": "x", "score": "4/5"}', R.JUDGE_INVALID, "score is not a number: '4/5'"),
        ('{"analysis": "x", "score": true}', R.JUDGE_INVALID, "score is not a number: True"),
        ('{"analysis": "x", "score": null}', R.JUDGE_INVALID, "score is not a number: None"),
        ('{"analysis": "x", "score": [4]}', R.JUDGE_INVALID, "score is not a number: [4]"),
        ('{"analysis": "x", "score": NaN}', R.JUDGE_INVALID, "score nan is not a whole number"),
        ('{"analysis": "x", "score": 0}', R.JUDGE_SCORE_OUT_OF_RANGE, "score 0 is outside 1..5"),
        ('{"analysis": "x", "score": 6}', R.JUDGE_SCORE_OUT_OF_RANGE, "score 6 is outside 1..5"),
        ('{"analysis": "x", "score": -3}', R.JUDGE_SCORE_OUT_OF_RANGE, "score -3 is outside 1..5"),
        (
            '{"analysis": "x", "score": "10"}',
            R.JUDGE_SCORE_OUT_OF_RANGE,
            "score 10 is outside 1..5",
        ),
        (
            '{"analysis": "x", "score": Infinity}',
            R.JUDGE_SCORE_OUT_OF_RANGE,
            "score inf is outside 1..5",
        ),
        (
            '{"analysis": "x", "score": 1e300}',
            R.JUDGE_SCORE_OUT_OF_RANGE,
            "score beyond 1e9 is outside 1..5",
        ),
        ('{"analysis": "x"}', R.JUDGE_INVALID, "missing score"),
        ('{"score": 3}', R.JUDGE_INVALID, "missing analysis"),
        ("{}", R.JUDGE_INVALID, "missing analysis, score"),
        ('{"analysis": 5, "score": 3}', R.JUDGE_INVALID, "analysis is not a (valid) string"),
        (
            '{"analysis": "\\ud800", "score": 3}',
            R.JUDGE_INVALID,
            "analysis is not a (valid) string",
        ),
        ("[1, 2]", R.JUDGE_INVALID, "expected an object, got list"),
        (
            '{"analysis": "The rewrite keeps',
            R.JUDGE_TRUNCATED,
            "the output ends inside the JSON object",
        ),
        (
            '{"analysis": "ok", "score": 4',
            R.JUDGE_TRUNCATED,
            "the output ends inside the JSON object",
        ),
        ("", R.JUDGE_NOT_JSON, "empty answer"),
        ("Score: 4", R.JUDGE_NOT_JSON, "no JSON object or array in the answer: 'Score: 4'"),
        (
            "<think>the score is 4",
            R.JUDGE_NOT_JSON,
            "unclosed <think> block: no answer after the reasoning",
        ),
    ],
)
def test_failures(text: str, reason: Reason, detail: str) -> None:
    assert judge.parse(text) == Failure(reason, detail)


# --- the stage: request and read ----------------------------------------------------------------

PAIR = GAPair(genre=Genre(title="Essay", description="Calm."),
              audience=Audience(title="Kids", description="Young."))
REWRITE = Rewrite("The rewritten chunk.", 12, "stop", 0.5, 0.6)
WORK = Work(EN_TEXT, "en", results={Stage.GA: PAIR, Stage.REWRITE: REWRITE})


def test_request_shows_the_pair_and_the_cleaned_rewrite() -> None:
    cfg = make_config(judge={"max_tokens": 300, "temperature": 0.2, "max_analysis_chars": 600})
    call = judge.request(WORK, cfg, load_prompts())
    assert call.messages == load_prompts().judge_messages(EN_TEXT, PAIR, REWRITE.text, "en")
    assert (call.max_tokens, call.temperature, call.top_p) == (300, 0.2, 0.95)
    assert call.json_schema == judge.answer_schema(600)
    off = make_config(judge={"structured_output": False})
    assert judge.request(WORK, off, load_prompts()).json_schema is None


def test_request_without_a_rewrite_is_a_bug_not_a_prompt() -> None:
    with pytest.raises(TypeError, match="no rewrite result"):
        judge.request(Work(EN_TEXT, "en", results={Stage.GA: PAIR}), make_config(),
                      load_prompts())


@pytest.mark.parametrize(
    ("text", "finish", "want"),
    [
        (verdict_json(4), "stop", Verdict(analysis="Keeps the main information points.",
                                          score=4)),
        (verdict_json(3), "stop", Verdict(analysis="Keeps the main information points.",
                                          score=3)),
        (verdict_json(2), "stop", Failure(R.JUDGE_FAILED, "score 2 < threshold 3: Keeps the "
                                          "main information points.", raw=REWRITE.text)),
        ('{"analysis": "ok", "sco', "length", Failure(R.JUDGE_TRUNCATED,
                                                      "judge answer hit max_tokens=768")),
        ("", "error", Failure(R.ENGINE_ERROR, "engine error")),
        ("Score: 4", "stop", Failure(R.JUDGE_NOT_JSON,
                                     "no JSON object or array in the answer: 'Score: 4'")),
    ],
)
def test_read(text: str, finish: str, want: Verdict | Failure) -> None:
    assert judge.read(Completion("r", text, finish, 1, 1), WORK, make_config()) == want


# --- the schema, generated from Verdict ---------------------------------------------------------

MAX = 20
AGREE = [  # (verdict, accepted) the schema and the parser agree on
    ({"analysis": "Fine.", "score": 1}, True),
    ({"analysis": "Fine.", "score": 5}, True),
    ({"analysis": "A" * MAX, "score": 3}, True),
    ({"analysis": "Fine.", "score": 0}, False),
    ({"analysis": "Fine.", "score": 6}, False),
    ({"analysis": "Fine.", "score": 4.5}, False),
    ({"analysis": "Fine.", "score": "high"}, False),
    ({"analysis": "Fine.", "score": None}, False),
    ({"analysis": "Fine."}, False),
    ({"score": 3}, False),
    ({"analysis": 5, "score": 3}, False),
]
LENIENT = [  # the parser reads them; structured output would not let a model write them
    {"analysis": "", "score": 3},
    {"analysis": "A" * (MAX + 1), "score": 3},  # the bound budgets tokens only
    {"analysis": "Fine.", "score": "4"},
    {"analysis": "Fine.", "score": 4, "note": "extra"},
    {"Analysis": "Fine.", "SCORE": 4},
]


def _parser_accepts(verdict: dict) -> bool:
    return isinstance(judge.parse(json.dumps(verdict)), Verdict)


@pytest.mark.parametrize(("verdict", "accepted"), AGREE)
def test_schema_and_parser_accept_and_reject_the_same_verdicts(verdict: dict, accepted: bool
                                                               ) -> None:
    assert accepts(judge.answer_schema(MAX), verdict) is accepted
    assert _parser_accepts(verdict) is accepted
    if accepted:
        assert judge.parse(json.dumps(verdict)) == Verdict.model_validate(verdict)


@pytest.mark.parametrize("verdict", LENIENT)
def test_the_parser_is_more_lenient_than_the_schema(verdict: dict) -> None:
    assert not accepts(judge.answer_schema(MAX), verdict) and _parser_accepts(verdict)


@pytest.mark.parametrize("verdict", [v for v, _ in AGREE] + LENIENT)
def test_the_schema_is_the_bounded_model_s(verdict: dict) -> None:
    try:
        judge.answer_model(MAX).model_validate_json(json.dumps(verdict), strict=True)
        valid = True
    except ValidationError:
        valid = False
    assert accepts(judge.answer_schema(MAX), verdict) is valid


def test_the_schema_follows_the_model() -> None:
    schema = judge.answer_schema(MAX)
    assert list(schema["properties"]) == list(Verdict.model_fields) == ["analysis", "score"]
    assert schema["properties"]["analysis"]["maxLength"] == MAX
    score = schema["properties"]["score"]
    assert (score["minimum"], score["maximum"]) == (judge.MIN_SCORE, judge.MAX_SCORE)


@pytest.mark.vllm
def test_the_grammar_vllm_builds_agrees_with_the_parser() -> None:
    for verdict, accepted in AGREE:
        assert xgrammar_accepts(judge.answer_schema(MAX), verdict) is accepted, verdict
    for verdict in LENIENT:
        assert not xgrammar_accepts(judge.answer_schema(MAX), verdict), verdict


# --- judge.mode=score: the score alone ----------------------------------------------------------

SCORE_AGREE = [  # (answer text, accepted) the one-token schema and `parse_score` agree on
    ("1", True), ("3", True), ("5", True),
    ("0", False), ("6", False), ("12", False), ("-3", False), ("4.5", False),
    ('"4"', False), ('{"score": 4}', False), ("four", False), ("", False),
]


@pytest.mark.parametrize(("text", "accepted"), SCORE_AGREE)
def test_score_schema_and_score_parser_agree(text: str, accepted: bool) -> None:
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    assert accepts(judge.score_schema(), value) is accepted
    parsed = judge.parse_score(text)
    assert isinstance(parsed, Verdict) is accepted
    if accepted:
        assert parsed == Verdict(analysis="", score=int(text))


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (" 4\n", Verdict(analysis="", score=4)),
        ("4.0", Verdict(analysis="", score=4)),
        ("I would give it 4", Failure(R.JUDGE_INVALID,
                                      "expected the score alone (1..5), got 'I would give it 4'")),
        ('{"analysis": "Fine.", "score": 4}', Failure(
            R.JUDGE_INVALID, "expected the score alone (1..5), got '{\"analysis\": \"Fine.\", "
            "\"score\": 4}'")),
        ("7", Failure(R.JUDGE_SCORE_OUT_OF_RANGE, "score 7 is outside 1..5")),
        ("2.5", Failure(R.JUDGE_INVALID, "score 2.5 is not a whole number")),
    ],
)
def test_parse_score_reads_only_a_bare_number(text: str, want: Verdict | Failure) -> None:
    assert judge.parse_score(text) == want


def test_score_mode_asks_for_the_score_alone_after_the_same_task() -> None:
    prompts, cfg = load_prompts(), make_config(judge={"mode": "score", "max_tokens": 4})
    call = judge.request(WORK, cfg, prompts)
    analysis = judge.request(WORK, make_config(), prompts)
    task, asked = call.messages[-1]["content"].rsplit("\n\n", 1)
    assert asked == "Answer with the score alone: one digit from 1 to 5, and nothing else."
    assert analysis.messages[-1]["content"].startswith(task + "\n\n")  # one shared prefix
    assert call.messages[0] == analysis.messages[0]
    assert (call.json_schema, call.max_tokens) == (judge.score_schema(), 4)
    with pytest.raises(ValueError, match="unknown judge mode 'terse'"):
        prompts.judge_messages(EN_TEXT, PAIR, REWRITE.text, "en", "terse")


@pytest.mark.parametrize(
    ("text", "finish", "want"),
    [
        ("4", "stop", Verdict(analysis="", score=4)),
        ("2", "stop", Failure(R.JUDGE_FAILED, "score 2 < threshold 3", raw=REWRITE.text)),
        ("4", "length", Failure(R.JUDGE_TRUNCATED, "judge answer hit max_tokens=1")),
    ],
)
def test_read_in_score_mode(text: str, finish: str, want: Verdict | Failure) -> None:
    cfg = make_config(judge={"mode": "score", "max_tokens": 1})
    assert judge.read(Completion("r", text, finish, 1, 1), WORK, cfg) == want


@pytest.mark.vllm
def test_the_score_grammar_vllm_builds_agrees_with_the_score_parser() -> None:
    for text, accepted in SCORE_AGREE:
        try:
            value = json.loads(text)
        except ValueError:
            continue  # not JSON: no grammar of a JSON schema can produce it
        assert xgrammar_accepts(judge.score_schema(), value) is accepted, text
