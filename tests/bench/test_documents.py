"""The bench's document sets: deterministic, varied, one language when asked; warm-up apart."""

import pytest

from bench.documents import varied_documents, warmup_documents


def test_varied_documents_are_deterministic_and_of_varied_length():
    docs = varied_documents(12, seed=0)
    assert [d.text for d in docs] == [d.text for d in varied_documents(12, seed=0)]
    lengths = sorted(len(d.text) for d in docs)
    assert lengths[-1] > 4 * lengths[0]
    assert len({d.id for d in docs}) == 12


def test_bench_documents_of_one_language_when_asked():
    from mga_spark.text.language import detect

    mixed = varied_documents(8, seed=0)
    english = varied_documents(8, seed=0, languages=("en",))
    assert [detect(d.text) for d in mixed].count("zh") == 2
    assert {detect(d.text) for d in english} == {"en"}
    assert {detect(d.text) for d in varied_documents(3, seed=0, languages=("zh",))} == {"zh"}
    with pytest.raises(ValueError, match="languages"):
        varied_documents(2, seed=0, languages=("fr",))


def test_warmup_documents_are_unlike_the_bench_documents():
    bench = {d.text for d in varied_documents(6, seed=12345)}
    warmup = warmup_documents(6)
    assert len(warmup) == 6 and all(d.id.startswith("warmup-") for d in warmup)
    assert not bench & {d.text for d in warmup}
