"""The benchmark command runs end to end on a small synthetic pair and reports what the README says."""

from __future__ import annotations

import torch

from specsweep.bench import main, synthetic_pair
from specsweep.decoding import autoregressive, derive, speculative


def test_bench_reports_ratios_and_identical_outputs(capsys):
    results = main(["--layers", "3", "--hidden", "64", "--vocab", "128", "--prompts", "2",
                    "--prompt-length", "8", "--max-new-tokens", "12", "--repeats", "2"])
    assert results["greedy_outputs_identical"] is True
    for name in ("speculative", "assisted"):
        assert results[name]["speedup"] > 0 and results[name]["c"] > 0 and results[name]["alpha"] is not None
    assert all(len(v) == 2 for v in results["tokens_per_s"].values())
    printed = capsys.readouterr().out
    assert "speculative / assisted" in printed and "predicted S" in printed


def test_synthetic_draft_agrees_with_its_target_often():
    """The default pair must exercise acceptance, or the benchmark would only time rejections."""
    target, draft = synthetic_pair(layers=3, hidden=64, vocab=128)
    prompt = torch.arange(1, 17)[None]
    out = speculative(target, draft, prompt, gamma=3, max_new_tokens=48)
    assert out.tokens.tolist() == autoregressive(target, prompt, max_new_tokens=48).tokens.tolist()
    assert 0.3 < derive(out.stats)["alpha"] < 1
