"""Engine occupancy per bench phase, from vLLM's periodic log lines (`bench.occupancy`)."""

from __future__ import annotations

from bench.occupancy import main, report

VLLM = ("(MainProcess pid=1) INFO 12-01 10:00:{s:02d} [loggers.py:335] Engine 000: Avg prompt "
        "throughput: 0.0 tokens/s, Avg generation throughput: {tps} tokens/s, Running: {n} reqs, "
        "Waiting: 0 reqs, CPU KV cache usage: 1.0%, Prefix cache hit rate: 0.0%")
PHASE = "2026-12-01 10:00:{s:02d},000 INFO bench.run: {name}: {secs}s, 9 output tok/s"
OLD_PHASE = PHASE.replace("bench.run", "mga_spark.bench.run")  # logs from before the move


def log() -> str:
    lines = [VLLM.format(s=0, tps=1.0, n=2),
             VLLM.format(s=10, tps=50.0, n=70),   # 10 s with 70 running: 500 tokens
             VLLM.format(s=20, tps=5.0, n=3),     # 10 s with 3 running: 50 tokens
             PHASE.format(s=20, name="bare engine", secs="20.0"),
             VLLM.format(s=30, tps=20.0, n=10),   # next phase
             OLD_PHASE.format(s=31, name="naive per-stage", secs="11.0")]
    return "\n".join(lines)


def test_seconds_and_tokens_by_requests_running_within_each_phase():
    bare, naive = report(log(), 2026)
    assert (bare["phase"], bare["seconds"], bare["most_running_logged"]) == ("bare engine",
                                                                              20.0, 70)
    assert bare["bands"]["64+"] == {"seconds": 10, "output_tokens": 500}
    assert bare["bands"]["1-4"] == {"seconds": 10, "output_tokens": 50}
    assert bare["bands"]["5-15"] == {"seconds": 0, "output_tokens": 0}
    assert naive["bands"]["5-15"] == {"seconds": 10, "output_tokens": 200}
    assert naive["most_running_logged"] == 10


def test_the_command_prints_a_table(tmp_path, capsys):
    path = tmp_path / "bench.log"
    path.write_text(log())
    assert main([str(path), "--year", "2026"]) == 0
    out = capsys.readouterr().out
    assert "| bare engine | 20.0 | 10 (50) | 0 (0) | 0 (0) | 10 (500) |" in out
