"""Secrets in the configuration never reach a file or a log line: real-looking secrets in engine
arguments (snake_case and camelCase keys), in Spark settings and inside URIs, through the job path
(claim_output, process_unit on the fake engine), the engine's build log and the bench results."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pyarrow as pa
import pytest

from bench import results as bench_report
from bench.run import machine_facts
from mga_spark.engine.fake import FakeEngine
from mga_spark.engine.vllm import VLLMEngine
from mga_spark.io.plan import make_plan
from mga_spark.job import runinfo
from mga_spark.job.unit import process_unit
from tests.helpers import EN_TEXT, make_config, scripted, with_rewrites, write

HF_TOKEN = "hf_QwErTyUiOpAsDfGhJkLzXcVbNm0123456789"
API_KEY = "sk-live-4f9d2c7e1b8a6f3d0c5e9b2a7d4f1c8e"
SESSION_TOKEN = "FwoGZXIvYXdzEJr//////////wEaDNe8Xz3QkSESSION"
URI_PASSWORD = "pA55w0rd-in-the-uri"
SIGNATURE = "9f2c6a1be0d34c58a7b1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3"
CREDENTIAL = "AKIAIOSFODNN7EXAMPLE"
SECRETS = (HF_TOKEN, API_KEY, SESSION_TOKEN, URI_PASSWORD, SIGNATURE, CREDENTIAL)


class StubLLM:
    """Stands in for vllm.LLM: the engine's build (and its log line) without loading a model."""

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs


def stub_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vllm.LLM` and `vllm.platforms.current_platform` (a CPU) for `VLLMEngine._build`."""
    platform = types.SimpleNamespace(is_cpu=lambda: True, is_cuda=lambda: False,
                                     device_type="cpu")
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=StubLLM))
    monkeypatch.setitem(sys.modules, "vllm.platforms",
                        types.SimpleNamespace(current_platform=platform))


def secret_config(tmp_path: Path):
    write(tmp_path / "in" / "a.parquet",
          pa.table({"id": list("abcd"), "text": [f"Lesson {i}. {EN_TEXT}" for i in range(4)]}),
          row_group_size=2)
    presigned = (f"https://models.example.com/tiny?X-Amz-Credential={CREDENTIAL}%2F20261201"
                 f"&X-Amz-Signature={SIGNATURE}&X-Amz-Expires=600")
    return make_config(
        input={"paths": [str(tmp_path / "in")], "id_column": "id"},
        output={"path": str(tmp_path / "out")}, job={
            "unit_docs": 2,
            "spark_conf": {"spark.hadoop.fs.s3a.sessionToken": SESSION_TOKEN,
                           "spark.eventLog.dir": f"s3a://{CREDENTIAL}:{URI_PASSWORD}@logs/app"}},
        model={"engine_args": {"model": presigned, "hf_token": HF_TOKEN, "apiKey": API_KEY,
                               "max_model_len": 4096}})


def test_no_secret_reaches_any_file_or_log(tmp_path: Path, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = secret_config(tmp_path)
    runinfo.claim_output(cfg)
    for unit in make_plan(cfg.input, cfg.job.unit_docs).units:
        engine = FakeEngine(scripted(with_rewrites(None)))
        engine.model_name = VLLMEngine(cfg.model.engine_args).model_name  # the `model` column
        process_unit(cfg, unit, engine, cfg.output.path)
    stub_vllm(monkeypatch)
    built = VLLMEngine(cfg.model.engine_args, "cpu")._get_llm()
    assert built.kwargs["hf_token"] == HF_TOKEN  # the engine itself gets the real values
    facts = machine_facts(cfg)
    bench_report.write(bench_results(facts), tmp_path / "bench")

    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert {p.name for p in files} >= {"_run.json", "results.json", "results.md"}
    assert any(p.parent.name == "_manifest" for p in files)
    texts = {str(p): p.read_text(errors="replace") for p in files}
    for p in tmp_path.rglob("*.parquet"):
        if "/in/" not in str(p):
            texts[str(p)] = p.read_bytes().decode("utf-8", "replace")
    texts["captured logs"] = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "building vLLM engine" in caplog.text and "***" in caplog.text
    leaks = [(where, s) for where, text in texts.items() for s in SECRETS if s in text]
    assert not leaks, leaks
    run = texts[str(tmp_path / "out" / "_run.json")]
    assert "models.example.com/tiny?X-Amz-Credential=***" in run  # masked, not dropped


def bench_results(machine: dict) -> dict:
    return {
        "machine": machine,
        "settings": {"config": "conf/demo.yaml", "num_pairs": 5, "max_tokens": {},
                     "chunk_max_tokens": 512, "max_inflight_docs": 16, "naive_batch_docs": 16},
        "documents": {"count": 0, "languages": {}, "tokens_min": 0, "tokens_max": 0,
                      "tokens_median": 0, "tokens_total": 0},
        "phases": [], "overhead": [], "planning": [], "seconds": 1.0,
    }


@pytest.mark.parametrize("text", [f"s3a://{CREDENTIAL}:{URI_PASSWORD}@bucket/x",
                                  f"https://h/x?X-Amz-Signature={SIGNATURE}"])
def test_the_model_column_never_carries_uri_credentials(text: str) -> None:
    name = VLLMEngine({"model": text}).model_name
    assert URI_PASSWORD not in name and SIGNATURE not in name and "***" in name


def test_secret_settings_on_the_command_line_never_reach_the_bench_files(
        tmp_path: Path, monkeypatch) -> None:
    from bench import record
    from bench.run import Settings, _settings

    overrides = (f"model.engine_args.api_key={API_KEY}", f"model.engine_args.hfToken={HF_TOKEN}",
                 f'input.paths=["s3a://{CREDENTIAL}:{URI_PASSWORD}@bucket/in"]',
                 "rewrite.max_tokens=320")
    monkeypatch.setattr(sys, "argv", ["/repo/bench/__main__.py", "--hf-token=" + HF_TOKEN,
                                      *(w for o in overrides for w in ("--set", o))])
    cfg = make_config()
    written = str(_settings(Settings(overrides=overrides), cfg, 16)) + str(
        record.header(cfg, Path("c.yaml"), list(overrides), 3, 0))
    assert not [s for s in SECRETS if s in written], written
    assert "rewrite.max_tokens=320" in written and "model.engine_args.api_key=***" in written
    assert "--hf-token=***" in written and "s3a://***@bucket/in" in written
