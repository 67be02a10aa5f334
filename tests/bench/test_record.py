"""The length recording (`bench.record`) on the fake engine: lengths only, finished documents."""

from __future__ import annotations

from bench.documents import varied_documents
from bench.phases import StepTracker, measure
from bench.record import incremental_body, recording
from mga_spark.engine.fake import FakeEngine
from tests.helpers import make_config, scripted


def test_recording_keeps_lengths_by_document_and_chunk_and_writes_as_documents_finish():
    docs = varied_documents(4, seed=1)
    writes = []
    cfg = make_config(pipeline={"max_inflight_docs": 1})
    result, recorder = measure("rec", FakeEngine(scripted()), StepTracker(), len(docs),
                               incremental_body(cfg, docs, lambda e, closed: writes.append(
                                   set(closed)), every_s=0.0))
    assert writes[-1] == {d.id for d in docs}
    assert writes[0] < writes[-1]  # written while documents were still running
    rec = recording(recorder.requests, recorder.completions, lambda t: len(t.split()))
    assert [d["document"] for d in rec] == [d.id for d in docs]
    stages = [r["stage"] for d in rec for c in d["chunks"] for r in c["requests"]]
    assert stages.count("rewrite") == 5 * stages.count("ga") == 5 * result.requests["ga"]
    for d in rec:
        for c in d["chunks"]:
            assert c["source_tokens"] and c["source_tokens"] > 0
            for r in c["requests"]:
                assert set(r) == {"stage", "pair", "prompt_tokens", "output_tokens",
                                  "max_tokens", "finish_reason"}  # no text
                assert r["prompt_tokens"] > 0 and r["finish_reason"] == "stop"
