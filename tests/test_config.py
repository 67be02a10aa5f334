"""Configuration: YAML + overrides, errors that name the field, redaction, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from mga_spark.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"model": {"engine_args": {"model": "m"}}}


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf").glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "conf" / f"{name}.yaml")
    assert cfg.model.engine_args["model"]
    assert cfg.rewrite.mode == {"strict": "strict", "relaxed": "relaxed"}.get(name, "base")


def test_the_gpu_configs_are_the_3b_tool_model_in_fp8_and_the_30b_quality_option():
    gpu, quality = (load_config(ROOT / "conf" / f"{n}.yaml") for n in ("gpu", "gpu-quality"))
    assert gpu.model.engine_args["model"].endswith("granite-3.1-3b-a800m-instruct")
    assert gpu.model.engine_args["quantization"] == "fp8"
    assert "Qwen3-30B-A3B" in quality.model.engine_args["model"]
    assert gpu.model_dump(exclude={"model"}) == quality.model_dump(exclude={"model"})


def test_overrides_parse_values_as_yaml():
    cfg = load_config(None, ["ga.num_pairs=3", "input.paths=[a, b]", "judge.enabled=false",
                             "model.engine_args.max_model_len=2048"], MODEL)
    assert cfg.ga.num_pairs == 3 and cfg.input.paths == ["a", "b"] and not cfg.judge.enabled
    assert cfg.model.engine_args == {"model": "m", "max_model_len": 2048}


def test_invalid_values_name_the_field_and_the_allowed_values():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["rewrite.mode=wild", "ga.num_pairs=0"], MODEL)
    text = str(err.value)
    assert "rewrite.mode" in text and "'base', 'strict' or 'relaxed'" in text and "wild" in text
    assert "ga.num_pairs" in text


def test_unknown_keys_and_a_missing_model_are_errors():
    with pytest.raises(ConfigError, match="ga.pairs"):
        load_config(None, ["ga.pairs=3"], MODEL)
    with pytest.raises(ConfigError, match="model.engine_args.model is required"):
        load_config(None, ["model.engine_args={}"], MODEL)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["ga.num_pairs"], MODEL)


def test_missing_or_broken_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_secrets_are_redacted_but_token_limits_are_not():
    cfg = load_config(None, ["model.engine_args.hf_token=abc",
                             "job.spark_conf={spark.hadoop.fs.s3a.secret.key: s3cr3t}"], MODEL)
    red = cfg.redacted()
    assert red["model"]["engine_args"]["hf_token"] == "***"
    assert red["ga"]["max_tokens"] == cfg.ga.max_tokens
    assert "s3cr3t" not in str(red)


def test_fingerprint_tracks_output_affecting_settings_only():
    base = load_config(None, None, MODEL).fingerprint(prompt_version="p")
    assert load_config(None, ["ga.num_pairs=4"], MODEL).fingerprint(prompt_version="p") != base
    # unit cutting is operational: ids come from content and rows (tests/reliability/
    # test_exactly_once.py::test_a_resume_that_cuts_units_otherwise_runs_only_uncommitted_documents)
    for cutting in ("job.unit_docs=7", "input.unit_text_bytes=100"):
        assert load_config(None, [cutting], MODEL).fingerprint(prompt_version="p") == base
    assert load_config(None, ["model.engine_args.structured_outputs_config={backend: guidance}"],
                       MODEL).fingerprint(prompt_version="p") != base
    assert load_config(None, ["model.engine_args.kv_cache_memory_bytes=1"], MODEL
                       ).fingerprint(prompt_version="p") == base
    assert load_config(None, ["output.path=elsewhere", "job.master=local[1]"], MODEL
                       ).fingerprint(prompt_version="p") == base


@pytest.mark.parametrize("key", [
    "hf_token", "aws_secret_access_key", "secretKey", "accessKey", "sessionToken", "apiKey",
    "Authorization", "connection_string", "connectionString", "passphrase", "pwd", "password",
    "spark.hadoop.fs.s3a.secret.key", "spark.hadoop.fs.s3a.session.token", "HF_TOKEN",
    "X-Amz-Security-Token", "client_secret", "private_key", "AWSAccessKeyId",
])
def test_secret_key_names_in_any_case_style(key):
    from mga_spark.redaction import is_secret_key, redact

    assert is_secret_key(key)
    assert redact({"outer": {key: "s3cr3t-value"}}) == {"outer": {key: "***"}}


@pytest.mark.parametrize("key", [
    "max_tokens", "tokenizer", "tokenizer_mode", "min_keyword_coverage", "max_model_len",
    "kv_cache_memory_bytes", "keywords", "monkey", "id_column", "spark.executor.memory",
])
def test_ordinary_key_names_are_not_secret(key):
    from mga_spark.redaction import is_secret_key

    assert not is_secret_key(key)


@pytest.mark.parametrize(("uri", "shown"), [
    ("s3a://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/corpus/", "s3a://***@bucket/corpus/"),
    ("https://user:p4ss@host:8443/x.parquet", "https://***@host:8443/x.parquet"),
    ("https://b.s3.amazonaws.com/x.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=AKIAEXAMPLE%2F20261201&X-Amz-Signature=9f2c0ffee&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/x.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"),
    ("https://acct.blob.core.windows.net/c/x?sv=2024&sig=abc%3D&se=2026",
     "https://acct.blob.core.windows.net/c/x?sv=2024&sig=***&se=2026"),
    ("https://host/x?token=abc&page=2", "https://host/x?token=***&page=2"),
    ("s3://bucket/plain/path.parquet", "s3://bucket/plain/path.parquet"),
    ("user@example.com wrote a=b", "user@example.com wrote a=b"),
])
def test_credentials_inside_uris_are_masked(uri, shown):
    from mga_spark.redaction import redact

    assert redact({"paths": [uri]}) == {"paths": [shown]}


def test_the_run_record_masks_secrets_in_keys_and_in_uris():
    cfg = load_config(None, [
        "input.paths=['https://u:pw0rd@host/a.parquet?sig=SIG123']",
        "model.engine_args.apiKey=sk-live-123",
        "job.spark_conf={spark.hadoop.fs.s3a.sessionToken: TOK456}"], MODEL)
    red = str(cfg.redacted())
    for secret in ("pw0rd", "SIG123", "sk-live-123", "TOK456"):
        assert secret not in red
    assert cfg.input.paths == ["https://u:pw0rd@host/a.parquet?sig=SIG123"]  # the config itself


@pytest.mark.parametrize("key", [
    "spark.executorEnv.MGA_SPARK_TEST_FAULTS", "spark.yarn.appMasterEnv.MGA_SPARK_TEST_FAULTS",
    "spark.kubernetes.driverEnv.MGA_SPARK_TEST_FAULTS", "spark.executorEnv.MGA_SPARK_ANYTHING",
    "spark.executorEnv.mga_spark_test_faults",
])
def test_spark_conf_cannot_set_the_projects_own_environment(key):
    with pytest.raises(ConfigError, match=r"job.spark_conf.*MGA_SPARK.*cannot be set"):
        load_config(None, [f"job.spark_conf={{{key}: '{{\"faults\": []}}'}}"], MODEL)


def test_spark_conf_may_set_other_environment():
    cfg = load_config(None, ["job.spark_conf={spark.executorEnv.OMP_NUM_THREADS: '2'}"], MODEL)
    assert cfg.job.spark_conf == {"spark.executorEnv.OMP_NUM_THREADS": "2"}


def test_model_engine_is_vllm_or_dry_and_part_of_the_fingerprint():
    real = load_config(ROOT / "conf" / "demo.yaml")
    dry = load_config(ROOT / "conf" / "demo.yaml", ["model.engine=dry"])
    assert (real.model.engine, dry.model.engine) == ("vllm", "dry")
    # a dry output is never resumed for real
    assert dry.fingerprint(prompt_version="p") != real.fingerprint(prompt_version="p")
    with pytest.raises(ConfigError, match=r"model.engine.*'vllm' or 'dry'.*wet"):
        load_config(None, ["model.engine=wet"], MODEL)
