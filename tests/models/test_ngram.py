"""Unigram and bigram draft models: fitted counts checked by hand, the top-K back-off a proper distribution, the
Hugging Face round trip exact (the command line that fits them is tested in tests/cli/test_fit_ngram.py)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from specsweep.errors import ConfigError
from specsweep.models.ngram import NGramConfig, NGramForCausalLM, describe, fit

DOCS = [[1, 2, 1, 3], [2, 1]]  # V=5; the pair (3, 2) spans the two documents and must not count
V, K_ADD = 5, 0.5


def probs(model: NGramForCausalLM, ids: list[int]) -> torch.Tensor:
    """Row t: the model's next-token distribution after ids[t], in float64."""
    return torch.exp(model(torch.tensor([ids])).logits[0].double())


def test_unigram_matches_hand_counts():
    model = fit(DOCS, V, 1, add_k=K_ADD)
    counts, total = {0: 0, 1: 3, 2: 2, 3: 1, 4: 0}, 6
    expected = torch.tensor([(counts[b] + K_ADD) / (total + K_ADD * V) for b in range(V)], dtype=torch.float64)
    rows = probs(model, [0, 3, 4])
    assert torch.allclose(rows, expected.expand(3, V), atol=1e-6)  # the same row whatever the context
    assert model.config.order == 1 and not hasattr(model, "top_ids")


def test_dense_bigram_matches_hand_counts_and_never_spans_documents():
    model = fit(DOCS, V, 2, add_k=K_ADD, top_k=V + 3)
    pairs = {(1, 2): 1, (1, 3): 1, (2, 1): 2}  # counted by hand; (3, 2) crosses the boundary
    context = {0: 0, 1: 2, 2: 2, 3: 0, 4: 0}
    expected = torch.tensor([[(pairs.get((a, b), 0) + K_ADD) / (context[a] + K_ADD * V) for b in range(V)]
                             for a in range(V)], dtype=torch.float64)
    assert torch.allclose(probs(model, list(range(V))), expected, atol=1e-6)
    assert probs(model, [3])[0, 2].item() == pytest.approx(0.2, abs=1e-6)  # unseen context: uniform
    assert model.top_ids.shape == (V, V)  # K = min(top_k, V)
    rest = model.rest_logp
    assert torch.isfinite(rest).all() and (rest < -1000).all()  # dense: nothing backs off


def stream(seed: int, vocab: int) -> list[list[int]]:
    """Skewed documents, with a context (vocab-1) never seen and one (vocab-2) followed by one token only."""
    gen = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, vocab - 1, dtype=torch.float64)
    docs = [torch.multinomial(weights, 40, replacement=True, generator=gen).tolist() for _ in range(6)]
    return [*docs, [vocab - 2, 0, vocab - 2, 0]]


def test_top_k_bigram_backs_off_to_the_unigram_and_every_row_sums_to_one():
    vocab, kept, k = 12, 3, 0.2
    docs = stream(0, vocab)
    model = fit(docs, vocab, 2, add_k=k, top_k=kept)
    pairs = Counter((a, b) for doc in docs for a, b in zip(doc, doc[1:], strict=False))
    context = Counter(a for doc in docs for a in doc[:-1])
    unigram = Counter(t for doc in docs for t in doc)
    total = sum(unigram.values())
    p_uni = torch.tensor([(unigram[b] + k) / (total + k * vocab) for b in range(vocab)], dtype=torch.float64)
    rows = probs(model, list(range(vocab)))
    assert torch.allclose(rows.sum(-1), torch.ones(vocab, dtype=torch.float64), atol=1e-5)
    for a in range(vocab):
        # the K most frequent next tokens, ties broken by the lower id; unseen ones (count 0) fill short rows
        top = sorted(range(vocab), key=lambda b: (-pairs[(a, b)], b))[:kept]
        assert model.top_ids[a].tolist() == top
        for b in top:
            assert rows[a, b].item() == pytest.approx((pairs[(a, b)] + k) / (context[a] + k * vocab), abs=1e-6)
        rest = [b for b in range(vocab) if b not in top]
        ratio = rows[a, rest] / p_uni[rest]  # proportional to the unigram outside the top K
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)
    assert model.top_ids[vocab - 1].tolist() == [0, 1, 2]  # never seen: the lowest ids
    assert model.top_ids[vocab - 2].tolist() == [0, 1, 2]  # seen before 0 only, then the lowest unseen ids


def test_save_and_from_pretrained_round_trip_is_exact(tmp_path):
    model = fit(stream(1, 20), 20, 2, top_k=4, eos_token_id=19, bos_token_id=19)
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    loaded, info = AutoModelForCausalLM.from_pretrained(tmp_path, config=config, dtype=torch.float32,
                                                        attn_implementation="eager", output_loading_info=True)
    assert isinstance(loaded, NGramForCausalLM) and isinstance(config, NGramConfig)
    assert not any(info.values()), info  # no missing (newly initialized), unexpected or mismatched weights
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name  # bit for bit, top_ids still int32
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    full = loaded(ids)
    assert torch.equal(full.logits, model(ids).logits) and full.past_key_values is None
    assert torch.equal(loaded(ids, logits_to_keep=3).logits, full.logits[:, -3:])
    assert torch.equal(loaded(ids, logits_to_keep=torch.tensor([0, 5])).logits, full.logits[:, [0, 5]])
    assert loaded.num_parameters() == 20 + 20 * 4 + 20 and loaded.num_parameters(only_trainable=True) == 0
    assert loaded.get_memory_footprint() == 4 * (20 + 2 * 20 * 4 + 20)
    assert loaded.generation_config.eos_token_id == 19 and loaded.config._attn_implementation == "eager"
    greedy = loaded.generate(ids[:, :1], max_new_tokens=3, do_sample=False, pad_token_id=19)[0].tolist()
    for a, b in zip(greedy, greedy[1:], strict=False):
        assert b == loaded(torch.tensor([[a]])).logits[0, -1].argmax().item()  # a bigram's greedy chain

    half = AutoModelForCausalLM.from_pretrained(tmp_path, config=AutoConfig.from_pretrained(tmp_path),
                                                dtype=torch.float16)
    assert half.dtype == torch.float16 and half.top_ids.dtype == torch.int32
    logits = half(ids).logits
    assert logits.dtype == torch.float16 and torch.isfinite(logits).all()
    assert torch.allclose(logits.float(), full.logits, atol=2e-2)
    assert "bigram over 20 tokens, top 4 per context: 120 parameters" in describe(loaded)


def test_fit_refuses_ids_outside_the_vocabulary_and_bad_shapes():
    with pytest.raises(ConfigError, match="token id 7"):
        fit([[1, 7]], 5, 2)
    with pytest.raises(ConfigError, match="order=3"):
        fit(DOCS, V, 3)
    with pytest.raises(ConfigError, match="add_k=0"):
        fit(DOCS, V, 2, add_k=0)
